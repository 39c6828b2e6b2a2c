//! Per-packet cost of each XDP path, measured in the kernel with BPF_PROG_TEST_RUN on the
//! packet fixtures of `matrix_user::fixtures`. Needs root; fails loudly without it.
//!
//! `cargo bench -p matrix-benches --bench xdp_cost` prints a table (path, ns/packet, ratio
//! to the trivial XDP_TX program) and writes it as JSON to `target/bench/xdp_cost.json`.
//!
//! Method. For XDP, BPF_PROG_TEST_RUN with `repeat` runs the program again and again on
//! the *same* buffer and never restores it (net/bpf/test_run.c, `bpf_test_run`). A program
//! that rewrites its frame meets its own output from the second repetition on: encap sees
//! an outer IPv4 packet to an underlay address and passes it, decap sees the inner packet
//! and passes it, transit sees our own address as the source and drops it. The bench
//! verifies this first with repeat = 2 on every path (counters and data_out), then:
//!
//! - re-runnable paths (baseline, pass-through, drops: the frame is left as it came) use
//!   `repeat` = 1M and the kernel's `duration`, its mean per repetition in whole ns. Not
//!   the wall time of the call: with repeat > 1 the kernel also switches the XDP
//!   dispatcher to the program and back inside the call, ~16 ms here, which would add
//!   16 ns per run at 1M repetitions;
//! - paths that rewrite the frame (transit, encap, decap) use repeat = 1, many calls, and
//!   the kernel's per-call `duration` (no syscall or copy in it). A one-repetition
//!   duration also holds the timer's fixed cost (ktime reads, bh disable/enable), which
//!   the baseline measured the same way holds too: single-est = single(path) -
//!   single(baseline) + repeat(baseline). The re-runnable paths, measured both ways, show
//!   that single-est still runs 0-90 ns high on map-heavy paths: between two calls the
//!   syscall evicts the maps from the caches, which a hot repeat loop keeps. So each
//!   rewriting path is paired with a re-runnable path that does the same lookups and then
//!   drops (transit: drop_too_big, encap: its encap_drop_too_big, decap: drop_expired):
//!   paired = repeat(analogue) + single(path) - single(analogue), which cancels both the
//!   timer and the cold-cache cost of the shared lookups. That is the ns/packet reported.
//!
//! The machine is shared (a VM, other builds), so the paths are measured in interleaved
//! rounds: each round measures every path once, each path's figure and ratio are computed
//! within the round from the baseline measured seconds apart, and the median over rounds
//! is reported with its spread.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use aya::{
    Ebpf,
    maps::PerCpuArray,
    programs::{TestRun, TestRunOptions},
};
use matrix_common::{COUNTER_SLOTS, DROP_NAMES, PATH_NAMES, VERDICT_NAMES, names};
use matrix_user::fixtures::{self, Expect, Fixture, World};
use serde_json::json;

const REPEAT: u32 = 1_000_000;
const ROUNDS: usize = 11;
const SINGLE_CALLS: usize = 20_000;

/// (row name, fixture, re-runnable analogue for the paired estimate).
#[rustfmt::skip]
const PATHS: &[(&str, &str, Option<&str>)] = &[
    ("baseline_tx", "baseline/tx", None),
    ("passthrough_tcp", "underlay/pass_tcp", None),
    ("passthrough_arp", "underlay/pass_arp", None),
    ("workload_pass_local_v4", "workload/pass_local_owner_v4", None),
    ("workload_pass_local_v6", "workload/pass_local_owner_v6", None),
    ("transit_tx_v4", "underlay/transit_tx_v4_tcp", Some("drop_too_big")),
    ("transit_tx_v6", "underlay/transit_tx_v6_udp", Some("drop_too_big")),
    ("transit_redirect_v4", "underlay/transit_redirect_v4_udp", Some("drop_too_big")),
    ("transit_redirect_v6", "underlay/transit_redirect_v6_tcp", Some("drop_too_big")),
    ("decap_v4", "underlay/decap_v4_tcp", Some("drop_expired")),
    ("decap_v6", "underlay/decap_v6_udp", Some("drop_expired")),
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
    ("encap_drop_no_route_v4", "workload/drop_no_route_v4", None),
    ("encap_drop_no_route_v6", "workload/drop_no_route_v6", None),
    ("encap_drop_too_big_v4", "workload/drop_too_big_v4", None),
    ("encap_drop_too_big_v6", "workload/drop_too_big_v6", None),
    ("encap_drop_neighbor_down_v4", "workload/drop_neighbor_down_v4", None),
    ("encap_drop_neighbor_down_v6", "workload/drop_neighbor_down_v6", None),
];

