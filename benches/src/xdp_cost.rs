//! Per-packet cost of each XDP path, measured in the kernel with BPF_PROG_TEST_RUN on the
//! packet fixtures of `matrix_testing::fixtures`, as a ratio to the trivial XDP_TX program
//! (`matrix_baseline_tx`) measured in the same round.
//!
//! Method. For XDP, BPF_PROG_TEST_RUN with `repeat` runs the program again and again on
//! the *same* buffer and never restores it (net/bpf/test_run.c, `bpf_test_run`). A program
//! that rewrites its frame meets its own output from the second repetition on: encap sees
//! an outer IPv4 packet to an underlay address and passes it, decap sees the inner packet
//! and passes it, transit sees our own address as the source and drops it. Each case is
//! first probed with repeat = 2 (counters and data_out), then:
//!
//! - re-runnable paths (baseline, pass-through, drops: the frame is left as it came) use
//!   `repeat` = 1M and the kernel's `duration`, its mean per repetition in whole ns. Not
//!   the wall time of the call: with repeat > 1 the kernel also switches the XDP
//!   dispatcher to the program and back inside the call, ~16 ms here, which would add
//!   16 ns per run at 1M repetitions;
//! - paths that rewrite the frame (transit, encap, decap) use repeat = 1, many calls, so
//!   that every run sees the original frame, and the kernel's per-call `duration` (no
//!   syscall or copy in it). A one-repetition duration also holds the timer's fixed cost
//!   (ktime reads, bh disable/enable), which the baseline measured the same way holds
//!   too: single-est = single(path) - single(baseline) + repeat(baseline). The
//!   re-runnable paths, measured both ways, show that single-est still runs 0-90 ns high
//!   on map-heavy paths: between two calls the syscall evicts the maps from the caches,
//!   which a hot repeat loop keeps. So each rewriting path is paired with a re-runnable
//!   path that does the same lookups and then drops (transit: drop_too_big, encap: its
//!   encap_drop_too_big, decap: drop_expired): paired = repeat(analogue) + single(path) -
//!   single(analogue), which cancels both the timer and the cold-cache cost of the shared
//!   lookups. The two singles of a pair are taken call for call in alternation, so both
//!   meet the same state of the (shared, virtual) machine. That is the ns/packet reported.
//!
//! The machine is shared (a VM, other builds), so the cases are measured in interleaved
//! rounds: each round measures every case once, each case's figure and ratio are computed
//! within the round from the baseline measured seconds apart, and the median over rounds
//! is reported with its spread.

use anyhow::{Context as _, bail};
use aya::{
    Ebpf,
    maps::PerCpuArray,
    programs::{TestRun, TestRunOptions},
};
use matrix_common::{COUNTER_SLOTS, DROP_NAMES, PATH_NAMES, VERDICT_NAMES, names};
use matrix_testing::fixtures::{self, Expect, Fixture, Prog};
use serde_json::{Value, json};

use crate::run::{self, median, spread};

/// How long each case is measured.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Repetitions of one `repeat` measurement.
    pub repeat: u32,
    pub rounds: usize,
    /// repeat = 1 calls per `single` measurement.
    pub single_calls: usize,
}

impl Settings {
    pub const FULL: Self = Settings {
        repeat: 1_000_000,
        rounds: 11,
        single_calls: 20_000,
    };
    pub const QUICK: Self = Settings {
        repeat: 200_000,
        rounds: 5,
        single_calls: 4_000,
    };

    pub fn new(quick: bool) -> Self {
        if quick { Self::QUICK } else { Self::FULL }
    }
}

/// One row to measure: a fixture run on one loaded instance of the object.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    /// Index into the instances given to [`measure`].
    pub instance: usize,
    pub fixture: Fixture,
    /// A re-runnable case doing the same lookups, for the paired estimate of a case that
    /// rewrites its frame.
    pub analogue: Option<String>,
}

impl Case {
    pub fn new(name: &str, instance: usize, fixture: Fixture, analogue: Option<&str>) -> Self {
        Case {
            name: name.to_string(),
            instance,
            fixture,
            analogue: analogue.map(str::to_string),
        }
    }
}

