//! `matrix sim`: a discrete-event simulator that runs the real routing core
//! (`matrix_routing::Router`, one per node) over a simulated fleet, and measures what
//! DESIGN.md section 9 asks of routing: delivered traffic, delay, control overhead,
//! routing state, path stretch, recovery after a link or node failure; every strategy
//! under the same load.
//!
//! ```text
//!  SimArgs ─▶ Setup: topology (file | nsfnet | random:N | grid:WxH), traffic plan,
//!             failures, one RunConfig per strategy
//!          ─▶ engine::simulate per strategy (in parallel, each its own world)
//!          ─▶ RunReport per strategy ─▶ table or JSON; with --plot also an SVG of
//!             throughput and delay over time (series, plot)
//! ```
//!
//! The agent exposes this as `matrix sim` by flattening [`SimArgs`] into its CLI and
//! printing what [`run`] returns.

pub mod engine;
pub mod generate;
pub mod metrics;
pub mod network;
pub mod plot;
pub mod progress;
pub mod queue;
pub mod report;
pub mod rng;
pub mod series;
pub mod stretch;
pub mod topology;
pub mod traffic;

use std::{fs::File, io::Write, num::NonZeroUsize, path::PathBuf, thread};

use clap::{Args, FromArgMatches};
use matrix_common::wire::DEFAULT_HOP_LIMIT;
use matrix_routing::{ParamError, Params, StrategyKind};

pub use engine::{Detect, RunConfig};
pub use report::{FailedNode, RunInfo, RunReport};
pub use topology::{Topology, TopologyError};
pub use traffic::{LoadError, LoadSpec};

/// Simulate the routing core on a fleet and compare strategies.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct SimArgs {
    /// Topology: a TOML file, `nsfnet` (built in), `random:N` or `grid:WxH`
    /// (zoned above 256 nodes).
    #[arg(
        long,
        default_value = "nsfnet",
        value_name = "FILE|nsfnet|random:N|grid:WxH"
    )]
    pub topology: String,
    /// Strategy: direct, shortest, antnet, q-routing, a comma-separated list, or `all`
    /// (same topology, load and seed for each).
    #[arg(long, default_value = "all", value_name = "NAME|all")]
    pub strategy: String,
    /// Offered load: `uniform` (AntNet's UP), `hotspot` (UP-HS), or a traffic-matrix
    /// TOML file of `[[flow]]` src/dst/rate_pps.
    #[arg(long, default_value = "uniform", value_name = "uniform|hotspot|FILE")]
    pub load: String,
    /// Multiplier on the offered load.
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    pub rate: f64,
    /// Simulated seconds, warm-up included.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub duration: f64,
    /// Simulated seconds at the start that are not measured (routing converges).
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub warmup: f64,
    /// Cut the link between nodes A and B (names or ids) at SECONDS; repeatable.
    #[arg(long = "fail", value_name = "A-B@SECONDS")]
    pub fail: Vec<String>,
    /// Kill NODE (name or id) at SECONDS: its router stops and all its links are cut at
    /// once; repeatable.
    #[arg(long = "fail-node", value_name = "NODE@SECONDS")]
    pub fail_node: Vec<String>,
    /// How the ends of a cut link learn of it: `hello` (missed hellos, as the agent
    /// does: an overlay link crosses other networks and gives no carrier signal) or
    /// `carrier` (both ends are told at once, as by a local link going down).
    #[arg(long, default_value = "hello", value_name = "hello|carrier")]
    pub detect: Detect,
    /// Seed of everything random: topology generation, traffic, routers.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print a JSON list (one object per strategy) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr during long runs (`--json` implies it).
    #[arg(long)]
    pub quiet: bool,
    /// Also draw delivered throughput and mean delay over time, one line per strategy,
    /// into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Data packet size on the wire, bytes.
    #[arg(long, default_value_t = 512, value_name = "BYTES")]
    pub packet_size: u32,
    /// Hop limit set where packets enter the overlay (the data plane's default).
    #[arg(long, default_value_t = DEFAULT_HOP_LIMIT, value_name = "N")]
    pub hop_limit: u8,
    /// Queue of each link direction, kilobytes; drop-tail beyond.
    #[arg(long, default_value_t = 64, value_name = "KB")]
    pub queue_kb: u32,
    /// A router parameter for every node, as `matrix set` takes it; repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

