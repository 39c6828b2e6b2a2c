//! `cargo xtask setup`: bring a fresh Debian machine to where matrix builds and its
//! privileged tests run. Each step checks first, so a second run takes seconds.

use std::{fs, process::Command};

use anyhow::{Context as _, Result, bail};
use xtask::cmd;

/// Debian packages: LLVM and its link deps for bpf-linker; the tools the testbed,
/// tests and benches run.
const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "bpftool",
    "iproute2",
    "ethtool",
    "iperf3",
    "netsniff-ng",
    "tcpdump",
    "iputils-ping",
    "procps",
    "util-linux",
];
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPFFS: &str = "/sys/fs/bpf";

pub fn run() -> Result<()> {
    apt_packages()?;
    nightly_rust_src()?;
    bpf_linker()?;
    bpffs()?;
    Ok(())
}

fn step(name: &str, outcome: &str) {
    println!("setup: {name:<18} {outcome}");
}

fn installed(pkg: &str) -> Result<bool> {
    let out = cmd::output(Command::new("dpkg").args(["-s", pkg]))
        .context("dpkg not found: set-up supports Debian and its derivatives only")?;
    Ok(out.status.success()
        && String::from_utf8_lossy(&out.stdout).contains("Status: install ok installed"))
}

fn apt_packages() -> Result<()> {
    let mut missing = Vec::new();
    for pkg in PACKAGES {
        if !installed(pkg)? {
            missing.push(*pkg);
        }
    }
    if missing.is_empty() {
        step("apt packages", "ok");
        return Ok(());
    }
    if !cmd::is_root() {
        bail!(
            "missing packages {}: run `cargo xtask setup` as root",
            missing.join(" ")
        );
    }
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd::run(&mut c).map(drop)
    };
    apt(&["update"]).context("apt-get update")?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install).with_context(|| format!("cannot install {}", missing.join(" ")))?;
    step("apt packages", &format!("installed {}", missing.join(" ")));
    Ok(())
}

fn rustup(args: &[&str]) -> Result<String> {
    let out = cmd::run(Command::new("rustup").args(args))
        .context("rustup is required (https://rustup.rs) to add the nightly toolchain")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Nightly with rust-src: the eBPF crate is built with `-Z build-std=core`.
fn nightly_rust_src() -> Result<()> {
    let mut did = Vec::new();
    let toolchains = rustup(&["toolchain", "list"])?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        rustup(&["toolchain", "install", "nightly", "--profile", "minimal"])?;
        did.push("nightly");
    }
    let components = rustup(&["component", "list", "--toolchain", "nightly", "--installed"])?;
    if !components
        .lines()
        .any(|l| l.trim() == "rust-src" || l.starts_with("rust-src-"))
    {
        rustup(&["component", "add", "rust-src", "--toolchain", "nightly"])?;
        did.push("rust-src");
    }
    step(
        "nightly rust-src",
        &if did.is_empty() {
            "ok".into()
        } else {
            format!("installed {}", did.join(" "))
        },
    );
    Ok(())
}

fn bpf_linker_version() -> Option<String> {
    let out = Command::new("bpf-linker").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn bpf_linker() -> Result<()> {
    let want = BPF_LINKER_VERSION
        .rsplit_once('.')
        .map_or(BPF_LINKER_VERSION, |(mm, _)| mm);
    if bpf_linker_version().is_some_and(|v| v.split_whitespace().any(|w| w.starts_with(want))) {
        step("bpf-linker", "ok");
        return Ok(());
    }
    if !std::path::Path::new(LLVM_PREFIX)
        .join("bin/llvm-config")
        .is_file()
    {
        bail!("LLVM 22 not found at {LLVM_PREFIX}: install llvm-22-dev (apt) first");
    }
    println!("setup: bpf-linker         installing {BPF_LINKER_VERSION} (takes minutes)");
    let path = format!(
        "{LLVM_PREFIX}/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    // Plain `cargo`, not $CARGO: the install must not inherit a workspace toolchain pin.
    cmd::run_inherit(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
            ])
            .args(["--features", "llvm-22"])
            .env("PATH", path)
            .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX),
    )
    .context("cannot install bpf-linker")?;
    match bpf_linker_version() {
        Some(v) => step("bpf-linker", &format!("installed ({v})")),
        None => bail!("bpf-linker was installed but is not on PATH: add ~/.cargo/bin to PATH"),
    }
    Ok(())
}

fn bpffs() -> Result<()> {
    let mounts = fs::read_to_string("/proc/mounts").context("cannot read /proc/mounts")?;
    let mounted = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&BPFFS) && f.get(2) == Some(&"bpf")
    });
    if mounted {
        step("bpffs", "ok");
        return Ok(());
    }
    if !cmd::is_root() {
        bail!("bpffs is not mounted at {BPFFS}: run `cargo xtask setup` as root");
    }
    cmd::run(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))
        .context("cannot mount bpffs")?;
    step("bpffs", &format!("mounted at {BPFFS}"));
    Ok(())
}
