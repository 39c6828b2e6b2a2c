//! Forwarding throughput through the same namespace chain with the same generator:
//! matrix's XDP transit relay against Linux IP forwarding and against a userspace UDP
//! relay, plus matrix end to end (encap, transit, decap), in one run.
//!
//! Set-up (`chain.rs`): one chain per case, all up at once. The generator
//! (`generator.rs`, XDP live frames) runs on one CPU, pinned; the relay side of every
//! case (the NAPI thread of the relay's receiving veth, the userspace relay process) is
//! pinned to the other, so each relay has exactly one core and the generator never
//! competes with it. The sink counts in XDP and drops, so its stack is never the
//! bottleneck (in the end-to-end case the sink's stack is part of the path: it routes
//! the decapsulated packet to the workload, whose veth counts).
//!
//! Measurement: the cases run in interleaved rounds at the generator's full rate, and
//! once more at each offered rate of a ladder. Per run: offered = frames sent / time,
//! delivered = frames counted at the sink / same time, loss = 1 - counted / sent,
//! ns/packet = 1e9 / delivered pps (the relay core's time per forwarded packet when it
//! is the bottleneck). With `kernel.bpf_stats_enabled` on during the runs, each matrix
//! program's run_time_ns / run_cnt over the run gives its in-place cost per packet
//! while it forwards real traffic. Ratios are per round, medians.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::{
    chain::{self, BenchProgs, Case, Chain, Cpus},
    run::{median, ratios},
};

/// How long and how often.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Rounds at full rate (the ratios are medians over them).
    pub rounds: usize,
    /// Length of a full-rate run.
    pub duration: Duration,
    /// Offered rates (frames/s) of the ladder, below the generator's full rate.
    pub ladder: Vec<f64>,
    /// Length of a ladder run.
    pub ladder_duration: Duration,
}

impl Settings {
    pub fn new(quick: bool) -> Self {
        if quick {
            Settings {
                rounds: 2,
                duration: Duration::from_secs(1),
                ladder: vec![250e3, 1e6],
                ladder_duration: Duration::from_secs(1),
            }
        } else {
            Settings {
                rounds: 3,
                duration: Duration::from_secs(2),
                ladder: vec![100e3, 250e3, 500e3, 1e6, 2e6],
                ladder_duration: Duration::from_secs(1),
            }
        }
    }
}

/// Turns `kernel.bpf_stats_enabled` on and restores the previous value when dropped.
struct BpfStats {
    previous: String,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    fn enable() -> anyhow::Result<Self> {
        let previous = std::fs::read_to_string(BPF_STATS)
            .with_context(|| format!("read {BPF_STATS}"))?
            .trim()
            .to_string();
        std::fs::write(BPF_STATS, "1").with_context(|| format!("write {BPF_STATS}"))?;
        Ok(BpfStats { previous })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(BPF_STATS, &self.previous) {
            eprintln!("warning: restoring {BPF_STATS}: {e}");
        }
    }
}

/// One run of the generator through one chain.
#[derive(Clone, Debug)]
pub struct Point {
    pub sent: u64,
    pub received: u64,
    pub seconds: f64,
    /// Generator calls it took (each gap between two sends nothing for ~20 ms).
    pub calls: u32,
    /// CPU time of the relay side's tasks over the run.
    pub relay_cpu_ns: u64,
    /// The rate asked of the generator (None: as fast as it can).
    pub target_pps: Option<f64>,
    /// (program label, ns per run, runs) over the run.
    pub xdp: Vec<(String, f64, u64)>,
}