impl Default for SimArgs {
    /// The command-line defaults.
    fn default() -> Self {
        let cmd = Self::augment_args(clap::Command::new("sim"));
        let matches = cmd.get_matches_from(["sim"]);
        Self::from_arg_matches(&matches).expect("defaults parse")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("--{flag} `{value}`: {reason}")]
    Arg {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("--param `{value}`: {source}")]
    Param {
        value: String,
        #[source]
        source: ParamError,
    },
    #[error("cannot encode the JSON report")]
    Json(#[from] serde_json::Error),
    #[error("cannot write the plot to {}", path.display())]
    PlotWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot draw the plot for {}: {reason}", path.display())]
    PlotDraw { path: PathBuf, reason: String },
}

fn arg_error(flag: &'static str, value: impl ToString, reason: impl ToString) -> SimError {
    SimError::Arg {
        flag,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// `--strategy`: `all`, one name, or a comma-separated list (duplicates dropped).
pub fn parse_strategies(value: &str) -> Result<Vec<StrategyKind>, SimError> {
    if value == "all" {
        return Ok(StrategyKind::ALL.to_vec());
    }
    let mut out = Vec::new();
    for name in value.split(',') {
        let kind: StrategyKind = name.trim().parse().map_err(|_| {
            arg_error(
                "strategy",
                name,
                "expected all, direct, shortest, antnet or q-routing",
            )
        })?;
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    Ok(out)
}

/// The `@SECONDS` of a failure: what precedes it and the time in nanoseconds.
fn split_failure_time<'v>(
    value: &'v str,
    duration_s: f64,
    bad: impl Fn(String) -> SimError,
    example: &str,
) -> Result<(&'v str, u64), SimError> {
    let (what, secs) = value
        .rsplit_once('@')
        .ok_or_else(|| bad(format!("expected {example}")))?;
    let secs: f64 = secs
        .parse()
        .map_err(|_| bad(format!("`{secs}` is not a number of seconds")))?;
    if !(secs >= 0.0 && secs < duration_s) {
        return Err(bad(format!(
            "{secs} s is outside the run (0 to --duration {duration_s})"
        )));
    }
    Ok((what, (secs * 1e9).round() as u64))
}

/// `--fail-node NODE@SECONDS`: the node index and the time in nanoseconds.
pub fn parse_node_failure(
    value: &str,
    topo: &Topology,
    duration_s: f64,
) -> Result<(usize, u64), SimError> {
    let bad = |reason: String| arg_error("fail-node", value, reason);
    let (node, at) = split_failure_time(value, duration_s, bad, "NODE@SECONDS, e.g. 3.1@10")?;
    let n = topo
        .find(node)
        .ok_or_else(|| bad(format!("`{node}` is not a node (name or id)")))?;
    Ok((n, at))
}

/// `--fail A-B@SECONDS`: the link index and the cut time in nanoseconds.
pub fn parse_failure(
    value: &str,
    topo: &Topology,
    duration_s: f64,
) -> Result<(usize, u64), SimError> {
    let bad = |reason: String| arg_error("fail", value, reason);
    let (pair, at) = split_failure_time(value, duration_s, bad, "A-B@SECONDS, e.g. 0.4-0.9@10")?;
    // Names may contain '-': take the first split where both sides are nodes.
    let (a, b) = pair
        .match_indices('-')
        .find_map(|(i, _)| Some((topo.find(&pair[..i])?, topo.find(&pair[i + 1..])?)))
        .ok_or_else(|| {
            bad(format!(
                "`{pair}` is not two nodes (names or ids) joined by '-'"
            ))
        })?;
    let link = topo.link_between(a, b).ok_or_else(|| {
        bad(format!(
            "no link between {} and {}",
            topo.nodes[a].name, topo.nodes[b].name
        ))
    })?;
    Ok((link, at))
}

/// A validated invocation: the world every strategy runs in.
#[derive(Debug)]
pub struct Setup {
    pub topology: Topology,
    pub plan: traffic::TrafficPlan,
    pub strategies: Vec<StrategyKind>,
    pub config: RunConfig,
    pub info: RunInfo,
}

impl Setup {
    pub fn new(args: &SimArgs) -> Result<Self, SimError> {
        if !(args.rate.is_finite() && args.rate > 0.0) {
            return Err(arg_error("rate", args.rate, "must be a positive number"));
        }
        if !(args.duration.is_finite() && args.duration > 0.0) {
            return Err(arg_error(
                "duration",
                args.duration,
                "must be a positive number of seconds",
            ));
        }
        if !(args.warmup >= 0.0 && args.warmup < args.duration) {
            let reason = format!("must be at least 0 and below --duration {}", args.duration);
            return Err(arg_error("warmup", args.warmup, reason));
        }
        if !(64..=9000).contains(&args.packet_size) {
            return Err(arg_error(
                "packet-size",
                args.packet_size,
                "must be 64 to 9000 bytes",
            ));
        }
        if args.hop_limit == 0 {
            return Err(arg_error("hop-limit", 0, "must be at least 1"));
        }
        let queue_bytes = args.queue_kb as u64 * 1024;
        if queue_bytes < args.packet_size as u64 {
            return Err(arg_error(
                "queue-kb",
                args.queue_kb,
                "must hold at least one packet",
            ));
        }
        let strategies = parse_strategies(&args.strategy)?;
        let mut params = Params::default();
        for p in &args.params {
            let (name, value) = p
                .split_once('=')
                .ok_or_else(|| arg_error("param", p, "expected NAME=VALUE"))?;
            params.set(name, value).map_err(|source| SimError::Param {
                value: p.clone(),
                source,
            })?;
        }
        let topology = Topology::from_spec(&args.topology, args.seed)?;
        let load = LoadSpec::resolve(&args.load, &topology)?;
        let failures = args
            .fail
            .iter()
            .map(|f| parse_failure(f, &topology, args.duration))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, f) in failures.iter().enumerate() {
            if failures[..i].iter().any(|g| g.0 == f.0) {
                return Err(arg_error(
                    "fail",
                    &args.fail[i],
                    "that link is already cut by an earlier --fail",
                ));
            }
        }
        let node_failures = args
            .fail_node
            .iter()
            .map(|f| parse_node_failure(f, &topology, args.duration))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, f) in node_failures.iter().enumerate() {
            if node_failures[..i].iter().any(|g| g.0 == f.0) {
                return Err(arg_error(
                    "fail-node",
                    &args.fail_node[i],
                    "that node already fails by an earlier --fail-node",
                ));
            }
        }
        let failed_nodes = node_failures
            .iter()
            .map(|&(n, at)| FailedNode {
                node: topology.nodes[n].name.clone(),
                zone: topology.nodes[n].id.zone(),
                border: topology.is_border(n),
                at_s: at as f64 / 1e9,
            })
            .collect();
        let plan = traffic::plan(&load, &topology, args.packet_size, args.rate, args.seed);
        let config = RunConfig {
            strategy: StrategyKind::Shortest,
            params,
            packet_bytes: args.packet_size,
            hop_limit: args.hop_limit,
            queue_bytes,
            duration_ns: (args.duration * 1e9).round() as u64,
            warmup_ns: (args.warmup * 1e9).round() as u64,
            seed: args.seed,
            failures,
            node_failures,
            detect: args.detect,
            progress: !(args.json || args.quiet),
        };
        let info = RunInfo {
            topology: args.topology.clone(),
            nodes: topology.nodes.len(),
            links: topology.links.len(),
            zones: topology.zone_count(),
            load: args.load.clone(),
            rate: args.rate,
            seed: args.seed,
            window_s: args.duration - args.warmup,
            failed_nodes,
        };
        Ok(Self {
            topology,
            plan,
            strategies,
            config,
            info,
        })
    }

    /// Runs every strategy, as many at once as there are cores; rows in strategy order.
    pub fn run(&self) -> Vec<RunReport> {
        let jobs = thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let mut out = Vec::with_capacity(self.strategies.len());
        for chunk in self.strategies.chunks(jobs) {
            thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|&strategy| s.spawn(move || self.run_one(strategy)))
                    .collect();
                for h in handles {
                    out.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
                }
            });
        }
        out
    }

    pub fn run_one(&self, strategy: StrategyKind) -> RunReport {
        let config = RunConfig {
            strategy,
            ..self.config.clone()
        };
        let result = engine::simulate(&self.topology, &self.plan, &config);
        RunReport::new(strategy.name(), result, &self.info)
    }

    /// The `--plot` picture of `rows`, titled after the run.
    pub fn figure<'a>(&self, rows: &'a [RunReport]) -> plot::Figure<'a> {
        let i = &self.info;
        let mut cuts: Vec<(String, f64)> = self
            .config
            .failures
            .iter()
            .map(|&(link, at)| {
                let l = &self.topology.links[link];
                let (a, b) = (
                    &self.topology.nodes[l.a].name,
                    &self.topology.nodes[l.b].name,
                );
                (format!("cut {a}-{b}"), at as f64 / 1e9)
            })
            .collect();
        cuts.extend(
            i.failed_nodes
                .iter()
                .map(|f| (format!("{} dies", f.node), f.at_s)),
        );
        let cut_text = match (cuts.is_empty(), self.config.detect) {
            (true, _) => "",
            (false, Detect::Hello) => "; cuts found by missed hellos",
            (false, Detect::Carrier) => "; cuts signalled at once (carrier)",
        };
        plot::Figure {
            title: format!(
                "{}: {} nodes, {} links; load {} x{} ({:.0} packets/s); seed {}{}",
                i.topology,
                i.nodes,
                i.links,
                i.load,
                i.rate,
                self.plan.offered_pps,
                i.seed,
                cut_text,
            ),
            rows,
            duration_s: self.config.duration_ns as f64 / 1e9,
            warmup_s: self.config.warmup_ns as f64 / 1e9,
            cuts,
        }
    }

    /// The line above the table.
    pub fn header(&self) -> String {
        let i = &self.info;
        let hot = if self.plan.hotspots.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = self
                .plan
                .hotspots
                .iter()
                .map(|&h| self.topology.nodes[h].name.as_str())
                .collect();
            format!(" (hot spots {})", names.join(","))
        };
        let dead: String = i
            .failed_nodes
            .iter()
            .map(|f| {
                let role = if f.border { "border node" } else { "node" };
                format!(
                    "; {role} {} of zone {} dies at {} s",
                    f.node, f.zone, f.at_s
                )
            })
            .collect();
        format!(
            "{}: {} nodes, {} links, {} zone(s); load {}{} x{} = {:.0} packets/s offered; \
             measured {:.1} s after {:.1} s warm-up; seed {}{dead}",
            i.topology,
            i.nodes,
            i.links,
            i.zones,
            i.load,
            hot,
            i.rate,
            self.plan.offered_pps,
            i.window_s,
            self.config.warmup_ns as f64 / 1e9,
            i.seed,
        )
    }
}