struct Run {
    action: u32,
    output: Vec<u8>,
    /// The kernel's mean time per repetition, in whole ns.
    kernel_ns: u32,
}

fn test_run(ebpf: &Ebpf, f: &Fixture, repeat: u32) -> anyhow::Result<Run> {
    let prog = fixtures::program(ebpf, f.prog)?;
    let mut out = vec![0u8; f.input.len() + 512];
    let r = prog.test_run(TestRunOptions {
        data_in: Some(&f.input),
        data_out: Some(&mut out),
        repeat,
        ..TestRunOptions::new()
    })?;
    out.truncate(r.data_size_out as usize);
    let kernel_ns = r.duration.as_nanos() as u32;
    Ok(Run {
        action: r.return_value,
        output: out,
        kernel_ns,
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Spread (max - min) of per-round figures.
fn spread(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max) - v.iter().copied().fold(f64::MAX, f64::min)
}

/// ns per run with `repeat`: the kernel's mean over the repetitions.
fn measure_repeat(ebpf: &Ebpf, f: &Fixture) -> anyhow::Result<f64> {
    Ok(test_run(ebpf, f, REPEAT)?.kernel_ns as f64)
}

/// ns per call with repeat = 1 from the kernel's duration: the interquartile mean of the
/// calls (a one-run duration also catches softirqs run by local_bh_enable, interrupts).
fn measure_single(ebpf: &Ebpf, f: &Fixture) -> anyhow::Result<f64> {
    let mut ns = (0..SINGLE_CALLS)
        .map(|_| Ok(test_run(ebpf, f, 1)?.kernel_ns))
        .collect::<anyhow::Result<Vec<u32>>>()?;
    ns.sort_unstable();
    let kept = &ns[ns.len() / 4..ns.len() * 3 / 4];
    Ok(kept.iter().map(|n| *n as f64).sum::<f64>() / kept.len() as f64)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/<profile>/deps/xdp_cost-<hash>
            let exe = std::env::current_exe().expect("current exe");
            exe.ancestors().nth(3).expect("target dir").to_path_buf()
        })
}

