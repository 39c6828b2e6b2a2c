//! Runs every packet fixture (`matrix_testing::fixtures`) through the XDP programs with
//! BPF_PROG_TEST_RUN and checks the verdict, the exact bytes out, and the COUNTERS,
//! NEIGH_STATS and DEMAND deltas. The world is built through the `DataPlane` facade;
//! neighbour traffic is read back through it too, by NodeId, and checked against the raw
//! map, so that nothing is counted where no neighbour is.
//!
//! Needs root (BPF_PROG_LOAD, map creation): without it the tests fail, they never skip.
//! Each test loads its own object with unpinned maps, so the tests run in parallel.

use std::{collections::BTreeMap, fmt::Debug};

use anyhow::anyhow;
use aya::maps::{PerCpuArray, PerCpuHashMap};
use etherparse::PacketHeaders;
use matrix_common::{
    COUNTER_SLOTS, Config, DROP_INTERNAL, DROP_MALFORMED, DROP_NAMES, ENCAP_OVERHEAD, GENEVE_PORT,
    MAX_NEIGHBORS, NeighborStats, OuterV4, PATH_NAMES, PATH_PASSTHROUGH, VERDICT_DROP,
    VERDICT_NAMES, VERDICT_PASS, names,
};
use matrix_testing::fixtures::{
    self, Action, Expect, Fixture, Instance, Kind, Prog, World, parse_outer, run_frame as run,
};
use matrix_user::node::NodeId;

fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "tests/xdp.rs loads XDP programs and needs root (euid is {euid}): \
         run it as root, e.g. `sudo -E cargo test -p matrix-testing --test xdp`"
    );
}

fn load(world: &World) -> Instance {
    require_root();
    fixtures::load(world).expect("load the data plane and build the fixture world")
}

/// COUNTERS, NEIGH_STATS and DEMAND, each summed over CPUs.
struct Snapshot {
    counters: Vec<u64>,
    /// Per neighbour, through the facade.
    neigh: BTreeMap<u32, NeighborStats>,
    /// Over every slot of the map, raw.
    neigh_total: NeighborStats,
    demand: BTreeMap<u32, u64>,
}

fn add(a: NeighborStats, b: &NeighborStats) -> NeighborStats {
    NeighborStats {
        rx_packets: a.rx_packets + b.rx_packets,
        rx_bytes: a.rx_bytes + b.rx_bytes,
        tx_packets: a.tx_packets + b.tx_packets,
        tx_bytes: a.tx_bytes + b.tx_bytes,
    }
}

fn snapshot(inst: &Instance) -> anyhow::Result<Snapshot> {
    let ebpf = &inst.ebpf;
    let map = |name| ebpf.map(name).ok_or_else(|| anyhow!("no map {name}"));
    let counters: PerCpuArray<_, u64> = PerCpuArray::try_from(map(names::COUNTERS)?)?;
    let counters = (0..COUNTER_SLOTS)
        .map(|i| Ok(counters.get(&i, 0)?.iter().sum()))
        .collect::<anyhow::Result<_>>()?;
    let neigh = (inst.dp.neighbors()?.into_iter())
        .map(|(node, _)| Ok((node.0, inst.dp.neighbor_stats(node)?)))
        .collect::<anyhow::Result<_>>()?;
    let stats: PerCpuArray<_, NeighborStats> = PerCpuArray::try_from(map(names::NEIGH_STATS)?)?;
    let mut neigh_total = NeighborStats::default();
    for i in 0..MAX_NEIGHBORS {
        neigh_total = stats.get(&i, 0)?.iter().fold(neigh_total, add);
    }
    let demand: PerCpuHashMap<_, u32, u64> = PerCpuHashMap::try_from(map(names::DEMAND)?)?;
    let demand = demand
        .iter()
        .map(|kv| kv.map(|(node, per_cpu)| (node, per_cpu.iter().sum())))
        .collect::<Result<_, _>>()?;
    Ok(Snapshot {
        counters,
        neigh,
        neigh_total,
        demand,
    })
}

