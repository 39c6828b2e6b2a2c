//! Routes written per second into `ROUTES` through the agent's facade
//! ([`DataPlane::install_route`] one at a time, as the agent's map writer does, and
//! [`DataPlane::install_routes`] for a burst), against the raw ceiling: a tight loop of
//! `bpf(BPF_MAP_UPDATE_ELEM)` syscalls through libc on the same pinned map, with the
//! same keys and value (the one the facade wrote), prepared beforehand.
//!
//! The map is a real pinned data plane (`dataplane::load`, as the agent loads it), under
//! `/sys/fs/bpf/matrix/<prefix>-mapupd`, removed afterwards also on failure. It is
//! filled once, then every pass replaces the same routes (the steady state of a route
//! writer), in interleaved rounds whose method order rotates.
//!
//! `BPF_MAP_UPDATE_BATCH` on the LPM trie is probed (written, read back) and, where the
//! kernel has it, timed as one syscall per pass: aya 0.14 has no batch call and
//! matrix-user forbids unsafe code, so the agent's burst path is a loop of single
//! updates whatever the kernel offers.

use std::{
    net::Ipv4Addr,
    os::fd::{AsFd as _, AsRawFd as _},
    time::Instant,
};

use anyhow::Context as _;
use aya::maps::{LpmTrie, Map, MapData, lpm_trie::Key};
use matrix_common::{NextHopSet, NodeKey, names};
use matrix_user::{
    dataplane::{self, DataPlane, UnderlayLink},
    node::{NodeId, NodePrefix},
};
use serde_json::{Value, json};

use crate::{
    route_lookup::fill_ids,
    run::{self, PinnedPlane, median, ratios, spread},
};

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
/// The two neighbours every route goes through, with equal weights.
const VIA: [(NodeId, u32); 2] = [(NodeId(0x0001_0002), 1), (NodeId(0x0001_0003), 1)];
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// The LPM trie key as the kernel reads it (`struct bpf_lpm_trie_key_u8` with 4 bytes).
#[repr(C)]
struct LpmKey {
    prefixlen: u32,
    data: [u8; 4],
}

