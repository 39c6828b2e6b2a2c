//! Namespace plumbing: node and workload namespaces, veth links (or, for tapped
//! links, wire namespaces: `wire.rs`), addresses, sysctls; and the matching teardown.

use std::process::Command;

use super::{
    TestbedError,
    state::{State, Workload},
    wire,
};
use crate::cmd::{self, CmdError, ip};

/// Every named network namespace on the host.
pub fn list() -> Result<Vec<String>, CmdError> {
    let out = ip(["netns", "list"])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        // Lines look like `name (id: 3)` or just `name`.
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// Whether namespace (or pin directory) `name` belongs to testbed `prefix`:
/// `<prefix>-<node>`, `<prefix>-<node>-w<i>`, or the wire of a tapped link,
/// `<prefix>-l<k>` (topology validation keeps nodes from being named `l<digits>`).
/// Node names have no dashes, so testbed `mx` does not claim `mx-line-a`.
pub fn owned_by(prefix: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let (node, workload) = match rest.split_once('-') {
        Some((node, w)) => (node, Some(w)),
        None => (rest, None),
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if wire::parse_target(node).is_some() {
        // A wire namespace has no workloads.
        return workload.is_none();
    }
    plain(node)
        && workload.is_none_or(|w| {
            w.strip_prefix('w')
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The namespaces of testbed `prefix` that exist now.
pub fn owned(prefix: &str) -> Result<Vec<String>, CmdError> {
    Ok(list()?
        .into_iter()
        .filter(|n| owned_by(prefix, n))
        .collect())
}

/// Pids of the processes in namespace `ns`.
pub fn pids(ns: &str) -> Result<Vec<u32>, CmdError> {
    let out = ip(["netns", "pids", ns])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

pub fn delete(ns: &str) -> Result<(), CmdError> {
    ip(["netns", "del", ns]).map(drop)
}

/// Moves the calling thread (only it: the rest of the process stays where it is) into
/// namespace `ns`; sockets it opens from then on belong to that namespace.
pub fn enter(ns: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let file = std::fs::File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: setns only reads the fd, which `file` keeps open for the call;
    // CLONE_NEWNET is allowed for one thread of a multithreaded process.
    let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub(super) fn sysctl(ns: &str, settings: &[(&str, u32)]) -> Result<(), CmdError> {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, "sysctl", "-q", "-w"]);
    for (key, value) in settings {
        c.arg(format!("{key}={value}"));
    }
    cmd::run(&mut c).map(drop)
}

/// Creates every namespace, link and address of `state`. Stops at the first error and
/// leaves the cleanup to the caller (`down` removes whatever exists).
pub fn create(state: &State) -> Result<(), TestbedError> {
    for node in &state.nodes {
        let ns = node.netns.as_str();
        ip(["netns", "add", ns])?;
        ip(["-n", ns, "link", "set", "lo", "up"])?;
        let fwd = u32::from(node.forwarding);
        // Before any interface exists, so each new one inherits `default`. Loose or
        // strict reverse-path filtering would drop decapsulated packets whose source
        // is a remote workload.
        sysctl(
            ns,
            &[
                ("net.ipv4.ip_forward", fwd),
                ("net.ipv6.conf.all.forwarding", fwd),
                ("net.ipv4.conf.all.rp_filter", 0),
                ("net.ipv4.conf.default.rp_filter", 0),
            ],
        )?;
    }
    for link in &state.links {
        let ns_of = |name: &str| {
            state
                .node(name)
                .map(|n| n.netns.clone())
                .expect("links name planned nodes")
        };
        let (a, b) = (ns_of(&link.a), ns_of(&link.b));
        match &link.tap_netns {
            Some(w) => wire::create(link, w, &a, &b)?,
            // Created in a's namespace with the peer placed straight into b's, so the
            // host namespace never sees the interfaces.
            None => {
                ip([
                    "-n",
                    &a,
                    "link",
                    "add",
                    &link.a_iface,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &link.b_iface,
                    "netns",
                    &b,
                ])?;
            }
        }
        let mtu = link.mtu.to_string();
        for (ns, iface, addr) in [
            (&a, &link.a_iface, link.a_addr),
            (&b, &link.b_iface, link.b_addr),
        ] {
            ip(["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", iface])?;
            ip(["-n", ns, "link", "set", iface, "mtu", &mtu, "up"])?;
        }
    }
    for node in &state.nodes {
        for w in &node.workloads {
            create_workload(&node.netns, w)?;
        }
    }
    Ok(())
}

fn create_workload(node_ns: &str, w: &Workload) -> Result<(), CmdError> {
    let ns = w.netns.as_str();
    ip(["netns", "add", ns])?;
    ip(["-n", ns, "link", "set", "lo", "up"])?;
    ip([
        "-n", node_ns, "link", "add", &w.iface, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])?;
    // nodad: the addresses are usable at once, not after duplicate detection.
    ip([
        "-n",
        node_ns,
        "addr",
        "add",
        &format!("{}/24", w.gateway),
        "dev",
        &w.iface,
    ])?;
    ip([
        "-n",
        node_ns,
        "addr",
        "add",
        &format!("{}/64", w.gateway6),
        "dev",
        &w.iface,
        "nodad",
    ])?;
    ip(["-n", node_ns, "link", "set", &w.iface, "up"])?;
    ip([
        "-n",
        ns,
        "addr",
        "add",
        &format!("{}/24", w.addr),
        "dev",
        "eth0",
    ])?;
    ip([
        "-n",
        ns,
        "addr",
        "add",
        &format!("{}/64", w.addr6),
        "dev",
        "eth0",
        "nodad",
    ])?;
    ip([
        "-n",
        ns,
        "link",
        "set",
        "eth0",
        "mtu",
        &w.mtu.to_string(),
        "up",
    ])?;
    // gro: a veth drops frames redirected to it by XDP unless its peer has GRO on (or
    // runs an XDP program of its own). tx off: with checksum offload the workload's
    // TCP/UDP packets reach the node's XDP with only a pseudo-header checksum, which
    // encapsulation would carry to the far end as a bad checksum (ping works, TCP
    // does not); it also turns TSO off, so segments fit the MTU.
    cmd::run(Command::new("ip").args([
        "netns", "exec", ns, "ethtool", "-K", "eth0", "gro", "on", "tx", "off",
    ]))?;
    ip([
        "-n",
        ns,
        "route",
        "add",
        "default",
        "via",
        &w.gateway.to_string(),
    ])?;
    ip([
        "-n",
        ns,
        "-6",
        "route",
        "add",
        "default",
        "via",
        &w.gateway6.to_string(),
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::owned_by;

    #[test]
    fn ownership_is_by_exact_shape() {
        assert!(owned_by("mx-line", "mx-line-a"));
        assert!(owned_by("mx-line", "mx-line-a-w0"));
        assert!(owned_by("mx-line", "mx-line-r2-w12"));
        assert!(owned_by("mx-line", "mx-line-l0"));
        assert!(owned_by("mx-line", "mx-line-l12"));
        assert!(!owned_by("mx-line", "mx-line-l1-w0"));
        assert!(!owned_by("mx", "mx-line-l1"));
        assert!(!owned_by("mx", "mx-line-a"));
        assert!(!owned_by("mx-line", "mx-line2-a"));
        assert!(!owned_by("mx-line", "mx-line-"));
        assert!(!owned_by("mx-line", "mx-line-a-x0"));
        assert!(!owned_by("mx-line", "mx-line-a-w"));
        assert!(!owned_by("mxt1", "mxt12-a"));
    }
}
