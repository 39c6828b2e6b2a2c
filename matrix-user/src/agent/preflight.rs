//! What the agent checks of the host before it loads or attaches anything, so that a
//! configuration the host cannot honour stops it with a clear error and nothing to undo:
//! each underlay address is on its interface, each neighbour is on a subnet of the
//! interface it is reached through, and the cluster key file is readable and long enough.

use std::{collections::HashMap, net::Ipv4Addr};

use ipnet::Ipv4Net;

use crate::{config::Config, net};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreflightError {
    #[error(
        "`underlay[{index}].address` = \"{address}\" is not an address of interface {iface} (it has {has})"
    )]
    UnderlayAddress {
        index: usize,
        address: Ipv4Addr,
        iface: String,
        has: String,
    },
    #[error(
        "`neighbor[{index}].address` = \"{address}\" is on no subnet of interface {iface} ({has}): it could only be reached through a router, and matrix neighbours are one link apart"
    )]
    NeighborSubnet {
        index: usize,
        address: Ipv4Addr,
        iface: String,
        has: String,
    },
    #[error("`neighbor[{index}].address` = \"{address}\" is this node's own address on {iface}")]
    NeighborIsSelf {
        index: usize,
        address: Ipv4Addr,
        iface: String,
    },
}

/// Checks the configuration against the host; returns the cluster key when adaptive
/// routing is configured.
pub(super) fn check(config: &Config) -> anyhow::Result<Option<Vec<u8>>> {
    let mut addrs = HashMap::new();
    for u in &config.underlay {
        addrs.insert(u.iface.clone(), net::ipv4_addresses(&u.iface)?);
    }
    check_addresses(config, &addrs)?;
    Ok(match &config.routing {
        Some(r) => Some(r.read_key()?),
        None => None,
    })
}

/// The address checks, on the interface addresses the host reported.
pub(super) fn check_addresses(
    config: &Config,
    addrs: &HashMap<String, Vec<Ipv4Net>>,
) -> Result<(), PreflightError> {
    let of = |iface: &str| addrs.get(iface).map(Vec::as_slice).unwrap_or(&[]);
    let list = |nets: &[Ipv4Net]| {
        if nets.is_empty() {
            return "no IPv4 address".to_string();
        }
        nets.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (index, u) in config.underlay.iter().enumerate() {
        let nets = of(&u.iface);
        if !nets.iter().any(|n| n.addr() == u.address) {
            return Err(PreflightError::UnderlayAddress {
                index,
                address: u.address,
                iface: u.iface.clone(),
                has: list(nets),
            });
        }
    }
    for (index, n) in config.neighbors.iter().enumerate() {
        let nets = of(&n.iface);
        if nets.iter().any(|net| net.addr() == n.address) {
            return Err(PreflightError::NeighborIsSelf {
                index,
                address: n.address,
                iface: n.iface.clone(),
            });
        }
        if !nets.iter().any(|net| net.contains(&n.address)) {
            return Err(PreflightError::NeighborSubnet {
                index,
                address: n.address,
                iface: n.iface.clone(),
                has: list(nets),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
node = "0.1"
[[underlay]]
iface = "u0"
address = "10.200.0.1"
[[underlay]]
iface = "u1"
address = "10.200.1.1"
[[neighbor]]
node = "0.2"
address = "10.200.0.2"
iface = "u0"
[[neighbor]]
node = "0.3"
address = "10.200.1.2"
iface = "u1"
"#;

    fn host(u0: &[&str], u1: &[&str]) -> HashMap<String, Vec<Ipv4Net>> {
        let nets = |l: &[&str]| l.iter().map(|s| s.parse().unwrap()).collect();
        HashMap::from([("u0".into(), nets(u0)), ("u1".into(), nets(u1))])
    }

    fn err(u0: &[&str], u1: &[&str]) -> String {
        let c = Config::parse(CONFIG).unwrap();
        check_addresses(&c, &host(u0, u1)).unwrap_err().to_string()
    }

    #[test]
    fn a_host_that_fits_passes() {
        let c = Config::parse(CONFIG).unwrap();
        assert_eq!(
            check_addresses(&c, &host(&["10.200.0.1/24"], &["10.200.1.1/30"])),
            Ok(())
        );
    }

    #[test]
    fn each_mismatch_names_the_field_value_and_interface() {
        let e = err(&["10.200.9.1/24"], &["10.200.1.1/24"]);
        assert!(
            e.contains("`underlay[0].address` = \"10.200.0.1\" is not an address of interface u0 (it has 10.200.9.1/24)"),
            "{e}"
        );
        let e = err(&["10.200.0.1/24"], &[]);
        assert!(
            e.contains("`underlay[1].address`") && e.contains("no IPv4 address"),
            "{e}"
        );
        // u1 holds its address on a /32: 0.3 at 10.200.1.2 is on no subnet of it.
        let e = err(&["10.200.0.1/24"], &["10.200.1.1/32"]);
        assert!(
            e.contains("`neighbor[1].address` = \"10.200.1.2\" is on no subnet of interface u1 (10.200.1.1/32)"),
            "{e}"
        );
        let e = err(&["10.200.0.1/24", "10.200.0.2/24"], &["10.200.1.1/24"]);
        assert!(
            e.contains("`neighbor[0].address` = \"10.200.0.2\" is this node's own address"),
            "{e}"
        );
    }
}