impl Point {
    pub fn offered_pps(&self) -> f64 {
        self.sent as f64 / self.seconds
    }
    pub fn delivered_pps(&self) -> f64 {
        self.received as f64 / self.seconds
    }
    pub fn loss(&self) -> f64 {
        1.0 - self.received as f64 / self.sent.max(1) as f64
    }
    pub fn ns_per_packet(&self) -> f64 {
        1e9 / self.delivered_pps()
    }
    /// Relay-side CPU time per delivered packet: the relay's cost whether or not other
    /// work shared its CPU.
    pub fn relay_cpu_ns_per_packet(&self) -> f64 {
        self.relay_cpu_ns as f64 / self.received.max(1) as f64
    }
    fn to_json(&self) -> Value {
        json!({
            "target_pps": self.target_pps,
            "offered_pps": self.offered_pps(),
            "delivered_pps": self.delivered_pps(),
            "loss": self.loss(),
            "ns_per_packet": self.ns_per_packet(),
            "relay_cpu_ns_per_packet": self.relay_cpu_ns_per_packet(),
            "sent": self.sent,
            "received": self.received,
            "seconds": self.seconds,
            "generator_calls": self.calls,
            "xdp_in_place": self.xdp.iter().map(|(label, ns, runs)| json!({
                "program": label, "ns_per_packet": ns, "runs": runs,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Sends frame `size_index` of `chain` for `duration` at `rate` (None: full rate).
fn measure(
    chain: &Chain,
    progs: &mut BenchProgs,
    cpus: Cpus,
    size_index: usize,
    duration: Duration,
    rate: Option<f64>,
) -> anyhow::Result<Point> {
    let frame = &chain.frames[size_index].1;
    let (before, _) = progs.sink_count()?;
    let cpu_before = chain.relay_cpu_ns()?;
    let stats_before = chain
        .watched
        .iter()
        .map(|w| chain::prog_stats(w.id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sent = progs.generate(
        &chain.gen_ns,
        chain.gen_ifindex,
        frame,
        cpus.generator,
        duration,
        rate,
    )?;
    // Frames still in the relay's queues land within microseconds.
    std::thread::sleep(Duration::from_millis(50));
    let (after, _) = progs.sink_count()?;
    let relay_cpu_ns = chain.relay_cpu_ns()? - cpu_before;
    let mut xdp = Vec::new();
    for (w, (t0, n0)) in chain.watched.iter().zip(stats_before) {
        let (t1, n1) = chain::prog_stats(w.id)?;
        let runs = n1 - n0;
        // A program off the measured path (the source's underlay one) sees only the odd
        // neighbour-discovery or ARP packet: not a per-packet cost of the path.
        if runs > 0 && runs >= (after - before) / 100 {
            xdp.push((w.label.clone(), (t1 - t0) as f64 / runs as f64, runs));
        }
    }
    Ok(Point {
        sent: sent.frames,
        received: after - before,
        seconds: sent.window.as_secs_f64(),
        calls: sent.calls,
        relay_cpu_ns,
        target_pps: rate,
        xdp,
    })
}

fn print_point(case: Case, size: usize, what: &str, p: &Point) {
    let xdp: Vec<String> = p
        .xdp
        .iter()
        .map(|(l, ns, _)| format!("{l} {ns:.0} ns"))
        .collect();
    println!(
        "{:<18} {size:>5} B {what:<9} offered {:>9.0} pps  delivered {:>9.0} pps  \
         loss {:>6.2}%  {:>6.0} ns/pkt  relay cpu {:>5.0} ns/pkt  {}",
        case.name(),
        p.offered_pps(),
        p.delivered_pps(),
        100.0 * p.loss(),
        p.ns_per_packet(),
        p.relay_cpu_ns_per_packet(),
        xdp.join(", ")
    );
}

/// Brings up the chains, measures, and returns the JSON (chains removed on return,
/// also on failure).
pub fn run(prefix: &str, relay_bin: &std::path::Path, s: &Settings) -> anyhow::Result<Value> {
    let cpus = Cpus::plan();
    if cpus.generator == cpus.relay {
        eprintln!("warning: one CPU only: the generator and the relay share it");
    }
    let mut progs = BenchProgs::load()?;
    let mut chains = Vec::new();
    for case in Case::ALL {
        println!("chain for {}: {}", case.name(), case.describe());
        chains.push(Chain::up(case, prefix, &mut progs, cpus, relay_bin)?);
    }
    let _stats = BpfStats::enable()?;

    // Warm-up: neighbour resolution on the way, caches.
    for chain in &chains {
        for i in 0..chain::SIZES.len() {
            let p = measure(
                chain,
                &mut progs,
                cpus,
                i,
                Duration::from_millis(300),
                Some(50e3),
            )?;
            if p.received == 0 {
                anyhow::bail!(
                    "{}: nothing reached the sink in the warm-up ({} frames sent)",
                    chain.case.name(),
                    p.sent
                );
            }
        }
    }

    // Full rate, interleaved rounds: max[case][size][round].
    let mut max: Vec<Vec<Vec<Point>>> = vec![vec![Vec::new(); chain::SIZES.len()]; chains.len()];
    for round in 0..s.rounds {
        println!("round {}/{}", round + 1, s.rounds);
        for (i, &size) in chain::SIZES.iter().enumerate() {
            for (c, chain) in chains.iter().enumerate() {
                let p = measure(chain, &mut progs, cpus, i, s.duration, None)?;
                print_point(chain.case, size, "full rate", &p);
                max[c][i].push(p);
            }
        }
    }
    // The ladder of offered rates.
    let mut ladder: Vec<Vec<Vec<Point>>> = vec![vec![Vec::new(); chain::SIZES.len()]; chains.len()];
    for &rate in &s.ladder {
        for (i, &size) in chain::SIZES.iter().enumerate() {
            for (c, chain) in chains.iter().enumerate() {
                let p = measure(chain, &mut progs, cpus, i, s.ladder_duration, Some(rate))?;
                print_point(chain.case, size, "offered", &p);
                ladder[c][i].push(p);
            }
        }
    }

    let delivered =
        |c: usize, i: usize| -> Vec<f64> { max[c][i].iter().map(Point::delivered_pps).collect() };
    let index = |case| Case::ALL.iter().position(|c| *c == case).expect("a case");
    let (m, l, u) = (
        index(Case::Matrix),
        index(Case::LinuxForward),
        index(Case::Userspace),
    );
    let mut ratio_json = serde_json::Map::new();
    for (i, size) in chain::SIZES.iter().enumerate() {
        let vs_linux = ratios(&delivered(m, i), &delivered(l, i));
        let vs_user = ratios(&delivered(m, i), &delivered(u, i));
        ratio_json.insert(
            format!("relay_vs_linux_fwd_{size}"),
            median(&vs_linux).into(),
        );
        ratio_json.insert(
            format!("relay_vs_userspace_{size}"),
            median(&vs_user).into(),
        );
        let cpu = |c: usize| -> Vec<f64> {
            max[c][i]
                .iter()
                .map(Point::relay_cpu_ns_per_packet)
                .collect()
        };
        ratio_json.insert(
            format!("relay_cpu_linux_fwd_vs_matrix_{size}"),
            median(&ratios(&cpu(l), &cpu(m))).into(),
        );
        ratio_json.insert(
            format!("relay_cpu_userspace_vs_matrix_{size}"),
            median(&ratios(&cpu(u), &cpu(m))).into(),
        );
        if i == 0 {
            // The headline: small packets, where per-packet cost is everything.
            ratio_json.insert("relay_vs_linux_fwd".into(), median(&vs_linux).into());
            ratio_json.insert("relay_vs_userspace".into(), median(&vs_user).into());
        }
    }
    let cases: Vec<Value> = chains
        .iter()
        .enumerate()
        .map(|(c, chain)| {
            let sizes: Vec<Value> = chain::SIZES
                .iter()
                .enumerate()
                .map(|(i, &size)| {
                    let pts = &max[c][i];
                    let pick =
                        |f: fn(&Point) -> f64| median(&pts.iter().map(f).collect::<Vec<_>>());
                    let labels: Vec<String> =
                        chain.watched.iter().map(|w| w.label.clone()).collect();
                    let xdp: Vec<Value> = labels
                        .iter()
                        .filter_map(|label| {
                            let ns: Vec<f64> = pts
                                .iter()
                                .filter_map(|p| p.xdp.iter().find(|x| &x.0 == label).map(|x| x.1))
                                .collect();
                            (!ns.is_empty())
                                .then(|| json!({"program": label, "ns_per_packet": median(&ns)}))
                        })
                        .collect();
                    json!({
                        "inner_bytes": size,
                        "frame_bytes": chain.frames[i].1.len(),
                        "full_rate": {
                            "offered_pps": pick(Point::offered_pps),
                            "delivered_pps": pick(Point::delivered_pps),
                            "loss": pick(Point::loss),
                            "ns_per_packet": pick(Point::ns_per_packet),
                            "relay_cpu_ns_per_packet": pick(Point::relay_cpu_ns_per_packet),
                            "xdp_in_place": xdp,
                            "rounds": pts.iter().map(Point::to_json).collect::<Vec<_>>(),
                        },
                        "ladder": ladder[c][i].iter().map(Point::to_json).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "case": chain.case.name(),
                "describe": chain.case.describe(),
                "testbed": chain.prefix(),
                "sizes": sizes,
            })
        })
        .collect();
    Ok(json!({
        "bench": "forwarding",
        "generator": "BPF_PROG_TEST_RUN with XDP live frames (batch 64) on matrix_bench_gen \
                      (XDP_TX on a ktime schedule, headers restored per frame) in the sending \
                      namespace",
        "cpus": {"generator": cpus.generator, "relay": cpus.relay},
        "rounds": s.rounds,
        "seconds_per_run": s.duration.as_secs_f64(),
        "seconds_per_ladder_run": s.ladder_duration.as_secs_f64(),
        "ladder_pps": s.ladder,
        "ratios": ratio_json,
        "cases": cases,
        "method": "one chain per case (src -> relay -> sink veths), generator pinned to one CPU, \
                   the relay's NAPI thread (and the userspace relay) to the other; sink counts \
                   in XDP and drops; delivered = counted at the sink / generator time; \
                   loss = 1 - counted / sent; ns_per_packet = 1e9 / delivered; xdp_in_place = \
                   run_time_ns / run_cnt delta with kernel.bpf_stats_enabled=1; ratios per \
                   round of delivered pps at full rate, median",
    }))
}
