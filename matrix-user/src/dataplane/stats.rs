//! Counters read back from the maps, in the shape `matrix stats --json` prints.

use std::{collections::BTreeMap, net::Ipv4Addr};

use matrix_common::{DROP_NAMES, NEIGHBOR_F_RESOLVED, PATH_NAMES, VERDICT_NAMES};
use serde::Serialize;

use super::{DataPlane, Result};
use crate::node::NodeId;

/// One neighbour with its traffic counters.
#[derive(Clone, Debug, Serialize)]
pub struct NeighborRow {
    pub slot: u32,
    pub node: String,
    pub address: Ipv4Addr,
    pub ifindex: u32,
    pub mac: String,
    pub resolved: bool,
    pub mtu: u32,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// Every counter of one node: verdicts by XDP action, packets by path, drops by reason.
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    pub verdicts: BTreeMap<&'static str, u64>,
    pub paths: BTreeMap<&'static str, u64>,
    pub drops: BTreeMap<&'static str, u64>,
    pub neighbors: Vec<NeighborRow>,
}

pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl DataPlane {
    /// Every valid `NEIGHBORS` entry in slot order, with its traffic.
    pub fn neighbor_rows(&self) -> Result<Vec<NeighborRow>> {
        let mut rows = Vec::new();
        for (slot, n) in self.valid_slots()? {
            let s = self.slot_stats(slot)?;
            rows.push(NeighborRow {
                slot,
                node: NodeId(n.node_id).to_string(),
                address: Ipv4Addr::from(n.remote_ipv4),
                ifindex: n.ifindex,
                mac: mac_string(n.remote_mac),
                resolved: n.flags & NEIGHBOR_F_RESOLVED != 0,
                mtu: n.mtu,
                rx_packets: s.rx_packets,
                rx_bytes: s.rx_bytes,
                tx_packets: s.tx_packets,
                tx_bytes: s.tx_bytes,
            });
        }
        Ok(rows)
    }

    pub fn stats(&self) -> Result<Stats> {
        let c = self.counters()?;
        let pick = |table: &[(u32, &'static str)]| {
            table
                .iter()
                .map(|(slot, name)| (*name, c[*slot as usize]))
                .collect::<BTreeMap<_, _>>()
        };
        Ok(Stats {
            verdicts: pick(&VERDICT_NAMES),
            paths: pick(&PATH_NAMES),
            drops: pick(&DROP_NAMES),
            neighbors: self.neighbor_rows()?,
        })
    }
}
