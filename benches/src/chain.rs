//! The forwarding benches' namespace chains: src -> relay -> sink over veth pairs, built
//! by `xtask::testbed` (plumbing only, no agents) from `benches/topologies/chain.toml`,
//! one chain per case so the cases can be measured in interleaved rounds.
//!
//! ```text
//!  (d) src-w0 eth0 ──▶ w0 [matrix_workload: encap]
//!                            │
//!  generator (src u0) ──▶ u0 relay [(a) matrix_underlay transit | (b) ip_forward
//!                                   | (c) udp_relay on 7000] u1 ──▶ u0 sink [count, drop]
//!                                                      (d) sink u0 [decap] ─▶ stack ─▶ w0
//!                                                          ─▶ sink-w0 eth0 [count, drop]
//! ```
//!
//! The data planes are loaded and their maps filled through matrix-user's own loader and
//! `DataPlane` facade, as the agent does it, pinned under the testbed's pin names; the
//! counting sink (`matrix_bench_sink`) and the generator (`matrix_bench_gen`) come from
//! one separate, unpinned instance of the object ([`BenchProgs`]). Everything carries the
//! chain's testbed prefix, and dropping a [`Chain`] removes it (the testbed's own Drop
//! also kills what runs in its namespaces).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray},
    programs::{Xdp, XdpMode, loaded_programs},
};
use ipnet::IpNet;
use matrix_common::{Config, DEFAULT_HOP_LIMIT, bench::sink, names, programs};
use matrix_testing::fixtures::{Encap, Inner};
use matrix_user::{
    dataplane::{self, DataPlane, UnderlayLink},
    node::{NodeId, NodePrefix},
};
use xtask::testbed::{State, Testbed, UpOptions};

use crate::{
    generator::{self, Generator, Sent},
    netns::{self, Link},
    run::PinnedPlane,
};

/// Inner (IP) packet sizes of the generated traffic.
pub const SIZES: [usize; 2] = [64, 1400];
/// Geneve VNI of the bench chains.
const VNI: u32 = 1;
/// UDP ports of the userspace relay (listens) and of the sink (relayed to).
pub const RELAY_PORT: u16 = 7000;
const SINK_PORT: u16 = 7001;
/// Destination port of plain and inner traffic (discard).
const DISCARD_PORT: u16 = 9;

/// What the relay namespace runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// (a) matrix transit in XDP on the relay; the generator sends Geneve frames src -> sink.
    Matrix,
    /// (b) the kernel's IP forwarding on the relay; plain UDP frames to the sink.
    LinuxForward,
    /// (c) a userspace UDP relay in the relay namespace; UDP frames to its port.
    Userspace,
    /// (d) encapsulation at src (workload-facing), transit at the relay, decapsulation at
    /// the sink, which hands the packet to its stack and on to its workload.
    EndToEnd,
}

impl Case {
    pub const ALL: [Case; 4] = [
        Case::Matrix,
        Case::LinuxForward,
        Case::Userspace,
        Case::EndToEnd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Case::Matrix => "matrix_transit",
            Case::LinuxForward => "linux_forward",
            Case::Userspace => "userspace_relay",
            Case::EndToEnd => "matrix_end_to_end",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Case::Matrix => "matrix XDP transit relay (Geneve in, Geneve out)",
            Case::LinuxForward => "Linux IP forwarding on the relay (plain UDP/IPv4)",
            Case::Userspace => "userspace UDP relay (recvmmsg/sendmmsg) on the relay",
            Case::EndToEnd => "matrix encap -> transit -> decap -> sink stack -> workload",
        }
    }

    /// Testbed name suffix of this case's chain.
    fn suffix(self) -> char {
        match self {
            Case::Matrix => 'a',
            Case::LinuxForward => 'b',
            Case::Userspace => 'c',
            Case::EndToEnd => 'd',
        }
    }
}

/// The sink counter and the generator: one unpinned instance of the object shared by
/// every chain (each chain attaches the sink program to its own receiving interface).
pub struct BenchProgs {
    ebpf: Ebpf,
    generator: Generator,
    sink: PerCpuArray<MapData, u64>,
}

