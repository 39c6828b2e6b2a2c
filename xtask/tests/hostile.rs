//! Hostile traffic on the wire between two relays. The line a - b - c - d has its middle
//! link b - c tapped (wired through a bridge); an outsider plugged into that bridge
//! (`xtask::testbed::outsider`) sends malformed and forged overlay frames, replays and
//! forges captured control datagrams, and spoofs ARP. Each test asserts that the node
//! drops and counts what it must, by reason, from its own counters (`matrix stats`,
//! `matrix status`), and that routing and forwarding carry on as before.
//!
//! Privileged: run as root (`cargo xtask test`); these tests fail, never skip, without it.
//! Each test builds its fleet under a unique prefix, and `Testbed`'s Drop removes it, the
//! outsider's namespace included, also when an assertion fails.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

use etherparse::{EtherType, SlicedPacket, TransportSlice};
use serde_json::Value;
use xtask::{
    cargo,
    testbed::{
        self, Testbed, UpOptions,
        outsider::{self, Outsider, RawSocket},
    },
    testkit,
};

#[path = "hostile/control.rs"]
mod control;
#[path = "hostile/frames.rs"]
mod frames;

use control::{capture_hello, control_rise, key, rejections, send_n, tap_b};
use frames::{Overlay, arp_spoof, hostile_kinds, inner};

/// The line's tapped middle link, b - c.
const MIDDLE: usize = 1;
const GENEVE_PORT: u16 = 6081;
const CONTROL_PORT: u16 = 6082;
/// A neighbour silent this long is dead: 3 hellos of 100 ms plus half an interval of
/// grace (the agents' defaults).
const DEAD_INTERVAL: Duration = Duration::from_millis(350);

fn up(routing: Option<&str>) -> Testbed {
    let topo = cargo::workspace_root().join("topologies/line.toml");
    let opts = UpOptions {
        routing: routing.map(str::to_string),
        ..Default::default()
    };
    let tb = Testbed::up_with(&topo, &testbed::unique_prefix(), &opts).unwrap();
    let l = &tb.state().links[MIDDLE];
    assert!(
        (l.a.as_str(), l.b.as_str()) == ("b", "c") && l.tap_netns.is_some(),
        "line.toml changed shape: link {MIDDLE} is {} - {}, tapped: {}",
        l.a,
        l.b,
        l.tap_netns.is_some()
    );
    tb
}

/// Addresses on the middle link.
pub struct Middle {
    wire: String,
    b_addr: Ipv4Addr,
    c_addr: Ipv4Addr,
    b_mac: [u8; 6],
    c_mac: [u8; 6],
    c_iface: String,
}

fn middle(tb: &Testbed) -> Middle {
    let l = &tb.state().links[MIDDLE];
    Middle {
        wire: l.tap_netns.clone().unwrap(),
        b_addr: l.a_addr,
        c_addr: l.b_addr,
        b_mac: outsider::mac_of(&tb.node("b").netns, &l.a_iface).unwrap(),
        c_mac: outsider::mac_of(&tb.node("c").netns, &l.b_iface).unwrap(),
        c_iface: l.b_iface.clone(),
    }
}

type Counters = BTreeMap<String, u64>;

fn counters(v: &Value) -> Counters {
    v.as_object()
        .unwrap_or_else(|| panic!("not a counter object: {v}"))
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect()
}

/// The data plane's drop counters of `node`, by reason.
fn drops(tb: &Testbed, node: &str) -> Counters {
    counters(&testkit::matrix_json(&["stats", "--node", &tb.node(node).pin])["drops"])
}

/// The agent's control-channel counters of `node`.
fn control(tb: &Testbed, node: &str) -> Counters {
    counters(&testkit::matrix_json(&["status", "--node", &tb.node(node).pin])["control"])
}

/// What rose from `before` to `after` (counters only rise).
fn rise(before: &Counters, after: &Counters) -> Counters {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|&(_, d)| d > 0)
        .collect()
}

fn only(name: &str, n: u64) -> Counters {
    [(name.to_string(), n)].into()
}

