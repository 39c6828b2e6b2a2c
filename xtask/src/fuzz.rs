//! `cargo xtask fuzz`: random and mutated frames through both XDP programs with
//! BPF_PROG_TEST_RUN, each result judged by an oracle (`matrix_testing::fuzz`). Builds the
//! `matrix-fuzz` binary of matrix-testing in release, then runs that executable (as the
//! bench runner runs its targets: a source edited meanwhile cannot rebuild it halfway).

use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};
use xtask::{cargo, cmd};

/// What `cargo xtask fuzz` takes; numbers are decimal or 0x-hex.
#[derive(Clone, Debug, clap::Args)]
pub struct FuzzArgs {
    /// Frames in all, over both programs.
    #[arg(long, default_value = "1000000")]
    pub count: String,
    /// Seed of the run [default: from the clock, printed].
    #[arg(long)]
    pub seed: Option<String>,
    /// Replay frame I of the seed's run alone, verbosely (needs --seed).
    #[arg(long, requires = "seed")]
    pub frame: Option<String>,
    /// Worker threads [default: one per CPU].
    #[arg(long)]
    pub threads: Option<String>,
}

const BIN: &str = "matrix-fuzz";

/// Builds and runs the fuzzer; fails on a violation.
pub fn run(args: &FuzzArgs) -> Result<ExitCode> {
    if !cmd::is_root() {
        bail!(
            "cargo xtask fuzz must run as root: it loads the XDP programs to run them with \
             BPF_PROG_TEST_RUN; run it with sudo"
        );
    }
    println!("fuzz: building {BIN} (release)");
    cmd::run_inherit(cargo::cargo().args([
        "build",
        "--release",
        "-p",
        "matrix-testing",
        "--bin",
        BIN,
    ]))?;
    let exe = cargo::target_dir().join("release").join(BIN);
    if !exe.is_file() {
        bail!("cargo built no {}", exe.display());
    }
    let mut c = Command::new(&exe);
    c.args(["--count", &args.count]);
    for (flag, value) in [
        ("--seed", &args.seed),
        ("--frame", &args.frame),
        ("--threads", &args.threads),
    ] {
        if let Some(v) = value {
            c.args([flag, v]);
        }
    }
    let status = c
        .status()
        .with_context(|| format!("cannot start {}", cmd::display(&c)))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(1) => {
            eprintln!("fuzz: the oracle found violations (above)");
            ExitCode::FAILURE
        }
        _ => bail!("`{}` failed ({status})", cmd::display(&c)),
    })
}
