//! Namespace plumbing of the testbed, without agents. Privileged: these tests create
//! network namespaces, so they must run as root (`cargo xtask test`); they fail, never
//! skip, without it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use xtask::{
    cargo,
    testbed::{self, Testbed, TestbedError, UpOptions},
};

fn require_root() {
    assert!(
        xtask::cmd::is_root(),
        "testbed tests create network namespaces and must run as root (use `cargo xtask test`)"
    );
}

fn topology(name: &str) -> PathBuf {
    cargo::workspace_root().join("topologies").join(name)
}

fn plumbing_only() -> UpOptions {
    UpOptions {
        agents: false,
        ..Default::default()
    }
}

/// Namespaces whose name starts with `<prefix>-`.
fn namespaces_of(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect()
}

fn assert_gone(prefix: &str) {
    assert_eq!(
        namespaces_of(prefix),
        Vec::<String>::new(),
        "namespaces of {prefix} left behind"
    );
    assert!(
        !testbed::state_dir(prefix).exists(),
        "state dir of {prefix} left behind"
    );
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `xtask <args>`, the CLI as `cargo xtask` runs it.
fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap()
}

fn ping(tb: &Testbed, ns: &str, addr: &str) -> Output {
    // One reply within 3 s; covers a link that is still coming up.
    tb.exec(ns, ["ping", "-c", "1", "-w", "3", addr])
}