/// `node`'s row for neighbour `of` in `matrix neighbors`.
fn neighbor(tb: &Testbed, node: &str, of: &str) -> Value {
    let id = &tb.node(of).id;
    testkit::matrix_json(&["neighbors", "--node", &tb.node(node).pin])
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == id.as_str())
        .unwrap_or_else(|| panic!("{node} has no neighbour {of}"))
        .clone()
}

/// `node`'s routes: destination -> next hops.
fn routes(tb: &Testbed, node: &str) -> BTreeMap<String, Vec<String>> {
    testkit::matrix_json(&["routes", "--node", &tb.node(node).pin])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let hops = r["next_hops"].as_array().unwrap().iter();
            let hops = hops.map(|h| h["node"].as_str().unwrap().to_string());
            (r["dst"].as_str().unwrap().to_string(), hops.collect())
        })
        .collect()
}

/// Polls `f` every 20 ms until it gives a value.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "{what}: not after {timeout:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every node has a route to every other one.
fn wait_converged(tb: &Testbed) {
    for from in ["a", "b", "c", "d"] {
        wait_for(
            &format!("routes of {from} to all three other nodes"),
            Duration::from_secs(15),
            || (routes(tb, from).values().filter(|h| !h.is_empty()).count() >= 3).then_some(()),
        );
    }
}

