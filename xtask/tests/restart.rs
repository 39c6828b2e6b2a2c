//! Forwarding survives its agent: on the line a - b - c - d, each relay's agent is
//! SIGKILLed and restarted in turn while a fixed-rate UDP stream and a paced TCP transfer
//! cross the line. The relays' XDP programs stay attached to pinned links and forward on
//! their last routes while no agent runs; the restarted agent adopts them. Not one
//! datagram may be lost and the TCP transfer may not stall for more than 100 ms.
//!
//! Privileged: run as root (`cargo xtask test`); these tests fail, never skip, without it.
//! Each test builds its fleet under a unique prefix and `Testbed`'s Drop removes it, also
//! when an assertion fails.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use xtask::{
    testbed::{self, Testbed, TestbedError, UpOptions},
    testkit,
};

/// Both streams run this long; every kill and restart happens inside it.
const STREAM: Duration = Duration::from_secs(10);
/// When the first relay's agent is killed, after the streams started.
const FIRST_KILL: Duration = Duration::from_millis(1500);
/// How long a relay runs with no agent before its agent is started again.
const AGENTLESS: Duration = Duration::from_secs(1);
/// Quiet time after a restarted agent is ready, before the next kill.
const SETTLE: Duration = Duration::from_secs(1);
/// UDP: 20 Mbit/s of 1000-byte datagrams.
const UDP_RATE_BPS: u64 = 20_000_000;
const UDP_LEN: u64 = 1000;
/// TCP: 5000 bytes every 2 ms, 20 Mbit/s.
const TCP_CHUNK: usize = 5000;
const TCP_PERIOD: Duration = Duration::from_millis(2);
/// The longest the TCP receiver may go without data, past the first second.
const MAX_STALL: Duration = Duration::from_millis(100);
const RELAYS: [&str; 2] = ["b", "c"];
const IPERF_PORT: &str = "5201";
const TCP_PORT: u16 = 5301;