/// Keeps every call on one CPU: the per-CPU maps and caches stay warm, migrations add noise.
fn pin_to_current_cpu() {
    // SAFETY: plain libc calls on a zeroed cpu_set_t owned by this frame.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu >= 0 {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// One path's measurements, one entry per round.
struct Path {
    name: &'static str,
    fixture: Fixture,
    analogue: Option<usize>,
    rerunnable: bool,
    repeat: Vec<f64>,
    single: Vec<f64>,
}

fn main() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "xdp_cost loads XDP programs and needs root (euid {euid}): run \
         `sudo -E cargo bench -p matrix-benches --bench xdp_cost`"
    );
    pin_to_current_cpu();
    let ebpf = fixtures::load(&World::standard()).context("load the data plane")?;

    println!("repeat = 2 probe (does a second repetition see the original frame?):");
    let mut paths = Vec::new();
    for &(name, fixture, _) in PATHS {
        let fixture = fixtures::by_name(fixture);
        let (rerunnable, note) = probe_repeat(&ebpf, &fixture)?;
        let verdict = if rerunnable { "same     " } else { "REWRITTEN" };
        println!("  {name:<28} {verdict}  {note}");
        let (repeat, single) = (Vec::new(), Vec::new());
        paths.push(Path {
            name,
            fixture,
            analogue: None,
            rerunnable,
            repeat,
            single,
        });
    }
    for (i, &(_, _, analogue)) in PATHS.iter().enumerate() {
        let index = |a| paths.iter().position(|p| p.name == a);
        paths[i].analogue = analogue.map(|a| index(a).expect("analogue is a row"));
        if let Some(a) = paths[i].analogue {
            assert!(paths[a].rerunnable, "{} must be re-runnable", paths[a].name);
        }
    }
    assert!(
        paths[0].name == "baseline_tx" && paths[0].rerunnable,
        "baseline first"
    );

    for round in 0..ROUNDS {
        eprint!("\rround {}/{ROUNDS}", round + 1);
        for p in &mut paths {
            if p.rerunnable {
                p.repeat.push(measure_repeat(&ebpf, &p.fixture)?);
            }
            p.single.push(measure_single(&ebpf, &p.fixture)?);
        }
    }
    eprintln!();

    // Per round: the baseline's repeat figure, and its fixed single-call overhead.
    let base = &paths[0];
    let base_ns: Vec<f64> = base.repeat.clone();
    let overhead: Vec<f64> = (0..ROUNDS)
        .map(|r| base.single[r] - base.repeat[r])
        .collect();
    println!(
        "\nbaseline: {:.1} ns per run with repeat = {REPEAT}; a single call adds {:.1} ns of \
         fixed timer overhead ({ROUNDS} rounds, medians)",
        median(base_ns.clone()),
        median(overhead.clone())
    );
    println!(
        "\n{:<28} {:<7} {:>9} {:>7} {:>10} {:>11}  paired with",
        "path", "method", "ns/packet", "spread", "x baseline", "single-est."
    );
    let mut rows = Vec::new();
    for p in &paths {
        let single_est: Vec<f64> = (0..ROUNDS).map(|r| p.single[r] - overhead[r]).collect();
        let (method, ns): (_, Vec<f64>) = match (p.rerunnable, p.analogue) {
            (true, _) => ("repeat", p.repeat.clone()),
            (false, Some(a)) => {
                let a = &paths[a];
                let paired = (0..ROUNDS).map(|r| a.repeat[r] + p.single[r] - a.single[r]);
                ("paired", paired.collect())
            }
            (false, None) => ("single", single_est.clone()),
        };
        let ratio: Vec<f64> = (0..ROUNDS).map(|r| ns[r] / base_ns[r]).collect();
        let (ns_med, ratio_med) = (median(ns.clone()), median(ratio));
        let est_med = median(single_est);
        let analogue = p.analogue.map_or("", |a| paths[a].name);
        println!(
            "{:<28} {method:<7} {ns_med:>9.1} {:>7.1} {ratio_med:>10.2} {est_med:>11.1}  {analogue}",
            p.name,
            spread(&ns)
        );
        rows.push(json!({
            "path": p.name,
            "fixture": p.fixture.name,
            "method": method,
            "ns_per_packet": ns_med,
            "ns_per_packet_spread": spread(&ns),
            "ratio_to_baseline": ratio_med,
            "single_call_ns_estimate": est_med,
            "paired_with": p.analogue.map(|a| paths[a].name),
            "rounds_ns": ns,
            "rounds_repeat_ns": p.repeat,
            "rounds_single_call_ns_raw": p.single,
        }));
    }
    let report = json!({
        "bench": "xdp_cost",
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "repeat": REPEAT,
        "rounds": ROUNDS,
        "single_calls_per_round": SINGLE_CALLS,
        "baseline_ns": median(base_ns),
        "single_call_overhead_ns": median(overhead),
        "method": "per round; repeat: the kernel's mean duration over one BPF_PROG_TEST_RUN \
                   with repeat (paths that leave the frame unchanged); paired: repeat(analogue) + \
                   single(path) - single(analogue), single = kernel duration of repeat=1 \
                   calls (paths that rewrite the frame); single-est: single(path) - \
                   single(baseline) + repeat(baseline); reported: medians over rounds",
        "rows": rows,
    });
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("xdp_cost.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("\nwritten to {}", path.display());
    Ok(())
}
