//! The namespace testbed: a fleet of network namespaces joined by veth links, one
//! `matrix` agent per node, built from a topology file.
//!
//! Everything a testbed makes carries its prefix: namespaces `<prefix>-<node>`,
//! `<prefix>-<node>-w<i>` and, for each tapped link k (`tap = true`: a bridge that
//! `tcpdump` can watch, see `wire.rs`), `<prefix>-l<k>`; pin directories
//! `/sys/fs/bpf/matrix/<prefix>-<node>`; the agents' control sockets and lock files
//! `/run/matrix/<prefix>-<node>.{sock,lock}`; and the state directory
//! `<target>/testbed/<prefix>/`. `down` removes all of it by that prefix, so it works
//! on partial state and from another process.

pub mod agent_config;
mod agents;
mod netns;
pub mod outsider;
mod restart;
mod state;
mod wire;
mod xdp_pass;

use std::{
    ffi::OsStr,
    fs, io,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output},
    sync::atomic::{AtomicBool, AtomicU32, Ordering},
    time::Duration,
};

pub use state::{Link, Node, State, Underlay, Workload};

use crate::{
    cargo,
    cmd::CmdError,
    routes,
    topology::{Topology, TopologyError},
};

/// Where agents pin their maps and programs.
pub use matrix_schema::PIN_ROOT;
/// Where agents keep their control sockets (`<pin>.sock`) and one-agent-per-node locks
/// (`<pin>.lock`); a killed agent leaves both, a cleanly stopped one its lock.
pub const RUN_DIR: &str = "/run/matrix";
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long an agent may take from its start until it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGKILLed agent may take to be gone.
const KILL_WAIT: Duration = Duration::from_secs(5);
const MAX_PREFIX_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Command(#[from] CmdError),
    #[error("testbed name `{name}`: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error(
        "testbed `{prefix}` already exists (namespaces {}); run `cargo xtask testbed down --name {prefix}` first",
        namespaces.join(", ")
    )]
    AlreadyExists {
        prefix: String,
        namespaces: Vec<String>,
    },
    #[error("no testbed `{prefix}`: {} not found", path.display())]
    NotFound { prefix: String, path: PathBuf },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {} is not valid", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "matrix binary {} not found: build it with `cargo xtask build`, or set MATRIX_BIN",
        path.display()
    )]
    MissingBinary { path: PathBuf },
    #[error("agent of node `{node}` ended ({status}) before it was ready; last lines of {}:\n{tail}", log.display())]
    AgentExited {
        node: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "agent of node `{node}` not ready after {waited:?} ({detail}); last lines of {}:\n{tail}",
        log.display()
    )]
    AgentNotReady {
        node: String,
        waited: Duration,
        detail: String,
        log: PathBuf,
        tail: String,
    },
    #[error("agent of node `{node}` is not running (pid {pid:?})")]
    AgentNotRunning { node: String, pid: Option<u32> },
    #[error(
        "agent of node `{node}` still runs (pid {pid}): kill or stop it before starting another"
    )]
    AgentRunning { node: String, pid: u32 },
    #[error("agent of node `{node}` (pid {pid}) still there {waited:?} after SIGKILL")]
    AgentNotKilled {
        node: String,
        pid: u32,
        waited: Duration,
    },
    #[error("testbed `{prefix}` has no node or namespace `{target}` ({known})")]
    UnknownTarget {
        prefix: String,
        target: String,
        known: String,
    },
    #[error(
        "link {target} ({a} - {b}) of testbed `{prefix}` is not tapped: set `tap = true` on it in the topology and bring the testbed up again"
    )]
    UntappedLink {
        prefix: String,
        target: String,
        a: String,
        b: String,
    },
    #[error("teardown of testbed `{prefix}` incomplete: {}", failures.join("; "))]
    Teardown {
        prefix: String,
        failures: Vec<String>,
    },
}

/// How [`Testbed::up_with`] brings a testbed up.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Start one agent per node and wait for it (off: namespace plumbing only).
    pub agents: bool,
    pub matrix_bin: PathBuf,
    pub ready_timeout: Duration,
    /// Run adaptive routing with this strategy instead of static routes (overrides the
    /// topology's `[routing] strategy`).
    pub routing: Option<String>,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            agents: true,
            matrix_bin: cargo::matrix_bin(),
            ready_timeout: READY_TIMEOUT,
            routing: None,
        }
    }
}

