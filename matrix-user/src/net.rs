//! What the agent reads from and asks of the host network stack: interface facts from
//! sysfs, neighbour MACs from the kernel's ARP table.

use std::{
    net::{Ipv4Addr, SocketAddrV4, UdpSocket},
    process::Command,
};

use ipnet::Ipv4Net;
use matrix_common::CONTROL_PORT;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("interface {iface} does not exist in this network namespace")]
    NoInterface { iface: String },
    #[error("interface {iface}: {reason}")]
    Iproute { iface: String, reason: String },
    #[error("interface {iface}: setting MTU {mtu} failed: {reason}")]
    SetMtu {
        iface: String,
        mtu: u32,
        reason: String,
    },
}

/// Facts about one local interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
}

/// Reads an interface's facts with `ip -j link show`. Netlink answers for the network
/// namespace the agent runs in; sysfs would answer for the namespace that mounted /sys,
/// which differs when the agent is started with `nsenter --net`.
pub fn interface(iface: &str) -> Result<Interface, NetError> {
    parse_link_json(iface, &ip_json(iface, &["link"])?)
}

/// `ip -j <args> show dev <iface>`: iproute2's JSON about one interface.
fn ip_json(iface: &str, args: &[&str]) -> Result<String, NetError> {
    let args: Vec<&str> = ["-j"]
        .into_iter()
        .chain(args.iter().copied())
        .chain(["show", "dev", iface])
        .collect();
    let out = tool(iface, "ip", &args)?;
    if !out.status.success() {
        return Err(NetError::NoInterface {
            iface: iface.to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn parse_link_json(iface: &str, json: &str) -> Result<Interface, NetError> {
    let bad = |reason: &str| NetError::Iproute {
        iface: iface.to_string(),
        reason: reason.to_string(),
    };
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|_| bad("unreadable `ip -j link` output"))?;
    let link = v.get(0).ok_or_else(|| bad("no such link"))?;
    let ifindex = link["ifindex"].as_u64().ok_or_else(|| bad("no ifindex"))? as u32;
    let mtu = link["mtu"].as_u64().ok_or_else(|| bad("no mtu"))? as u32;
    let mac = link["address"]
        .as_str()
        .and_then(parse_mac)
        .ok_or_else(|| bad("no Ethernet address (matrix needs an Ethernet interface)"))?;
    Ok(Interface {
        name: iface.to_string(),
        ifindex,
        mac,
        mtu,
    })
}

/// The IPv4 addresses of an interface, with their prefix lengths (`ip -j addr`).
pub fn ipv4_addresses(iface: &str) -> Result<Vec<Ipv4Net>, NetError> {
    parse_addr_json(iface, &ip_json(iface, &["-4", "addr"])?)
}

fn parse_addr_json(iface: &str, json: &str) -> Result<Vec<Ipv4Net>, NetError> {
    let bad = |reason: &str| NetError::Iproute {
        iface: iface.to_string(),
        reason: reason.to_string(),
    };
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|_| bad("unreadable `ip -j addr` output"))?;
    let mut out = Vec::new();
    for a in v
        .get(0)
        .and_then(|l| l["addr_info"].as_array())
        .into_iter()
        .flatten()
    {
        if a["family"] != "inet" {
            continue;
        }
        let addr: Ipv4Addr = a["local"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("an address without `local`"))?;
        let len = a["prefixlen"]
            .as_u64()
            .ok_or_else(|| bad("an address without `prefixlen`"))?;
        out.push(Ipv4Net::new(addr, len as u8).map_err(|_| bad("prefix length past 32"))?);
    }
    Ok(out)
}

/// Every interface of this network namespace by ifindex (empty if iproute2 fails).
pub fn interface_names() -> std::collections::HashMap<u32, String> {
    let Ok(out) = Command::new("ip").args(["-j", "link", "show"]).output() else {
        return Default::default();
    };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l["ifindex"].as_u64()? as u32, l["ifname"].as_str()?.into())))
        .collect()
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The MAC of `addr` on `iface` from the kernel's ARP table, if resolved.
pub fn arp_lookup(addr: Ipv4Addr, iface: &str) -> Option<[u8; 6]> {
    let table = std::fs::read_to_string("/proc/net/arp").ok()?;
    parse_arp(&table, addr, iface)
}

fn parse_arp(table: &str, addr: Ipv4Addr, iface: &str) -> Option<[u8; 6]> {
    const ATF_COM: u32 = 0x2;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[0].parse::<Ipv4Addr>().ok()? != addr || f[5] != iface {
            return None;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
        if flags & ATF_COM == 0 {
            return None;
        }
        parse_mac(f[3]).filter(|m| *m != [0; 6])
    })
}

/// Makes the kernel resolve `addr` (ARP) by sending it an empty datagram on the control
/// port. The neighbour's stack may answer with ICMP unreachable; only the ARP matters.
pub fn probe(addr: Ipv4Addr) {
    if let Ok(sock) = UdpSocket::bind("0.0.0.0:0") {
        let _ = sock.send_to(&[], SocketAddrV4::new(addr, CONTROL_PORT));
    }
}

