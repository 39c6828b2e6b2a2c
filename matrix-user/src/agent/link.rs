//! What the kernel tells of the underlay links: carrier and speed.
//!
//! Carrier watch: link notifications from rtnetlink (`RTMGRP_LINK`) for the underlay
//! interfaces. A neighbour behind an interface that loses carrier is declared dead at
//! once, not after `dead_count` missed hellos; when carrier returns it is probed at once.
//! Hellos stay the only detector for failures behind a switch, where carrier stays up.
//!
//! Speed: the ethtool ioctl, so a link's load is priced against what it can carry
//! rather than one assumed capacity for every link.

use std::{
    collections::HashMap,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use tokio::io::{Interest, unix::AsyncFd};

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;

/// One link notification: interface `ifindex` has (or has not) carrier. A deleted link
/// has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkChange {
    pub ifindex: u32,
    pub carrier: bool,
}

/// Parses a datagram of rtnetlink messages; everything but link messages is skipped, and
/// a truncated message ends the parse.
pub fn parse(mut buf: &[u8]) -> Vec<LinkChange> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(buf[4..6].try_into().expect("2 bytes"));
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        let body = &buf[NLMSG_HDRLEN..len];
        if matches!(kind, RTM_NEWLINK | RTM_DELLINK) && body.len() >= IFINFOMSG_LEN {
            let ifindex = i32::from_ne_bytes(body[4..8].try_into().expect("4 bytes"));
            let flags = u32::from_ne_bytes(body[8..12].try_into().expect("4 bytes"));
            if let Ok(ifindex) = u32::try_from(ifindex) {
                out.push(LinkChange {
                    ifindex,
                    carrier: kind == RTM_NEWLINK
                        && flags & (IFF_UP | IFF_LOWER_UP) == (IFF_UP | IFF_LOWER_UP),
                });
            }
        }
        // Messages are 4-byte aligned.
        let next = (len + 3) & !3;
        buf = buf.get(next..).unwrap_or_default();
    }
    out
}

const ETHTOOL_GSET: u32 = 1;
/// `struct ethtool_cmd`: 44 bytes; `speed` (low 16 bits) at byte 12, `speed_hi` at 28.
const ETHTOOL_CMD_LEN: usize = 44;

/// The speed of interface `iface` in Mbit/s as its driver reports it; `None` when the
/// driver reports none (or an unknown one) or the interface does not exist.
pub fn speed_mbps(iface: &str) -> Option<u32> {
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: plain socket(2); the descriptor is owned from here on.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut cmd = [0u32; ETHTOOL_CMD_LEN / 4];
    cmd[0] = ETHTOOL_GSET;
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = cmd.as_mut_ptr().cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GSET writes at most one ethtool_cmd into `cmd`,
    // which outlives the call; `ifr` names the interface (NUL-terminated: zeroed above).
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) };
    if rc < 0 {
        return None;
    }
    let bytes: Vec<u8> = cmd.iter().flat_map(|w| w.to_ne_bytes()).collect();
    speed_of(&bytes)
}

/// The speed an ethtool_cmd holds; `None` for 0 and SPEED_UNKNOWN.
fn speed_of(cmd: &[u8]) -> Option<u32> {
    let lo = u16::from_ne_bytes([cmd[12], cmd[13]]);
    let hi = u16::from_ne_bytes([cmd[28], cmd[29]]);
    let speed = u32::from(hi) << 16 | u32::from(lo);
    (speed != 0 && speed != u32::MAX && speed != u32::from(u16::MAX)).then_some(speed)
}

/// Watches the carrier of a set of interfaces.
pub struct CarrierWatch {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
    /// Last known carrier of each watched interface (absent: not yet known).
    state: HashMap<u32, Option<bool>>,
    /// Times the kernel dropped notifications because the socket buffer was full.
    pub overruns: u64,
}