fn slot_name(slot: u32) -> String {
    VERDICT_NAMES
        .iter()
        .map(|(s, n)| (s, format!("verdict {n}")))
        .chain(PATH_NAMES.iter().map(|(s, n)| (s, format!("path {n}"))))
        .chain(DROP_NAMES.iter().map(|(s, n)| (s, format!("drop {n}"))))
        .find(|(s, _)| **s == slot)
        .map_or(format!("slot {slot}"), |(_, n)| n)
}

/// Splits a `Debug` form at ", " outside brackets, so `source: [10, 1, 0, 10]` stays whole.
fn debug_fields(debug: &str) -> Vec<&str> {
    let (mut fields, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in debug.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 && debug[i..].starts_with(", ") => {
                fields.push(&debug[start..i]);
                start = i + 2;
            }
            _ => {}
        }
    }
    fields.push(&debug[start..]);
    fields
}

/// Compares two headers through their etherparse `Debug` form, field by field.
fn header_diff(layer: &str, expected: &impl Debug, got: &impl Debug, out: &mut Vec<String>) {
    let (e, g) = (format!("{expected:?}"), format!("{got:?}"));
    if e == g {
        return;
    }
    let (ef, gf) = (debug_fields(&e), debug_fields(&g));
    if ef.len() != gf.len() {
        out.push(format!("{layer}: expected {e}, got {g}"));
        return;
    }
    for (a, b) in ef.iter().zip(&gf).filter(|(a, b)| a != b) {
        out.push(format!("{layer}: expected `{a}`, got `{b}`"));
    }
}

/// The headers of a parsed packet, layer by layer.
fn headers_diff(what: &str, expected: &PacketHeaders, got: &PacketHeaders, out: &mut Vec<String>) {
    header_diff(&format!("{what} link"), &expected.link, &got.link, out);
    header_diff(&format!("{what} net"), &expected.net, &got.net, out);
    header_diff(
        &format!("{what} transport"),
        &expected.transport,
        &got.transport,
        out,
    );
}

/// Every outer-header field (Geneve and the Matrix option included) by name.
fn outer_diff(e: &OuterV4, g: &OuterV4, out: &mut Vec<String>) {
    macro_rules! fields {
        ($($a:ident . $b:ident),*) => {$(
            if e.$a.$b != g.$a.$b {
                out.push(format!(
                    "outer {}.{}: expected {:02x?}, got {:02x?}",
                    stringify!($a), stringify!($b), e.$a.$b, g.$a.$b
                ));
            }
        )*};
    }
    fields!(
        eth.dst,
        eth.src,
        eth.ether_type,
        ip.version_ihl,
        ip.tos,
        ip.total_len,
        ip.id,
        ip.frag_off,
        ip.ttl,
        ip.protocol,
        ip.check,
        ip.src,
        ip.dst,
        udp.src_port,
        udp.dst_port,
        udp.len,
        udp.check,
        geneve.ver_opt_len,
        geneve.flags,
        geneve.protocol,
        geneve.vni_reserved,
        opt.class,
        opt.opt_type,
        opt.len,
        opt.dst_node,
        opt.src_node,
        opt.hop_limit,
        opt.flags,
        opt.flow_hash
    );
}

fn is_overlay(frame: &[u8]) -> Option<OuterV4> {
    parse_outer(frame).filter(|o| o.ip.version_ihl == 0x45 && o.udp.dst_port() == GENEVE_PORT)
}

/// Field-by-field explanation of why `got` is not `expected`.
fn frame_diff(expected: &[u8], got: &[u8]) -> String {
    let mut out = Vec::new();
    if expected.len() != got.len() {
        out.push(format!(
            "length: expected {}, got {}",
            expected.len(),
            got.len()
        ));
    }
    match (is_overlay(expected), is_overlay(got)) {
        (Some(e), Some(g)) => {
            outer_diff(&e, &g, &mut out);
            let (e, g) = (&expected[ENCAP_OVERHEAD..], &got[ENCAP_OVERHEAD..]);
            if let (Ok(e), Ok(g)) = (
                PacketHeaders::from_ip_slice(e),
                PacketHeaders::from_ip_slice(g),
            ) {
                headers_diff("inner", &e, &g, &mut out);
            }
        }
        _ => {
            let parse = PacketHeaders::from_ethernet_slice;
            if let (Ok(e), Ok(g)) = (parse(expected), parse(got)) {
                headers_diff("frame", &e, &g, &mut out);
            }
        }
    }
    if let Some(at) = expected.iter().zip(got).position(|(a, b)| a != b) {
        let window = |f: &[u8]| format!("{:02x?}", &f[at..f.len().min(at + 16)]);
        out.push(format!(
            "first differing byte at {at}: expected {}, got {}",
            window(expected),
            window(got)
        ));
    }
    out.join("\n      ")
}