/// (row name, fixture, re-runnable analogue): every path of the data plane, IPv4 and
/// IPv6, and each drop reason.
#[rustfmt::skip]
const STANDARD: &[(&str, &str, Option<&str>)] = &[
    ("baseline_tx", "baseline/tx", None),
    ("passthrough_tcp", "underlay/pass_tcp", None),
    ("passthrough_arp", "underlay/pass_arp", None),
    ("passthrough_ipv6", "underlay/pass_ipv6_underlay", None),
    ("workload_pass_local_v4", "workload/pass_local_owner_v4", None),
    ("workload_pass_local_v6", "workload/pass_local_owner_v6", None),
    ("transit_tx_v4", "underlay/transit_tx_v4_tcp", Some("drop_too_big")),
    ("transit_tx_v6", "underlay/transit_tx_v6_udp", Some("drop_too_big_v6")),
    ("transit_redirect_v4", "underlay/transit_redirect_v4_udp", Some("drop_too_big")),
    ("transit_redirect_v6", "underlay/transit_redirect_v6_tcp", Some("drop_too_big_v6")),
    ("decap_v4", "underlay/decap_v4_tcp", Some("drop_expired")),
    ("decap_v6", "underlay/decap_v6_udp", Some("drop_expired_v6")),
    ("encap_v4", "workload/encap_v4_tcp", Some("encap_drop_too_big_v4")),
    ("encap_v6", "workload/encap_v6_tcp", Some("encap_drop_too_big_v6")),
    ("encap_v4_icmp", "workload/encap_v4_icmp", Some("encap_drop_too_big_v4")),
    ("drop_malformed", "underlay/drop_malformed_total_len_over_frame", None),
    ("drop_unknown_option", "underlay/drop_unknown_option_vni", None),
    ("drop_unknown_neighbor", "underlay/drop_unknown_neighbor", None),
    ("drop_expired", "underlay/drop_expired", None),
    ("drop_no_route", "underlay/drop_no_route", None),
    ("drop_too_big", "underlay/drop_too_big", None),
    ("drop_neighbor_down", "underlay/drop_neighbor_down", None),
    ("encap_drop_malformed_v4", "workload/drop_malformed_ipv4_version", None),
    ("encap_drop_malformed_v6", "workload/drop_malformed_ipv6_version", None),
    ("encap_drop_no_route_v4", "workload/drop_no_route_v4", None),
    ("encap_drop_no_route_v6", "workload/drop_no_route_v6", None),
    ("encap_drop_too_big_v4", "workload/drop_too_big_v4", None),
    ("encap_drop_too_big_v6", "workload/drop_too_big_v6", None),
    ("encap_drop_neighbor_down_v4", "workload/drop_neighbor_down_v4", None),
    ("encap_drop_neighbor_down_v6", "workload/drop_neighbor_down_v6", None),
];

/// Every path of the standard fixture world, on instance 0; the baseline first.
pub fn standard_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = STANDARD
        .iter()
        .map(|&(name, fixture, analogue)| Case::new(name, 0, fixtures::by_name(fixture), analogue))
        .collect();
    cases.extend(underlay_drops_v6());
    cases
}

/// The fixture table drops IPv4 inner packets on the underlay; these are the same drops
/// with an IPv6 inner packet, built the way the table builds its rows.
fn underlay_drops_v6() -> Vec<Case> {
    use fixtures::{
        Action, Inner, Kind, NET_LOCAL, NET_SMALL_MTU, NET_TX, NODE_DOWN, NODE_REDIRECT,
        NODE_SMALL_MTU, NODE_TX, NODE_UNROUTED, REMOTE_SOURCE, SMALL_MTU, UNKNOWN_PEER, VNI,
        arriving, ov6,
    };
    use matrix_common::{
        DROP_EXPIRED, DROP_MALFORMED, DROP_NEIGHBOR_DOWN, DROP_NO_ROUTE, DROP_TOO_BIG,
        DROP_UNKNOWN_NEIGHBOR, DROP_UNKNOWN_OPTION, ETH_HDR_LEN,
    };
    let inner = |net| Inner::v6(ov6(NET_LOCAL, 10), ov6(net, 20));
    let to_tx = arriving(NODE_REDIRECT, &inner(NET_TX).tcp(40000, 80), NODE_TX);
    let ip_len = (to_tx.build().len() - ETH_HDR_LEN) as u16;
    let big = inner(NET_SMALL_MTU)
        .tcp(1, 2)
        .ip_len(SMALL_MTU as usize - fixtures::ENCAP_GROWTH + 1);
    let dst = to_tx.outer.ip.dst;
    let rows = [
        (
            "drop_malformed_v6",
            to_tx.clone().total_len(ip_len + 1),
            DROP_MALFORMED,
        ),
        (
            "drop_unknown_option_v6",
            to_tx.clone().vni(VNI + 1),
            DROP_UNKNOWN_OPTION,
        ),
        (
            "drop_unknown_neighbor_v6",
            to_tx.clone().ip(UNKNOWN_PEER, dst),
            DROP_UNKNOWN_NEIGHBOR,
        ),
        ("drop_expired_v6", to_tx.clone().hop_limit(1), DROP_EXPIRED),
        (
            "drop_no_route_v6",
            to_tx.clone().nodes(NODE_UNROUTED, REMOTE_SOURCE),
            DROP_NO_ROUTE,
        ),
        (
            "drop_too_big_v6",
            arriving(NODE_TX, &big, NODE_SMALL_MTU),
            DROP_TOO_BIG,
        ),
        (
            "drop_neighbor_down_v6",
            to_tx.clone().nodes(NODE_DOWN, REMOTE_SOURCE),
            DROP_NEIGHBOR_DOWN,
        ),
    ];
    rows.into_iter()
        .map(|(name, frame, reason)| {
            let input = frame.build();
            let fixture = Fixture {
                name: format!("underlay/{name}"),
                kind: Kind::Drop,
                prog: Prog::Underlay,
                output: input.clone(),
                input,
                expect: Expect::Counted(Action::Drop, reason),
                neigh: Vec::new(),
            };
            Case::new(name, 0, fixture, None)
        })
        .collect()
}