/// Pins the kernel's neighbour entry for `addr` on `iface` to `mac` (`nud permanent`):
/// ARP replies, forged or not, no longer move it. The agent does this with MACs its
/// neighbours' authenticated datagrams give, so its own control datagrams, which the
/// kernel addresses, cannot be diverted by a spoofed ARP reply either.
pub fn pin_neighbor(addr: Ipv4Addr, mac: [u8; 6], iface: &str) -> Result<(), NetError> {
    let mac = crate::dataplane::mac_string(mac);
    let addr = addr.to_string();
    iproute(
        iface,
        &[
            "neigh",
            "replace",
            &addr,
            "lladdr",
            &mac,
            "dev",
            iface,
            "nud",
            "permanent",
        ],
    )
}

/// Removes the neighbour entry for `addr` on `iface` (the kernel resolves it afresh).
pub fn unpin_neighbor(addr: Ipv4Addr, iface: &str) -> Result<(), NetError> {
    iproute(iface, &["neigh", "del", &addr.to_string(), "dev", iface])
}

/// Runs `program ARGS` about `iface` and returns what it printed and how it ended.
fn tool(iface: &str, program: &str, args: &[&str]) -> Result<std::process::Output, NetError> {
    Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetError::Iproute {
            iface: iface.to_string(),
            reason: format!("cannot run `{program}`: {e}"),
        })
}

/// Runs `ip ARGS` about `iface`; its stderr is the error.
fn iproute(iface: &str, args: &[&str]) -> Result<(), NetError> {
    let out = tool(iface, "ip", args)?;
    if !out.status.success() {
        return Err(NetError::Iproute {
            iface: iface.to_string(),
            reason: format!(
                "`ip {}`: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Turns receive VLAN offload (802.1Q and 802.1ad) off on `iface`, so tags stay in the
/// frame where XDP sees them (`ethtool -K`). Features a driver does not have are fine.
pub fn disable_rx_vlan_offload(iface: &str) -> Result<(), NetError> {
    let out = tool(
        iface,
        "ethtool",
        &["-K", iface, "rxvlan", "off", "rx-vlan-stag-hw-parse", "off"],
    )?;
    // ethtool exits non-zero when a feature is fixed on ("Could not change any device
    // features"); what matters is whether the tags still get stripped.
    let features = tool(iface, "ethtool", &["-k", iface])?;
    let text = String::from_utf8_lossy(&features.stdout);
    if text
        .lines()
        .any(|l| l.trim_start().starts_with("rx-vlan-offload: on"))
    {
        return Err(NetError::Iproute {
            iface: iface.to_string(),
            reason: format!(
                "rx-vlan-offload stays on: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Sets the MTU of `iface` (through iproute2, which every supported host has).
pub fn set_mtu(iface: &str, mtu: u32) -> Result<(), NetError> {
    let out = Command::new("ip")
        .args(["link", "set", "dev", iface, "mtu", &mtu.to_string()])
        .output()
        .map_err(|e| NetError::SetMtu {
            iface: iface.to_string(),
            mtu,
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(NetError::SetMtu {
            iface: iface.to_string(),
            mtu,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_table_parsing() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 10.200.0.2       0x1         0x2         76:1c:4b:0a:00:02     *        u0\n\
                 10.200.1.2       0x1         0x0         00:00:00:00:00:00     *        u1\n";
        assert_eq!(
            parse_arp(t, "10.200.0.2".parse().unwrap(), "u0"),
            Some([0x76, 0x1c, 0x4b, 0x0a, 0x00, 0x02])
        );
        assert_eq!(parse_arp(t, "10.200.0.2".parse().unwrap(), "u1"), None);
        assert_eq!(parse_arp(t, "10.200.1.2".parse().unwrap(), "u1"), None);
    }

    #[test]
    fn link_json_parsing() {
        let j = r#"[{"ifindex":7,"ifname":"u0","mtu":1500,"address":"76:1c:4b:0a:00:02"}]"#;
        let i = parse_link_json("u0", j).unwrap();
        assert_eq!((i.ifindex, i.mtu, i.mac[0]), (7, 1500, 0x76));
        let e = parse_link_json("tun0", r#"[{"ifindex":8,"mtu":1500}]"#).unwrap_err();
        assert!(e.to_string().contains("tun0"), "{e}");
    }

    #[test]
    fn addr_json_parsing() {
        let j = r#"[{"ifindex":7,"ifname":"u0","addr_info":[
            {"family":"inet","local":"10.200.0.1","prefixlen":24},
            {"family":"inet6","local":"fe80::1","prefixlen":64},
            {"family":"inet","local":"192.0.2.9","prefixlen":32}]}]"#;
        let a = parse_addr_json("u0", j).unwrap();
        assert_eq!(
            a,
            [
                "10.200.0.1/24".parse().unwrap(),
                "192.0.2.9/32".parse().unwrap()
            ]
        );
        assert_eq!(parse_addr_json("u0", r#"[{"ifname":"u0"}]"#).unwrap(), []);
        let e = parse_addr_json("u0", r#"[{"addr_info":[{"family":"inet"}]}]"#).unwrap_err();
        assert!(e.to_string().contains("u0"), "{e}");
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("0a:0b:0c:0d:0e:0f"),
            Some([10, 11, 12, 13, 14, 15])
        );
        assert_eq!(parse_mac("0a:0b:0c"), None);
        assert_eq!(parse_mac("0a:0b:0c:0d:0e:0f:00"), None);
    }
}