fn stats_delta(before: &NeighborStats, after: &NeighborStats) -> NeighborStats {
    NeighborStats {
        rx_packets: after.rx_packets - before.rx_packets,
        rx_bytes: after.rx_bytes - before.rx_bytes,
        tx_packets: after.tx_packets - before.tx_packets,
        tx_bytes: after.tx_bytes - before.tx_bytes,
    }
}

/// Runs one fixture; returns what is wrong with the outcome.
fn check(inst: &Instance, f: &Fixture) -> Vec<String> {
    let mut errors = Vec::new();
    let before = snapshot(inst).expect("read counters");
    let r = match run(&inst.ebpf, f.prog, &f.input) {
        Ok(r) => r,
        Err(e) => return vec![format!("test_run failed: {e:#}")],
    };
    let after = snapshot(inst).expect("read counters");
    let action = Action::from_code(r.action);

    // The action, and the counter slots that must have moved by exactly one.
    let (want_action, want) = match f.expect {
        Expect::Counted(a, slot) => (Some(a), vec![a as u32, slot]),
        Expect::Uncounted(a) => (Some(a), vec![]),
        // Garbage: whichever of PASS (as pass-through) or DROP (for some reason) happened.
        Expect::PassOrDrop => {
            let moved = |s: &u32| after.counters[*s as usize] > before.counters[*s as usize];
            match (action, (DROP_MALFORMED..COUNTER_SLOTS).find(moved)) {
                (Some(Action::Pass), _) => (action, vec![VERDICT_PASS, PATH_PASSTHROUGH]),
                (Some(Action::Drop), Some(reason)) => (action, vec![VERDICT_DROP, reason]),
                _ => (None, vec![]),
            }
        }
    };
    if want_action.is_none() || action != want_action {
        let want = want_action.map_or("PASS or DROP".into(), |a| format!("{a:?}"));
        errors.push(format!(
            "action: expected {want}, got {action:?} ({})",
            r.action
        ));
    }
    for slot in 0..COUNTER_SLOTS as usize {
        let delta = after.counters[slot] - before.counters[slot];
        let expected = want.iter().filter(|s| **s as usize == slot).count() as u64;
        if delta != expected {
            let name = slot_name(slot as u32);
            errors.push(format!(
                "COUNTERS[{name}]: expected +{expected}, got +{delta}"
            ));
        }
    }
    for f_node in f.neigh.iter().map(|(n, _)| n) {
        if !after.neigh.contains_key(f_node) {
            errors.push(format!("NEIGH_STATS: {} is no neighbour", NodeId(*f_node)));
        }
    }
    let mut neighbors_delta = NeighborStats::default();
    for (node, after_n) in &after.neigh {
        let delta = stats_delta(&before.neigh[node], after_n);
        neighbors_delta = add(neighbors_delta, &delta);
        let expected = f.neigh_delta(*node);
        if delta != expected {
            let node = NodeId(*node);
            errors.push(format!(
                "NEIGH_STATS[{node}]: expected {expected:?}, got {delta:?}"
            ));
        }
    }
    // Counters only grow: the whole map moving by exactly the neighbours' deltas means
    // that no slot without a neighbour moved.
    let elsewhere = stats_delta(
        &neighbors_delta,
        &stats_delta(&before.neigh_total, &after.neigh_total),
    );
    if elsewhere != NeighborStats::default() {
        errors.push(format!(
            "NEIGH_STATS of slots no neighbour holds: expected no change, got {elsewhere:?}"
        ));
    }
    // Encapsulation counts the packet in DEMAND under its destination node; nothing else does.
    let mut want_demand = before.demand.clone();
    if f.kind == Kind::Encap {
        let dst = parse_outer(&f.output)
            .expect("an overlay frame")
            .opt
            .dst_node();
        *want_demand.entry(dst).or_default() += 1;
    }
    if after.demand != want_demand {
        errors.push(format!(
            "DEMAND: expected {want_demand:?}, got {:?}",
            after.demand
        ));
    }
    if r.output != f.output {
        errors.push(format!(
            "bytes out differ:\n      {}",
            frame_diff(&f.output, &r.output)
        ));
    }
    errors
}