struct Run {
    action: u32,
    output: Vec<u8>,
    /// The kernel's mean time per repetition, in whole ns.
    kernel_ns: u32,
}

fn test_run(ebpf: &Ebpf, f: &Fixture, repeat: u32) -> anyhow::Result<Run> {
    let prog = fixtures::program(ebpf, f.prog)?;
    let mut out = vec![0u8; f.input.len() + 512];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(&f.input),
            data_out: Some(&mut out),
            repeat,
            ..TestRunOptions::new()
        })
        .with_context(|| format!("BPF_PROG_TEST_RUN of {} on {}", f.prog.name(), f.name))?;
    out.truncate(r.data_size_out as usize);
    Ok(Run {
        action: r.return_value,
        output: out,
        kernel_ns: r.duration.as_nanos() as u32,
    })
}

/// COUNTERS, summed over CPUs.
fn counters(ebpf: &Ebpf) -> anyhow::Result<Vec<u64>> {
    let map = ebpf.map(names::COUNTERS).context("no COUNTERS map")?;
    let counters: PerCpuArray<_, u64> = PerCpuArray::try_from(map)?;
    (0..COUNTER_SLOTS)
        .map(|i| Ok(counters.get(&i, 0)?.iter().sum()))
        .collect()
}

fn slot_name(slot: usize) -> &'static str {
    VERDICT_NAMES
        .iter()
        .chain(&PATH_NAMES)
        .chain(&DROP_NAMES)
        .find(|(s, _)| *s as usize == slot)
        .map_or("?", |(_, n)| n)
}

/// Runs `f` with repeat = 2 and tells whether the second repetition did what the first
/// did (counters moved by 2 on the expected slots only, bytes out as after one run).
fn probe_repeat(ebpf: &Ebpf, f: &Fixture) -> anyhow::Result<(bool, String)> {
    let before = counters(ebpf)?;
    let r = test_run(ebpf, f, 2)?;
    let after = counters(ebpf)?;
    let deltas: Vec<(usize, u64)> = (0..COUNTER_SLOTS as usize)
        .map(|s| (s, after[s] - before[s]))
        .filter(|(_, d)| *d > 0)
        .collect();
    let (action, slots) = match f.expect {
        Expect::Counted(a, slot) => (a as u32, vec![a as usize, slot as usize]),
        Expect::Uncounted(a) => (a as u32, vec![]),
        Expect::PassOrDrop => bail!("{}: garbage fixtures are not benchmarked", f.name),
    };
    let same_counters =
        deltas.len() == slots.len() && deltas.iter().all(|(s, d)| *d == 2 && slots.contains(s));
    let rerunnable = r.action == action && r.output == f.output && same_counters;
    let counters: Vec<String> = deltas
        .iter()
        .map(|(s, d)| format!("{}+{d}", slot_name(*s)))
        .collect();
    let out = if r.output == f.output {
        "= one run's output"
    } else {
        "differs from one run's output"
    };
    let note = format!(
        "action {} (one run: {action}), counters [{}], data_out {out}",
        r.action,
        counters.join(" ")
    );
    Ok((rerunnable, note))
}

/// ns per run with `repeat`: the kernel's mean over the repetitions.
fn measure_repeat(ebpf: &Ebpf, f: &Fixture, s: &Settings) -> anyhow::Result<f64> {
    Ok(test_run(ebpf, f, s.repeat)?.kernel_ns as f64)
}

