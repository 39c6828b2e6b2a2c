//! Routing state and control overhead per node as the fleet grows (DESIGN.md section 7):
//! `cargo run --release -p matrix-sim --example scale -- --sizes 1000,4000,10000
//! --duration 10 --warmup 5 --rate 0.02 --strategy shortest --hop-limit 64`. Each size
//! is a zoned `random:N`; each strategy runs alone so its wall time is its own. The
//! hop limit is raised because paths in these fleets grow past the default of 16.
//! Progress goes to stderr during each run (`--quiet` to silence); `peak MB` is the
//! process's peak resident memory so far (so, with growing sizes, that of the largest).

use std::{process::ExitCode, time::Instant};

use clap::Parser;
use matrix_sim::{Setup, SimArgs, progress};

#[derive(Parser)]
#[command(name = "scale")]
struct Cli {
    /// Fleet sizes, comma-separated.
    #[arg(long, default_value = "1000,4000,10000", value_delimiter = ',')]
    sizes: Vec<usize>,
    #[command(flatten)]
    sim: SimArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    println!(
        "{:>6} {:>5} {:<10} {:>16} {:>8} {:>12} {:>13} {:>9} {:>10} {:>13} {:>14} {:>10} {:>8} {:>8}",
        "nodes",
        "zones",
        "strategy",
        "state/node(max)",
        "routes",
        "ctrl msgs/s",
        "ctrl bytes/s",
        "delivered",
        "hops(max)",
        "stretch(p99)",
        "drop hop/route",
        "events",
        "wall s",
        "peak MB"
    );
    for &n in &cli.sizes {
        let args = SimArgs {
            topology: format!("random:{n}"),
            ..cli.sim.clone()
        };
        let setup = match Setup::new(&args) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        for &strategy in &setup.strategies {
            let started = Instant::now();
            let r = setup.run_one(strategy);
            let wall = started.elapsed().as_secs_f64();
            let peak_mb = progress::memory().map_or(0, |(_, peak)| peak >> 20);
            let stretch = match (r.stretch_mean, r.stretch_p99) {
                (Some(mean), Some(p99)) => format!("{mean:.3}({p99:.2})"),
                _ => "-".into(),
            };
            println!(
                "{:>6} {:>5} {:<10} {:>16} {:>8.1} {:>12.1} {:>13.0} {:>9.4} {:>10} {:>13} {:>14} {:>10} {:>8.1} {:>8}",
                r.run.nodes,
                r.run.zones,
                r.strategy,
                format!("{:.1}({})", r.state_entries_per_node, r.state_entries_max),
                r.routes_per_node,
                r.control_msgs_per_node_s,
                r.control_bytes_per_node_s,
                r.delivered_ratio,
                format!("{:.1}({})", r.mean_hops.unwrap_or(0.0), r.max_hops),
                stretch,
                format!("{}/{}", r.drops.hop_limit, r.drops.no_route),
                r.events,
                wall,
                peak_mb
            );
        }
    }
    ExitCode::SUCCESS
}