impl CarrierWatch {
    /// Subscribes to link notifications and asks for a dump of every link, so the first
    /// [`next`](Self::next) reports interfaces that are already down.
    pub fn open(ifindexes: impl IntoIterator<Item = u32>) -> io::Result<Self> {
        // SAFETY: plain socket(2); the descriptor is owned from here on.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = libc::RTMGRP_LINK as u32;
        // SAFETY: `addr` is a valid sockaddr_nl of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        const REQ_LEN: usize = NLMSG_HDRLEN + IFINFOMSG_LEN;
        let mut req = [0u8; REQ_LEN];
        req[0..4].copy_from_slice(&(REQ_LEN as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&1u32.to_ne_bytes());
        req[NLMSG_HDRLEN] = libc::AF_UNSPEC as u8;
        // SAFETY: sending from a valid buffer of the length passed; the kernel is the
        // default destination of a netlink socket.
        let sent = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the OwnedFd is open and moves into the AsyncFd, which alone owns it
        // from here on, so it stays the same descriptor until dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::other)?;
        Ok(Self {
            fd,
            buf: vec![0; 32 * 1024],
            state: ifindexes.into_iter().map(|i| (i, None)).collect(),
            overruns: 0,
        })
    }

    /// Waits for carrier changes of watched interfaces. The first report of an
    /// interface counts as a change only when it has no carrier.
    pub async fn next(&mut self) -> io::Result<Vec<LinkChange>> {
        loop {
            let mut guard = self.fd.readable().await?;
            let got = guard.try_io(|fd| {
                // SAFETY: receiving into a valid buffer of the length passed.
                let n = unsafe {
                    libc::recv(
                        fd.as_raw_fd(),
                        self.buf.as_mut_ptr().cast(),
                        self.buf.len(),
                        0,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            let n = match got {
                Err(_would_block) => continue,
                Ok(Ok(n)) => n,
                // The kernel dropped notifications for a full socket buffer: what was
                // missed is lost, the hello timers still cover it.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.overruns += 1;
                    tracing::warn!("carrier watch: notifications lost (socket buffer full)");
                    continue;
                }
                Ok(Err(e)) => return Err(e),
            };
            let found = changes(&mut self.state, parse(&self.buf[..n]));
            if !found.is_empty() {
                return Ok(found);
            }
        }
    }
}

/// Keeps the reports of watched interfaces that change what `state` knows of them, and
/// records them. The first report of an interface is a change only when it has no
/// carrier.
fn changes(state: &mut HashMap<u32, Option<bool>>, reports: Vec<LinkChange>) -> Vec<LinkChange> {
    let mut out = Vec::new();
    for r in reports {
        let Some(known) = state.get_mut(&r.ifindex) else {
            continue;
        };
        let changed = match *known {
            None => !r.carrier,
            Some(was) => was != r.carrier,
        };
        *known = Some(r.carrier);
        if changed {
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTM_NEWLINK/DELLINK message with only the ifinfomsg, plus `attrs` bytes of
    /// attributes (which the parse skips).
    fn link_msg(kind: u16, ifindex: i32, flags: u32, attrs: usize) -> Vec<u8> {
        let len = NLMSG_HDRLEN + IFINFOMSG_LEN + attrs;
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&[0, 0, 1, 0]); // family, pad, type ARPHRD_ETHER
        m.extend_from_slice(&ifindex.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.resize(len, 0xab);
        m.resize((len + 3) & !3, 0);
        m
    }

    #[test]
    fn link_messages_give_carrier() {
        let up = IFF_UP | IFF_LOWER_UP | 0x1000;
        let mut buf = link_msg(RTM_NEWLINK, 7, up, 5);
        buf.extend(link_msg(RTM_NEWLINK, 8, IFF_UP, 0)); // admin up, no carrier
        buf.extend(link_msg(24, 9, up, 12)); // RTM_NEWROUTE: skipped
        buf.extend(link_msg(RTM_NEWLINK, 10, IFF_LOWER_UP, 0)); // admin down
        buf.extend(link_msg(RTM_DELLINK, 11, up, 0));
        assert_eq!(
            parse(&buf),
            [(7, true), (8, false), (10, false), (11, false)]
                .map(|(ifindex, carrier)| LinkChange { ifindex, carrier })
        );
    }

    #[test]
    fn bad_datagrams_end_the_parse() {
        let good = link_msg(RTM_NEWLINK, 3, IFF_UP | IFF_LOWER_UP, 0);
        // Truncated: the header claims more than the datagram holds.
        assert!(parse(&good[..20]).is_empty());
        let mut short_len = good.clone();
        short_len[0..4].copy_from_slice(&4u32.to_ne_bytes());
        assert!(parse(&short_len).is_empty());
        // A link message too short for its ifinfomsg is skipped, not read past.
        let mut tiny = link_msg(RTM_NEWLINK, 4, 0, 0);
        tiny.truncate(NLMSG_HDRLEN + 8);
        tiny[0..4].copy_from_slice(&((NLMSG_HDRLEN + 8) as u32).to_ne_bytes());
        tiny.extend(&good);
        assert_eq!(
            parse(&tiny),
            [LinkChange {
                ifindex: 3,
                carrier: true
            }]
        );
        assert!(parse(&[]).is_empty());
    }

    #[test]
    fn speed_comes_from_both_halves() {
        let cmd = |lo: u16, hi: u16| {
            let mut c = [0u8; ETHTOOL_CMD_LEN];
            c[12..14].copy_from_slice(&lo.to_ne_bytes());
            c[28..30].copy_from_slice(&hi.to_ne_bytes());
            c
        };
        assert_eq!(speed_of(&cmd(10_000, 0)), Some(10_000));
        // 400 Gbit/s does not fit 16 bits.
        assert_eq!(speed_of(&cmd(0x1a80, 0x6)), Some(400_000));
        assert_eq!(speed_of(&cmd(0, 0)), None);
        assert_eq!(speed_of(&cmd(0xffff, 0xffff)), None, "SPEED_UNKNOWN");
        assert_eq!(speed_of(&cmd(0xffff, 0)), None, "legacy unknown");
    }

    #[test]
    fn only_changes_of_watched_links_are_reported() {
        let mut state = HashMap::from([(3, None), (4, None)]);
        let mut watch = |reports: &[(u32, bool)]| {
            let reports = reports
                .iter()
                .map(|&(ifindex, carrier)| LinkChange { ifindex, carrier })
                .collect();
            changes(&mut state, reports)
                .into_iter()
                .map(|c| (c.ifindex, c.carrier))
                .collect::<Vec<_>>()
        };
        // First reports: only a link already down counts; interface 5 is not watched.
        assert_eq!(watch(&[(3, true), (4, false), (5, false)]), [(4, false)]);
        assert_eq!(watch(&[(3, true), (4, false)]), []);
        assert_eq!(watch(&[(3, false), (4, true)]), [(3, false), (4, true)]);
    }
}