/// The interquartile mean: a one-run duration also catches softirqs run by
/// local_bh_enable, interrupts.
fn iqr_mean(mut ns: Vec<u32>) -> f64 {
    ns.sort_unstable();
    let kept = &ns[ns.len() / 4..ns.len() * 3 / 4];
    kept.iter().map(|n| *n as f64).sum::<f64>() / kept.len() as f64
}

/// ns per call with repeat = 1 from the kernel's duration.
fn measure_single(ebpf: &Ebpf, f: &Fixture, s: &Settings) -> anyhow::Result<f64> {
    let ns = (0..s.single_calls)
        .map(|_| Ok(test_run(ebpf, f, 1)?.kernel_ns))
        .collect::<anyhow::Result<Vec<u32>>>()?;
    Ok(iqr_mean(ns))
}

/// Like [`measure_single`] for a case and its analogue, call for call in alternation, so
/// both meet the same state of a shared machine: their difference is much steadier than
/// that of two measurements taken one after the other.
fn measure_single_pair(
    (ef, f): (&Ebpf, &Fixture),
    (ea, a): (&Ebpf, &Fixture),
    s: &Settings,
) -> anyhow::Result<(f64, f64)> {
    let (mut nf, mut na) = (Vec::new(), Vec::new());
    for _ in 0..s.single_calls {
        nf.push(test_run(ef, f, 1)?.kernel_ns);
        na.push(test_run(ea, a, 1)?.kernel_ns);
    }
    Ok((iqr_mean(nf), iqr_mean(na)))
}

/// How a row's ns/packet was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Repeat,
    Paired,
    Single,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Repeat => "repeat",
            Method::Paired => "paired",
            Method::Single => "single",
        }
    }
}

/// One measured case: per-round figures.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub fixture: String,
    pub method: Method,
    pub paired_with: Option<String>,
    pub probe: String,
    /// ns/packet per round, by `method`.
    pub ns: Vec<f64>,
    /// ns / baseline ns per round.
    pub ratio: Vec<f64>,
    pub single_est: Vec<f64>,
    pub repeat_raw: Vec<f64>,
    pub single_raw: Vec<f64>,
}

impl Row {
    pub fn ns_median(&self) -> f64 {
        median(&self.ns)
    }
    pub fn ratio_median(&self) -> f64 {
        median(&self.ratio)
    }
    pub fn to_json(&self) -> Value {
        json!({
            "path": self.name,
            "fixture": self.fixture,
            "method": self.method.name(),
            "ns_per_packet": self.ns_median(),
            "ns_per_packet_spread": spread(&self.ns),
            "ratio_to_baseline": self.ratio_median(),
            "single_call_ns_estimate": median(&self.single_est),
            "paired_with": self.paired_with,
            "repeat_probe": self.probe,
            "rounds_ns": self.ns,
            "rounds_repeat_ns": self.repeat_raw,
            "rounds_single_call_ns_raw": self.single_raw,
        })
    }
}

pub struct Report {
    pub settings: Settings,
    /// The baseline's repeat figure per round.
    pub baseline_ns: Vec<f64>,
    /// A single call's fixed timer overhead per round.
    pub overhead_ns: Vec<f64>,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn row(&self, name: &str) -> anyhow::Result<&Row> {
        self.rows
            .iter()
            .find(|r| r.name == name)
            .with_context(|| format!("no row {name}"))
    }

    pub fn print_table(&self) {
        println!(
            "\nbaseline: {:.1} ns per run with repeat = {}; a single call adds {:.1} ns of \
             fixed timer overhead ({} rounds, medians)",
            median(&self.baseline_ns),
            self.settings.repeat,
            median(&self.overhead_ns),
            self.settings.rounds,
        );
        println!(
            "\n{:<28} {:<7} {:>9} {:>7} {:>10} {:>11}  paired with",
            "path", "method", "ns/packet", "spread", "x baseline", "single-est."
        );
        for r in &self.rows {
            println!(
                "{:<28} {:<7} {:>9.1} {:>7.1} {:>10.2} {:>11.1}  {}",
                r.name,
                r.method.name(),
                r.ns_median(),
                spread(&r.ns),
                r.ratio_median(),
                median(&r.single_est),
                r.paired_with.as_deref().unwrap_or("")
            );
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "repeat": self.settings.repeat,
            "rounds": self.settings.rounds,
            "single_calls_per_round": self.settings.single_calls,
            "baseline_ns": median(&self.baseline_ns),
            "single_call_overhead_ns": median(&self.overhead_ns),
            "method": "per round; repeat: the kernel's mean duration over one BPF_PROG_TEST_RUN \
                       with repeat (paths that leave the frame unchanged); paired: \
                       repeat(analogue) + single(path) - single(analogue), single = kernel \
                       duration of repeat=1 calls (the two taken in alternation), so every run \
                       sees the original frame (paths that rewrite the frame); single-est: \
                       single(path) - single(baseline) + repeat(baseline); reported: medians \
                       over rounds",
            "rows": self.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        })
    }
}

