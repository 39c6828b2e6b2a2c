//! `matrix sim` without the agent: `cargo run --release -p matrix-sim --example sim --
//! --topology nsfnet --strategy all`.

use std::process::ExitCode;

use clap::Parser;
use matrix_sim::SimArgs;

#[derive(Parser)]
#[command(
    name = "matrix-sim",
    about = "Simulate matrix's routing core on a fleet"
)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match matrix_sim::run(&cli.sim) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut msg = format!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