impl BenchProgs {
    pub fn load() -> anyhow::Result<Self> {
        let mut ebpf = dataplane::load::load_unattached().context("load the XDP object")?;
        let generator = Generator::take(&mut ebpf)?;
        let sink = (ebpf.take_map(sink::MAP)).with_context(|| format!("no map {}", sink::MAP))?;
        Ok(BenchProgs {
            ebpf,
            generator,
            sink: PerCpuArray::try_from(sink)?,
        })
    }

    /// Runs the generator in namespace `ns` on `cpu`, out of interface `ifindex` there.
    pub fn generate(
        &mut self,
        ns: &str,
        ifindex: u32,
        frame: &[u8],
        cpu: usize,
        duration: Duration,
        rate: Option<f64>,
    ) -> anyhow::Result<Sent> {
        let BenchProgs {
            ebpf, generator, ..
        } = self;
        let prog: &Xdp = ebpf
            .program(generator::PROGRAM)
            .context("no generator program")?
            .try_into()?;
        netns::in_netns(ns, || {
            crate::run::pin_to_cpu(0, cpu)?;
            generator.run(prog, frame, ifindex, duration, rate)
        })
    }

    /// Frames and bytes the sink program has counted, over every chain and CPU.
    pub fn sink_count(&self) -> anyhow::Result<(u64, u64)> {
        let sum = |slot: u32| -> anyhow::Result<u64> { Ok(self.sink.get(&slot, 0)?.iter().sum()) };
        Ok((sum(sink::FRAMES)?, sum(sink::BYTES)?))
    }

    /// Attaches the counting sink to `iface` in namespace `ns`.
    fn attach_sink(&mut self, ns: &str, iface: &str) -> anyhow::Result<()> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(sink::PROGRAM)
            .context("no sink program")?
            .try_into()?;
        netns::in_netns(ns, || {
            prog.attach(iface, XdpMode::Default)
                .with_context(|| format!("attach {} to {iface} in {ns}", sink::PROGRAM))
                .map(drop)
        })
    }
}

/// What a node's data plane is told: the agent's configuration, by hand.
struct PlaneSpec<'a> {
    ns: &'a str,
    pin: &'a str,
    node: NodeId,
    neighbors: Vec<Peer>,
    /// Destination node -> the neighbour it is reached through.
    routes: Vec<(NodeId, NodeId)>,
    overlay: Vec<(IpNet, NodeId)>,
    underlay: Vec<&'a str>,
    workload: Vec<&'a str>,
}

/// An XDP program whose in-place cost (bpf_stats) the bench reads.
#[derive(Clone, Debug)]
pub struct WatchedProg {
    /// e.g. `relay matrix_underlay`.
    pub label: String,
    pub id: u32,
}

/// The userspace relay process; killed on drop.
struct RelayProcess(Child);

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Which CPU does what: the generator gets one, the relay namespace's work another.
#[derive(Clone, Copy, Debug)]
pub struct Cpus {
    pub generator: usize,
    pub relay: usize,
}

impl Cpus {
    pub fn plan() -> Self {
        let n = crate::run::cpus();
        Cpus {
            generator: 0,
            relay: if n > 1 { 1 } else { 0 },
        }
    }
}

pub struct Chain {
    pub case: Case,
    // Fields drop in order: the data planes and the relay process before the testbed.
    planes: Vec<PinnedPlane>,
    relay: Option<RelayProcess>,
    /// Namespace and interface the generator sends from.
    pub gen_ns: String,
    pub gen_ifindex: u32,
    /// (inner packet size, frame the generator sends).
    pub frames: Vec<(usize, Vec<u8>)>,
    /// Programs whose bpf_stats are reported, in path order.
    pub watched: Vec<WatchedProg>,
    /// The NAPI threads doing the relay-side work, pinned to the relay CPU.
    pub napi_threads: Vec<i32>,
    /// Every task whose CPU time is the relay side's: the NAPI threads, the userspace
    /// relay, and the relay CPU's ksoftirqd.
    pub relay_tasks: Vec<i32>,
    tb: Testbed,
}

fn topology() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/chain.toml")
}

