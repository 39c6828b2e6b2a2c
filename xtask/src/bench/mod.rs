//! `cargo xtask bench`: builds, runs every benchmark of `benches/`, and writes
//! `target/bench/results.md` (the table README shows) and `target/bench/results.json`
//! (the ratios beside the raw figures).
//!
//! Each data-plane runner is a bench target of `matrix-benches` that writes its own JSON
//! (as `cargo bench -p matrix-benches --bench NAME -- [--quick] --out DIR --prefix P`
//! would; all targets are built first and their executables run directly); the routing
//! core's figures come from criterion's estimates. Every namespace and pin
//! directory a runner makes starts with this run's prefix `mxb<pid>`, and whatever is
//! left of them after a runner ends (a crash, a kill) is removed here.

mod report;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::{cargo, cmd, testbed};

/// What `cargo xtask bench` takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct BenchArgs {
    /// Fewer repetitions, same table (a few minutes instead of ten).
    #[arg(long)]
    pub quick: bool,
}

/// The data-plane runners, in the order they run (bench target = JSON name).
const RUNNERS: [&str; 5] = [
    "xdp_cost",
    "route_lookup",
    "map_update",
    "forwarding",
    "agent_idle",
];
/// Criterion bench targets and the estimates read from each.
const CRITERION: [(&str, &[&str]); 2] = [
    (
        "routing",
        &[
            "routing_antnet_ant/forward",
            "routing_antnet_ant/backward",
            "routing_shortest_recompute/1000",
            "routing_shortest_recompute/10000",
        ],
    ),
    (
        "flow_hash",
        &[
            "flow_hash_v4",
            "flow_hash_v6",
            "next_hop_pick_1",
            "next_hop_pick_4_last",
        ],
    ),
];

/// Criterion's HTML plots take half a minute per target and are not part of the table.
const CRITERION_ARGS: [&str; 1] = ["--noplot"];
/// Criterion's own quick mode, with shorter warm-up and measurement.
const CRITERION_QUICK: [&str; 5] = [
    "--quick",
    "--warm-up-time",
    "0.5",
    "--measurement-time",
    "1",
];

