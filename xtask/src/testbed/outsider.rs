//! An outsider on a tapped link, for tests that play an attacker on the wire.
//!
//! [`Outsider::attach`] adds a port `px` to the bridge `br0` of tapped link k (see
//! `wire.rs`) and puts the far end of that veth, `eth0`, into a namespace of its own,
//! `<prefix>-x<k>`. The name has the shape `testbed down` owns (`netns::owned_by`), so
//! `down` deletes it, and with it both ends of the veth, like every other namespace of
//! the testbed, also when a test fails half way.
//!
//! The bridge does not learn addresses on `px`: frames the outsider sends with another
//! node's source MAC (a replayed capture) must not steal that node's entry in the
//! bridge's table, and frames for the outsider's own MAC are flooded to every port, the
//! outsider's included, so a capture there sees whatever a node mistakenly sends to it.
//!
//! [`RawSocket`] sends and captures raw Ethernet frames (AF_PACKET) on any interface of
//! any namespace: on the outsider's `eth0`, or on a bridge port of the wire namespace,
//! where a capture sees what a node sends before the bridge forwards it.

use std::{
    ffi::CString,
    fs::File,
    io,
    mem::{size_of, zeroed},
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
    time::{Duration, Instant},
};

pub use super::wire::{BRIDGE, PORT_A, PORT_B};
use super::{State, netns, wire};
use crate::cmd::{CmdError, ip};

/// The outsider's interface in its namespace.
pub const IFACE: &str = "eth0";
/// The outsider's port on the wire namespace's bridge.
pub const PORT: &str = "px";
/// Present when the kernel has br_netfilter (its switches are per namespace).
const BRIDGE_NF: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

#[derive(Debug, thiserror::Error)]
pub enum OutsiderError {
    #[error(transparent)]
    Command(#[from] CmdError),
    #[error("testbed `{prefix}` has no link {link}")]
    NoLink { prefix: String, link: usize },
    #[error(
        "link {link} ({a} - {b}) of testbed `{prefix}` is not tapped: an outsider needs its bridge (`tap = true`)"
    )]
    Untapped {
        prefix: String,
        link: usize,
        a: String,
        b: String,
    },
    #[error(
        "testbed `{prefix}` has a node named `{name}`, whose namespace {netns} an outsider would take"
    )]
    NameTaken {
        prefix: String,
        name: String,
        netns: String,
    },
    #[error("`ip -j link show {iface}` in {netns} printed no MAC address: {output}")]
    NoMac {
        netns: String,
        iface: String,
        output: String,
    },
    #[error("cannot {action} on {iface} in {netns}")]
    Socket {
        action: &'static str,
        netns: String,
        iface: String,
        #[source]
        source: io::Error,
    },
}

/// The namespace of the outsider on tapped link `k` of testbed `prefix`.
pub fn outsider_netns(prefix: &str, k: usize) -> String {
    format!("{prefix}-x{k}")
}

/// An outsider namespace on a tapped link. It has no `Drop`: the testbed's teardown
/// removes it with the rest.
#[derive(Debug, Clone)]
pub struct Outsider {
    /// `<prefix>-x<k>`.
    pub netns: String,
    /// The wire namespace `<prefix>-l<k>` whose bridge the outsider is plugged into.
    pub wire_netns: String,
    pub link: usize,
    /// The MAC of the outsider's `eth0`.
    pub mac: [u8; 6],
    pub address: Option<Ipv4Addr>,
}