/// A running testbed. Dropping it tears it down (also when a test panics); call
/// [`Testbed::detach`] to leave it running.
#[derive(Debug)]
pub struct Testbed {
    state: State,
    dir: PathBuf,
    /// How long a (re)started agent may take to get ready.
    ready_timeout: Duration,
    /// Set once the testbed is down, or when this handle does not own it: nothing
    /// to tear down on drop.
    gone: AtomicBool,
}

impl Testbed {
    /// Brings up `topology` under `prefix` with agents, waiting until they are ready.
    pub fn up(topology: &Path, prefix: &str) -> Result<Testbed, TestbedError> {
        Self::up_with(topology, prefix, &UpOptions::default())
    }

    /// Like [`Testbed::up`]; on any error everything made so far is removed.
    pub fn up_with(
        topology: &Path,
        prefix: &str,
        opts: &UpOptions,
    ) -> Result<Testbed, TestbedError> {
        check_prefix(prefix)?;
        let topo = crate::topology::load(topology)?;
        if opts.agents && !opts.matrix_bin.is_file() {
            return Err(TestbedError::MissingBinary {
                path: opts.matrix_bin.clone(),
            });
        }
        let existing = netns::owned(prefix)?;
        if !existing.is_empty() {
            return Err(TestbedError::AlreadyExists {
                prefix: prefix.to_string(),
                namespaces: existing,
            });
        }
        // No namespaces but maybe a stale state dir or pins from a crashed run.
        down(prefix)?;

        let dir = state_dir(prefix);
        let topology = fs::canonicalize(topology).unwrap_or_else(|_| topology.to_path_buf());
        // From here on, dropping `tb` (an early return) removes what exists.
        let mut tb = Testbed {
            state: State::plan(&topo, prefix, &topology, &dir),
            dir,
            ready_timeout: opts.ready_timeout,
            gone: AtomicBool::new(false),
        };
        fs::create_dir_all(&tb.dir).map_err(|source| TestbedError::Io {
            action: "create state directory",
            path: tb.dir.clone(),
            source,
        })?;
        tb.save()?;
        netns::create(&tb.state)?;

        let routes = routes::compute(&topo);
        let routing = routing_table(&topo, opts, &state_dir(prefix))?;
        for (i, node) in tb.state.nodes.iter().enumerate() {
            let text = agent_config::render_with(&topo, &tb.state, i, &routes[i], routing.as_ref());
            fs::write(&node.config, text).map_err(|source| TestbedError::Io {
                action: "write agent config",
                path: node.config.clone(),
                source,
            })?;
        }
        if opts.agents {
            tb.state.matrix_bin = Some(opts.matrix_bin.clone());
            for i in 0..tb.state.nodes.len() {
                let pid = agents::start(&opts.matrix_bin, &tb.state.nodes[i])?;
                tb.state.nodes[i].pid = Some(pid);
                tb.save()?;
            }
            let neighbours: Vec<usize> = (0..topo.nodes.len())
                .map(|i| topo.neighbors(i).len())
                .collect();
            agents::wait_ready(
                &opts.matrix_bin,
                &tb.state.nodes,
                &neighbours,
                opts.ready_timeout,
            )?;
        }
        Ok(tb)
    }

    /// A handle on testbed `prefix`, brought up earlier (by another process too), from
    /// its saved state. Dropping it leaves the testbed running; [`Testbed::down`] still
    /// removes it.
    pub fn open(prefix: &str) -> Result<Testbed, TestbedError> {
        Ok(Testbed {
            state: load(prefix)?,
            dir: state_dir(prefix),
            ready_timeout: READY_TIMEOUT,
            gone: AtomicBool::new(true),
        })
    }

