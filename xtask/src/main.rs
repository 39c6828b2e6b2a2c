//! `cargo xtask`: set-up, build, test, run the demo, the namespace testbed, benches and
//! the data-plane fuzzer.

mod demo;
mod fuzz;
mod setup;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use xtask::{cargo, cmd, testbed};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "matrix project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (idempotent): apt packages, nightly
    /// rust-src, bpf-linker, the bpffs mount.
    Setup,
    /// Set-up, then build the `matrix` binary (debug; its eBPF object is always release).
    Build,
    /// Set-up, build, then every test of the workspace (as root: the privileged ones
    /// too). Arguments after `--` go to `cargo test`.
    Test {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build, then run: the namespace demo, or with --iface an agent on a real NIC.
    Run(demo::RunArgs),
    /// Set-up, build, then every benchmark (as root): writes target/bench/results.md
    /// and results.json.
    Bench(xtask::bench::BenchArgs),
    /// Set-up, build, then random and mutated frames (1M by default) through both XDP
    /// programs, every result judged by an oracle (as root); fails on a violation.
    Fuzz(fuzz::FuzzArgs),
    /// The namespace fleet on its own.
    Testbed {
        #[command(subcommand)]
        cmd: TestbedCmd,
    },
}

#[derive(Args)]
struct NameArgs {
    /// Testbed name, the prefix of everything it makes [default: mx-<topology stem>,
    /// or the only testbed there is].
    #[arg(long)]
    name: Option<String>,
    /// Topology file (only to derive the default name).
    #[arg(long)]
    topology: Option<PathBuf>,
}

#[derive(Subcommand)]
enum TestbedCmd {
    /// Create namespaces, links and addresses, write agent configs, start the agents.
    Up {
        #[arg(long)]
        topology: PathBuf,
        #[arg(long)]
        name: Option<String>,
        /// Plumbing only: no agents (for debugging the namespaces).
        #[arg(long, hide = true)]
        no_agents: bool,
        /// Adaptive routing with this strategy (shortest, antnet, q-routing, direct)
        /// instead of static routes.
        #[arg(long)]
        routing: Option<String>,
    },
    /// Stop the agents and remove everything of the testbed (idempotent).
    Down(NameArgs),
    /// Nodes, namespaces, agents, workload addresses.
    Status {
        #[command(flatten)]
        name: NameArgs,
        #[arg(long)]
        json: bool,
    },
    /// Stop one node's agent and start it again with the same config (SIGTERM: it
    /// detaches and unpins first), or with --kill as a crash would end it (SIGKILL:
    /// what it pinned stays, for the new agent to adopt). Starts an agent that is not
    /// running.
    Restart {
        #[command(flatten)]
        name: NameArgs,
        node: String,
        /// SIGKILL the running agent instead of stopping it cleanly.
        #[arg(long)]
        kill: bool,
    },
    /// Run a command in a node's namespace (NODE, or NODE/w<i> for a workload, or
    /// l<k> for the bridge namespace of tapped link k).
    Exec {
        #[command(flatten)]
        name: NameArgs,
        node: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.task {
        Task::Setup => setup::run().map(|()| ExitCode::SUCCESS),
        Task::Build => build().map(|_| ExitCode::SUCCESS),
        Task::Test { args } => test(&args),
        Task::Run(args) => demo::run(&args),
        Task::Bench(args) => setup::run()
            .and_then(|()| xtask::bench::run(&args))
            .map(|()| ExitCode::SUCCESS),
        Task::Fuzz(args) => setup::run().and_then(|()| fuzz::run(&args)),
        Task::Testbed { cmd } => testbed_cmd(cmd),
    }
}

/// Set-up, then `cargo build -p matrix-user`; returns the binary's absolute path.
fn build() -> Result<PathBuf> {
    setup::run()?;
    cmd::run_inherit(cargo::cargo().args(["build", "-p", "matrix-user"]))?;
    let bin = cargo::debug_matrix_bin();
    if !bin.is_file() {
        bail!("cargo build succeeded but {} does not exist", bin.display());
    }
    Ok(bin)
}

fn test(args: &[String]) -> Result<ExitCode> {
    if !cmd::is_root() {
        bail!(
            "cargo xtask test must run as root: the privileged tests (XDP in network namespaces) \
             fail rather than skip without it; run it with sudo"
        );
    }
    let bin = build()?;
    // matrix-ebpf only builds for the BPF target (from matrix-user's build script).
    let status = cargo::cargo()
        .args(["test", "--workspace", "--exclude", "matrix-ebpf"])
        .args(args)
        .env("MATRIX_BIN", &bin)
        .status()
        .context("cannot start cargo test")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn testbed_cmd(cmd: TestbedCmd) -> Result<ExitCode> {
    match cmd {
        TestbedCmd::Up {
            topology,
            name,
            no_agents,
            routing,
        } => {
            let prefix = match name {
                Some(n) => n,
                None => default_name(&topology)?,
            };
            let opts = testbed::UpOptions {
                agents: !no_agents,
                routing,
                ..Default::default()
            };
            let tb = testbed::Testbed::up_with(&topology, &prefix, &opts)
                .with_context(|| format!("testbed up {}", topology.display()))?;
            let state = tb.detach();
            print!("{}", testbed::status_table(&state));
            println!("state: {}", testbed::state_dir(&prefix).display());
        }
        TestbedCmd::Down(n) => {
            let prefix = pick_name(&n)?;
            testbed::down(&prefix)?;
            println!("testbed {prefix}: down");
        }
        TestbedCmd::Status { name, json } => {
            let state = testbed::load(&pick_name(&name)?)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&testbed::status_json(&state))?
                );
            } else {
                print!("{}", testbed::status_table(&state));
            }
        }
        TestbedCmd::Restart { name, node, kill } => {
            let prefix = pick_name(&name)?;
            // A handle on the running testbed: dropping it leaves the testbed up.
            let mut tb = testbed::Testbed::open(&prefix)?;
            let ended = if tb.state().node(&node).is_some_and(testbed::agent_running) {
                if kill {
                    format!("killed pid {}", tb.kill_agent(&node)?)
                } else {
                    format!("stopped pid {}", tb.stop_agent(&node)?)
                }
            } else {
                "none was running".into()
            };
            let pid = tb.restart_agent(&node)?;
            let n = tb.node(&node);
            println!(
                "testbed {prefix}: agent of {node}: {ended}, started pid {pid} (restart {}); log {}",
                n.restarts,
                n.log.display()
            );
        }
        TestbedCmd::Exec { name, node, cmd } => {
            let state = testbed::load(&pick_name(&name)?)?;
            let status = testbed::exec_interactive(&state, &node, &cmd)?;
            // The command's own exit code, or 128+signal as a shell reports it.
            let code = status.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt as _;
                128 + status.signal().unwrap_or(0)
            });
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `mx-<topology file stem>`.
fn default_name(topology: &Path) -> Result<String> {
    let stem = topology
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .with_context(|| format!("topology path {} has no file name", topology.display()))?;
    let name = format!("mx-{stem}");
    testbed::check_prefix(&name)
        .with_context(|| "pass --name: the topology's file name does not make one")?;
    Ok(name)
}

fn pick_name(n: &NameArgs) -> Result<String> {
    if let Some(name) = &n.name {
        return Ok(name.clone());
    }
    if let Some(t) = &n.topology {
        return default_name(t);
    }
    match testbed::list().as_slice() {
        [only] => Ok(only.clone()),
        [] => bail!("no testbed has state here: pass --name"),
        many => bail!("several testbeds are up ({}): pass --name", many.join(", ")),
    }
}
