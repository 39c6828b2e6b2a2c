//! `matrix`: the agent daemon and its command-line clients.

use std::{io::IsTerminal as _, path::PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use matrix_user::{agent, cli, config::Config};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "matrix",
    version,
    about = "Overlay routing for fleets of hosts, forwarded in XDP"
)]
struct Args {
    /// Which local node (pin name or NodeId such as 0.1), when a host runs several; for
    /// `config gen`, the fleet's node whose config to print.
    #[arg(long, global = true)]
    node: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Log lines (stderr; level from RUST_LOG, default info) as text or as one JSON object
    /// each.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: attach the data plane to the configured interfaces and fill its maps.
    Agent {
        /// TOML configuration (see README).
        #[arg(long)]
        config: PathBuf,
        /// On SIGINT/SIGTERM leave the data plane attached and pinned (forwarding on its
        /// last routes) for the next agent to adopt, instead of detaching and unpinning.
        #[arg(long)]
        keep: bool,
    },
    /// Routes: each NodeId prefix with its weighted next hops.
    Routes {
        /// Also show pheromone (antnet), Q-values (q-routing) or path costs (shortest).
        #[arg(long)]
        detail: bool,
    },
    /// Set a routing parameter on the running agent (e.g. `strategy antnet`).
    Set { name: String, value: String },
    /// Show every routing parameter of the running agent.
    Get,
    /// What the agent runs, and its control-channel counters.
    Status,
    /// Discrete-event simulation of the routing core over a topology.
    Sim(matrix_sim::SimArgs),

    /// Neighbours: underlay address, MAC, and traffic counters.
    #[command(alias = "neighbours")]
    Neighbors,
    /// Packet counters by verdict, path and drop reason, and per neighbour.
    Stats,
    /// Stream dropped packets (and with --all forwarded ones) as the data plane sees them,
    /// headers decoded; tracing is on only while this runs.
    Trace(cli::TraceArgs),
    /// Set-up of real hosts: agent configs from a fleet file, cluster keys.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Write every host's agent config (`<name>.toml`) from one fleet file (see
    /// examples/fleet.toml); with --node NAME print that host's config instead.
    Gen {
        /// The fleet file: nodes, their interfaces, links, routing.
        #[arg(long)]
        fleet: PathBuf,
        /// Directory to write the configs into (default: the current one; with --node,
        /// writes only that node's config there instead of printing it).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a new random cluster key (32 bytes, mode 0600) for `routing.key_file`.
    Key {
        /// File to create; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    restore_sigpipe();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr, leaving stdout to tables, JSON and configs; `RUST_LOG` chooses
/// levels per module (`info` when unset or unreadable).
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let node = args.node.as_deref();
    match args.command {
        Command::Agent { config, keep } => {
            let config = Config::from_file(&config)?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(agent::run(config, agent::RunOptions { keep }))
        }
        Command::Routes { detail } => cli::routes(node, args.json, detail),
        Command::Set { name, value } => cli::set(node, &name, &value),
        Command::Get => cli::get(node, args.json),
        Command::Status => cli::status(node, args.json),
        Command::Sim(mut sim) => {
            sim.json |= args.json;
            print!("{}", matrix_sim::run(&sim)?);
            Ok(())
        }

        Command::Neighbors => cli::neighbors(node, args.json),
        Command::Stats => cli::stats(node, args.json),
        Command::Trace(t) => cli::trace(node, args.json, &t),
        Command::Config(ConfigCommand::Gen { fleet, out }) => {
            matrix_user::fleet::generate(&fleet, out.as_deref(), node)
        }
        Command::Config(ConfigCommand::Key { out }) => matrix_user::fleet::key(&out),
    }
}

/// Rust ignores SIGPIPE; a CLI piped into `head` should end quietly instead of panicking.
fn restore_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_DFL before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