    fn save(&self) -> Result<(), TestbedError> {
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_string_pretty(&self.state).expect("state serializes");
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|source| TestbedError::Io {
                action: "write state file",
                path,
                source,
            })
    }

    pub fn prefix(&self) -> &str {
        &self.state.prefix
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// `<target>/testbed/<prefix>/`: state.json, agent configs and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn nodes(&self) -> &[Node] {
        &self.state.nodes
    }

    /// The node named `name` (as in the topology file).
    ///
    /// # Panics
    /// If there is no such node: a test naming a node its topology lacks is wrong.
    pub fn node(&self, name: &str) -> &Node {
        self.state.node(name).unwrap_or_else(|| {
            panic!(
                "testbed `{}` has no node `{name}` (nodes: {})",
                self.state.prefix,
                node_names(&self.state)
            )
        })
    }

    /// Runs `args` in namespace `ns` (a namespace name, or `node` / `node/w<i>`) and
    /// returns its output, whatever its exit status.
    ///
    /// # Panics
    /// If `ip` cannot be started at all.
    pub fn exec<I, S>(&self, ns: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let ns = resolve(&self.state, ns).unwrap_or_else(|_| ns.to_string());
        Command::new("ip")
            .args(["netns", "exec", &ns])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `ip netns exec {ns} ...`: {e}"))
    }

    /// Runs `f` on a new thread inside namespace `ns` (as [`Testbed::exec`] names it):
    /// sockets it opens are that namespace's, so a test can be its own traffic source
    /// or sink with exact timestamps.
    ///
    /// # Panics
    /// The thread panics (seen at `join`) if it cannot enter the namespace.
    pub fn spawn_in<T, F>(&self, ns: &str, f: F) -> std::thread::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ns = resolve(&self.state, ns).unwrap_or_else(|_| ns.to_string());
        std::thread::spawn(move || {
            netns::enter(&ns).unwrap_or_else(|e| panic!("cannot enter namespace {ns}: {e}"));
            f()
        })
    }

    /// Stops the agents and removes every namespace, pin directory and state file of
    /// this testbed. Idempotent.
    pub fn down(&self) -> Result<(), TestbedError> {
        self.gone.store(true, Ordering::SeqCst);
        let result = down(&self.state.prefix);
        self.state
            .nodes
            .iter()
            .filter_map(|n| n.pid)
            .for_each(agents::reap);
        result
    }

    /// Leaves the testbed running after this handle goes (for `cargo xtask testbed up`).
    pub fn detach(self) -> State {
        self.gone.store(true, Ordering::SeqCst);
        self.state.clone()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if !self.gone.load(Ordering::SeqCst)
            && let Err(e) = self.down()
        {
            eprintln!("warning: {e}");
        }
    }
}