#[test]
fn line_plumbing_pings_reports_and_goes_away() {
    require_root();
    let prefix = testbed::unique_prefix();
    let tb = Testbed::up_with(&topology("line.toml"), &prefix, &plumbing_only()).unwrap();

    let (a, b) = (tb.node("a"), tb.node("b"));
    assert_eq!(a.netns, format!("{prefix}-a"));
    assert_eq!(a.pin, format!("{prefix}-a"));
    assert_eq!(
        namespaces_of(&prefix).len(),
        7,
        "4 nodes + 2 workloads + the wire of tapped link 1"
    );
    // Link 0 joins a's u0 and b's u0.
    assert_eq!(b.underlay[0].iface, "u0");
    assert_ok(
        "ping a -> b over link 0",
        &ping(&tb, &a.netns, &b.underlay[0].address.to_string()),
    );
    // A workload reaches its node over its veth, on both families.
    let w = &a.workloads[0];
    assert_ok(
        "ping a/w0 -> a",
        &ping(&tb, &w.netns, &w.gateway.to_string()),
    );
    assert_ok(
        "ping -6 a/w0 -> a",
        &tb.exec(
            "a/w0",
            ["ping", "-6", "-c", "1", "-w", "3", &w.gateway6.to_string()],
        ),
    );
    let mtu = tb.exec(&w.netns, ["cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(String::from_utf8_lossy(&mtu.stdout).trim(), "1448");
    // GRO on (redirected frames accepted), checksum offload off (encapsulated
    // segments carry full checksums).
    let features =
        String::from_utf8_lossy(&tb.exec(&w.netns, ["ethtool", "-k", "eth0"]).stdout).into_owned();
    assert!(
        features.contains("generic-receive-offload: on"),
        "{features}"
    );
    assert!(features.contains("tx-checksumming: off"), "{features}");
    // Relays do not forward; nodes with workloads do.
    let fwd = |ns: &str| {
        let out = tb.exec(ns, ["cat", "/proc/sys/net/ipv4/ip_forward"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!((fwd("a"), fwd("b")), ("1".into(), "0".into()));

    let status = xtask(&["testbed", "status", "--name", &prefix, "--json"]);
    assert_ok("testbed status", &status);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
    assert_eq!(nodes[3]["id"], "0.4");
    assert_eq!(nodes[3]["netns"], format!("{prefix}-d"));
    assert_eq!(nodes[3]["workloads"][0]["netns"], format!("{prefix}-d-w0"));
    assert_eq!(nodes[3]["workloads"][0]["addr"], "10.104.0.2");
    assert_eq!(nodes[1]["workloads"], serde_json::json!([]));

    let config = std::fs::read_to_string(&tb.node("a").config).unwrap();
    assert!(
        config.contains(&format!("name = \"{prefix}-a\"")),
        "{config}"
    );

    tb.down().unwrap();
    assert_gone(&prefix);
    // Idempotent.
    tb.down().unwrap();
}

#[test]
fn tapped_link_forwards_through_its_bridge_and_goes_away() {
    require_root();
    let prefix = testbed::unique_prefix();
    // line.toml taps its middle link, 1: b's u1 <-> br0 in <prefix>-l1 <-> c's u0.
    let tb = Testbed::up_with(&topology("line.toml"), &prefix, &plumbing_only()).unwrap();
    let wire = format!("{prefix}-l1");
    let links = &tb.state().links;
    assert_eq!(links[1].tap_netns.as_deref(), Some(wire.as_str()));
    assert_eq!(links[0].tap_netns, None);
    assert!(namespaces_of(&prefix).contains(&wire));

    // The node ends look as on an untapped link: same names and subnet.
    let (b, c) = (tb.node("b"), tb.node("c"));
    assert_eq!(
        (b.underlay[1].iface.as_str(), b.underlay[1].link),
        ("u1", 1)
    );
    assert_eq!(
        (c.underlay[0].iface.as_str(), c.underlay[0].link),
        ("u0", 1)
    );
    assert_eq!(c.underlay[0].address.to_string(), "10.200.1.2");
    assert_ok(
        "ping b -> c across the tapped link",
        &ping(&tb, &b.netns, "10.200.1.2"),
    );
    assert_ok(
        "ping c -> b across the tapped link",
        &ping(&tb, &c.netns, "10.200.1.1"),
    );
    // The untapped links still work.
    assert_ok("ping a -> b", &ping(&tb, "a", "10.200.0.2"));
    assert_ok("ping d -> c", &ping(&tb, "d", "10.200.2.1"));

    // Both wire-side ends are ports of br0, with GRO on so that frames redirected by
    // the nodes' XDP programs are not dropped.
    let ports = tb.exec("l1", ["ip", "-o", "link", "show", "master", "br0"]);
    assert_ok("list br0 ports", &ports);
    let ports = String::from_utf8_lossy(&ports.stdout).into_owned();
    assert!(ports.contains(" pa@") && ports.contains(" pb@"), "{ports}");
    for port in ["pa", "pb"] {
        let features =
            String::from_utf8_lossy(&tb.exec(&wire, ["ethtool", "-k", port]).stdout).into_owned();
        assert!(
            features.contains("generic-receive-offload: on"),
            "{port}: {features}"
        );
        // And an XDP program, so frames sent back with XDP_TX are delivered at once.
        let link = String::from_utf8_lossy(&tb.exec(&wire, ["ip", "link", "show", port]).stdout)
            .into_owned();
        assert!(link.contains("prog/xdp"), "{port}: {link}");
    }

    // `exec` takes l<k>; l0 is a link too, but not a tapped one.
    let exec = |target: &str| {
        xtask(&[
            "testbed", "exec", "--name", &prefix, target, "--", "ip", "-o", "link", "show", "br0",
        ])
    };
    assert_ok("exec l1", &exec("l1"));
    let untapped = exec("l0");
    assert!(!untapped.status.success());
    let err = String::from_utf8_lossy(&untapped.stderr).into_owned();
    assert!(
        err.contains("link l0 (a - b)") && err.contains("not tapped"),
        "{err}"
    );
    let unknown = exec("l9");
    let err = String::from_utf8_lossy(&unknown.stderr).into_owned();
    assert!(err.contains("tapped links: l1"), "{err}");

    let status = xtask(&["testbed", "status", "--name", &prefix, "--json"]);
    assert_ok("testbed status", &status);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["links"][1]["tap_netns"], wire.as_str());
    assert_eq!(v["links"][1]["tap"], "l1");
    assert_eq!(v["links"][0]["tap"], serde_json::Value::Null);
    let table = xtask(&["testbed", "status", "--name", &prefix]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains(&format!("tapped: {wire} bridge br0")),
        "{}",
        String::from_utf8_lossy(&table.stdout)
    );

    tb.down().unwrap();
    assert_gone(&prefix);
}

#[test]
fn cli_up_exec_down() {
    require_root();
    let prefix = testbed::unique_prefix();
    let diamond = topology("diamond.toml");
    let up = xtask(&[
        "testbed",
        "up",
        "--topology",
        diamond.to_str().unwrap(),
        "--name",
        &prefix,
        "--no-agents",
    ]);
    assert_ok("testbed up", &up);
    // A second up of the same name refuses and leaves the first alone.
    let again = xtask(&[
        "testbed",
        "up",
        "--topology",
        diamond.to_str().unwrap(),
        "--name",
        &prefix,
        "--no-agents",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // c reaches d over link 3 (c's u1, d's u1).
    let ping = xtask(&[
        "testbed",
        "exec",
        "--name",
        &prefix,
        "c",
        "--",
        "ping",
        "-c",
        "1",
        "-w",
        "3",
        "10.200.3.2",
    ]);
    assert_ok("exec ping c -> d", &ping);
    let code = xtask(&[
        "testbed", "exec", "--name", &prefix, "d/w0", "--", "sh", "-c", "exit 3",
    ]);
    assert_eq!(
        code.status.code(),
        Some(3),
        "exec passes the exit status on"
    );
    let unknown = xtask(&["testbed", "exec", "--name", &prefix, "z", "--", "true"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no node or namespace `z`"));

    assert_ok(
        "testbed down",
        &xtask(&["testbed", "down", "--name", &prefix]),
    );
    assert_gone(&prefix);
    assert_ok(
        "second testbed down",
        &xtask(&["testbed", "down", "--name", &prefix]),
    );
}

#[test]
fn failed_up_removes_what_it_made() {
    require_root();
    let prefix = testbed::unique_prefix();
    // An "agent" that exits at once: up fails after the plumbing is done.
    let opts = UpOptions {
        agents: true,
        matrix_bin: Path::new("/bin/false").to_path_buf(),
        ..Default::default()
    };
    let err = Testbed::up_with(&topology("two-subnet.toml"), &prefix, &opts).unwrap_err();
    assert!(matches!(err, TestbedError::AgentExited { .. }), "{err}");
    assert_gone(&prefix);
}

#[test]
fn dropping_a_testbed_tears_it_down_even_on_panic() {
    require_root();
    let prefix = testbed::unique_prefix();
    let p = prefix.clone();
    let result = std::panic::catch_unwind(move || {
        let tb = Testbed::up_with(&topology("two-subnet.toml"), &p, &plumbing_only()).unwrap();
        assert_eq!(tb.nodes().len(), 3);
        panic!("test failure inside a testbed");
    });
    assert!(result.is_err());
    assert_gone(&prefix);
}