/// The JSON directory: `<target>/bench`.
pub fn out_dir() -> PathBuf {
    cargo::target_dir().join("bench")
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if !cmd::is_root() {
        bail!(
            "cargo xtask bench must run as root: it loads XDP programs and builds network \
             namespaces; run it with sudo"
        );
    }
    let started = Instant::now();
    let load_start = loadavg();
    let date = cmd::run(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let out = out_dir();
    fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    for name in RUNNERS.iter().chain(&["results"]) {
        let _ = fs::remove_file(out.join(format!("{name}.json")));
    }

    println!("bench: building (the agent in release, every bench target)");
    cmd::run_inherit(cargo::cargo().args(["build", "--release", "-p", "matrix-user"]))?;
    let exes = build_benches()?;
    let build = started.elapsed();
    let matrix_bin = cargo::target_dir().join("release").join("matrix");
    let exe = |name: &str| {
        exes.iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .with_context(|| format!("cargo built no bench target {name}"))
    };

    let prefix = format!("mxb{}", std::process::id());
    let mut figures = serde_json::Map::new();
    let mut timings = serde_json::Map::new();
    let mut failures = Vec::new();
    for name in RUNNERS {
        println!("\nbench: {name}");
        let t = Instant::now();
        let mut c = bench_command(&exe(name)?);
        c.args(args.quick.then_some("--quick"))
            .arg("--out")
            .arg(&out)
            .args(["--prefix", &prefix])
            .env("MATRIX_BIN", &matrix_bin);
        let result = cmd::run_inherit(&mut c);
        cleanup(&prefix);
        timings.insert(name.into(), t.elapsed().as_secs_f64().into());
        match result
            .map_err(anyhow::Error::from)
            .and_then(|()| read(&out, name))
        {
            Ok(v) => {
                figures.insert(name.into(), v);
            }
            Err(e) => {
                eprintln!("bench: {name} failed: {e:#}");
                failures.push(name);
            }
        }
    }
    for (target, ids) in CRITERION {
        println!("\nbench: {target} (criterion)");
        let t = Instant::now();
        let mut c = bench_command(&exe(target)?);
        c.args(CRITERION_ARGS);
        if args.quick {
            c.args(CRITERION_QUICK);
        }
        let result = cmd::run_inherit(&mut c)
            .map_err(anyhow::Error::from)
            .and_then(|()| criterion_estimates(ids));
        timings.insert(target.into(), t.elapsed().as_secs_f64().into());
        match result {
            Ok(v) => {
                figures.insert(target.into(), v);
            }
            Err(e) => {
                eprintln!("bench: {target} failed: {e:#}");
                failures.push(target);
            }
        }
    }

    let wall = started.elapsed();
    let run = RunInfo {
        quick: args.quick,
        date,
        wall,
        build,
    };
    let figures = Value::Object(figures);
    let (ratios, goals) = report::ratios_and_goals(&figures);
    let results = json!({
        "command": run.command(),
        "quick": args.quick,
        "date": run.date,
        "kernel": fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "load_average": {"start": load_start, "end": loadavg()},
        "wall_seconds": wall.as_secs_f64(),
        "build_seconds": build.as_secs_f64(),
        "runner_seconds": timings,
        "failed": failures,
        "ratios": ratios,
        "goals": goals,
        "figures": figures,
    });
    let json_path = out.join("results.json");
    fs::write(&json_path, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("write {}", json_path.display()))?;
    let md_path = out.join("results.md");
    fs::write(&md_path, report::markdown(&results, &run))
        .with_context(|| format!("write {}", md_path.display()))?;
    println!("\n{}", report::goals_table(&results));
    println!(
        "bench: {} in {:.0} s (build {:.0} s); written {} and {}",
        run.command(),
        wall.as_secs_f64(),
        build.as_secs_f64(),
        md_path.display(),
        json_path.display()
    );
    if !failures.is_empty() {
        bail!("benchmarks failed: {}", failures.join(", "));
    }
    Ok(())
}

/// Builds every bench target of matrix-benches once and returns `(target, executable)`.
/// The runners are these executables, not `cargo bench` calls: a source edited while the
/// benches run (the workspace is shared) cannot rebuild them halfway through.
fn build_benches() -> Result<Vec<(String, PathBuf)>> {
    let mut c = cargo::cargo();
    c.args(["bench", "-p", "matrix-benches", "--no-run"])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(std::process::Stdio::inherit());
    let out = cmd::run(&mut c)?;
    let mut exes = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let is_bench = v["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bench"));
        if let (true, Some(name), Some(exe)) = (
            is_bench,
            v["target"]["name"].as_str(),
            v["executable"].as_str(),
        ) {
            exes.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    Ok(exes)
}

/// A bench executable as `cargo bench` runs it: `--bench`, in the package's directory,
/// with the target directory in the environment (criterion writes its estimates there).
fn bench_command(exe: &Path) -> Command {
    let mut c = Command::new(exe);
    c.arg("--bench")
        .current_dir(cargo::workspace_root().join("benches"))
        .env("CARGO_TARGET_DIR", cargo::target_dir());
    c
}

/// When and how the run went, for the table's header.
pub struct RunInfo {
    pub quick: bool,
    pub date: String,
    pub wall: Duration,
    pub build: Duration,
}

impl RunInfo {
    pub fn command(&self) -> &'static str {
        if self.quick {
            "cargo xtask bench --quick"
        } else {
            "cargo xtask bench"
        }
    }
}

/// The 1-minute load average: other work on the machine competes with the runs.
fn loadavg() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn read(dir: &Path, name: &str) -> Result<Value> {
    let path = dir.join(format!("{name}.json"));
    let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

/// `{id: {"mean_ns", "low_ns", "high_ns"}}` from criterion's `new/estimates.json`.
fn criterion_estimates(ids: &[&str]) -> Result<Value> {
    let root = cargo::target_dir().join("criterion");
    let mut out = serde_json::Map::new();
    for id in ids {
        let v = read(&root.join(id).join("new"), "estimates")?;
        let mean = &v["mean"];
        out.insert(
            (*id).into(),
            json!({
                "mean_ns": mean["point_estimate"],
                "low_ns": mean["confidence_interval"]["lower_bound"],
                "high_ns": mean["confidence_interval"]["upper_bound"],
            }),
        );
    }
    Ok(Value::Object(out))
}

/// Removes every testbed, namespace and pin directory left with `prefix`.
fn cleanup(prefix: &str) {
    let mut names: Vec<String> = testbed::list()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    if let Ok(out) = cmd::ip(["netns", "list"]) {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let ns = line.split_whitespace().next().unwrap_or_default();
            // A chain's namespaces are <prefix><case>-<node>[-w<i>].
            if let Some((tb, _)) = ns.split_once('-')
                && tb.starts_with(prefix)
                && !names.iter().any(|n| n == tb)
            {
                names.push(tb.to_string());
            }
        }
    }
    for name in names {
        eprintln!("bench: removing leftover testbed {name}");
        if let Err(e) = testbed::down(&name) {
            eprintln!("warning: {e}");
        }
    }
    if let Ok(dir) = fs::read_dir(testbed::PIN_ROOT) {
        for entry in dir.flatten() {
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                let path = entry.path();
                eprintln!("bench: removing leftover pins {}", path.display());
                if let Err(e) = fs::remove_dir_all(&path) {
                    eprintln!("warning: cannot remove {}: {e}", path.display());
                }
            }
        }
    }
}
