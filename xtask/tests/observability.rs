//! What an operator sees of a namespace fleet: Prometheus metrics scraped from the agents
//! and parsed line by line, and `matrix trace` showing a drop with its reason.
//!
//! Privileged: run as root (`cargo xtask test`); these tests fail, never skip, without it.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use xtask::{
    cargo,
    testbed::{self, Testbed, UpOptions, agent_config::METRICS_ADDRESS},
    testkit,
};

/// One sample: metric name with its labels as written (`name{a="b"}`), and its value.
type Samples = BTreeMap<String, f64>;

/// `GET /metrics` from inside the node's namespace, with bash's /dev/tcp (no HTTP
/// client needed on the host); returns the body.
fn scrape(tb: &Testbed, node: &str) -> String {
    let (host, port) = METRICS_ADDRESS.split_once(':').unwrap();
    let script = format!(
        "exec 3<>/dev/tcp/{host}/{port}; printf 'GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3; cat <&3"
    );
    let out = tb.exec(node, ["bash", "-c", &script]);
    assert!(
        out.status.success(),
        "scraping {node}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    body.to_string()
}

/// Parses OpenMetrics text strictly enough to catch a malformed exposition: every line
/// is a `# TYPE/HELP/UNIT` comment or `name{labels} value`, and the text ends in `# EOF`.
fn parse(body: &str) -> Samples {
    let mut samples = Samples::new();
    let mut lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.pop(), Some("# EOF"), "no `# EOF` at the end:\n{body}");
    for line in lines {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                ["TYPE ", "HELP ", "UNIT "]
                    .iter()
                    .any(|k| comment.starts_with(k)),
                "bad comment line `{line}`"
            );
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line `{line}`"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in `{line}`"));
        assert!(
            name.starts_with("matrix_")
                && (name.ends_with('}') || !name.contains('{'))
                && name.chars().filter(|&c| c == '"').count() % 2 == 0,
            "bad sample name `{name}`"
        );
        assert!(
            samples.insert(name.to_string(), value).is_none(),
            "`{name}` twice"
        );
    }
    samples
}

fn get(s: &Samples, name: &str) -> f64 {
    *s.get(name)
        .unwrap_or_else(|| panic!("no `{name}` in {:#?}", s.keys().collect::<Vec<_>>()))
}

/// A line fleet with adaptive routing: a relay's metrics show its transit traffic, its
/// neighbours alive with an RTT, and control messages by kind.
#[test]
fn relay_metrics_follow_traffic_and_neighbours() {
    testkit::require_root("observability tests");
    let opts = UpOptions {
        routing: Some("shortest".into()),
        ..Default::default()
    };
    let tb = Testbed::up_with(
        &testkit::topology("line.toml"),
        &testbed::unique_prefix(),
        &opts,
    )
    .unwrap();
    let (a, b, d) = (tb.node("a"), tb.node("b"), tb.node("d"));
    let far = &d.workloads[0].addr.to_string();
    // Routes are learnt: ping until one gets through.
    let start = Instant::now();
    while !tb
        .exec("a/w0", ["ping", "-c", "1", "-W", "1", far])
        .status
        .success()
    {
        assert!(start.elapsed() < Duration::from_secs(10), "no route a -> d");
    }
    let before = parse(&scrape(&tb, "b"));
    let pings = tb.exec("a/w0", ["ping", "-c", "20", "-i", "0.01", "-q", far]);
    assert!(pings.status.success(), "{pings:?}");
    let after = parse(&scrape(&tb, "b"));

    // 20 requests one way, 20 replies the other: 40 relayed by b, at least.
    let transit = r#"matrix_packets_by_path_total{path="transit"}"#;
    assert!(
        get(&after, transit) - get(&before, transit) >= 40.0,
        "{} -> {}",
        get(&before, transit),
        get(&after, transit)
    );
    let to_a = format!(r#"matrix_neighbor_tx_packets_total{{neighbor="{}"}}"#, a.id);
    assert!(get(&after, &to_a) - get(&before, &to_a) >= 20.0);
    for n in [&a.id, &tb.node("c").id] {
        assert_eq!(
            get(&after, &format!(r#"matrix_neighbor_up{{neighbor="{n}"}}"#)),
            1.0
        );
        let rtt = get(
            &after,
            &format!(r#"matrix_neighbor_rtt_seconds{{neighbor="{n}"}}"#),
        );
        assert!(rtt > 0.0 && rtt < 0.1, "rtt to {n}: {rtt} s");
    }
    assert!(
        get(
            &after,
            r#"matrix_control_messages_sent_total{kind="hello"}"#
        ) > 0.0
    );
    assert!(
        get(
            &after,
            r#"matrix_control_messages_received_total{kind="advert"}"#
        ) > 0.0
    );
    assert!(get(&after, r#"matrix_control_datagrams_total{counter="rx_ok"}"#) > 0.0);
    assert_eq!(
        get(
            &after,
            r#"matrix_control_datagrams_total{counter="rx_bad_mac"}"#
        ),
        0.0
    );
    assert_eq!(
        get(&after, r#"matrix_drops_total{reason="malformed"}"#),
        0.0
    );
    assert!(get(&after, "matrix_routes") >= 3.0);
    assert_eq!(
        get(
            &after,
            &format!(
                r#"matrix_agent_info{{node="{}",name="{}",strategy="shortest"}}"#,
                b.id, b.pin
            )
        ),
        1.0
    );
    tb.down().unwrap();
}

/// A frame the relay must drop (a Geneve-port datagram too short to be overlay traffic,
/// from a configured neighbour) shows up in `matrix trace` with its reason and headers.
#[test]
fn trace_shows_a_drop_with_its_reason() {
    testkit::require_root("observability tests");
    let tb = Testbed::up(&testkit::topology("line.toml"), &testbed::unique_prefix()).unwrap();
    let b = tb.node("b");
    let mut trace = std::process::Command::new(cargo::matrix_bin())
        .args([
            "trace",
            "--node",
            &b.pin,
            "--count",
            "1",
            "--seconds",
            "20",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run matrix trace");
    // Until tracing is on, a datagram is not traced: keep sending until one is.
    let b_addr = tb.state().links[0].b_addr;
    let start = Instant::now();
    let out = loop {
        let sent = tb.exec(
            "a",
            [
                "bash",
                "-c",
                &format!("echo garbage > /dev/udp/{b_addr}/6081"),
            ],
        );
        assert!(sent.status.success(), "{sent:?}");
        if let Some(status) = trace.try_wait().unwrap() {
            let out = trace.wait_with_output().unwrap();
            assert!(status.success(), "matrix trace: {out:?}");
            break out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "matrix trace saw nothing"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let line = String::from_utf8(out.stdout).unwrap();
    let ev: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON line");
    assert_eq!(ev["program"], "underlay", "{ev}");
    assert_eq!(ev["verdict"], "drop", "{ev}");
    assert_eq!(ev["reason"], "malformed", "{ev}");
    let headers: Vec<&str> = ev["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert!(
        headers
            .iter()
            .any(|h| h.starts_with("udp ") && h.contains("> 6081")),
        "{headers:?}"
    );
    // Tracing is off again once `matrix trace` is done: its pinned config is all zero.
    let off = std::process::Command::new("bpftool")
        .args(["map", "dump", "pinned"])
        .arg(
            std::path::Path::new(testbed::PIN_ROOT)
                .join(&b.pin)
                .join("TRACE_CONFIG"),
        )
        .output()
        .expect("bpftool");
    let dump = String::from_utf8_lossy(&off.stdout);
    assert!(dump.contains("\"flags\": 0"), "{dump}");
    tb.down().unwrap();
}