/// Tears down testbed `prefix`: stops every process in its namespaces (SIGTERM, then
/// SIGKILL after 5 s), deletes the namespaces, leftover pin directories, the agents'
/// sockets and lock files, and the state directory. Tolerates any of them being
/// absent; keeps going past failures and reports them all at the end.
pub fn down(prefix: &str) -> Result<(), TestbedError> {
    check_prefix(prefix)?;
    let mut failures = Vec::new();
    let namespaces = netns::owned(prefix).unwrap_or_else(|e| {
        failures.push(e.to_string());
        Vec::new()
    });
    let me = std::process::id();
    let mut pids = Vec::new();
    for ns in &namespaces {
        match netns::pids(ns) {
            Ok(p) => pids.extend(p.into_iter().filter(|&p| p != me)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    // Agents first, while their interfaces still exist: a clean stop detaches and
    // unpins.
    let killed = agents::stop(&pids, STOP_GRACE);
    if !killed.is_empty() {
        eprintln!(
            "testbed {prefix}: SIGKILLed {killed:?}, which ignored SIGTERM for {STOP_GRACE:?}"
        );
    }
    for ns in &namespaces {
        if let Err(e) = netns::delete(ns) {
            failures.push(e.to_string());
        }
    }
    match fs::read_dir(PIN_ROOT) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if netns::owned_by(prefix, &name.to_string_lossy()) {
                    let path = entry.path();
                    if let Err(e) = fs::remove_dir_all(&path) {
                        failures.push(format!("cannot remove {}: {e}", path.display()));
                    }
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => failures.push(format!("cannot list {PIN_ROOT}: {e}")),
    }
    // Every agent has ended: nothing holds a lock or listens on a socket any more.
    match fs::read_dir(RUN_DIR) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let pin = name
                    .strip_suffix(".lock")
                    .or_else(|| name.strip_suffix(".sock"));
                if pin.is_some_and(|pin| netns::owned_by(prefix, pin)) {
                    let path = entry.path();
                    if let Err(e) = fs::remove_file(&path) {
                        failures.push(format!("cannot remove {}: {e}", path.display()));
                    }
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => failures.push(format!("cannot list {RUN_DIR}: {e}")),
    }
    let dir = state_dir(prefix);
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => failures.push(format!("cannot remove {}: {e}", dir.display())),
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(TestbedError::Teardown {
            prefix: prefix.to_string(),
            failures,
        })
    }
}

/// The saved state of testbed `prefix`.
pub fn load(prefix: &str) -> Result<State, TestbedError> {
    check_prefix(prefix)?;
    let path = state_dir(prefix).join("state.json");
    let text = fs::read_to_string(&path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => TestbedError::NotFound {
            prefix: prefix.to_string(),
            path: path.clone(),
        },
        _ => TestbedError::Io {
            action: "read state file",
            path: path.clone(),
            source,
        },
    })?;
    serde_json::from_str(&text).map_err(|source| TestbedError::State { path, source })
}

/// The state directory of testbed `prefix`.
pub fn state_dir(prefix: &str) -> PathBuf {
    testbeds_dir().join(prefix)
}

fn testbeds_dir() -> PathBuf {
    cargo::target_dir().join("testbed")
}

/// Names of the testbeds that have a state directory.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(testbeds_dir())
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("state.json").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The namespace named by `target`: a node name, `node/w<i>`, `l<k>` for the wire of
/// tapped link k, or a namespace name of the testbed.
pub fn resolve(state: &State, target: &str) -> Result<String, TestbedError> {
    if let Some(link) = wire::parse_target(target).and_then(|k| state.links.get(k)) {
        return link
            .tap_netns
            .clone()
            .ok_or_else(|| TestbedError::UntappedLink {
                prefix: state.prefix.clone(),
                target: target.to_string(),
                a: link.a.clone(),
                b: link.b.clone(),
            });
    }
    let found = match target.split_once('/') {
        Some((node, w)) => state.node(node).and_then(|n| {
            let i: usize = w.strip_prefix('w')?.parse().ok()?;
            n.workloads.get(i).map(|w| w.netns.clone())
        }),
        None => state
            .node(target)
            .map(|n| n.netns.clone())
            .or_else(|| state.namespaces().into_iter().find(|ns| ns == target)),
    };
    found.ok_or_else(|| TestbedError::UnknownTarget {
        prefix: state.prefix.clone(),
        target: target.to_string(),
        known: targets(state),
    })
}

/// Runs `args` in the namespace named by `target` with the terminal's stdio.
pub fn exec_interactive(
    state: &State,
    target: &str,
    args: &[String],
) -> Result<ExitStatus, TestbedError> {
    let ns = resolve(state, target)?;
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns]).args(args);
    c.status().map_err(|source| {
        TestbedError::Command(CmdError::Spawn {
            cmd: crate::cmd::display(&c),
            source,
        })
    })
}

fn node_names(state: &State) -> String {
    state
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `exec` takes besides namespace names, for error messages.
fn targets(state: &State) -> String {
    let taps: Vec<String> = tapped(state).map(|(k, _)| wire::target(k)).collect();
    let mut known = format!("nodes: {}", node_names(state));
    if !taps.is_empty() {
        known += &format!("; tapped links: {}", taps.join(", "));
    }
    known
}

/// The tapped links of `state` with their indices.
fn tapped(state: &State) -> impl Iterator<Item = (usize, &Link)> {
    state
        .links
        .iter()
        .enumerate()
        .filter(|(_, l)| l.tap_netns.is_some())
}

/// Whether the agent of `node` is running.
pub fn agent_running(node: &Node) -> bool {
    node.pid.is_some_and(|pid| {
        fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.contains(&*node.config.to_string_lossy()))
    })
}

/// `{"prefix", "nodes": [{"name", "id", "netns", "pin", "pid", "running", "restarts",
/// "workloads": [{"netns", "addr", ...}]}], "links": [{"a", "b", ..., "tap_netns", "tap"}]}`;
/// `pid` is the current agent's (null before one started), `restarts` how many times it
/// was started again; `tap_netns` and `tap` (the `exec` target `l<k>`) are null for an
/// untapped link.
pub fn status_json(state: &State) -> serde_json::Value {
    let mut v = serde_json::to_value(state).expect("state serializes");
    for (node, n) in state
        .nodes
        .iter()
        .zip(v["nodes"].as_array_mut().expect("nodes array"))
    {
        n["running"] = agent_running(node).into();
    }
    let links = v["links"].as_array_mut().expect("links array");
    for (k, (link, l)) in state.links.iter().zip(links).enumerate() {
        l["tap"] = link.tap_netns.as_ref().map(|_| wire::target(k)).into();
    }
    v
}

