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
    testkit,
};

fn up(topo: &std::path::Path, strategy: &str) -> Testbed {
    let opts = UpOptions {
        routing: Some(strategy.into()),
        ..Default::default()
    };
    Testbed::up_with(topo, &testbed::unique_prefix(), &opts).unwrap()
}

/// Packets `relay` has sent on towards node `to` (its per-neighbour counters): the
/// a -> d direction only, not the ACKs coming back.
fn sent_to(tb: &Testbed, relay: &str, to: &str) -> u64 {
    let id = &tb.node(to).id;
    testkit::matrix_json(&["neighbors", "--node", &tb.node(relay).pin])
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
        let routes = testkit::matrix_json(&["routes", "--node", &tb.node(from).pin]);
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
    testkit::require_root("routing tests");
    for strategy in ["shortest", "antnet", "q-routing"] {
        let tb = up(&testkit::topology("line.toml"), strategy);
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
        let st = testkit::matrix_json(&["status", "--node", &tb.node("b").pin]);
        assert_eq!(st["strategy"], strategy);
        // The agent read its links' speed from the driver: veth says 10 Gbit/s.
        for n in testkit::matrix_json(&["neighbors", "--node", &tb.node("b").pin])
            .as_array()
            .unwrap()
        {
            assert_eq!(n["capacity_mbps"], 10_000.0, "{n}");
        }
        assert!(st["control"]["rx_ok"].as_u64().unwrap() > 0, "{st}");
        assert_eq!(st["carrier_watch"]["active"], true, "{st}");
    }
}

#[test]
fn strategy_and_parameters_are_tuned_at_run_time() {
    testkit::require_root("routing tests");
    let tb = up(&testkit::topology("diamond.toml"), "shortest");
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
    let got = testkit::matrix_json(&["get", "--node", &pin]);
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

/// How a relay is cut off from a.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// `ip link set down` on the relay's end of its link to a: both ends lose carrier.
    Carrier,
    /// The link goes silent with carrier up at both ends (its bridge goes down, as a
    /// switch failing between the two would): only missed hellos tell.
    Silent,
}

/// The diamond, with both of a's links tapped (wired through a bridge) for a silent cut.
fn diamond(cut: Cut) -> (PathBuf, Option<PathBuf>) {
    let base = testkit::topology("diamond.toml");
    if cut == Cut::Carrier {
        return (base, None);
    }
    let text = std::fs::read_to_string(&base).unwrap();
    let mut tapped = text.clone();
    for relay in ["b", "c"] {
        let link = format!("[[link]]\na = \"a\"\nb = \"{relay}\"\n");
        tapped = tapped.replacen(&link, &format!("{link}tap = true\n"), 1);
    }
    assert_eq!(
        tapped.matches("tap = true").count(),
        2,
        "diamond.toml changed shape"
    );
    let file = std::env::temp_dir().join(format!("{}-diamond.toml", testbed::unique_prefix()));
    std::fs::write(&file, tapped).unwrap();
    (file.clone(), Some(file))
}

