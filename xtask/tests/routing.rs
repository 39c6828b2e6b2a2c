//! Adaptive routing in namespace fleets: agents find routes with no static routes, and
//! move traffic off a path that is cut or congested while a TCP connection keeps going.
//!
//! Privileged: run as root (`cargo xtask test`); these tests fail, never skip, without it.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::{
    cargo,
    testbed::{self, Testbed, UpOptions},
};

fn require_root() {
    assert!(
        xtask::cmd::is_root(),
        "routing tests create network namespaces and attach XDP programs: run them as root \
         (`cargo xtask test`)"
    );
}

fn topology(name: &str) -> PathBuf {
    cargo::workspace_root().join("topologies").join(name)
}

fn up(topo: &std::path::Path, strategy: &str) -> Testbed {
    let opts = UpOptions {
        routing: Some(strategy.into()),
        ..Default::default()
    };
    Testbed::up_with(topo, &testbed::unique_prefix(), &opts).unwrap()
}

fn matrix(args: &[&str]) -> Value {
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

/// Packets `relay` has sent on towards node `to` (its per-neighbour counters): the
/// a -> d direction only, not the ACKs coming back.
fn sent_to(tb: &Testbed, relay: &str, to: &str) -> u64 {
    let id = &tb.node(to).id;
    matrix(&["neighbors", "--node", &tb.node(relay).pin])
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == id.as_str())
        .and_then(|n| n["tx_packets"].as_u64())
        .unwrap_or_else(|| panic!("{relay} has no neighbour {to}"))
}

/// Waits until node `from` has an installed route to node `to`; returns the next hops.
fn wait_route(tb: &Testbed, from: &str, to: &str, timeout: Duration) -> Vec<String> {
    let want = format!("{}/32", tb.node(to).id);
    let start = Instant::now();
    loop {
        let routes = matrix(&["routes", "--node", &tb.node(from).pin]);
        if let Some(r) = routes
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dst"] == want.as_str())
        {
            let hops: Vec<String> = r["next_hops"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["node"].as_str().unwrap().to_string())
                .collect();
            if !hops.is_empty() {
                return hops;
            }
        }
        assert!(
            start.elapsed() < timeout,
            "{from} has no route to {to} after {timeout:?}: {routes}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ping_ok(tb: &Testbed, ns: &str, addr: &str) -> bool {
    tb.exec(ns, ["ping", "-c", "1", "-W", "1", addr])
        .status
        .success()
}

/// A process killed when dropped (also when a test fails).
struct Child(Option<std::process::Child>);
impl Child {
    fn output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}
impl Drop for Child {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_in(ns: &str, args: &[&str]) -> Child {
    Child(Some(
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    ))
}

#[test]
fn routes_and_prefixes_are_learnt_with_no_static_routes() {
    require_root();
    for strategy in ["shortest", "antnet", "q-routing"] {
        let tb = up(&topology("line.toml"), strategy);
        let hops = wait_route(&tb, "a", "d", Duration::from_secs(10));
        assert_eq!(
            hops,
            [tb.node("b").id.clone()],
            "{strategy}: a reaches d via b"
        );
        let dst = tb.node("d").workloads[0].addr.to_string();
        let src = tb.node("a").workloads[0].netns.clone();
        let start = Instant::now();
        while !ping_ok(&tb, &src, &dst) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{strategy}: a/w0 cannot reach d/w0"
            );
        }
        let st = matrix(&["status", "--node", &tb.node("b").pin]);
        assert_eq!(st["strategy"], strategy);
        assert!(st["control"]["rx_ok"].as_u64().unwrap() > 0, "{st}");
    }
}

#[test]
fn strategy_and_parameters_are_tuned_at_run_time() {
    require_root();
    let tb = up(&topology("diamond.toml"), "shortest");
    let pin = tb.node("a").pin.clone();
    wait_route(&tb, "a", "d", Duration::from_secs(10));
    let out = Command::new(cargo::matrix_bin())
        .args(["set", "strategy", "antnet", "--node", &pin])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = matrix(&["get", "--node", &pin]);
    assert_eq!(got["strategy"], "antnet");
    let bad = Command::new(cargo::matrix_bin())
        .args(["set", "exploration", "7", "--node", &pin])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("exploration"),
        "error names the parameter"
    );
    // The route to d survives the switch (make before break) and AntNet keeps it.
    wait_route(&tb, "a", "d", Duration::from_secs(5));
}

