//! `cargo xtask run`: the namespace demo (a line of four nodes, traffic across it, live
//! counters), or with `--iface` an agent on a real NIC.

use std::{
    collections::BTreeMap,
    fs::File,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use xtask::{cargo, cmd, testbed};

const DEMO_PREFIX: &str = "mx-demo";
const PATHS: [&str; 3] = ["transit", "encap", "decap"];

#[derive(Args)]
pub struct RunArgs {
    /// Stop the demo after this many seconds (default: at Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Adaptive routing in the demo fleet (shortest, antnet, q-routing, direct)
    /// instead of static routes.
    #[arg(long, conflicts_with = "iface")]
    routing: Option<String>,
    /// Testbed name of the demo fleet, the prefix of its namespaces and pins, so two
    /// demos can run side by side. A stale demo of the default name is replaced; a
    /// name given here must be free.
    #[arg(long, default_value = DEMO_PREFIX, conflicts_with = "iface")]
    name: String,
    /// Run an agent on this NIC instead of the demo (with --config).
    #[arg(long, requires = "config")]
    iface: Option<String>,
    /// Agent config naming --iface as an [[underlay]] interface.
    #[arg(long, requires = "iface")]
    config: Option<PathBuf>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    if args.iface.is_none() {
        testbed::check_prefix(&args.name).context("--name")?;
    }
    let bin = crate::build()?;
    if let (Some(iface), Some(config)) = (&args.iface, &args.config) {
        return Err(exec_agent(&bin, iface, config));
    }
    demo(
        &bin,
        &args.name,
        args.duration.map(Duration::from_secs),
        args.routing.clone(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Replaces this process with the agent, after checking that `config` drives `iface`.
fn exec_agent(bin: &Path, iface: &str, config: &Path) -> anyhow::Error {
    let check = || -> Result<()> {
        let text = std::fs::read_to_string(config)
            .with_context(|| format!("cannot read {}", config.display()))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{} is not TOML", config.display()))?;
        let ifaces: Vec<&str> = table
            .get("underlay")
            .and_then(|u| u.as_array())
            .map(|a| a.iter().filter_map(|u| u.get("iface")?.as_str()).collect())
            .unwrap_or_default();
        if !ifaces.contains(&iface) {
            bail!(
                "--iface {iface} is not an [[underlay]] iface of {} (it has: {})",
                config.display(),
                if ifaces.is_empty() {
                    "none".into()
                } else {
                    ifaces.join(", ")
                }
            );
        }
        if !Path::new("/sys/class/net").join(iface).exists() {
            bail!("--iface {iface}: no such interface on this host");
        }
        Ok(())
    };
    if let Err(e) = check() {
        return e;
    }
    let err = Command::new(bin)
        .arg("agent")
        .arg("--config")
        .arg(config)
        .exec();
    anyhow::Error::new(err).context(format!("cannot exec {} agent", bin.display()))
}

fn demo(
    bin: &Path,
    prefix: &str,
    duration: Option<Duration>,
    routing: Option<String>,
) -> Result<()> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let topology = cargo::workspace_root().join("topologies/line.toml");
    if prefix == DEMO_PREFIX {
        testbed::down(prefix).context("removing a stale demo")?;
    }
    println!("demo: bringing up {} as {prefix}", topology.display());
    let opts = testbed::UpOptions {
        matrix_bin: bin.to_path_buf(),
        routing,
        ..Default::default()
    };
    // Dropping `tb` (any return below) tears the demo down.
    let tb = testbed::Testbed::up_with(&topology, prefix, &opts)?;
    print!("{}", testbed::status_table(tb.state()));
    for n in tb.nodes() {
        if let Ok(out) = cmd::run(Command::new(bin).args(["routes", "--node", &n.pin])) {
            println!(
                "routes of {}:\n{}",
                n.name,
                String::from_utf8_lossy(&out.stdout).trim_end()
            );
        }
    }

    let (src, dst) = (&tb.node("a").workloads[0], &tb.node("d").workloads[0]);
    let mut traffic = Traffic::default();
    let ping_log = tb.dir().join("ping.log");
    traffic.spawn(
        "ping",
        &src.netns,
        &["ping", "-i", "0.2", &dst.addr.to_string()],
        &ping_log,
    )?;
    if cmd::available("iperf3", "--version") {
        let secs = duration.map_or(86_400, |d| d.as_secs().max(1)).to_string();
        traffic.spawn(
            "iperf3 server",
            &dst.netns,
            &["iperf3", "-s"],
            &tb.dir().join("iperf3-server.log"),
        )?;
        thread::sleep(Duration::from_millis(300));
        let client = [
            "iperf3",
            "-c",
            &dst.addr.to_string(),
            "-t",
            &secs,
            "-i",
            "0",
        ];
        traffic.spawn(
            "iperf3 client",
            &src.netns,
            &client,
            &tb.dir().join("iperf3-client.log"),
        )?;
    }
    println!(
        "demo: ping{} from {} to {} ({}); Ctrl-C to stop",
        if traffic.0.len() > 1 {
            " and iperf3"
        } else {
            ""
        },
        src.netns,
        dst.netns,
        dst.addr
    );

    // A baseline, so the first line already shows rates.
    let mut previous: BTreeMap<String, Counters> = tb
        .nodes()
        .iter()
        .filter_map(|n| Some((n.name.clone(), read_counters(bin, &n.pin).ok()?)))
        .collect();
    let start = Instant::now();
    let mut tick = start;
    while !STOP.load(Ordering::SeqCst) && duration.is_none_or(|d| start.elapsed() < d) {
        if tick.elapsed() >= Duration::from_secs(1) {
            tick = Instant::now();
            print_counters(bin, tb.nodes(), &mut previous, start.elapsed());
        }
        thread::sleep(Duration::from_millis(100));
    }
    traffic.stop();
    let ping = std::fs::read_to_string(&ping_log).unwrap_or_default();
    let tail: Vec<&str> = ping.lines().rev().take(2).collect();
    for line in tail.iter().rev() {
        println!("ping: {line}");
    }
    let iperf = std::fs::read_to_string(tb.dir().join("iperf3-client.log")).unwrap_or_default();
    // Only the sender's side: interrupted, the client never gets the receiver's.
    for line in iperf.lines().filter(|l| l.ends_with("sender")) {
        println!("iperf3: {}", line.trim());
    }
    println!("demo: tearing down {prefix}");
    tb.down()?;
    Ok(())
}

/// Traffic generators, each in its own process group so the terminal's Ctrl-C reaches
/// only xtask, which then stops them before the testbed.
#[derive(Default)]
struct Traffic(Vec<Child>);

impl Traffic {
    fn spawn(&mut self, what: &str, ns: &str, argv: &[&str], log: &Path) -> Result<()> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {what} in {ns}"))?;
        self.0.push(child);
        Ok(())
    }

    /// SIGINT (ping and iperf3 print their summaries on it), then reap.
    fn stop(&mut self) {
        for c in &self.0 {
            // SAFETY: plain signal to a child we spawned and have not reaped yet.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
        }
        for mut c in self.0.drain(..) {
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Path and drop counters of one node, from `matrix stats --json`.
#[derive(Clone, Default)]
struct Counters {
    paths: [u64; PATHS.len()],
    drops: u64,
}

fn read_counters(bin: &Path, pin: &str) -> Result<Counters, String> {
    let out = cmd::run(Command::new(bin).args(["stats", "--node", pin, "--json"]))
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("stats JSON: {e}"))?;
    let mut c = Counters::default();
    for (slot, path) in c.paths.iter_mut().zip(PATHS) {
        *slot = v["paths"][path].as_u64().unwrap_or(0);
    }
    c.drops = v["drops"].as_object().map_or(0, |d| {
        d.values().filter_map(serde_json::Value::as_u64).sum()
    });
    Ok(c)
}

fn print_counters(
    bin: &Path,
    nodes: &[testbed::Node],
    previous: &mut BTreeMap<String, Counters>,
    at: Duration,
) {
    println!(
        "t={:>4}s  {:<6} {:>10} {:>10} {:>10} {:>10}",
        at.as_secs(),
        "node",
        "transit/s",
        "encap/s",
        "decap/s",
        "drops/s"
    );
    for n in nodes {
        match read_counters(bin, &n.pin) {
            Ok(now) => {
                let rate = |new: u64, old: Option<u64>| {
                    old.map_or("-".into(), |o| new.saturating_sub(o).to_string())
                };
                let old = previous.get(&n.name);
                let p: Vec<String> = (0..PATHS.len())
                    .map(|i| rate(now.paths[i], old.map(|o| o.paths[i])))
                    .collect();
                let d = rate(now.drops, old.map(|o| o.drops));
                println!(
                    "         {:<6} {:>10} {:>10} {:>10} {:>10}",
                    n.name, p[0], p[1], p[2], d
                );
                previous.insert(n.name.clone(), now);
            }
            Err(e) => println!("         {:<6} stats unavailable: {e}", n.name),
        }
    }
}