/// Runs every fixture of `kind` on a fresh object and reports all failures at once.
fn run_kind(kind: Kind) {
    let inst = load(&World::standard());
    let table: Vec<Fixture> = fixtures::all()
        .into_iter()
        .filter(|f| f.kind == kind)
        .collect();
    assert!(!table.is_empty(), "no {kind:?} fixtures");
    let failures: Vec<String> = table
        .iter()
        .filter_map(|f| {
            let errors = check(&inst, f);
            (!errors.is_empty()).then(|| format!("{}:\n    {}", f.name, errors.join("\n    ")))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} {kind:?} fixtures failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

#[test]
fn baseline() {
    run_kind(Kind::Baseline);
}

#[test]
fn passthrough() {
    run_kind(Kind::Passthrough);
}

#[test]
fn transit() {
    run_kind(Kind::Transit);
}

#[test]
fn encapsulation() {
    run_kind(Kind::Encap);
}

#[test]
fn decapsulation() {
    run_kind(Kind::Decap);
}

#[test]
fn drops() {
    run_kind(Kind::Drop);
}

#[test]
fn garbage() {
    run_kind(Kind::Garbage);
}

/// With CONFIG's node id 0 the programs behave as if matrix were not attached: frames that
/// would be decapsulated, relayed or encapsulated all pass untouched.
#[test]
fn unconfigured_node_passes_everything() {
    let world = World {
        config: Config::default(),
        ..World::standard()
    };
    let inst = load(&world);
    for name in [
        "underlay/decap_v4_tcp",
        "underlay/transit_tx_v4_tcp",
        "underlay/drop_unknown_neighbor",
        "workload/encap_v4_tcp",
        "workload/encap_v6_udp",
    ] {
        let f = fixtures::by_name(name);
        let f = Fixture {
            kind: Kind::Passthrough,
            expect: Expect::Counted(Action::Pass, PATH_PASSTHROUGH),
            output: f.input.clone(),
            neigh: Vec::new(),
            ..f
        };
        let errors = check(&inst, &f);
        assert!(
            errors.is_empty(),
            "{name} (unconfigured):\n    {}",
            errors.join("\n    ")
        );
    }
}

/// Without an EGRESS entry for the next hop's interface `bpf_redirect_map` fails: the packet
/// is dropped as an internal error (the frame was already rewritten; what is left is not
/// checked here). NEIGH_STATS tx is counted before the redirect is tried, so it is not
/// checked either: see the report of the data-plane review.
#[test]
fn missing_egress_entry_is_an_internal_drop() {
    let inst = load(&World {
        egress: Vec::new(),
        ..World::standard()
    });
    for name in ["underlay/transit_redirect_v4_udp", "workload/encap_v6_udp"] {
        let f = fixtures::by_name(name);
        let before = snapshot(&inst).unwrap();
        let r = run(&inst.ebpf, f.prog, &f.input).unwrap();
        let after = snapshot(&inst).unwrap();
        assert_eq!(r.action, Action::Drop as u32, "{name}");
        let delta: Vec<u64> = (0..COUNTER_SLOTS as usize)
            .map(|s| after.counters[s] - before.counters[s])
            .collect();
        let mut want = vec![0; COUNTER_SLOTS as usize];
        (want[VERDICT_DROP as usize], want[DROP_INTERNAL as usize]) = (1, 1);
        assert_eq!(delta, want, "{name}: COUNTERS deltas");
        // Nothing left the node: no transmit load on any neighbour, no demand recorded.
        let tx = |s: &Snapshot| -> Vec<(u64, u64)> {
            let all = s.neigh.values().chain([&s.neigh_total]);
            all.map(|n| (n.tx_packets, n.tx_bytes)).collect()
        };
        assert!(
            tx(&after) == tx(&before),
            "{name}: NEIGH_STATS tx must not change"
        );
        assert_eq!(
            after.demand, before.demand,
            "{name}: DEMAND must not change"
        );
    }
}

/// The counters are per CPU and summed: many runs add up exactly.
#[test]
fn counters_accumulate_over_runs() {
    let inst = load(&World::standard());
    let f = fixtures::by_name("underlay/drop_no_route");
    let before = snapshot(&inst).unwrap();
    for _ in 0..100 {
        assert_eq!(
            run(&inst.ebpf, Prog::Underlay, &f.input).unwrap().action,
            Action::Drop as u32
        );
    }
    let after = snapshot(&inst).unwrap();
    let Expect::Counted(_, reason) = f.expect else {
        unreachable!()
    };
    assert_eq!(
        after.counters[reason as usize] - before.counters[reason as usize],
        100
    );
    assert!(inst.ebpf.map(names::COUNTERS).is_some());
}

/// Tracing: off, nothing reaches the ring buffer; on for drops, each drop arrives with its
/// reason and its bytes; a reason filter and the forwarded flag do what they say.
#[test]
fn trace_events_carry_the_verdict_reason_and_bytes() {
    use matrix_common::{
        DROP_BAD_CHECKSUM, DROP_EXPIRED, PATH_TRANSIT, TRACE_F_DROPS, TRACE_F_FORWARDED,
        TRACE_PROG_UNDERLAY, TraceConfig, VERDICT_DROP,
    };
    use matrix_user::dataplane::trace::{TraceReader, TracedPacket};

    let mut inst = load(&World::standard());
    let ring = aya::maps::RingBuf::try_from(inst.ebpf.take_map(names::TRACE).expect("TRACE"))
        .expect("a ring buffer");
    let mut reader = TraceReader::new(ring);
    let drop = fixtures::by_name("underlay/drop_bad_checksum");
    let relay = fixtures::by_name("underlay/transit_tx_v4_tcp");
    let go = |f: &Fixture| {
        let r = run(&inst.ebpf, f.prog, &f.input).expect("test_run");
        assert_eq!(r.output, f.output, "{}", f.name);
    };
    let drain =
        |reader: &mut TraceReader| std::iter::from_fn(|| reader.next_event()).collect::<Vec<_>>();

    // Off by default.
    go(&drop);
    assert_eq!(drain(&mut reader), []);

    let on = |dp: &mut matrix_user::dataplane::DataPlane, flags, reason| {
        dp.set_trace(TraceConfig {
            flags,
            sample: 1,
            reason,
            _pad: 0,
        })
        .unwrap()
    };
    on(&mut inst.dp, TRACE_F_DROPS, 0);
    go(&drop);
    go(&relay);
    let events = drain(&mut reader);
    assert_eq!(events.len(), 1, "only the drop: {events:?}");
    let ev = &events[0];
    assert_eq!(
        (ev.program, ev.verdict, ev.slot),
        (TRACE_PROG_UNDERLAY, VERDICT_DROP, DROP_BAD_CHECKSUM)
    );
    assert_eq!(ev.frame_len as usize, drop.input.len());
    let cap = ev.cap_len as usize;
    assert_eq!(cap, drop.input.len().min(ev.data.len()));
    assert_eq!(ev.data[..cap], drop.input[..cap]);
    let decoded = TracedPacket::from(ev);
    assert_eq!((decoded.verdict, decoded.reason), ("drop", "bad_checksum"));
    assert!(
        decoded.headers.iter().any(|h| h.starts_with("geneve vni"))
            && decoded.headers.iter().any(|h| h.contains("tcp 40000 > 80")),
        "{:#?}",
        decoded.headers
    );

    // Another reason only: this drop is not traced.
    on(&mut inst.dp, TRACE_F_DROPS, DROP_EXPIRED);
    go(&drop);
    assert_eq!(drain(&mut reader), []);

    // Forwarded packets too: the relayed frame, as it leaves.
    on(&mut inst.dp, TRACE_F_DROPS | TRACE_F_FORWARDED, 0);
    go(&relay);
    let events = drain(&mut reader);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].slot, PATH_TRANSIT);
    let cap = events[0].cap_len as usize;
    assert_eq!(events[0].data[..cap], relay.output[..cap]);

    inst.dp.set_trace(TraceConfig::default()).unwrap();
    go(&drop);
    assert_eq!(drain(&mut reader), []);
}