/// `union bpf_attr` for BPF_MAP_*_ELEM.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for BPF_MAP_*_BATCH.
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// One `bpf(BPF_MAP_UPDATE_ELEM)`.
fn raw_update(fd: i32, key: &LpmKey, value: &NextHopSet) -> std::io::Result<()> {
    let attr = ElemAttr {
        map_fd: fd as u32,
        _pad: 0,
        key: key as *const LpmKey as u64,
        value: value as *const NextHopSet as u64,
        flags: 0,
    };
    // SAFETY: attr points at a live key and value of the map's sizes for this call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_ELEM,
            &attr as *const ElemAttr,
            size_of::<ElemAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// One `bpf(BPF_MAP_UPDATE_BATCH)` of `keys` and `values`; returns how many the kernel
/// wrote.
fn raw_update_batch(fd: i32, keys: &[LpmKey], values: &[NextHopSet]) -> std::io::Result<u32> {
    let attr = BatchAttr {
        in_batch: 0,
        out_batch: 0,
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: keys.len().min(values.len()) as u32,
        map_fd: fd as u32,
        elem_flags: 0,
        flags: 0,
    };
    // SAFETY: keys and values are live arrays of at least `count` map-sized elements.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_BATCH,
            &attr as *const BatchAttr,
            size_of::<BatchAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(attr.count)
}

/// The pinned ROUTES map, read raw.
type RawRoutes = LpmTrie<MapData, NodeKey, NextHopSet>;

/// Whether BPF_MAP_UPDATE_BATCH works on the LPM trie: a batch of distinct values, read
/// back raw, then the routes restored through the facade.
fn probe_batch(
    dp: &mut DataPlane,
    fd: i32,
    raw: &RawRoutes,
    routes: &[(NodePrefix, [(NodeId, u32); 2])],
    keys: &[LpmKey],
) -> anyhow::Result<(bool, String)> {
    let n = keys.len().min(16);
    let marked: Vec<NextHopSet> = (0..n as u32)
        .map(|i| NextHopSet::new(&[(3, 100 + i)]))
        .collect();
    let answer = match raw_update_batch(fd, &keys[..n], &marked) {
        // 524 is the kernel-internal ENOTSUPP, which has no libc name.
        Err(e) if e.raw_os_error() == Some(524) => {
            return Ok((false, "ENOTSUPP: not implemented for the LPM trie".into()));
        }
        Err(e) => return Ok((false, format!("failed: {e}"))),
        Ok(count) => count,
    };
    let written = keys[..n]
        .iter()
        .zip(&marked)
        .filter(|(k, want)| raw.get(&Key::new(k.prefixlen, k.data), 0).ok() == Some(**want))
        .count();
    dp.install_routes(routes[..n].iter().copied())?;
    Ok((
        written == n,
        format!("accepted: count {answer}, {written} of {n} routes read back as written"),
    ))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Facade,
    FacadeBurst,
    Raw,
    /// One BPF_MAP_UPDATE_BATCH syscall for the whole pass, if the kernel has it.
    RawBatch,
}

/// Measures; `n` routes per pass, `rounds` rounds.
pub fn run(prefix: &str, n: usize, rounds: usize) -> anyhow::Result<Value> {
    let dir = dataplane::pin_dir(&format!("{prefix}-mapupd"));
    let _plane = PinnedPlane::load(&dir)?;
    let mut dp = DataPlane::open(&dir)?;
    // The routes' next hops, added as the agent adds neighbours (made-up links: no
    // packet is sent).
    for (i, &(node, _)) in VIA.iter().enumerate() {
        let i = i as u8 + 1;
        let link = UnderlayLink {
            ifindex: 1,
            mtu: 1500,
            local_ipv4: Ipv4Addr::new(192, 0, 2, 2 * i),
            remote_ipv4: Ipv4Addr::new(192, 0, 2, 2 * i + 1),
            local_mac: [0x02, 0, 0, 0, i, 1],
        };
        dp.set_neighbor(node, link)?;
    }
    let ids = fill_ids(n);
    let routes: Vec<(NodePrefix, [(NodeId, u32); 2])> = ids
        .iter()
        .map(|&id| (NodePrefix::host(NodeId(id)), VIA))
        .collect();
    let keys: Vec<LpmKey> = ids
        .iter()
        .map(|id| LpmKey {
            prefixlen: 32,
            data: id.to_be_bytes(),
        })
        .collect();
    let routes_map = MapData::from_pin(dir.join(names::ROUTES)).context("open pinned ROUTES")?;
    let fd = routes_map.fd().as_fd().as_raw_fd();
    let raw: RawRoutes = LpmTrie::try_from(Map::from_map_data(
        MapData::from_pin(dir.join(names::ROUTES)).context("open pinned ROUTES")?,
    )?)?;

    // First fill: new entries.
    let t = Instant::now();
    dp.install_routes(routes.iter().copied())?;
    let insert_rate = n as f64 / t.elapsed().as_secs_f64();
    // The value the raw writes repeat: what the facade wrote for the same next hops.
    let first = &keys[0];
    let set = raw.get(&Key::new(first.prefixlen, first.data), 0)?;
    let (batch_works, batch) = probe_batch(&mut dp, fd, &raw, &routes, &keys)?;
    println!("BPF_MAP_UPDATE_BATCH on the LPM trie: {batch}");
    let values = vec![set; n];

    let mut methods = vec![Method::Facade, Method::FacadeBurst, Method::Raw];
    if batch_works {
        methods.push(Method::RawBatch);
    }
    let mut rates: [Vec<f64>; 4] = Default::default();
    for round in 0..rounds {
        eprint!("\rround {}/{rounds}", round + 1);
        for k in 0..methods.len() {
            run::interrupted()?;
            let i = (round + k) % methods.len();
            let t = Instant::now();
            match methods[i] {
                Method::Facade => {
                    for (dst, via) in &routes {
                        dp.install_route(*dst, via)?;
                    }
                }
                Method::FacadeBurst => {
                    dp.install_routes(routes.iter().copied())?;
                }
                Method::Raw => {
                    for key in &keys {
                        raw_update(fd, key, &set).context("raw BPF_MAP_UPDATE_ELEM")?;
                    }
                }
                Method::RawBatch => {
                    let done =
                        raw_update_batch(fd, &keys, &values).context("raw BPF_MAP_UPDATE_BATCH")?;
                    anyhow::ensure!(done as usize == n, "batch wrote {done} of {n}");
                }
            }
            rates[i].push(n as f64 / t.elapsed().as_secs_f64());
        }
    }
    eprintln!();
    let [facade, burst, raw, raw_batch] = rates;
    let agent_vs_raw = ratios(&facade, &raw);
    let burst_vs_raw = ratios(&burst, &raw);
    let installed = dp.routes()?.len();
    anyhow::ensure!(
        installed == n,
        "ROUTES holds {installed} routes after the passes, not {n}"
    );
    let row = |name: &str, r: &[f64]| {
        println!(
            "{name:<34} {:>12.0} routes/s (spread {:.0})",
            median(r),
            spread(r)
        );
    };
    row("install_route (one at a time)", &facade);
    row("install_routes (burst)", &burst);
    row("raw BPF_MAP_UPDATE_ELEM", &raw);
    if batch_works {
        row("raw BPF_MAP_UPDATE_BATCH (one call)", &raw_batch);
    }
    println!(
        "agent / raw ceiling: {:.3} (burst: {:.3})",
        median(&agent_vs_raw),
        median(&burst_vs_raw)
    );
    Ok(json!({
        "bench": "map_update",
        "routes_per_pass": n,
        "rounds": rounds,
        "first_fill_routes_per_s": insert_rate,
        "install_route_routes_per_s": median(&facade),
        "install_routes_burst_routes_per_s": median(&burst),
        "raw_update_elem_routes_per_s": median(&raw),
        "agent_vs_raw_update": median(&agent_vs_raw),
        "burst_vs_raw_update": median(&burst_vs_raw),
        "update_batch_on_lpm_trie": batch,
        "raw_update_batch_routes_per_s": batch_works.then(|| median(&raw_batch)),
        "rounds_raw_batch": raw_batch,
        "rounds_install_route": facade,
        "rounds_install_routes_burst": burst,
        "rounds_raw": raw,
        "method": "per round, n distinct /32 routes replaced in a pinned ROUTES map: \
                   DataPlane::install_route per route (the agent's map writer), \
                   DataPlane::install_routes (burst; a loop, the LPM trie has no batch \
                   update), and a tight loop of raw bpf(BPF_MAP_UPDATE_ELEM) via libc with \
                   the same keys and value prepared beforehand; ratio per round, median",
    }))
}