impl Outsider {
    /// Plugs an outsider into the bridge of tapped link `link`, with `address` (a /24 on
    /// the link's subnet) on its `eth0`, or no address at all. IPv6 is off in its
    /// namespace, so it sends nothing on its own (no router solicitations, no MLD).
    pub fn attach(
        state: &State,
        link: usize,
        address: Option<Ipv4Addr>,
    ) -> Result<Outsider, OutsiderError> {
        let prefix = &state.prefix;
        let l = state.links.get(link).ok_or_else(|| OutsiderError::NoLink {
            prefix: prefix.clone(),
            link,
        })?;
        let wire_ns = l.tap_netns.clone().ok_or_else(|| OutsiderError::Untapped {
            prefix: prefix.clone(),
            link,
            a: l.a.clone(),
            b: l.b.clone(),
        })?;
        let ns = outsider_netns(prefix, link);
        if let Some(n) = state.nodes.iter().find(|n| n.netns == ns) {
            return Err(OutsiderError::NameTaken {
                prefix: prefix.clone(),
                name: n.name.clone(),
                netns: ns,
            });
        }
        // br_netfilter, where the kernel has it, puts bridged IPv4 frames through the IP
        // layer's checks (header checksum, lengths; bytes past the IP packet trimmed), so
        // the wire itself would drop or mend hostile frames before any node saw them. The
        // wire is layer 2 only.
        if Path::new(BRIDGE_NF).exists() {
            netns::sysctl(
                &wire_ns,
                &[
                    ("net.bridge.bridge-nf-call-iptables", 0),
                    ("net.bridge.bridge-nf-call-ip6tables", 0),
                    ("net.bridge.bridge-nf-call-arptables", 0),
                ],
            )?;
        }
        ip(["netns", "add", &ns])?;
        ip(["-n", &ns, "link", "set", "lo", "up"])?;
        netns::sysctl(
            &ns,
            &[
                ("net.ipv6.conf.all.disable_ipv6", 1),
                ("net.ipv6.conf.default.disable_ipv6", 1),
            ],
        )?;
        ip([
            "-n", &ns, "link", "add", IFACE, "type", "veth", "peer", "name", PORT, "netns",
            &wire_ns,
        ])?;
        let mtu = l.mtu.to_string();
        ip([
            "-n",
            &wire_ns,
            "link",
            "set",
            PORT,
            "mtu",
            &mtu,
            "master",
            wire::BRIDGE,
            "up",
        ])?;
        ip([
            "-n",
            &wire_ns,
            "link",
            "set",
            PORT,
            "type",
            "bridge_slave",
            "learning",
            "off",
            "flood",
            "on",
        ])?;
        if let Some(addr) = address {
            ip([
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                IFACE,
            ])?;
        }
        ip(["-n", &ns, "link", "set", IFACE, "mtu", &mtu, "up"])?;
        Ok(Outsider {
            mac: mac_of(&ns, IFACE)?,
            netns: ns,
            wire_netns: wire_ns,
            link,
            address,
        })
    }

    /// A socket that sends raw frames out of the outsider's `eth0`.
    pub fn sender(&self) -> Result<RawSocket, OutsiderError> {
        RawSocket::sender(&self.netns, IFACE)
    }

    /// A capture of every frame the outsider's `eth0` receives from now on.
    pub fn capture(&self) -> Result<RawSocket, OutsiderError> {
        RawSocket::capture(&self.netns, IFACE)
    }
}

