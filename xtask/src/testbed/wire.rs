//! Tapped links: a link wired through a Linux bridge in a namespace of its own, so
//! that `tcpdump` can watch the overlay packets on it.
//!
//! The data plane forwards with XDP_REDIRECT and XDP_TX, which hand frames from one
//! veth's XDP program straight to the next device: AF_PACKET taps on either end of a
//! plain veth pair never see them. On a tapped link k the two node ends are veths to
//! ports `pa` and `pb` of bridge `br0` in namespace `<prefix>-l<k>`; the bridge
//! forwards through the ordinary stack, where `tcpdump -i br0` sees every frame. The
//! node ends keep their names (`u<port>`), addresses and MTU, so agent configs are the
//! same as for an untapped link.

use std::{fs, path::Path, process::Command};

use super::{PIN_ROOT, TestbedError, netns, state::Link, xdp_pass};
use crate::{
    cmd::{self, ip},
    topology,
};

/// The bridge in a wire namespace, and its two ports: `pa` is the peer of the link's
/// `a` end, `pb` of its `b` end.
pub const BRIDGE: &str = "br0";
pub const PORT_A: &str = "pa";
pub const PORT_B: &str = "pb";

/// The wire namespace of tapped link `k` of testbed `prefix`.
pub fn wire_netns(prefix: &str, k: usize) -> String {
    format!("{prefix}-l{k}")
}

/// The short name `testbed exec` takes for link `k`'s wire namespace.
pub fn target(k: usize) -> String {
    format!("l{k}")
}

/// The link index named by an exec target `l<k>`.
pub fn parse_target(target: &str) -> Option<usize> {
    if topology::is_wire_name(target) {
        target[1..].parse().ok()
    } else {
        None
    }
}

/// Creates wire namespace `wire` for `link`, with the link's `a_iface` in namespace
/// `a` and `b_iface` in `b` as the far ends of the bridge's ports, all up. Addresses
/// on the node ends are the caller's, as for an untapped link.
pub fn create(link: &Link, wire: &str, a: &str, b: &str) -> Result<(), TestbedError> {
    ip(["netns", "add", wire])?;
    ip(["-n", wire, "link", "set", "lo", "up"])?;
    // The wire is layer 2 only: without IPv6 the bridge sends no router solicitations
    // or MLD reports of its own into a capture.
    netns::sysctl(
        wire,
        &[
            ("net.ipv6.conf.all.disable_ipv6", 1),
            ("net.ipv6.conf.default.disable_ipv6", 1),
        ],
    )?;
    // No STP and no forward delay: a port forwards as soon as it is up, not after
    // 2 x 15 s of listening and learning.
    ip([
        "-n",
        wire,
        "link",
        "add",
        BRIDGE,
        "type",
        "bridge",
        "forward_delay",
        "0",
        "stp_state",
        "0",
    ])?;
    let mtu = link.mtu.to_string();
    for (node_ns, iface, port) in [(a, &link.a_iface, PORT_A), (b, &link.b_iface, PORT_B)] {
        // Created in the node's namespace with the peer placed straight into the
        // wire's, as for an untapped link.
        ip([
            "-n", node_ns, "link", "add", iface, "type", "veth", "peer", "name", port, "netns",
            wire,
        ])?;
        ip([
            "-n", wire, "link", "set", port, "mtu", &mtu, "master", BRIDGE, "up",
        ])?;
        // A veth drops frames that the XDP program on its peer redirects (or sends back
        // with XDP_TX) to it unless it runs an XDP program or has GRO on: the node ends
        // have the data plane's program, the bridge ports get GRO and, so that XDP_TX
        // frames are delivered at once, an XDP program that passes everything.
        cmd::run(
            Command::new("ip").args(["netns", "exec", wire, "ethtool", "-K", port, "gro", "on"]),
        )?;
    }
    attach_pass(wire)?;
    ip(["-n", wire, "link", "set", BRIDGE, "mtu", &mtu, "up"])?;
    Ok(())
}

/// Attaches the XDP_PASS program (`xdp_pass.rs`) to both bridge ports of `wire`. Pinned
/// under the wire's own pin directory only while `ip` attaches it (`nsenter`, not `ip
/// netns exec`, whose /sys remount hides the bpffs); the ports hold it from then on.
fn attach_pass(wire: &str) -> Result<(), TestbedError> {
    let dir = Path::new(PIN_ROOT).join(wire);
    let pin = dir.join("pass");
    let io_err = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| TestbedError::Io {
            action,
            path,
            source,
        }
    };
    fs::create_dir_all(&dir).map_err(io_err("create pin directory", &dir))?;
    xdp_pass::load_and_pin(&pin).map_err(io_err(
        "load the bridge ports' XDP_PASS program and pin it at",
        &pin,
    ))?;
    for port in [PORT_A, PORT_B] {
        cmd::run(
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{wire}"))
                .args(["--", "ip", "link", "set", "dev", port, "xdpdrv", "pinned"])
                .arg(&pin),
        )?;
    }
    fs::remove_dir_all(&dir).map_err(io_err("remove pin directory", &dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_links() {
        assert_eq!(wire_netns("mx-line", 1), "mx-line-l1");
        assert_eq!(target(12), "l12");
        assert_eq!(parse_target("l12"), Some(12));
        for no in ["l", "la", "a1", "l1a", "w1", ""] {
            assert_eq!(parse_target(no), None, "{no}");
        }
    }
}