fn node_id(state: &State, name: &str) -> anyhow::Result<NodeId> {
    let n = state
        .node(name)
        .with_context(|| format!("no node {name}"))?;
    n.id.parse()
        .map_err(|e| anyhow!("node {name} id {}: {e}", n.id))
}

/// A neighbour as the agent would configure it, with the MAC it would learn.
struct Peer {
    node: NodeId,
    link: UnderlayLink,
    mac: [u8; 6],
}

/// Our end and the far end of a link.
fn neighbor(node: NodeId, local: (Link, [u8; 4]), remote: (Link, [u8; 4])) -> Peer {
    let link = UnderlayLink {
        ifindex: local.0.ifindex,
        mtu: local.0.mtu,
        local_ipv4: local.1.into(),
        remote_ipv4: remote.1.into(),
        local_mac: local.0.mac,
    };
    let mac = remote.0.mac;
    Peer { node, link, mac }
}

/// Loads a data plane as the agent does (pinned maps, verified programs), fills its
/// maps through the facade, attaches it, and finds its programs' ids.
fn start_plane(spec: PlaneSpec<'_>) -> anyhow::Result<(PinnedPlane, Vec<WatchedProg>)> {
    let dir = dataplane::pin_dir(spec.pin);
    // In the node's namespace, as the agent runs: EGRESS (a devmap) resolves ifindexes
    // in the namespace of whoever writes it, and attaching resolves interface names.
    let plane = netns::in_netns(spec.ns, || {
        let mut plane = PinnedPlane::load(&dir)?;
        let mut dp = DataPlane::open(&dir)?;
        dp.set_config(Config {
            node_id: spec.node.0,
            vni: VNI,
            hop_limit: DEFAULT_HOP_LIMIT as u32,
            flags: 0,
            layout: matrix_common::LAYOUT_VERSION,
        })?;
        for n in &spec.neighbors {
            dp.add_egress(n.link.ifindex)?;
            dp.set_neighbor(n.node, n.link)?;
            dp.resolve_neighbor(n.node, n.mac)?;
        }
        dp.install_routes(
            spec.routes
                .iter()
                .map(|&(dst, via)| (NodePrefix::host(dst), [(via, 1)])),
        )?;
        for &(net, owner) in &spec.overlay {
            dp.add_overlay_prefix(net, owner)?;
        }
        let loaded = plane.loaded();
        for u in &spec.underlay {
            loaded.attach(programs::UNDERLAY, u)?;
        }
        for w in &spec.workload {
            loaded.attach(programs::WORKLOAD, w)?;
        }
        Ok(plane)
    })?;
    // This plane's programs are the ones using its COUNTERS map.
    let counters = MapData::from_pin(dir.join(names::COUNTERS))?.info()?.id();
    let mut watched = Vec::new();
    for info in loaded_programs() {
        let info = info?;
        let name = info.name_as_str().unwrap_or_default().to_string();
        let uses = info.map_ids()?.unwrap_or_default().contains(&counters);
        let attached = (name == programs::UNDERLAY && !spec.underlay.is_empty())
            || (name == programs::WORKLOAD && !spec.workload.is_empty());
        if uses && attached {
            watched.push(WatchedProg {
                label: format!("{} {name}", spec.pin.rsplit('-').next().unwrap_or("")),
                id: info.id(),
            });
        }
    }
    Ok((plane, watched))
}

/// `(run_time_ns, run_cnt)` of program `id` (kernel.bpf_stats_enabled must be on for
/// them to move).
pub fn prog_stats(id: u32) -> anyhow::Result<(u64, u64)> {
    for info in loaded_programs() {
        let info = info?;
        if info.id() == id {
            return Ok((info.run_time().as_nanos() as u64, info.run_count()));
        }
    }
    bail!("program id {id} is gone")
}