struct Slot {
    case: Case,
    analogue: Option<usize>,
    rerunnable: bool,
    probe: String,
    repeat: Vec<f64>,
    single: Vec<f64>,
    /// Interleaved singles of this case and its analogue, per round.
    pair: Vec<(f64, f64)>,
}

/// Measures `cases` on `instances` in interleaved rounds. The first case must be the
/// baseline (`matrix_baseline_tx`); every analogue must be a re-runnable case.
pub fn measure(instances: &[&Ebpf], cases: Vec<Case>, s: &Settings) -> anyhow::Result<Report> {
    let first = cases.first().context("no cases")?;
    if first.fixture.prog != Prog::BaselineTx {
        bail!("the first case must be the baseline, not {}", first.name);
    }
    println!("repeat = 2 probe (does a second repetition see the original frame?):");
    let mut slots = Vec::new();
    for case in cases {
        let ebpf = instances[case.instance];
        let (rerunnable, probe) = probe_repeat(ebpf, &case.fixture)?;
        let verdict = if rerunnable { "same     " } else { "REWRITTEN" };
        println!("  {:<28} {verdict}  {probe}", case.name);
        slots.push(Slot {
            case,
            analogue: None,
            rerunnable,
            probe,
            repeat: Vec::new(),
            single: Vec::new(),
            pair: Vec::new(),
        });
    }
    for i in 0..slots.len() {
        if let Some(a) = slots[i].case.analogue.clone() {
            let j = slots
                .iter()
                .position(|p| p.case.name == a)
                .with_context(|| format!("analogue {a} of {} is not a case", slots[i].case.name))?;
            if !slots[j].rerunnable {
                bail!(
                    "{a}, the analogue of {}, must be re-runnable",
                    slots[i].case.name
                );
            }
            slots[i].analogue = Some(j);
        }
    }
    if !slots[0].rerunnable {
        bail!("the baseline must be re-runnable");
    }

    for round in 0..s.rounds {
        eprint!("\rround {}/{}", round + 1, s.rounds);
        for i in 0..slots.len() {
            run::interrupted()?;
            let p = &slots[i];
            let ebpf = instances[p.case.instance];
            let repeat = if p.rerunnable {
                Some(measure_repeat(ebpf, &p.case.fixture, s)?)
            } else {
                None
            };
            let single = measure_single(ebpf, &p.case.fixture, s)?;
            let pair = match p.analogue {
                Some(j) => {
                    let a = &slots[j].case;
                    let case = (ebpf, &p.case.fixture);
                    Some(measure_single_pair(
                        case,
                        (instances[a.instance], &a.fixture),
                        s,
                    )?)
                }
                None => None,
            };
            let p = &mut slots[i];
            p.repeat.extend(repeat);
            p.single.push(single);
            p.pair.extend(pair);
        }
    }
    eprintln!();

    let base = &slots[0];
    let baseline_ns = base.repeat.clone();
    let overhead_ns: Vec<f64> = (0..s.rounds)
        .map(|r| base.single[r] - base.repeat[r])
        .collect();
    let mut rows = Vec::new();
    for p in &slots {
        let single_est: Vec<f64> = (0..s.rounds)
            .map(|r| p.single[r] - overhead_ns[r])
            .collect();
        let (method, ns): (_, Vec<f64>) = match (p.rerunnable, p.analogue) {
            (true, _) => (Method::Repeat, p.repeat.clone()),
            (false, Some(a)) => {
                let a = &slots[a];
                let paired = (0..s.rounds).map(|r| a.repeat[r] + p.pair[r].0 - p.pair[r].1);
                (Method::Paired, paired.collect())
            }
            (false, None) => (Method::Single, single_est.clone()),
        };
        rows.push(Row {
            name: p.case.name.clone(),
            fixture: p.case.fixture.name.clone(),
            method,
            paired_with: p.analogue.map(|a| slots[a].case.name.clone()),
            probe: p.probe.clone(),
            ratio: run::ratios(&ns, &baseline_ns),
            ns,
            single_est,
            repeat_raw: p.repeat.clone(),
            single_raw: p.single.clone(),
        });
    }
    Ok(Report {
        settings: *s,
        baseline_ns,
        overhead_ns,
        rows,
    })
}