/// The MAC address of `iface` in namespace `ns`.
pub fn mac_of(ns: &str, iface: &str) -> Result<[u8; 6], OutsiderError> {
    let out = ip(["-n", ns, "-j", "link", "show", "dev", iface])?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let no_mac = || OutsiderError::NoMac {
        netns: ns.to_string(),
        iface: iface.to_string(),
        output: text.clone(),
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| no_mac())?;
    v[0]["address"]
        .as_str()
        .and_then(parse_mac)
        .ok_or_else(no_mac)
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// A frame a [`RawSocket`] captured.
#[derive(Debug, Clone)]
pub struct Captured {
    pub bytes: Vec<u8>,
    /// The interface sent it (a capture sees both directions).
    pub outgoing: bool,
}

/// An AF_PACKET socket bound to one interface of one namespace.
#[derive(Debug)]
pub struct RawSocket {
    fd: OwnedFd,
    netns: String,
    iface: String,
}

impl RawSocket {
    /// A socket that only sends (it is bound to no protocol, so it receives nothing).
    pub fn sender(ns: &str, iface: &str) -> Result<RawSocket, OutsiderError> {
        Self::open(ns, iface, 0)
    }

    /// A socket that receives every frame `iface` sends or receives from now on.
    pub fn capture(ns: &str, iface: &str) -> Result<RawSocket, OutsiderError> {
        Self::open(ns, iface, libc::ETH_P_ALL as u16)
    }

    fn open(ns: &str, iface: &str, protocol: u16) -> Result<RawSocket, OutsiderError> {
        let err = |action, source| OutsiderError::Socket {
            action,
            netns: ns.to_string(),
            iface: iface.to_string(),
            source,
        };
        let (fd, ifindex) = in_netns(ns, || {
            // Protocol 0 at creation: nothing is received before the bind picks one
            // interface.
            // SAFETY: plain socket(2) call; the fd is owned right away.
            let raw =
                unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `raw` is a fresh fd that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let name = CString::new(iface).map_err(io::Error::other)?;
            // SAFETY: `name` is a valid NUL-terminated string.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if ifindex == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok((fd, ifindex))
        })
        .map_err(|e| err("open an AF_PACKET socket", e))?;
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol.to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a sockaddr_ll of the size passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            return Err(err("bind an AF_PACKET socket", io::Error::last_os_error()));
        }
        Ok(RawSocket {
            fd,
            netns: ns.to_string(),
            iface: iface.to_string(),
        })
    }

    /// Sends one frame as is: Ethernet header first, no padding added.
    pub fn send(&self, frame: &[u8]) -> Result<(), OutsiderError> {
        // SAFETY: `frame` is valid for reads of its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(self.error("send a frame", io::Error::last_os_error()));
        }
        if n as usize != frame.len() {
            return Err(self.error(
                "send a frame",
                io::Error::other(format!("sent {n} of {} bytes", frame.len())),
            ));
        }
        Ok(())
    }

    /// The next frame captured within `timeout`, if any.
    pub fn recv(&self, timeout: Duration) -> Result<Option<Captured>, OutsiderError> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(self.error("poll", e));
            }
            if r == 0 {
                return Ok(None);
            }
            // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
            let mut from: libc::sockaddr_ll = unsafe { zeroed() };
            let mut from_len = size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: `buf` and `from` are valid for writes of the sizes passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut from).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    continue;
                }
                return Err(self.error("receive a frame", e));
            }
            return Ok(Some(Captured {
                bytes: buf[..n as usize].to_vec(),
                outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
            }));
        }
    }

    /// Every frame captured so far, without waiting.
    pub fn drain(&self) -> Result<Vec<Captured>, OutsiderError> {
        let mut out = Vec::new();
        while let Some(c) = self.recv(Duration::ZERO)? {
            out.push(c);
        }
        Ok(out)
    }

    fn error(&self, action: &'static str, source: io::Error) -> OutsiderError {
        OutsiderError::Socket {
            action,
            netns: self.netns.clone(),
            iface: self.iface.clone(),
            source,
        }
    }
}

/// Runs `f` on a thread that has entered network namespace `ns`: sockets it opens stay
/// in `ns` whichever thread uses them later.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let file = File::open(format!("/run/netns/{ns}"))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on this thread only; the fd is valid for the call.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outsider_namespaces_are_the_testbeds() {
        // `testbed down` removes what `owned_by` claims: the outsider must be one of them.
        assert_eq!(outsider_netns("mx-line", 1), "mx-line-x1");
        assert!(netns::owned_by("mx-line", &outsider_netns("mx-line", 1)));
        assert!(!netns::owned_by("mx", &outsider_netns("mx-line", 1)));
    }

    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("02:00:0a:FF:00:01"),
            Some([2, 0, 0x0a, 0xff, 0, 1])
        );
        for bad in [
            "",
            "02:00:0a:ff:00",
            "02:00:0a:ff:00:01:02",
            "zz:00:0a:ff:00:01",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