impl Chain {
    /// Brings up the chain of `case` under testbed name `<prefix><suffix>`.
    pub fn up(
        case: Case,
        prefix: &str,
        progs: &mut BenchProgs,
        cpus: Cpus,
        relay_bin: &Path,
    ) -> anyhow::Result<Chain> {
        let name = format!("{prefix}{}", case.suffix());
        let opts = UpOptions {
            agents: false,
            ..Default::default()
        };
        let tb = Testbed::up_with(&topology(), &name, &opts)
            .with_context(|| format!("bring up chain {name}"))?;
        let st = tb.state().clone();
        let node = |n: &str| st.node(n).with_context(|| format!("no node {n}"));
        let (src, relay, sink) = (node("src")?, node("relay")?, node("sink")?);
        let (l0, l1) = (&st.links[0], &st.links[1]);
        let (src_if, relay_in, relay_out, sink_if) =
            (&l0.a_iface, &l0.b_iface, &l1.a_iface, &l1.b_iface);
        let src_l = (netns::link(&src.netns, src_if)?, l0.a_addr.octets());
        let relay_in_l = (netns::link(&relay.netns, relay_in)?, l0.b_addr.octets());
        let relay_out_l = (netns::link(&relay.netns, relay_out)?, l1.a_addr.octets());
        let sink_l = (netns::link(&sink.netns, sink_if)?, l1.b_addr.octets());
        let (src_id, relay_id, sink_id) = (
            node_id(&st, "src")?,
            node_id(&st, "relay")?,
            node_id(&st, "sink")?,
        );
        let (src_wl, sink_wl) = (&src.workloads[0], &sink.workloads[0]);

        let mut chain = Chain {
            case,
            planes: Vec::new(),
            relay: None,
            gen_ns: src.netns.clone(),
            gen_ifindex: src_l.0.ifindex,
            frames: Vec::new(),
            watched: Vec::new(),
            napi_threads: Vec::new(),
            relay_tasks: Vec::new(),
            tb,
        };
        let relay_spec = || PlaneSpec {
            ns: &relay.netns,
            pin: &relay.pin,
            node: relay_id,
            neighbors: vec![
                neighbor(src_id, relay_in_l, src_l),
                neighbor(sink_id, relay_out_l, sink_l),
            ],
            routes: vec![(src_id, src_id), (sink_id, sink_id)],
            overlay: Vec::new(),
            underlay: vec![relay_in, relay_out],
            workload: Vec::new(),
        };
        let add_plane = |chain: &mut Chain, spec| -> anyhow::Result<()> {
            let (plane, watched) = start_plane(spec)?;
            chain.planes.push(plane);
            chain.watched.extend(watched);
            Ok(())
        };
        // The interface whose receive work is the relay side of the chain.
        let (napi_ns, napi_if): (&str, &str);
        let inner = |size: usize, src: [u8; 4], dst: [u8; 4], port: u16| {
            Inner::v4(src, dst).udp(40000, port).ip_len(size)
        };
        match case {
            Case::Matrix => {
                add_plane(&mut chain, relay_spec())?;
                progs.attach_sink(&sink.netns, sink_if)?;
                for size in SIZES {
                    let i = inner(
                        size,
                        src_wl.addr.octets(),
                        sink_wl.addr.octets(),
                        DISCARD_PORT,
                    );
                    let frame = Encap::of(&i)
                        .eth(src_l.0.mac, relay_in_l.0.mac)
                        .ip(src_l.1, relay_in_l.1)
                        .vni(VNI)
                        .nodes(sink_id.0, src_id.0)
                        .hop_limit(DEFAULT_HOP_LIMIT)
                        .build();
                    chain.frames.push((size, frame));
                }
                (napi_ns, napi_if) = (&relay.netns, relay_in);
            }
            Case::LinuxForward | Case::Userspace => {
                // No XDP on the relay: GRO gives its veth the NAPI instance that frames
                // sent by XDP need (else the veth drops them).
                netns::exec(&relay.netns, &["ethtool", "-K", relay_in, "gro", "on"])?;
                progs.attach_sink(&sink.netns, sink_if)?;
                let (dst, port) = if case == Case::LinuxForward {
                    netns::sysctl(&relay.netns, "net.ipv4.ip_forward", "1")?;
                    (sink_l.1, DISCARD_PORT)
                } else {
                    chain.relay = Some(start_relay(
                        relay_bin,
                        &relay.netns,
                        cpus.relay,
                        relay_in_l.1,
                        sink_l.1,
                    )?);
                    (relay_in_l.1, RELAY_PORT)
                };
                for size in SIZES {
                    let frame =
                        inner(size, src_l.1, dst, port).frame(src_l.0.mac, relay_in_l.0.mac);
                    chain.frames.push((size, frame));
                }
                (napi_ns, napi_if) = (&relay.netns, relay_in);
            }
            Case::EndToEnd => {
                let wl_eth0 = netns::link(&src_wl.netns, "eth0")?;
                let src_w0 = netns::link(&src.netns, &src_wl.iface)?;
                let overlay = [&sink_wl.prefix, &sink_wl.prefix6]
                    .into_iter()
                    .map(|p| Ok((p.parse::<IpNet>()?, sink_id)))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                add_plane(
                    &mut chain,
                    PlaneSpec {
                        ns: &src.netns,
                        pin: &src.pin,
                        node: src_id,
                        neighbors: vec![neighbor(relay_id, src_l, relay_in_l)],
                        routes: vec![(relay_id, relay_id), (sink_id, relay_id)],
                        overlay,
                        underlay: vec![src_if],
                        workload: vec![&src_wl.iface],
                    },
                )?;
                add_plane(&mut chain, relay_spec())?;
                add_plane(
                    &mut chain,
                    PlaneSpec {
                        ns: &sink.netns,
                        pin: &sink.pin,
                        node: sink_id,
                        neighbors: vec![neighbor(relay_id, sink_l, relay_out_l)],
                        routes: vec![(relay_id, relay_id), (src_id, relay_id)],
                        overlay: Vec::new(),
                        underlay: vec![sink_if],
                        workload: Vec::new(),
                    },
                )?;
                progs.attach_sink(&sink_wl.netns, "eth0")?;
                for size in SIZES {
                    let i = inner(
                        size,
                        src_wl.addr.octets(),
                        sink_wl.addr.octets(),
                        DISCARD_PORT,
                    );
                    chain.frames.push((size, i.frame(wl_eth0.mac, src_w0.mac)));
                }
                chain.gen_ns = src_wl.netns.clone();
                chain.gen_ifindex = wl_eth0.ifindex;
                (napi_ns, napi_if) = (&src.netns, &src_wl.iface);
            }
        }
        chain.napi_threads = netns::threaded_napi(napi_ns, napi_if)?;
        for &pid in &chain.napi_threads {
            crate::run::pin_to_cpu(pid, cpus.relay)?;
        }
        chain.relay_tasks = chain.napi_threads.clone();
        chain
            .relay_tasks
            .extend(chain.relay.as_ref().map(|r| r.0.id() as i32));
        chain.relay_tasks.extend(netns::ksoftirqd(cpus.relay));
        Ok(chain)
    }