/// Waits until node `from` has an installed route to node `to`.
fn wait_route(tb: &Testbed, from: &str, to: &str, timeout: Duration) {
    let want = format!("{}/32", tb.node(to).id);
    let start = Instant::now();
    loop {
        let routes = testkit::matrix_json(&["routes", "--node", &tb.node(from).pin]);
        let installed = routes.as_array().unwrap().iter().any(|r| {
            r["dst"] == want.as_str() && r["next_hops"].as_array().is_some_and(|h| !h.is_empty())
        });
        if installed {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "{from} has no route to {to} after {timeout:?}: {routes}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A process killed when dropped (also when a test fails).
struct Child(Option<std::process::Child>);
impl Child {
    fn spawn(ns: &str, args: &[&str]) -> Child {
        Child(Some(
            Command::new("ip")
                .args(["netns", "exec", ns])
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start `{}` in {ns}: {e}", args.join(" "))),
        ))
    }
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

/// Waits until something listens on TCP `port` in namespace `ns`.
fn wait_listening(tb: &Testbed, ns: &str, port: &str) {
    let start = Instant::now();
    loop {
        let out = tb.exec(ns, ["ss", "-Hltn", &format!("sport = :{port}")]);
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "nothing listens on port {port} in {ns} after 5 s"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// What the TCP receiver saw: bytes, and when each read returned data.
struct Received {
    bytes: u64,
    reads: Vec<Instant>,
    /// The sender closed the connection (EOF), rather than the read timing out.
    eof: bool,
    error: Option<String>,
}

/// A paced TCP transfer from namespace `src` to `dst_addr` in namespace `dst`: a chunk
/// every [`TCP_PERIOD`] for [`STREAM`]. The receiver timestamps every read, so a stall
/// shows as a gap, to the millisecond. Returns (sender, receiver) threads; the sender
/// yields the bytes it wrote or its error.
fn paced_tcp(
    tb: &Testbed,
    src: &str,
    dst: &str,
    dst_addr: std::net::Ipv4Addr,
) -> (
    thread::JoinHandle<Result<u64, String>>,
    thread::JoinHandle<Received>,
) {
    let (listening, is_listening) = mpsc::channel();
    let receiver = tb.spawn_in(dst, move || {
        let listener = TcpListener::bind(("0.0.0.0", TCP_PORT)).expect("bind TCP receiver");
        listening.send(()).unwrap();
        // Non-blocking accept with a deadline: a path that never carried the SYN must
        // fail the test, not hang it.
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut conn = loop {
            match listener.accept() {
                Ok((conn, _)) => break conn,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no TCP connection within 5 s");
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept TCP sender: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        // Long enough for any agent restart, short enough that a dead path ends the test.
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Received {
            bytes: 0,
            reads: Vec::new(),
            eof: false,
            error: None,
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => {
                    got.eof = true;
                    break;
                }
                Ok(n) => {
                    got.reads.push(Instant::now());
                    got.bytes += n as u64;
                }
                Err(e) => {
                    got.error = Some(e.to_string());
                    break;
                }
            }
        }
        got
    });
    is_listening
        .recv_timeout(Duration::from_secs(5))
        .expect("TCP receiver listening");
    let sender = tb.spawn_in(src, move || {
        let to = SocketAddr::from((dst_addr, TCP_PORT));
        let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(3))
            .map_err(|e| format!("connect {to}: {e}"))?;
        conn.set_nodelay(true).unwrap();
        conn.set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let chunk = vec![0x5au8; TCP_CHUNK];
        let start = Instant::now();
        let mut sent = 0u64;
        for i in 0.. {
            let at = TCP_PERIOD * i;
            if at >= STREAM {
                break;
            }
            if let Some(wait) = at.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
            conn.write_all(&chunk)
                .map_err(|e| format!("write after {sent} bytes: {e}"))?;
            sent += TCP_CHUNK as u64;
        }
        conn.shutdown(std::net::Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))?;
        Ok(sent)
    });
    (sender, receiver)
}

/// One relay's turn: its agent killed and started again, as offsets from the start of
/// the streams.
#[derive(Debug)]
struct Turn {
    relay: &'static str,
    killed_at: Duration,
    ready_at: Duration,
    old_pid: u32,
    new_pid: u32,
}

impl Turn {
    /// From the kill until the restarted agent has run for [`SETTLE`].
    fn window(&self) -> (Duration, Duration) {
        (self.killed_at, self.ready_at + SETTLE)
    }
}

/// The longest gap between TCP reads that ends inside `[from, to)` (offsets from `t0`).
fn longest_gap(reads: &[Instant], t0: Instant, from: Duration, to: Duration) -> Duration {
    reads
        .windows(2)
        .filter(|w| {
            let end = w[1].saturating_duration_since(t0);
            end >= from && end < to
        })
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

/// Datagrams lost in the iperf3 server's intervals that overlap `[from, to)`. Summed
/// as iperf3 reports them, signed: an interval that sees a datagram counted lost
/// earlier arrive late reports a negative loss.
fn udp_lost_in(server: &Value, from: Duration, to: Duration) -> i64 {
    let lost: f64 = server["intervals"]
        .as_array()
        .map(|i| {
            i.iter()
                .filter(|i| {
                    let s = i["sum"]["start"].as_f64().unwrap_or(0.0);
                    let e = i["sum"]["end"].as_f64().unwrap_or(0.0);
                    e > from.as_secs_f64() && s < to.as_secs_f64()
                })
                .filter_map(|i| i["sum"]["lost_packets"].as_f64())
                .sum()
        })
        .unwrap_or(0.0);
    lost.round() as i64
}

/// Brings up the line (static routes, or adaptive with `routing`), runs both streams
/// a/w0 -> d/w0, and kills and restarts b's agent, then c's, during them.
fn relays_restart_under_traffic(routing: Option<&str>) {
    testkit::require_root("restart tests");
    let label = routing.unwrap_or("static");
    let opts = UpOptions {
        routing: routing.map(str::to_string),
        ..Default::default()
    };
    let prefix = testbed::unique_prefix();
    let mut tb = Testbed::up_with(&testkit::topology("line.toml"), &prefix, &opts).unwrap();
    if routing.is_some() {
        wait_route(&tb, "a", "d", Duration::from_secs(10));
        wait_route(&tb, "d", "a", Duration::from_secs(10));
    }
    let (src, dst) = (
        tb.node("a").workloads[0].clone(),
        tb.node("d").workloads[0].clone(),
    );
    let ping = tb.exec(
        &src.netns,
        ["ping", "-c", "1", "-w", "5", &dst.addr.to_string()],
    );
    assert!(
        ping.status.success(),
        "{label}: a/w0 cannot reach d/w0 before any restart"
    );
    let untouched: Vec<(String, Option<u32>)> = ["a", "d"]
        .iter()
        .map(|n| (n.to_string(), tb.node(n).pid))
        .collect();

    let server = Child::spawn(
        &dst.netns,
        &["iperf3", "-s", "-1", "-J", "-i", "0.1", "-p", IPERF_PORT],
    );
    wait_listening(&tb, &dst.netns, IPERF_PORT);
    let secs = STREAM.as_secs().to_string();
    let (rate, len) = (UDP_RATE_BPS.to_string(), UDP_LEN.to_string());
    #[rustfmt::skip]
    let client = Child::spawn(&src.netns, &[
        "iperf3", "-u", "-c", &dst.addr.to_string(), "-p", IPERF_PORT, "-b", &rate,
        "-l", &len, "-t", &secs, "-w", "4M", "-J",
    ]);
    let t0 = Instant::now();
    let (tcp_sender, tcp_receiver) = paced_tcp(&tb, &src.netns, &dst.netns, dst.addr);

    thread::sleep(FIRST_KILL);
    let mut turns = Vec::new();
    for relay in RELAYS {
        let killed_at = t0.elapsed();
        let old_pid = tb.kill_agent(relay).unwrap();
        assert!(
            matches!(
                tb.kill_agent(relay),
                Err(TestbedError::AgentNotRunning { .. })
            ),
            "{relay}: a dead agent cannot be killed again"
        );
        thread::sleep(AGENTLESS);
        let new_pid = tb.restart_agent(relay).unwrap();
        let ready_at = t0.elapsed();
        turns.push(Turn {
            relay,
            killed_at,
            ready_at,
            old_pid,
            new_pid,
        });
        thread::sleep(SETTLE);
    }
    let last_window_end = turns.last().unwrap().window().1;
    assert!(
        last_window_end + Duration::from_millis(500) < STREAM,
        "{label}: the restarts took too long for the {STREAM:?} streams: {turns:?}"
    );

    let sent = tcp_sender.join().expect("TCP sender thread");
    let got = tcp_receiver.join().expect("TCP receiver thread");
    let client = client.output();
    let server = server.output();
    let server_json: Value = serde_json::from_slice(&server.stdout).unwrap_or_else(|e| {
        panic!(
            "{label}: iperf3 server printed no JSON ({e}); client said:\n{}{}",
            String::from_utf8_lossy(&client.stdout),
            String::from_utf8_lossy(&client.stderr)
        )
    });
    // iperf3 counts datagrams by sequence number: `packets` were sent, `lost_packets`
    // of them never arrived.
    let udp = &server_json["end"]["sum"];
    let (Some(packets), Some(lost)) = (udp["packets"].as_u64(), udp["lost_packets"].as_u64())
    else {
        panic!("{label}: no datagram counts in the iperf3 server's summary: {udp}");
    };
    let received = packets.saturating_sub(lost);

    // What each relay's turn cost, for the record and for the failure message.
    let tcp_gap = longest_gap(&got.reads, t0, Duration::from_secs(1), STREAM * 2);
    let sent_text = match &sent {
        Ok(n) => n.to_string(),
        Err(e) => format!("? (sender: {e})"),
    };
    let mut report = format!(
        "{label}: UDP {packets} datagrams sent, {lost} lost; TCP {} of {sent_text} bytes, \
         longest gap after 1 s {} ms, eof {}, error {:?}",
        got.bytes,
        tcp_gap.as_millis(),
        got.eof,
        got.error
    );
    for t in &turns {
        let (from, to) = t.window();
        report += &format!(
            "\n  {}: killed pid {} at {:.2} s, pid {} ready at {:.2} s: UDP lost {}, longest \
             TCP gap {} ms",
            t.relay,
            t.old_pid,
            t.killed_at.as_secs_f64(),
            t.new_pid,
            t.ready_at.as_secs_f64(),
            udp_lost_in(&server_json, from, to),
            longest_gap(&got.reads, t0, from, to).as_millis()
        );
    }
    eprintln!("{report}");

    let expected = UDP_RATE_BPS / 8 / UDP_LEN * STREAM.as_secs();
    assert!(
        received * 10 > expected * 9,
        "{report}\nonly {received} of {expected} datagrams arrived"
    );
    assert_eq!(lost, 0, "{report}\ndatagrams lost");
    let sent = sent.unwrap_or_else(|e| panic!("{report}\nTCP sender failed: {e}"));
    assert!(
        got.eof && got.error.is_none() && got.bytes == sent,
        "{report}\nthe TCP transfer did not complete"
    );
    assert!(tcp_gap <= MAX_STALL, "{report}\nthe TCP transfer stalled");

    // The restarted agents run, adopted the pinned data plane, and `testbed status`
    // (another process, reading state.json) shows them.
    for t in &turns {
        assert_ne!(t.new_pid, t.old_pid, "{}", t.relay);
        let node = tb.node(t.relay);
        assert!(
            testbed::agent_running(node),
            "{}: agent not running",
            t.relay
        );
        assert_eq!((node.pid, node.restarts), (Some(t.new_pid), 1));
        let log = tb.agent_log(t.relay).unwrap();
        assert!(
            log.contains("adopted the pinned data plane"),
            "{label}: the restarted agent of {} did not adopt the pinned data plane; its log:\n{log}",
            t.relay
        );
    }
    for (name, pid) in &untouched {
        assert_eq!(tb.node(name).pid, *pid, "{name} was not restarted");
    }
    assert!(
        matches!(
            tb.restart_agent("a"),
            Err(TestbedError::AgentRunning { .. })
        ),
        "a second agent for a running node is not started"
    );
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["testbed", "status", "--name", &prefix, "--json"])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "testbed status: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    for n in status["nodes"].as_array().unwrap() {
        let name = n["name"].as_str().unwrap();
        let restarts = u64::from(RELAYS.contains(&name));
        assert_eq!(n["restarts"], restarts, "{name}: {n}");
        assert_eq!(n["running"], true, "{name}: {n}");
        assert_eq!(n["pid"], tb.node(name).pid.unwrap(), "{name}: {n}");
    }

    // The CLI restarts too, from another process: a clean stop this time.
    let old = tb.node("b").pid;
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["testbed", "restart", "--name", &prefix, "b"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "testbed restart b: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = testbed::load(&prefix).unwrap();
    let b = state.node("b").unwrap();
    assert!(testbed::agent_running(b), "{b:?}");
    assert_ne!(b.pid, old);
    assert_eq!(b.restarts, 2);
    let ping = tb.exec(
        &src.netns,
        ["ping", "-c", "1", "-w", "5", &dst.addr.to_string()],
    );
    assert!(
        ping.status.success(),
        "{label}: a/w0 cannot reach d/w0 after a clean restart of b"
    );

    tb.down().unwrap();
    for dir in [testbed::PIN_ROOT, testbed::RUN_DIR] {
        let left: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("{prefix}-")))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {dir} after down: {left:?}");
    }
}

#[test]
fn relay_agents_restart_under_traffic_static_routes() {
    relays_restart_under_traffic(None);
}

#[test]
fn relay_agents_restart_under_traffic_shortest_path() {
    relays_restart_under_traffic(Some("shortest"));
}