fn plot_write(path: &std::path::Path, source: std::io::Error) -> SimError {
    SimError::PlotWrite {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs the simulation `args` describe; returns the report rows.
pub fn run_reports(args: &SimArgs) -> Result<Vec<RunReport>, SimError> {
    Ok(Setup::new(args)?.run())
}

/// Runs the simulation `args` describe; returns the text to print: a table, or with
/// `--json` a JSON list with one object per strategy.
pub fn run(args: &SimArgs) -> Result<String, SimError> {
    let setup = Setup::new(args)?;
    // Opened before the runs, so a bad path fails in a second, not after an hour.
    let plot = match &args.plot {
        Some(path) => Some((path, File::create(path).map_err(|e| plot_write(path, e))?)),
        None => None,
    };
    let rows = setup.run();
    if let Some((path, mut file)) = plot {
        let svg = plot::render(&setup.figure(&rows)).map_err(|reason| SimError::PlotDraw {
            path: path.clone(),
            reason,
        })?;
        file.write_all(svg.as_bytes())
            .map_err(|e| plot_write(path, e))?;
    }
    if args.json {
        let mut s = serde_json::to_string_pretty(&rows)?;
        s.push('\n');
        Ok(s)
    } else {
        Ok(report::table(&setup.header(), &rows))
    }
}
