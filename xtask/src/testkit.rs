//! What the privileged tests under `xtask/tests/` share: the root check, the shipped
//! topologies, and the `matrix` CLI's JSON.

use std::{path::PathBuf, process::Command};

use serde_json::Value;

use crate::{cargo, cmd, testbed::Testbed};

/// Fails (never skips) when not root: `what` (e.g. "routing tests") create network
/// namespaces and attach XDP programs.
pub fn require_root(what: &str) {
    assert!(
        cmd::is_root(),
        "{what} create network namespaces and attach XDP programs: run them as root \
         (`cargo xtask test`)"
    );
}

/// A topology file shipped under `topologies/`.
pub fn topology(name: &str) -> PathBuf {
    cargo::workspace_root().join("topologies").join(name)
}

/// `matrix ARGS --json`, which must succeed: its output parsed.
pub fn matrix_json(args: &[&str]) -> Value {
    let out = Command::new(cargo::matrix_bin())
        .args(args)
        .arg("--json")
        .output()
        .expect("run matrix");
    assert!(
        out.status.success(),
        "matrix {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Pings `addr` (IPv4 or IPv6) `count` times from namespace `ns`: how many replies came.
pub fn ping_received(tb: &Testbed, ns: &str, addr: &str, count: u32) -> u32 {
    let count = count.to_string();
    let mut args = vec!["ping", "-c", &count, "-i", "0.1", "-W", "1", "-q"];
    if addr.contains(':') {
        args.insert(1, "-6");
    }
    args.push(addr);
    let out = tb.exec(ns, &args);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no ping summary in:\n{text}"))
}