/// The next hops of `from`'s route to `to` (empty when it has none).
fn hops(tb: &Testbed, from: &str, to: &str) -> Vec<String> {
    let want = format!("{}/32", tb.node(to).id);
    testkit::matrix_json(&["routes", "--node", &tb.node(from).pin])
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dst"] == want.as_str())
        .map(|r| {
            r["next_hops"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["node"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// What a failover measured, from the moment of the cut.
struct Failover {
    /// a's route to d and d's route to a both avoid the cut relay.
    repointed: Duration,
    /// d has received 50 more packets of the transfer since, over the other relay. TCP's
    /// retransmission timer (200 ms at least, doubling) adds to the routing's time.
    traffic: Duration,
}

/// Starts an 8 s TCP transfer a/w0 -> d/w0, finds the relay that carries it, cuts that
/// relay off from a, and measures how long until both ends route around it and the
/// transfer flows over the other relay. The TCP connection must survive the cut.
fn failover(strategy: &str, cut: Cut) -> Failover {
    let (topo, tmp) = diamond(cut);
    let opts = UpOptions {
        routing: Some(strategy.into()),
        ..Default::default()
    };
    let tb = Testbed::up_with(&topo, &testbed::unique_prefix(), &opts);
    if let Some(tmp) = tmp {
        let _ = std::fs::remove_file(tmp);
    }
    let tb = tb.unwrap();
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
    assert!(
        (b1 - b0).max(c1 - c0) > 100,
        "no relay carries the transfer"
    );
    // The relay on a's route to d, or when the route has both, the one that carried more.
    let route = hops(&tb, "a", "d");
    let (busy, idle) = match route.as_slice() {
        [one] if *one == tb.node("b").id => ("b", "c"),
        [one] if *one == tb.node("c").id => ("c", "b"),
        _ if b1 - b0 > c1 - c0 => ("b", "c"),
        _ => ("c", "b"),
    };

    // The relay's link to a is its underlay 0 (links 0 and 1 of the diamond).
    let relay = tb.node(busy);
    let up = &relay.underlay[0];
    let (ns, args) = match cut {
        Cut::Carrier => (
            relay.netns.clone(),
            ["ip", "link", "set", up.iface.as_str(), "down"],
        ),
        Cut::Silent => (
            tb.state().links[up.link]
                .tap_netns
                .clone()
                .expect("a's links are tapped"),
            ["ip", "link", "set", "br0", "down"],
        ),
    };
    let decap = || {
        testkit::matrix_json(&["stats", "--node", &tb.node("d").pin])["paths"]["decap"]
            .as_u64()
            .unwrap()
    };
    let before = (hops(&tb, "a", "d"), hops(&tb, "d", "a"));
    let cut_at = Instant::now();
    let out = tb.exec(&ns, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let busy_id = relay.id.clone();
    let avoids = |from: &str, to: &str| {
        let h = hops(&tb, from, to);
        !h.is_empty() && !h.contains(&busy_id)
    };
    let (mut a_done, mut d_done) = (None, None);
    let mut repointed: Option<(Duration, u64)> = None;
    let traffic = loop {
        if a_done.is_none() && avoids("a", "d") {
            a_done = Some(cut_at.elapsed());
        }
        if d_done.is_none() && avoids("d", "a") {
            d_done = Some(cut_at.elapsed());
        }
        if repointed.is_none() && a_done.is_some() && d_done.is_some() {
            repointed = Some((cut_at.elapsed(), decap()));
        }
        if let Some((_, at)) = repointed
            && decap() > at + 50
        {
            break cut_at.elapsed();
        }
        assert!(
            cut_at.elapsed() < Duration::from_secs(5),
            "{strategy}, {cut:?} cut: traffic did not move to {idle} within 5 s (a -> d \
             repointed after {a_done:?}, d -> a after {d_done:?}); a's routes: {}; d's: {}",
            testkit::matrix_json(&["routes", "--node", &tb.node("a").pin]),
            testkit::matrix_json(&["routes", "--node", &tb.node("d").pin]),
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
    // The connection keeps going: the last second of the transfer moved data.
    let last = v["intervals"]
        .as_array()
        .and_then(|i| i.last())
        .map_or(0.0, |i| i["sum"]["bytes"].as_f64().unwrap_or(0.0));
    assert!(
        last > 1e5,
        "{strategy}: the transfer stalled after the cut: {last} bytes in its last second"
    );
    eprintln!(
        "{strategy}, {cut:?} cut of {busy} at 2.5 s (routes a -> d {:?}, d -> a {:?}): a -> d \
         repointed after {a_done:?}, d -> a after {d_done:?}, traffic on {idle} after \
         {traffic:?}; TCP moved {bytes} bytes",
        before.0, before.1
    );
    Failover { repointed, traffic }
}

/// The routing moves both directions off the cut relay within a second; TCP's own
/// retransmission backoff may add up to a second and a half before data flows again.
fn assert_recovers(f: Failover) {
    assert!(
        f.repointed < Duration::from_secs(1),
        "routes repointed after {:?}",
        f.repointed
    );
    assert!(
        f.traffic < Duration::from_secs(3),
        "traffic moved after {:?}",
        f.traffic
    );
}

#[test]
fn cut_path_moves_traffic_and_tcp_survives_shortest() {
    testkit::require_root("routing tests");
    assert_recovers(failover("shortest", Cut::Carrier));
}

#[test]
fn cut_path_moves_traffic_and_tcp_survives_antnet() {
    testkit::require_root("routing tests");
    assert_recovers(failover("antnet", Cut::Carrier));
}

#[test]
fn silent_cut_is_found_by_hellos_shortest() {
    testkit::require_root("routing tests");
    assert_recovers(failover("shortest", Cut::Silent));
}

#[test]
fn silent_cut_is_found_by_hellos_antnet() {
    testkit::require_root("routing tests");
    assert_recovers(failover("antnet", Cut::Silent));
}

#[test]
fn congested_path_loses_its_traffic() {
    testkit::require_root("routing tests");
    // The diamond with a-b tapped: a TBF on the bridge port towards b queues both data
    // and hellos, so the a-b link's RTT and loss rise and the agent moves traffic to c.
    let base = std::fs::read_to_string(testkit::topology("diamond.toml")).unwrap();
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
