//! `matrix-fuzz [--count N] [--seed S] [--frame I] [--threads T] [--batch B]`: the fuzz
//! run behind `cargo xtask fuzz` (see `matrix_testing::fuzz`). Prints the counts by
//! verdict, path and drop reason, the rate, and every violation with its frame in hex and
//! how to reproduce it; exits 1 on a violation, 2 when it cannot run. `--frame I` replays
//! frame I of the seed's run alone, verbosely. Needs root.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use matrix_testing::fuzz::{self, Options};

const USAGE: &str = "usage: matrix-fuzz [--count N] [--seed S] [--frame I] [--threads T] \
                     [--batch B]\n  N, S, I: decimal or 0x-hex; without --seed, a seed from \
                     the clock (printed)";

enum Mode {
    Run(Box<Options>),
    Replay { seed: u64, frame: u64 },
}

fn number(flag: &str, value: Option<String>) -> anyhow::Result<u64> {
    let v = value.with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
    let v = v.replace('_', "");
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.with_context(|| format!("{flag} {v}: not a number\n{USAGE}"))
}

fn parse() -> anyhow::Result<Mode> {
    let mut opts = Options {
        progress: true,
        ..Options::default()
    };
    let (mut seed, mut frame) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--count" => opts.count = number(&a, args.next())?,
            "--seed" => seed = Some(number(&a, args.next())?),
            "--frame" => frame = Some(number(&a, args.next())?),
            "--threads" => opts.threads = number(&a, args.next())?.max(1) as usize,
            "--batch" => opts.batch = number(&a, args.next())?.max(1),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let seed = seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(1, |d| d.as_nanos() as u64)
    });
    Ok(match frame {
        Some(frame) => Mode::Replay { seed, frame },
        None => Mode::Run(Box::new(Options { seed, ..opts })),
    })
}

fn run() -> anyhow::Result<bool> {
    let mode = parse()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        bail!(
            "matrix-fuzz loads the XDP programs to run them with BPF_PROG_TEST_RUN and needs \
             root (euid is {euid}): run `sudo -E cargo xtask fuzz`"
        );
    }
    match mode {
        Mode::Replay { seed, frame } => {
            let (text, ok) = fuzz::replay(seed, frame)?;
            println!("{text}");
            Ok(ok)
        }
        Mode::Run(opts) => {
            eprintln!(
                "fuzz: seed {:#x}, {} frames over both programs, {} threads",
                opts.seed, opts.count, opts.threads
            );
            let report = fuzz::run(&opts)?;
            println!("{}", report.full());
            if !report.ok() {
                println!(
                    "\nfuzz: {} violations; rerun the run with `cargo xtask fuzz --seed {:#x} \
                     --count {}`",
                    report.violation_count, report.seed, report.frames
                );
            }
            Ok(report.ok())
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