/// A human table of the testbed.
pub fn status_table(state: &State) -> String {
    let mut out = format!("testbed {} ({})\n", state.prefix, state.topology.display());
    out += &format!(
        "{:<8} {:<7} {:<22} {:<16} {:<8} {}\n",
        "NODE", "ID", "NETNS", "AGENT", "RESTARTS", "WORKLOADS"
    );
    for n in &state.nodes {
        let agent = match n.pid {
            Some(pid) if agent_running(n) => format!("pid {pid}"),
            Some(pid) => format!("pid {pid} exited"),
            None => "-".into(),
        };
        let workloads: Vec<String> = n
            .workloads
            .iter()
            .map(|w| format!("{} {} {}", w.netns, w.addr, w.addr6))
            .collect();
        let workloads = if workloads.is_empty() {
            "-".into()
        } else {
            workloads.join(", ")
        };
        out += &format!(
            "{:<8} {:<7} {:<22} {:<16} {:<8} {}\n",
            n.name, n.id, n.netns, agent, n.restarts, workloads
        );
    }
    out += "LINKS\n";
    for (k, l) in state.links.iter().enumerate() {
        out += &format!(
            "  {}:{} {} <-> {}:{} {} (mtu {})",
            l.a, l.a_iface, l.a_addr, l.b, l.b_iface, l.b_addr, l.mtu
        );
        if let Some(ns) = &l.tap_netns {
            out += &format!(
                " tapped: {} bridge {} (exec target {})",
                ns,
                wire::BRIDGE,
                wire::target(k)
            );
        }
        out += "\n";
    }
    out
}

/// Checks that `prefix` is a usable testbed name: it starts every namespace and pin
/// directory name, and `down` removes by it.
pub fn check_prefix(prefix: &str) -> Result<(), TestbedError> {
    let bad = |reason| TestbedError::BadName {
        name: prefix.to_string(),
        reason,
    };
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        return Err(bad("must be 1 to 24 characters"));
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad("only [a-z0-9-] are allowed"));
    }
    if !prefix.starts_with(|c: char| c.is_ascii_lowercase())
        || prefix.ends_with('-')
        || prefix.contains("--")
    {
        return Err(bad(
            "must start with a letter, and not end with or double a `-`",
        ));
    }
    Ok(())
}

/// A testbed name unique to this process and call, for tests: two test runs at once
/// (different pids) and tests in parallel (different counters) never collide. The
/// `x` keeps pid 1234 call 50 apart from pid 12345 call 0.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("mxt{:05}x{n}", std::process::id() % 100_000)
}

/// The agents' `[routing]` table, with a fresh cluster key written into the state dir;
/// `None` for static routes.
fn routing_table(
    topo: &Topology,
    opts: &UpOptions,
    dir: &Path,
) -> Result<Option<toml::Table>, TestbedError> {
    let mut table = match (&topo.routing, &opts.routing) {
        (None, None) => return Ok(None),
        (Some(t), _) => t.clone(),
        (None, Some(_)) => toml::Table::new(),
    };
    if let Some(s) = &opts.routing {
        table.insert("strategy".into(), toml::Value::String(s.clone()));
    }
    let key_file = dir.join("cluster.key");
    let mut key = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
        .map_err(|source| TestbedError::Io {
            action: "read a random cluster key",
            path: "/dev/urandom".into(),
            source,
        })?;
    fs::write(&key_file, key).map_err(|source| TestbedError::Io {
        action: "write cluster key",
        path: key_file.clone(),
        source,
    })?;
    table.insert(
        "key_file".into(),
        toml::Value::String(key_file.display().to_string()),
    );
    Ok(Some(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        for ok in ["mx-demo", "mxt01234x0", "a"] {
            check_prefix(ok).unwrap();
        }
        for bad in [
            "",
            "Mx",
            "mx_demo",
            "-mx",
            "mx-",
            "mx--a",
            "1mx",
            "a234567890123456789012345",
        ] {
            assert!(check_prefix(bad).is_err(), "{bad} accepted");
        }
        let a = unique_prefix();
        let b = unique_prefix();
        assert_ne!(a, b);
        check_prefix(&a).unwrap();
    }
}