/// Pings `count` times; returns how many replies came back.
fn ping(tb: &Testbed, ns: &str, addr: &str, count: u32) -> u32 {
    let count = count.to_string();
    let out = tb.exec(
        ns,
        ["ping", "-c", &count, "-i", "0.1", "-W", "1", "-q", addr],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no ping summary in:\n{text}"))
}

/// A process stopped when dropped (also when a test fails): SIGTERM, then SIGKILL.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(mut c) = self.0.take() else { return };
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// 10 pings and a 2 s TCP transfer from a's workload to d's cross both relays.
fn assert_traffic_crosses(tb: &Testbed, why: &str) {
    let (src, dst) = (&tb.node("a").workloads[0], &tb.node("d").workloads[0]);
    let addr = dst.addr.to_string();
    assert_eq!(
        ping(tb, &src.netns, &addr, 10),
        10,
        "{why}: ping a/w0 -> d/w0"
    );
    let server = Command::new("ip")
        .args(["netns", "exec", &dst.netns, "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start iperf3");
    let _server = Guard(Some(server));
    thread::sleep(Duration::from_millis(300));
    let out = tb.exec(&src.netns, ["iperf3", "-c", &addr, "-t", "2", "-J"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let bytes = v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0);
    assert!(
        bytes > 1e6,
        "{why}: TCP a/w0 -> d/w0 moved {bytes} bytes: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn hostile_frames_are_dropped_and_counted_by_reason() {
    testkit::require_root("hostile-traffic tests");
    let tb = up(None);
    let m = middle(&tb);
    let out = Outsider::attach(tb.state(), MIDDLE, None).unwrap();
    let tx = out.sender().unwrap();
    // The bridge must know c's MAC (it learns it from c's frames) or it floods the
    // outsider's frames to b as well; b's counters below prove it did not.
    let refresh = tb.exec("c", ["ping", "-c", "1", "-W", "1", &m.b_addr.to_string()]);
    assert!(
        refresh.status.success(),
        "c cannot ping b's underlay address"
    );
    // The outsider's 802.1Q/802.1ad tag must reach c's XDP program in the frame: with
    // transmit VLAN offload, the veth between the bridge and c would carry it beside the
    // frame (as a NIC that strips tags on receive does), where the program cannot see it.
    let offload = tb.exec(
        &m.wire,
        [
            "ethtool",
            "-K",
            outsider::PORT_B,
            "txvlan",
            "off",
            "tx-vlan-stag-hw-insert",
            "off",
        ],
    );
    assert!(
        offload.status.success(),
        "ethtool: {}",
        String::from_utf8_lossy(&offload.stderr)
    );

    // The base frame is valid: c relays it to d, which delivers it.
    let base = Overlay::valid(out.mac, &m, inner(&tb));
    let (c0, b0, d0) = (drops(&tb, "c"), drops(&tb, "b"), matrix_decap(&tb, "d"));
    tx.send(&base.bytes()).unwrap();
    wait_for(
        "d decapsulates the valid frame",
        Duration::from_secs(3),
        || (matrix_decap(&tb, "d") > d0).then_some(()),
    );
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        matrix_decap(&tb, "d"),
        d0 + 1,
        "d decapsulated the base frame once"
    );
    assert_eq!(
        rise(&c0, &drops(&tb, "c")),
        Counters::new(),
        "c dropped the base frame"
    );
    assert_eq!(
        rise(&b0, &drops(&tb, "b")),
        Counters::new(),
        "b saw the base frame"
    );

    const REPEAT: u64 = 3;
    let mut report = Vec::new();
    for (what, reason, frame) in hostile_kinds(&base) {
        let (c0, b0) = (drops(&tb, "c"), drops(&tb, "b"));
        for _ in 0..REPEAT {
            tx.send(&frame.bytes()).unwrap();
        }
        let want = c0.get(reason).copied().unwrap_or(0) + REPEAT;
        let got = wait_for(
            &format!("{what}: c counts {REPEAT} drops as {reason}"),
            Duration::from_secs(3),
            || {
                let now = drops(&tb, "c");
                (now.get(reason).copied().unwrap_or(0) >= want).then_some(now)
            },
        );
        // Late drops under another reason would show now.
        thread::sleep(Duration::from_millis(100));
        let c1 = drops(&tb, "c");
        assert_eq!(
            c1, got,
            "{what}: c's drops moved after the frames were counted"
        );
        assert_eq!(
            rise(&c0, &c1),
            only(reason, REPEAT),
            "{what}: c's drops rose by reason"
        );
        assert_eq!(
            rise(&b0, &drops(&tb, "b")),
            Counters::new(),
            "{what}: b saw it"
        );
        report.push(format!(
            "{what}: {reason} {} -> {}",
            c0.get(reason).copied().unwrap_or(0),
            c1[reason]
        ));
    }
    eprintln!(
        "c's drops, {REPEAT} frames of each kind:\n  {}",
        report.join("\n  ")
    );
    assert_traffic_crosses(&tb, "after the hostile frames");
}

fn matrix_decap(tb: &Testbed, node: &str) -> u64 {
    testkit::matrix_json(&["stats", "--node", &tb.node(node).pin])["paths"]["decap"]
        .as_u64()
        .unwrap()
}

#[test]
fn replayed_and_forged_control_datagrams_change_nothing() {
    testkit::require_root("hostile-traffic tests");
    let tb = up(Some("shortest"));
    wait_converged(&tb);
    let m = middle(&tb);
    let out = Outsider::attach(tb.state(), MIDDLE, None).unwrap();
    let tx = out.sender().unwrap();
    let codec = key(&tb);
    let tap = tap_b(&m);

    let routes0 = routes(&tb, "c");
    let b_at_c = neighbor(&tb, "c", "b");
    assert_eq!(b_at_c["alive"], true, "{b_at_c}");

    // A replay: the same datagram N times, 2 ms apart. Every one is a duplicate.
    const N: u64 = 100;
    let hello = capture_hello(&tb, &tap, &codec);
    let before = control(&tb, "c");
    send_n(&tx, &hello.frame, N, Duration::from_millis(2));
    let rose = control_rise(&tb, "c", &before, "rx_replayed", N);
    eprintln!(
        "replay of b's hello (epoch {}, seq {}) x{N}: c's control counters rose {rose:?}",
        hello.env.epoch, hello.env.seq
    );
    assert_eq!(
        rejections(&rose),
        only("rx_replayed", N),
        "replays rejected as such"
    );
    assert!(
        rose.get("rx_ok").copied().unwrap_or(0) < N,
        "rx_ok rose by {:?}: replays were accepted",
        rose.get("rx_ok")
    );

    // Forged copies: a sequence number far ahead (it would push b's window past every
    // datagram b sends next), and another link MAC (it would point c's data plane at the
    // outsider). The MAC covers both.
    const M: u64 = 10;
    let ahead = hello.forged(&codec, |e| e.seq += 1_000_000);
    let moved = hello.forged(&codec, |e| e.link_mac = out.mac);
    let before = control(&tb, "c");
    send_n(&tx, &ahead, M, Duration::from_millis(2));
    send_n(&tx, &moved, M, Duration::from_millis(2));
    let rose = control_rise(&tb, "c", &before, "rx_bad_mac", 2 * M);
    eprintln!(
        "forged copies x{}: c's control counters rose {rose:?}",
        2 * M
    );
    assert_eq!(
        rejections(&rose),
        only("rx_bad_mac", 2 * M),
        "forgeries rejected"
    );

    // Nothing changed at c: b alive with its own MAC, the same routes, and b's datagrams
    // still accepted (its window was not pushed ahead).
    let after = neighbor(&tb, "c", "b");
    assert_eq!(after["alive"], true, "{after}");
    assert_eq!(
        after["mac"], b_at_c["mac"],
        "c's data plane MAC for b moved"
    );
    assert_eq!(
        outsider::parse_mac(after["mac"].as_str().unwrap()),
        Some(m.b_mac)
    );
    assert_eq!(routes(&tb, "c"), routes0, "c's routes changed");
    let before = control(&tb, "c");
    thread::sleep(Duration::from_millis(500));
    let rose = rise(&before, &control(&tb, "c"));
    assert!(rose.get("rx_ok").copied().unwrap_or(0) >= 5, "{rose:?}");
    assert_eq!(
        rejections(&rose),
        Counters::new(),
        "b's own datagrams rejected"
    );
    assert_traffic_crosses(&tb, "after the replays");
}

#[test]
fn datagrams_from_before_a_restart_are_stale() {
    testkit::require_root("hostile-traffic tests");
    let tb = up(Some("shortest"));
    wait_converged(&tb);
    let m = middle(&tb);
    let out = Outsider::attach(tb.state(), MIDDLE, None).unwrap();
    let tx = out.sender().unwrap();
    let codec = key(&tb);
    let tap = tap_b(&m);
    let old = capture_hello(&tb, &tap, &codec);

    // SIGKILL b's agent: its data plane stays attached and pinned, with its routes.
    let b = tb.node("b").clone();
    let pid = b.pid.expect("b's agent runs") as i32;
    // SAFETY: kill and waitpid on our own child.
    unsafe {
        assert_eq!(libc::kill(pid, libc::SIGKILL), 0);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    let pinned = routes(&tb, "b");
    assert!(
        pinned.contains_key(&format!("{}/32", tb.node("d").id)),
        "b's pinned routes lost their route to d with the agent: {pinned:?}"
    );
    let restarts = control(&tb, "c")["peer_restarts"];
    thread::sleep(Duration::from_millis(500));

    // Restarted the way the testbed starts agents.
    let log = tb.dir().join("b-restarted.log");
    let file = std::fs::File::create(&log).unwrap();
    let agent = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", b.netns))
        .arg("--")
        .arg(cargo::matrix_bin())
        .args(["agent", "--config"])
        .arg(&b.config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .process_group(0)
        .spawn()
        .expect("restart b's agent");
    let _agent = Guard(Some(agent));
    let restarted_at = Instant::now();
    wait_for(
        &format!(
            "c hears b's new epoch (log {}: {})",
            log.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
        Duration::from_secs(10),
        || (control(&tb, "c")["peer_restarts"] > restarts).then_some(()),
    );
    wait_for("c sees b alive again", Duration::from_secs(10), || {
        (neighbor(&tb, "c", "b")["alive"] == true).then_some(())
    });
    eprintln!(
        "b restarted: c heard its new epoch and saw it alive after {:?}",
        restarted_at.elapsed()
    );

    const N: u64 = 20;
    let before = control(&tb, "c");
    send_n(&tx, &old.frame, N, Duration::from_millis(5));
    let rose = control_rise(&tb, "c", &before, "rx_stale_epoch", N);
    eprintln!(
        "replay of b's pre-restart hello (epoch {}) x{N}: c's control counters rose {rose:?}",
        old.env.epoch
    );
    assert_eq!(rejections(&rose), only("rx_stale_epoch", N));
    assert_eq!(neighbor(&tb, "c", "b")["alive"], true);
    wait_converged(&tb);
    assert_traffic_crosses(&tb, "after b's agent restarted");
}

/// Stops a background loop when dropped, also when an assertion fails (a scoped thread
/// that never stops would keep the test from ending).
struct StopOnDrop<'a>(&'a AtomicBool);
impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn replayed_hellos_do_not_keep_a_cut_neighbour_alive() {
    testkit::require_root("hostile-traffic tests");
    let tb = up(Some("shortest"));
    wait_converged(&tb);
    let m = middle(&tb);
    let out = Outsider::attach(tb.state(), MIDDLE, None).unwrap();
    let tx = out.sender().unwrap();
    let codec = key(&tb);
    let tap = tap_b(&m);
    let hello = capture_hello(&tb, &tap, &codec);
    // On the line c has no way around b: it would hold its routes through b for the
    // stale hold (b might be only restarting its agent). This test is about liveness,
    // so c lets them go at once once b is dead.
    let set = std::process::Command::new(cargo::matrix_bin())
        .args(["set", "stale_hold_ms", "1", "--node", &tb.node("c").pin])
        .output()
        .unwrap();
    assert!(set.status.success(), "{set:?}");
    let before = control(&tb, "c");

    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let (dead_after, replays) = thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                tx.send(&hello.frame).unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(50));
            }
        });
        thread::sleep(Duration::from_millis(200));
        // The silent cut: b's bridge port stops forwarding, carrier stays up at both
        // ends (a switch port failing). The outsider's port still reaches c.
        let cut_at = Instant::now();
        // (`ip link set .. type bridge_slave state 0` is accepted and ignored.)
        let cut = tb.exec(
            &m.wire,
            [
                "bridge",
                "link",
                "set",
                "dev",
                outsider::PORT_A,
                "state",
                "0",
            ],
        );
        assert!(
            cut.status.success(),
            "{}",
            String::from_utf8_lossy(&cut.stderr)
        );
        let dead_after = wait_for(
            "c declares b dead while its hello is replayed",
            Duration::from_secs(3),
            || (neighbor(&tb, "c", "b")["alive"] == false).then(|| cut_at.elapsed()),
        );
        // And b stays dead while the replays go on.
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            let n = neighbor(&tb, "c", "b");
            assert_eq!(n["alive"], false, "b came back to life at c: {n}");
            thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::SeqCst);
        (dead_after, &sent)
    });
    let replays = replays.load(Ordering::SeqCst);
    let rose = control_rise(&tb, "c", &before, "rx_replayed", replays);
    eprintln!(
        "silent cut with b's hello replayed every 50 ms: c declared b dead after \
         {dead_after:?} (dead interval {DEAD_INTERVAL:?}); {replays} replays, c's control \
         counters rose {rose:?}"
    );
    assert_eq!(rejections(&rose), only("rx_replayed", replays));
    assert!(
        dead_after < DEAD_INTERVAL + Duration::from_millis(250),
        "c took {dead_after:?} to declare b dead (dead interval {DEAD_INTERVAL:?})"
    );
    let c_routes = routes(&tb, "c");
    assert!(
        c_routes.values().all(|h| !h.contains(&tb.node("b").id)),
        "c still routes via b: {c_routes:?}"
    );
}

