//! What an idle agent costs: `matrix agent` on every node of a small testbed
//! (`topologies/line.toml`, static routes, no traffic), sampled from /proc after the
//! fleet settles: CPU as (utime + stime) over the window from `/proc/<pid>/stat` (the
//! whole process, every thread), cross-checked with the threads' `schedstat` runtimes
//! (ns), and resident memory (`VmRSS`, `VmHWM`) from `/proc/<pid>/status`.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use xtask::testbed::{Testbed, UpOptions};

use crate::run;

/// utime + stime of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14, 15.
    let rest = stat
        .rsplit_once(") ")
        .with_context(|| format!("{path}: no command name"))?
        .1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        f.get(i - 3)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{path}: field {i}"))
    };
    Ok(field(14)? + field(15)?)
}

/// Sum of the runtimes (ns) of every thread of `pid`.
fn runtime_ns(pid: u32) -> anyhow::Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0;
    for task in std::fs::read_dir(&dir).with_context(|| format!("list {dir}"))? {
        let tid: i32 = task?.file_name().to_string_lossy().parse()?;
        // A thread that ended meanwhile no longer counts.
        total += crate::netns::runtime_ns(tid).unwrap_or(0);
    }
    Ok(total)
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let get = |key: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("{path}: no {key}"))
    };
    Ok((get("VmRSS:")?, get("VmHWM:")?))
}

/// The `matrix` binary to measure: `$MATRIX_BIN`, else the release build, else the
/// debug build the testbed uses by default.
pub fn matrix_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MATRIX_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let release = run::target_dir().join("release").join("matrix");
    if release.is_file() {
        release
    } else {
        xtask::cargo::debug_matrix_bin()
    }
}

/// Brings up the line testbed with agents, lets it settle for `settle`, samples for
/// `window`, and removes the testbed.
pub fn run(prefix: &str, bin: &Path, settle: Duration, window: Duration) -> anyhow::Result<Value> {
    let topology = xtask::cargo::workspace_root().join("topologies/line.toml");
    let opts = UpOptions {
        matrix_bin: bin.to_path_buf(),
        ..UpOptions::default()
    };
    let name = format!("{prefix}i");
    let tb = Testbed::up_with(&topology, &name, &opts)
        .with_context(|| format!("bring up {} as {name}", topology.display()))?;
    let agents: Vec<(String, u32)> = tb
        .nodes()
        .iter()
        .map(|n| {
            Ok((
                n.name.clone(),
                n.pid.with_context(|| format!("no agent on {}", n.name))?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let until = Instant::now() + settle;
    while Instant::now() < until {
        run::interrupted()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let before: Vec<(u64, u64)> = agents
        .iter()
        .map(|(_, pid)| Ok((cpu_ticks(*pid)?, runtime_ns(*pid)?)))
        .collect::<anyhow::Result<_>>()?;
    let t0 = Instant::now();
    let until = t0 + window;
    while Instant::now() < until {
        run::interrupted()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    let seconds = t0.elapsed().as_secs_f64();
    let mut nodes = Vec::new();
    let (mut max_cpu, mut max_rss) = (0f64, 0f64);
    for ((name, pid), (ticks0, ns0)) in agents.iter().zip(before) {
        if !xtask::testbed::agent_running(tb.node(name)) {
            bail!("the agent of {name} (pid {pid}) ended during the sample");
        }
        let ticks = cpu_ticks(*pid)? - ticks0;
        let ns = runtime_ns(*pid)? - ns0;
        let (rss, hwm) = memory_kib(*pid)?;
        let cpu_percent = 100.0 * ticks as f64 / hz / seconds;
        let cpu_percent_schedstat = 100.0 * ns as f64 / 1e9 / seconds;
        let rss_mib = rss as f64 / 1024.0;
        println!(
            "agent {name:<6} pid {pid:<7} cpu {cpu_percent:>6.3}% of a core ({ticks} ticks; \
             schedstat {cpu_percent_schedstat:.3}%)  VmRSS {rss_mib:>6.1} MiB  VmHWM {:.1} MiB",
            hwm as f64 / 1024.0
        );
        max_cpu = max_cpu.max(cpu_percent.max(cpu_percent_schedstat));
        max_rss = max_rss.max(rss_mib);
        nodes.push(json!({
            "node": name,
            "pid": pid,
            "cpu_percent": cpu_percent,
            "cpu_percent_schedstat": cpu_percent_schedstat,
            "cpu_ticks": ticks,
            "rss_mib": rss_mib,
            "hwm_mib": hwm as f64 / 1024.0,
        }));
    }
    tb.down()?;
    Ok(json!({
        "bench": "agent_idle",
        "topology": topology.display().to_string(),
        "binary": bin.display().to_string(),
        "settle_s": settle.as_secs_f64(),
        "window_s": seconds,
        "agents": nodes,
        "max_cpu_percent": max_cpu,
        "max_rss_mib": max_rss,
        "method": "matrix agent on each node of topologies/line.toml (static routes, idle); \
                   CPU = delta(utime + stime) of /proc/<pid>/stat over the window (and the \
                   threads' schedstat runtimes; the larger is kept as the max); memory = \
                   VmRSS at the end of the window",
    }))
}
