//! Agent processes: start one per node, wait until each has resolved its neighbours,
//! kill one as a crash would, stop them (and anything else left in the testbed's
//! namespaces).

use std::{
    fs::OpenOptions,
    io::Write as _,
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::{TestbedError, state::Node};
use crate::cmd;

const POLL: Duration = Duration::from_millis(200);
const LOG_TAIL_LINES: usize = 30;
/// Starts each restarted agent's part of a log (see [`current_log`]).
const RESTART_MARK: &str = "---- testbed: agent restarted";

/// Starts `bin agent --config <node.config>` in the node's namespace, output to its log,
/// in a process group of its own (a Ctrl-C meant for xtask must not reach it: `down`
/// stops it in order). Returns the pid (`nsenter` execs, so it is the agent's).
///
/// The first agent of a node starts a new log; a restarted one (`node.restarts` > 0)
/// appends to it after a marker line, so the log of the agent it replaces stays.
///
/// `nsenter --net`, not `ip netns exec`: the latter remounts /sys for the namespace,
/// which hides the bpffs at /sys/fs/bpf where the agent pins its maps.
pub fn start(bin: &Path, node: &Node) -> Result<u32, TestbedError> {
    let io_err = |action| {
        let path = node.log.clone();
        move |source| TestbedError::Io {
            action,
            path,
            source,
        }
    };
    let mut log = OpenOptions::new()
        .create(true)
        .write(true)
        .append(node.restarts > 0)
        .truncate(node.restarts == 0)
        .open(&node.log)
        .map_err(io_err("open agent log"))?;
    if node.restarts > 0 {
        writeln!(
            log,
            "{RESTART_MARK} ({} of {}) ----",
            node.restarts, node.name
        )
        .map_err(io_err("write agent log"))?;
    }
    let err = log
        .try_clone()
        .map_err(io_err("duplicate agent log handle"))?;
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{}", node.netns))
        .arg("--")
        .arg(bin)
        .arg("agent")
        .arg("--config")
        .arg(&node.config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    if std::env::var_os("RUST_LOG").is_none() {
        c.env("RUST_LOG", "info");
    }
    let child = c.spawn().map_err(|source| cmd::CmdError::Spawn {
        cmd: cmd::display(&c),
        source,
    })?;
    Ok(child.id())
}

/// Waits until every agent reports all its configured neighbours resolved, or fails
/// with the log of the first one that exited or did not get there in `timeout`.
pub fn wait_ready(
    bin: &Path,
    nodes: &[Node],
    neighbours: &[usize],
    timeout: Duration,
) -> Result<(), TestbedError> {
    let start = Instant::now();
    let mut pending: Vec<usize> = (0..nodes.len()).collect();
    let mut last = vec![String::from("no answer yet"); nodes.len()];
    loop {
        for &i in &pending {
            let node = &nodes[i];
            if let Some(pid) = node.pid
                && let Some(status) = exited(pid)
            {
                return Err(TestbedError::AgentExited {
                    node: node.name.clone(),
                    status,
                    log: node.log.clone(),
                    tail: log_tail(&node.log),
                });
            }
            last[i] = match ready(bin, node, neighbours[i]) {
                Ok(()) => String::new(),
                Err(why) => why,
            };
        }
        pending.retain(|&i| !last[i].is_empty());
        if pending.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            let node = &nodes[pending[0]];
            return Err(TestbedError::AgentNotReady {
                node: node.name.clone(),
                waited: timeout,
                detail: last[pending[0]].clone(),
                log: node.log.clone(),
                tail: log_tail(&node.log),
            });
        }
        thread::sleep(POLL);
    }
}

/// Waits until the agent `pid` of `node` answers on its control socket (`matrix status`
/// succeeds), then until it reports its `neighbours` resolved. `matrix neighbors` alone
/// is no proof of a live agent: with none running it reads the pinned maps, which a
/// killed agent leaves behind.
pub fn wait_answering(
    bin: &Path,
    node: &Node,
    neighbours: usize,
    timeout: Duration,
) -> Result<(), TestbedError> {
    let start = Instant::now();
    let mut c = Command::new(bin);
    c.args(["status", "--node", &node.pin, "--json"]);
    loop {
        if let Some(pid) = node.pid
            && let Some(status) = exited(pid)
        {
            return Err(TestbedError::AgentExited {
                node: node.name.clone(),
                status,
                log: node.log.clone(),
                tail: log_tail(&node.log),
            });
        }
        match cmd::run(&mut c) {
            Ok(_) => break,
            Err(e) if start.elapsed() >= timeout => {
                return Err(TestbedError::AgentNotReady {
                    node: node.name.clone(),
                    waited: timeout,
                    detail: e.to_string(),
                    log: node.log.clone(),
                    tail: log_tail(&node.log),
                });
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
    let left = timeout.saturating_sub(start.elapsed());
    wait_ready(bin, std::slice::from_ref(node), &[neighbours], left)
}

/// `Ok` when `matrix neighbors --node <pin> --json` lists at least `expected`
/// neighbours and all of them resolved; else why not.
fn ready(bin: &Path, node: &Node, expected: usize) -> Result<(), String> {
    let mut c = Command::new(bin);
    c.args(["neighbors", "--node", &node.pin, "--json"]);
    let out = cmd::run(&mut c).map_err(|e| e.to_string())?;
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("`{}` printed no JSON array: {e}", cmd::display(&c)))?;
    let resolved = list.iter().filter(|n| n["resolved"] == true).count();
    if resolved == list.len() && list.len() >= expected {
        Ok(())
    } else {
        Err(format!(
            "{resolved} of {expected} neighbours resolved: {}",
            serde_json::Value::Array(list)
        ))
    }
}

/// Collects `pid` if it is a child of ours that has ended (an agent that died before
/// `down` is no longer in its namespace's pid list, so `stop` never sees it).
pub fn reap(pid: u32) {
    exited(pid);
}

/// The exit status of `pid` if it has ended: reaped when it is our child, else seen
/// gone (or a zombie of another parent).
fn exited(pid: u32) -> Option<String> {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG only reads our own children's state.
    let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
    if r == pid as i32 {
        return Some(if libc::WIFEXITED(status) {
            format!("exit status {}", libc::WEXITSTATUS(status))
        } else {
            format!("killed by signal {}", libc::WTERMSIG(status))
        });
    }
    if r == 0 {
        return None;
    }
    // Not our child: look at /proc.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => Some("gone".into()),
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .filter(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
            .map(|_| "exited".into()),
    }
}

/// SIGKILLs `pid`, as a crash would end it, and waits up to `timeout` until it is gone
/// (reaped if it is our child). Returns whether it went.
pub fn kill(pid: u32, timeout: Duration) -> bool {
    // SAFETY: kill has no memory preconditions; a stale pid just fails with ESRCH.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let until = Instant::now() + timeout;
    while exited(pid).is_none() {
        if Instant::now() >= until {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

/// Sends SIGTERM to `pids`, waits up to `grace` for them to end, then SIGKILLs the
/// rest. Returns the pids that needed SIGKILL.
pub fn stop(pids: &[u32], grace: Duration) -> Vec<u32> {
    let signal = |pid: u32, sig| {
        // SAFETY: kill has no memory preconditions; a stale pid just fails with ESRCH.
        unsafe { libc::kill(pid as i32, sig) };
    };
    for &pid in pids {
        signal(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    let mut alive: Vec<u32> = pids.to_vec();
    while !alive.is_empty() && Instant::now() < deadline {
        alive.retain(|&p| exited(p).is_none());
        if !alive.is_empty() {
            thread::sleep(Duration::from_millis(50));
        }
    }
    for &pid in &alive {
        signal(pid, libc::SIGKILL);
        // Reap it if it is our child; harmless otherwise.
        let until = Instant::now() + Duration::from_secs(1);
        while exited(pid).is_none() && Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
    }
    alive
}

/// The last lines of a log file, for error messages.
pub fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL_LINES);
            if lines.is_empty() {
                "(empty)".into()
            } else {
                lines[from..].join("\n")
            }
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}

/// The part of a node's log written by its current agent: after the last restart
/// marker, or all of it when the agent was never restarted.
pub fn current_log(path: &Path) -> Result<String, TestbedError> {
    let text = std::fs::read_to_string(path).map_err(|source| TestbedError::Io {
        action: "read agent log",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(match text.rfind(RESTART_MARK) {
        Some(at) => text[at..]
            .split_once('\n')
            .map_or(String::new(), |(_, rest)| rest.to_string()),
        None => text,
    })
}