/// Starts a 8 s TCP transfer a/w0 -> d/w0, finds the relay that carries it, cuts that
/// relay off, and measures how long until the other relay carries traffic. The TCP
/// connection must survive the cut.
fn failover(strategy: &str) -> Duration {
    let tb = up(&topology("diamond.toml"), strategy);
    wait_route(&tb, "a", "d", Duration::from_secs(10));
    wait_route(&tb, "d", "a", Duration::from_secs(10));
    let (src, dst) = (&tb.node("a").workloads[0], &tb.node("d").workloads[0]);
    let _server = spawn_in(&dst.netns, &["iperf3", "-s", "-1"]);
    std::thread::sleep(Duration::from_millis(300));
    let client = spawn_in(
        &src.netns,
        &["iperf3", "-c", &dst.addr.to_string(), "-t", "8", "-J"],
    );
    std::thread::sleep(Duration::from_secs(2));

    let (b0, c0) = (sent_to(&tb, "b", "d"), sent_to(&tb, "c", "d"));
    std::thread::sleep(Duration::from_millis(500));
    let (b1, c1) = (sent_to(&tb, "b", "d"), sent_to(&tb, "c", "d"));
    let (busy, idle) = if b1 - b0 > c1 - c0 {
        ("b", "c")
    } else {
        ("c", "b")
    };
    assert!(
        (b1 - b0).max(c1 - c0) > 100,
        "no relay carries the transfer"
    );

    // Cut the busy relay off from a: its link to a goes down.
    let relay = tb.node(busy);
    let iface = &relay.underlay[0].iface; // link 0 or 1: the relay's link to a
    // Everything d decapsulates after the cut came over the other relay: the cut one
    // has no link to a any more.
    let decap = || {
        matrix(&["stats", "--node", &tb.node("d").pin])["paths"]["decap"]
            .as_u64()
            .unwrap()
    };
    let cut = Instant::now();
    let out = tb.exec(&relay.netns, ["ip", "link", "set", iface, "down"]);
    assert!(out.status.success());
    // Recovered = a's route to d no longer uses the cut relay, and d has since received
    // 50 more packets of the transfer (over the other relay: the cut one has no link to
    // a any more).
    let busy_id = relay.id.clone();
    let mut repointed: Option<(Duration, u64)> = None;
    let recovered = loop {
        if repointed.is_none() {
            let hops = wait_route(&tb, "a", "d", Duration::from_secs(1));
            if !hops.contains(&busy_id) {
                repointed = Some((cut.elapsed(), decap()));
            }
        }
        if let Some((_, at)) = repointed
            && decap() > at + 50
        {
            break cut.elapsed();
        }
        assert!(
            cut.elapsed() < Duration::from_secs(5),
            "{strategy}: traffic did not move to {idle} within 5 s of the cut; a's routes: {}",
            matrix(&["routes", "--node", &tb.node("a").pin])
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let repointed = repointed.map(|(t, _)| t).unwrap_or_default();

    let out = client.output();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        v["error"].is_null(),
        "{strategy}: the TCP connection broke: {}",
        v["error"]
    );
    let bytes = v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0);
    assert!(bytes > 1e6, "{strategy}: TCP moved only {bytes} bytes");
    eprintln!(
        "{strategy}: cut {busy} at 2.5 s; a's route repointed after {repointed:?}, traffic on \
         {idle} after {recovered:?}; TCP moved {bytes} bytes"
    );
    recovered
}

#[test]
fn cut_path_moves_traffic_and_tcp_survives_shortest() {
    require_root();
    assert!(failover("shortest") < Duration::from_secs(1));
}

#[test]
fn cut_path_moves_traffic_and_tcp_survives_antnet() {
    require_root();
    assert!(failover("antnet") < Duration::from_secs(1));
}

#[test]
fn congested_path_loses_its_traffic() {
    require_root();
    // The diamond with a-b tapped: a TBF on the bridge port towards b queues both data
    // and hellos, so the a-b link's RTT and loss rise and the agent moves traffic to c.
    let base = std::fs::read_to_string(topology("diamond.toml")).unwrap();
    let tapped = base.replacen(
        "[[link]]\na = \"a\"\nb = \"b\"\n",
        "[[link]]\na = \"a\"\nb = \"b\"\ntap = true\n",
        1,
    );
    assert_ne!(base, tapped, "diamond.toml changed shape");
    let prefix = testbed::unique_prefix();
    let file = std::env::temp_dir().join(format!("{prefix}-congest.toml"));
    std::fs::write(&file, tapped).unwrap();
    let opts = UpOptions {
        routing: Some("shortest".into()),
        ..Default::default()
    };
    let tb = Testbed::up_with(&file, &prefix, &opts);
    let _ = std::fs::remove_file(&file);
    let tb = tb.unwrap();
    wait_route(&tb, "a", "d", Duration::from_secs(10));
    let wire = format!("{prefix}-l0");
    // 2 Mbit/s with up to 200 ms of queue: the a -> b direction crawls.
    for port in ["pa", "pb"] {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &wire, "tc", "qdisc", "add", "dev", port, "root", "tbf",
            ])
            .args(["rate", "2mbit", "burst", "8kb", "latency", "200ms"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (src, dst) = (&tb.node("a").workloads[0], &tb.node("d").workloads[0]);
    let _server = spawn_in(&dst.netns, &["iperf3", "-s", "-1"]);
    std::thread::sleep(Duration::from_millis(300));
    // 16 streams: ECMP puts some on each relay; the congested one must shed them.
    let client = spawn_in(
        &src.netns,
        &[
            "iperf3",
            "-c",
            &dst.addr.to_string(),
            "-t",
            "6",
            "-P",
            "16",
            "-J",
        ],
    );
    std::thread::sleep(Duration::from_secs(4));
    let (b0, c0) = (sent_to(&tb, "b", "d"), sent_to(&tb, "c", "d"));
    std::thread::sleep(Duration::from_secs(1));
    let (b1, c1) = (sent_to(&tb, "b", "d"), sent_to(&tb, "c", "d"));
    drop(client);
    assert!(
        c1 - c0 > 10 * (b1 - b0).max(1),
        "after 4 s the uncongested relay c should carry the traffic: b +{}, c +{}",
        b1 - b0,
        c1 - c0
    );
}