    /// CPU time the relay side has used so far, in ns.
    pub fn relay_cpu_ns(&self) -> anyhow::Result<u64> {
        self.relay_tasks.iter().map(|&p| netns::runtime_ns(p)).sum()
    }

    pub fn prefix(&self) -> &str {
        self.tb.prefix()
    }
}

/// Starts the userspace relay in namespace `ns` on `cpu`: listening on
/// `listen`:[`RELAY_PORT`], sending to `to`:[`SINK_PORT`].
fn start_relay(
    bin: &Path,
    ns: &str,
    cpu: usize,
    listen: [u8; 4],
    to: [u8; 4],
) -> anyhow::Result<RelayProcess> {
    let addr = |a: [u8; 4], port| format!("{}:{port}", std::net::Ipv4Addr::from(a));
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"))
        .args(["--", "taskset", "-c", &cpu.to_string()])
        .arg(bin)
        .args(["--listen", &addr(listen, RELAY_PORT)])
        .args(["--to", &addr(to, SINK_PORT)])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let child = c
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let mut relay = RelayProcess(child);
    // Listening once it has bound: give it a moment, and fail if it died.
    std::thread::sleep(std::time::Duration::from_millis(200));
    if let Some(status) = relay.0.try_wait()? {
        bail!("{} exited at once ({status})", bin.display());
    }
    Ok(relay)
}