/// Runs `f` while the outsider spoofs b's address every 100 ms.
fn under_arp_spoof<T>(out: &Outsider, m: &Middle, f: impl FnOnce() -> T) -> T {
    let tx = out.sender().unwrap();
    let frames = arp_spoof(out, m);
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                for f in &frames {
                    tx.send(f).unwrap();
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        f()
    })
}

/// c's kernel ARP entry for b's underlay address.
fn kernel_arp(tb: &Testbed, m: &Middle) -> String {
    let b = m.b_addr.to_string();
    let out = tb.exec("c", ["ip", "neigh", "show", &b, "dev", &m.c_iface]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Frames captured on the outsider that were addressed to its own MAC, by kind.
fn addressed_to(out: &Outsider, capture: &RawSocket) -> BTreeMap<String, u64> {
    let mut kinds = BTreeMap::new();
    for c in capture.drain().unwrap() {
        if c.outgoing || c.bytes[..6] != out.mac {
            continue;
        }
        let kind = match SlicedPacket::from_ethernet(&c.bytes) {
            Ok(SlicedPacket {
                transport: Some(TransportSlice::Udp(u)),
                ..
            }) => format!("udp {}", u.destination_port()),
            _ if c.bytes[12..14] == EtherType::ARP.0.to_be_bytes() => "arp".into(),
            _ => "other".into(),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
}

#[test]
fn spoofed_arp_does_not_redirect_overlay_frames() {
    testkit::require_root("hostile-traffic tests");
    let tb = up(Some("shortest"));
    wait_converged(&tb);
    let m = middle(&tb);
    let out = Outsider::attach(tb.state(), MIDDLE, None).unwrap();
    let capture = out.capture().unwrap();
    let (kernel, b_at_c, relayed) = under_arp_spoof(&out, &m, || {
        thread::sleep(Duration::from_secs(1));
        let kernel = kernel_arp(&tb, &m);
        // Pings from d's workload to a's: c relays the requests to b whatever has become
        // of b's own routes.
        let tx0 = neighbor(&tb, "c", "b")["tx_packets"].as_u64().unwrap();
        let (a, d) = (&tb.node("a").workloads[0], &tb.node("d").workloads[0]);
        ping(&tb, &d.netns, &a.addr.to_string(), 20);
        let b_at_c = neighbor(&tb, "c", "b");
        (
            kernel,
            b_at_c.clone(),
            b_at_c["tx_packets"].as_u64().unwrap() - tx0,
        )
    });
    let to_outsider = addressed_to(&out, &capture);
    eprintln!(
        "ARP spoof: c's kernel entry for b: {kernel}; c's data plane entry for b: {}; c \
         relayed {relayed} packets to b; frames addressed to the outsider: {to_outsider:?}",
        b_at_c["mac"]
    );
    assert_eq!(
        outsider::parse_mac(b_at_c["mac"].as_str().unwrap()),
        Some(m.b_mac),
        "c's data plane addresses b's overlay frames to another MAC: {b_at_c}"
    );
    assert!(relayed >= 20, "c relayed only {relayed} packets to b");
    assert_eq!(
        to_outsider.get(&format!("udp {GENEVE_PORT}")),
        None,
        "overlay frames went to the outsider"
    );
}

/// Nor may the spoof cut the link: the agents' control datagrams leave through the
/// kernel's stack, which addresses them with its own ARP entry for the neighbour, so they
/// must not follow a forged reply either, or the neighbour stops hearing this node and
/// drops every route through it.
#[test]
fn spoofed_arp_does_not_cut_the_link() {
    testkit::require_root("hostile-traffic tests");
    let tb = up(Some("shortest"));
    wait_converged(&tb);
    let m = middle(&tb);
    let out = Outsider::attach(tb.state(), MIDDLE, None).unwrap();
    let capture = out.capture().unwrap();
    under_arp_spoof(&out, &m, || {
        thread::sleep(Duration::from_secs(2));
        for (node, of) in [("c", "b"), ("b", "c")] {
            let n = neighbor(&tb, node, of);
            assert_eq!(
                n["alive"],
                true,
                "{node} lost {of} under ARP spoofing: {n}; c's kernel ARP entry for b: {}; \
                 frames addressed to the outsider: {:?}; b's routes: {:?}",
                kernel_arp(&tb, &m),
                addressed_to(&out, &capture),
                routes(&tb, "b"),
            );
        }
        assert_traffic_crosses(&tb, "under ARP spoofing");
    });
}
