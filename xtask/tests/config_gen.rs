//! `matrix config gen` round trip: a fleet file describing a namespace fleet (the line
//! a - b - c - d, plumbing only, no testbed agents) is turned into agent configs by the
//! `matrix` binary, agents started on those configs come up and route, and workload
//! traffic crosses the fleet. What a real-host set-up does, on namespaces.
//!
//! Privileged: run as root (`cargo xtask test`); it fails, never skips, without it. The
//! fleet is built under a unique prefix; the agents are stopped by a guard and
//! `Testbed`'s Drop removes the rest, also when an assertion fails.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use matrix_schema::{
    config::{MetricsFile, WorkloadFile},
    fleet::{FleetFile, FleetLinkFile, FleetNodeFile, FleetUnderlayFile},
};
use serde_json::Value;
use xtask::{
    cargo,
    testbed::{self, Testbed, UpOptions},
    testkit,
};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// `matrix ARGS`, which must succeed; its stdout.
fn matrix(args: &[&str]) -> String {
    let out = Command::new(cargo::matrix_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", cargo::matrix_bin().display()));
    assert!(
        out.status.success(),
        "`matrix {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The prefix length of `address` on `iface` in namespace `ns`, as the host has it.
fn prefix_len(ns: &str, iface: &str, address: &str) -> u8 {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "-4", "addr", "show", "dev", iface])
        .output()
        .expect("run ip addr show");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j JSON");
    v[0]["addr_info"]
        .as_array()
        .and_then(|infos| infos.iter().find(|i| i["local"] == address))
        .and_then(|i| i["prefixlen"].as_u64())
        .unwrap_or_else(|| panic!("{ns}: no {address} on {iface}: {v}")) as u8
}

/// The fleet file of testbed `tb`, as an operator would write it for these hosts: each
/// node's interfaces and addresses (prefix lengths read from the namespaces), its
/// workloads, one link per veth pair, shortest-path routing with `key_file`.
fn fleet_of(tb: &Testbed, key_file: &Path) -> FleetFile {
    let state = tb.state();
    let mut routing = toml::Table::new();
    routing.insert(
        "key_file".into(),
        toml::Value::String(key_file.display().to_string()),
    );
    routing.insert("strategy".into(), toml::Value::String("shortest".into()));
    let node = state
        .nodes
        .iter()
        .map(|n| FleetNodeFile {
            // The pin directory the testbed's `down` removes by prefix.
            name: n.pin.clone(),
            id: n.id.clone(),
            metrics: None,
            underlay: n
                .underlay
                .iter()
                .map(|u| {
                    let address = u.address.to_string();
                    let len = prefix_len(&n.netns, &u.iface, &address);
                    FleetUnderlayFile {
                        iface: u.iface.clone(),
                        address: format!("{address}/{len}"),
                    }
                })
                .collect(),
            workload: n
                .workloads
                .iter()
                .map(|w| WorkloadFile {
                    iface: w.iface.clone(),
                    prefixes: vec![w.prefix.clone(), w.prefix6.clone()],
                })
                .collect(),
        })
        .collect();
    let pin = |name: &str| tb.node(name).pin.clone();
    let link = state
        .links
        .iter()
        .map(|l| FleetLinkFile {
            a: format!("{}:{}", pin(&l.a), l.a_iface),
            b: format!("{}:{}", pin(&l.b), l.b_iface),
        })
        .collect();
    FleetFile {
        routing: Some(routing),
        metrics: Some(MetricsFile {
            address: "127.0.0.1:9469".into(),
        }),
        node,
        link,
        ..FleetFile::default()
    }
}

/// The agents started from generated configs; dropping it stops them (SIGTERM, so they
/// detach and unpin, then SIGKILL for any that hang) before the testbed goes.
struct Agents(Vec<(String, Child, PathBuf)>);

impl Agents {
    fn start(tb: &Testbed, configs: &Path) -> Agents {
        let mut agents = Agents(Vec::new());
        for node in tb.nodes() {
            let config = configs.join(format!("{}.toml", node.pin));
            let log_path = tb.dir().join(format!("{}-gen.log", node.name));
            let log = fs::File::create(&log_path).expect("create agent log");
            let child = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", node.netns))
                .arg("--")
                .arg(cargo::matrix_bin())
                .args(["agent", "--config"])
                .arg(&config)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .expect("start nsenter matrix agent");
            agents.0.push((node.pin.clone(), child, log_path));
        }
        agents
    }

    /// Panics with the agent's log if one has exited.
    fn check_alive(&mut self) {
        for (pin, child, log) in &mut self.0 {
            if let Some(status) = child.try_wait().expect("wait for agent") {
                panic!(
                    "agent {pin} exited ({status}); its log:\n{}",
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
    }

    fn logs(&self) -> String {
        self.0
            .iter()
            .map(|(pin, _, log)| {
                format!("--- {pin}\n{}", fs::read_to_string(log).unwrap_or_default())
            })
            .collect()
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for (_, child, _) in &self.0 {
            // SAFETY: kill has no memory preconditions; nsenter exec'd the agent, so
            // the pid is the agent's.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, child, _) in &mut self.0 {
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until every agent has all `want[i]` neighbours resolved.
fn wait_neighbours(tb: &Testbed, agents: &mut Agents, want: &[usize]) {
    let start = Instant::now();
    loop {
        agents.check_alive();
        let pending: Vec<String> = tb
            .nodes()
            .iter()
            .zip(want)
            .filter_map(|(n, &want)| {
                let out = Command::new(cargo::matrix_bin())
                    .args(["neighbors", "--node", &n.pin, "--json"])
                    .output()
                    .ok()?;
                let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
                let resolved = list.iter().filter(|x| x["resolved"] == true).count();
                (resolved < want).then(|| format!("{}: {resolved} of {want}", n.name))
            })
            .collect();
        if pending.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < READY_TIMEOUT,
            "neighbours not resolved after {READY_TIMEOUT:?} ({}); logs:\n{}",
            pending.join(", "),
            agents.logs()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// A 2 s iperf3 TCP transfer; returns the bytes the server received.
fn tcp_transfer(tb: &Testbed, client_ns: &str, server_ns: &str, server_addr: &str) -> u64 {
    struct KillOnDrop(Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = Command::new("ip")
        .args([
            "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", "5201",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start iperf3 server (is iperf3 installed? `cargo xtask setup`)");
    let mut server = KillOnDrop(server);
    thread::sleep(Duration::from_millis(300));
    let out = tb.exec(
        client_ns,
        ["iperf3", "-c", server_addr, "-p", "5201", "-t", "2", "-J"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "iperf3 client failed:\n{text}");
    let _ = server.0.wait();
    let v: Value = serde_json::from_str(&text).expect("iperf3 JSON");
    v["end"]["sum_received"]["bytes"]
        .as_f64()
        .unwrap_or_else(|| panic!("no received bytes in iperf3 output: {text}")) as u64
}

#[test]
fn config_gen_round_trips_into_agents_that_come_up_and_route() {
    testkit::require_root("config gen round trips");
    let topology = cargo::workspace_root().join("topologies/line.toml");
    let opts = UpOptions {
        agents: false,
        ..UpOptions::default()
    };
    let tb = Testbed::up_with(&topology, &testbed::unique_prefix(), &opts).unwrap();

    // The operator's side: a key, a fleet file, `matrix config gen`.
    let key = tb.dir().join("fleet.key");
    matrix(&["config", "key", "--out", &key.display().to_string()]);
    let fleet_path = tb.dir().join("fleet.toml");
    let text = fleet_of(&tb, &key).to_toml().expect("fleet serializes");
    fs::write(&fleet_path, &text).expect("write fleet file");
    let out_dir = tb.dir().join("generated");
    let printed = matrix(&[
        "config",
        "gen",
        "--fleet",
        &fleet_path.display().to_string(),
        "--out",
        &out_dir.display().to_string(),
    ]);
    for node in tb.nodes() {
        let path = out_dir.join(format!("{}.toml", node.pin));
        assert!(
            printed.contains(&format!("wrote {}", path.display())),
            "{printed}"
        );
        // `--node` prints the same text it writes.
        let one = matrix(&[
            "config",
            "gen",
            "--fleet",
            &fleet_path.display().to_string(),
            "--node",
            &node.pin,
        ]);
        assert_eq!(one, fs::read_to_string(&path).unwrap(), "{}", node.name);
    }

    // The hosts' side: one agent per node on its generated config.
    let mut agents = Agents::start(&tb, &out_dir);
    let state = tb.state();
    let want: Vec<usize> = state.nodes.iter().map(|n| n.underlay.len()).collect();
    wait_neighbours(&tb, &mut agents, &want);

    // No static routes: a learns d's prefixes and a path from the adverts.
    let (src, dst) = (&tb.node("a").workloads[0], &tb.node("d").workloads[0]);
    let start = Instant::now();
    while testkit::ping_received(&tb, &src.netns, &dst.addr.to_string(), 1) == 0 {
        agents.check_alive();
        assert!(
            start.elapsed() < ROUTE_TIMEOUT,
            "a/w0 cannot reach d/w0 after {ROUTE_TIMEOUT:?}; a's routes:\n{}\nlogs:\n{}",
            matrix(&["routes", "--node", &tb.node("a").pin]),
            agents.logs()
        );
    }
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

    // The relays carried it in XDP: routed by the generated configs, not by the kernel.
    for relay in ["b", "c"] {
        let stats: Value =
            serde_json::from_str(&matrix(&["stats", "--node", &tb.node(relay).pin, "--json"]))
                .expect("stats JSON");
        let transit = stats["paths"]["transit"].as_u64().unwrap_or(0);
        assert!(
            transit >= bytes / 1500,
            "relay {relay}: only {transit} transits"
        );
    }
    drop(agents);
}
