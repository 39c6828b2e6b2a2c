//! Namespace fleets with real agents and real traffic: packets from a workload on one node
//! reach a workload several hops away, forwarded by XDP on every relay. Every assertion
//! about *how* a packet travelled is read from the nodes' own counters
//! (`matrix stats --json`).
//!
//! Privileged: run as root (`cargo xtask test`); these tests fail, never skip, without it.
//! Each test builds its fleet under a unique prefix and `Testbed`'s Drop removes it, also
//! when an assertion fails.

use std::process::Command;

use serde_json::Value;
use xtask::{
    cargo,
    testbed::{self, Testbed},
    testkit,
};

/// `matrix stats --json` of one node, read from its pinned maps.
fn stats(tb: &Testbed, node: &str) -> Value {
    let pin = &tb.node(node).pin;
    let out = Command::new(cargo::matrix_bin())
        .args(["stats", "--node", pin, "--json"])
        .output()
        .expect("run matrix stats");
    assert!(
        out.status.success(),
        "matrix stats --node {pin}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stats JSON")
}

fn counter(stats: &Value, group: &str, name: &str) -> u64 {
    stats[group][name]
        .as_u64()
        .unwrap_or_else(|| panic!("stats has no {group}.{name}: {stats}"))
}

fn run_ok(tb: &Testbed, ns: &str, args: &[&str]) -> String {
    let out = tb.exec(ns, args);
    assert!(
        out.status.success(),
        "`{}` in {ns} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sysctl(tb: &Testbed, ns: &str, key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    run_ok(tb, ns, &["cat", &path]).trim().to_string()
}

/// A TCP transfer with iperf3; returns bytes received by the server.
fn tcp_transfer(tb: &Testbed, client_ns: &str, server_ns: &str, server_addr: &str) -> u64 {
    tcp_transfer_streams(tb, client_ns, server_ns, server_addr, 1)
}

/// `streams` parallel TCP connections (distinct source ports, so distinct flow hashes).
fn tcp_transfer_streams(
    tb: &Testbed,
    client_ns: &str,
    server_ns: &str,
    server_addr: &str,
    streams: u32,
) -> u64 {
    let streams = streams.to_string();
    let server = Command::new("ip")
        .args([
            "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", "5201",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start iperf3 server (is iperf3 installed? `cargo xtask setup`)");
    let mut server = KillOnDrop(server);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = run_ok(
        tb,
        client_ns,
        &[
            "iperf3",
            "-c",
            server_addr,
            "-p",
            "5201",
            "-t",
            "2",
            "-J",
            "-P",
            &streams,
        ],
    );
    let _ = server.0.wait();
    let v: Value = serde_json::from_str(&out).expect("iperf3 JSON");
    v["end"]["sum_received"]["bytes"]
        .as_f64()
        .unwrap_or_else(|| panic!("no received bytes in iperf3 output: {out}")) as u64
}

struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn line_ping_and_tcp_cross_two_xdp_relays() {
    testkit::require_root("fleet tests");
    let tb = Testbed::up(&testkit::topology("line.toml"), &testbed::unique_prefix()).unwrap();
    let (a, d) = (tb.node("a"), tb.node("d"));
    let (src, dst) = (&a.workloads[0], &d.workloads[0]);

    // The relays cannot forward in the kernel: whatever crosses them was relayed by XDP.
    for relay in ["b", "c"] {
        assert_eq!(
            sysctl(&tb, &tb.node(relay).netns, "net.ipv4.ip_forward"),
            "0"
        );
        assert_eq!(
            sysctl(&tb, &tb.node(relay).netns, "net.ipv6.conf.all.forwarding"),
            "0"
        );
    }
    let before: Vec<Value> = ["a", "b", "c", "d"].iter().map(|n| stats(&tb, n)).collect();

    assert_eq!(
        testkit::ping_received(&tb, &src.netns, &dst.addr.to_string(), 10),
        10,
        "IPv4 ping a/w0 -> d/w0"
    );
    assert_eq!(
        testkit::ping_received(&tb, &src.netns, &dst.addr6.to_string(), 10),
        10,
        "IPv6 ping a/w0 -> d/w0"
    );
    let bytes = tcp_transfer(&tb, &src.netns, &dst.netns, &dst.addr.to_string());
    assert!(bytes > 1_000_000, "TCP moved only {bytes} bytes");

    let after: Vec<Value> = ["a", "b", "c", "d"].iter().map(|n| stats(&tb, n)).collect();
    let delta = |i: usize, group: &str, name: &str| {
        counter(&after[i], group, name) - counter(&before[i], group, name)
    };
    // 20 echo requests + the TCP data segments go a -> d; 20 replies + ACKs come back.
    let min = 40 + bytes / 1500;
    for (i, relay) in [(1, "b"), (2, "c")] {
        let transit = delta(i, "paths", "transit");
        assert!(
            transit >= min,
            "relay {relay}: only {transit} transits (want >= {min})"
        );
        // Each relay has one interface per link: it relays by redirect, never TX or the stack.
        assert_eq!(delta(i, "verdicts", "redirect"), transit, "relay {relay}");
        assert_eq!(
            delta(i, "paths", "decap") + delta(i, "paths", "encap"),
            0,
            "relay {relay}"
        );
    }
    for (i, end) in [(0, "a"), (3, "d")] {
        assert!(
            delta(i, "paths", "encap") >= 20,
            "{end} encapsulated too little"
        );
        assert!(
            delta(i, "paths", "decap") >= 20,
            "{end} decapsulated too little"
        );
    }
    for (i, s) in after.iter().enumerate() {
        let drops: u64 = s["drops"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_u64)
            .sum();
        assert_eq!(drops, 0, "node {i} dropped packets: {}", s["drops"]);
    }
    // Per-neighbour counters see the traffic too: b received from a and sent to c.
    let b = &after[1];
    let nb = b["neighbors"].as_array().unwrap();
    assert!(
        nb.iter().all(|n| n["rx_packets"].as_u64().unwrap() >= 20),
        "{nb:?}"
    );
    assert!(
        nb.iter().all(|n| n["tx_packets"].as_u64().unwrap() >= 20),
        "{nb:?}"
    );
}

#[test]
fn forced_loop_dies_by_hop_limit_and_is_counted() {
    forced_loop(false);
}

/// The same loop with a - b wired through a bridge: every bounce goes out by XDP_TX into
/// a bridge port, which must deliver it at once, not hold it until other traffic comes.
#[test]
fn forced_loop_through_a_tapped_link_expires_every_packet() {
    forced_loop(true);
}

fn forced_loop(tap_a_b: bool) {
    testkit::require_root("fleet tests");
    // a - b - c - d, but b sends traffic for d back to a, and a (correctly) to b: a packet
    // for d bounces between a and b until its hop limit runs out. Both bounce it back out
    // of the interface it came in on, so this is also the fleet's XDP_TX path.
    let mut base = std::fs::read_to_string(testkit::topology("line.toml")).unwrap();
    if tap_a_b {
        let link = "[[link]]\na = \"a\"\nb = \"b\"\n";
        assert!(base.contains(link), "line.toml changed shape");
        base = base.replacen(link, &format!("{link}tap = true\n"), 1);
    }
    let looped = format!("{base}\n[[route]]\nnode = \"b\"\ndst = \"d\"\nvia = [\"a\"]\n");
    let prefix = testbed::unique_prefix();
    let file = std::env::temp_dir().join(format!("{prefix}-loop.toml"));
    std::fs::write(&file, looped).unwrap();
    let tb = Testbed::up(&file, &prefix);
    let _ = std::fs::remove_file(&file);
    let tb = tb.unwrap();
    let dst = tb.node("d").workloads[0].addr.to_string();
    let src = tb.node("a").workloads[0].netns.clone();

    let before = [stats(&tb, "a"), stats(&tb, "b"), stats(&tb, "d")];
    let sent = 5;
    assert_eq!(
        testkit::ping_received(&tb, &src, &dst, sent),
        0,
        "a looped packet must never arrive"
    );
    let after = [stats(&tb, "a"), stats(&tb, "b"), stats(&tb, "d")];
    let delta = |i: usize, g: &str, n: &str| counter(&after[i], g, n) - counter(&before[i], g, n);

    let expired = delta(0, "drops", "expired") + delta(1, "drops", "expired");
    assert_eq!(
        expired, sent as u64,
        "every looping packet is dropped once, as expired"
    );
    // Hop limit 16: a encapsulates; arrivals with hop limit 16..=2 are relayed (15
    // transits), the arrival with hop limit 1 is dropped.
    let transits = delta(0, "paths", "transit") + delta(1, "paths", "transit");
    assert_eq!(
        transits,
        15 * sent as u64,
        "transits before the hop limit ran out"
    );
    assert_eq!(
        delta(0, "verdicts", "tx") + delta(1, "verdicts", "tx"),
        transits,
        "bounced back out of the ingress interface: XDP_TX"
    );
    assert_eq!(delta(2, "paths", "decap"), 0, "nothing reached d");
}

#[test]
fn two_subnet_relay_forwards_between_its_interfaces() {
    testkit::require_root("fleet tests");
    let tb = Testbed::up(
        &testkit::topology("two-subnet.toml"),
        &testbed::unique_prefix(),
    )
    .unwrap();
    let r = tb.node("r");
    assert_eq!(
        r.underlay.len(),
        2,
        "the relay has one interface per subnet"
    );
    assert_ne!(
        r.underlay[0].address.octets()[..3],
        r.underlay[1].address.octets()[..3],
        "the relay's interfaces are on separate subnets"
    );
    assert_eq!(sysctl(&tb, &r.netns, "net.ipv4.ip_forward"), "0");
    // a's workload cannot reach b's by the kernel: a has no route to b's subnet at all.
    let (src, dst) = (&tb.node("a").workloads[0], &tb.node("b").workloads[0]);

    let before = stats(&tb, "r");
    assert_eq!(
        testkit::ping_received(&tb, &src.netns, &dst.addr.to_string(), 10),
        10
    );
    assert_eq!(
        testkit::ping_received(&tb, &src.netns, &dst.addr6.to_string(), 10),
        10
    );
    let bytes = tcp_transfer(&tb, &src.netns, &dst.netns, &dst.addr.to_string());
    assert!(bytes > 1_000_000, "TCP moved only {bytes} bytes");
    let after = stats(&tb, "r");
    let delta = |g: &str, n: &str| counter(&after, g, n) - counter(&before, g, n);
    let transit = delta("paths", "transit");
    assert!(transit >= 40, "r relayed only {transit}");
    assert_eq!(
        delta("verdicts", "redirect"),
        transit,
        "relayed through the devmap"
    );
    assert_eq!(
        delta("verdicts", "tx"),
        0,
        "never back out of the ingress interface"
    );
}

#[test]
fn diamond_delivers_with_two_equal_next_hops() {
    testkit::require_root("fleet tests");
    let tb = Testbed::up(
        &testkit::topology("diamond.toml"),
        &testbed::unique_prefix(),
    )
    .unwrap();
    let out = Command::new(cargo::matrix_bin())
        .args(["routes", "--node", &tb.node("a").pin, "--json"])
        .output()
        .unwrap();
    let routes: Value = serde_json::from_slice(&out.stdout).unwrap();
    let to_d = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dst"] == format!("{}/32", tb.node("d").id))
        .unwrap_or_else(|| panic!("no route to d in {routes}"));
    assert_eq!(to_d["next_hops"].as_array().unwrap().len(), 2, "{to_d}");

    let (src, dst) = (&tb.node("a").workloads[0], &tb.node("d").workloads[0]);
    let before = [stats(&tb, "b"), stats(&tb, "c")];
    assert_eq!(
        testkit::ping_received(&tb, &src.netns, &dst.addr.to_string(), 5),
        5
    );
    // 16 TCP connections differ in source port, hence in flow hash: with two equal next
    // hops, all 16 land on one relay with probability 2^-15.
    let bytes = tcp_transfer_streams(&tb, &src.netns, &dst.netns, &dst.addr.to_string(), 16);
    assert!(bytes > 1_000_000, "TCP moved only {bytes} bytes");
    let after = [stats(&tb, "b"), stats(&tb, "c")];
    for (i, relay) in ["b", "c"].iter().enumerate() {
        let t = counter(&after[i], "paths", "transit") - counter(&before[i], "paths", "transit");
        assert!(
            t >= 100,
            "relay {relay} carried only {t} packets: ECMP did not spread flows"
        );
    }
}
