//! Neighbours by NodeId. The programs index neighbours by slot (`NEIGHBORS`,
//! `NEIGH_BY_ADDR`, `NEIGH_STATS`, the members of every route); the facade gives a
//! neighbour a free slot when it is added, frees it when it is cleared, and rebuilds the
//! mapping from the `NEIGHBORS` entries when it opens maps, so a restarted agent finds
//! every neighbour where the programs already use it.

use std::{collections::BTreeMap, net::Ipv4Addr};

use aya::maps::MapError;
use matrix_common::{
    MAX_NEIGHBORS, NEIGHBOR_F_RESOLVED, NEIGHBOR_F_VALID, Neighbor, NeighborStats, names,
};

use super::{DataPlane, DataPlaneError, Result, map_err};
use crate::node::NodeId;

/// How this node reaches a neighbour: the two ends of their shared underlay link. The
/// neighbour's MAC is learnt apart ([`DataPlane::resolve_neighbor`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnderlayLink {
    /// Our interface on the link, the egress of every packet to the neighbour.
    pub ifindex: u32,
    /// IP MTU of that interface: encapsulated packets larger than this are dropped.
    pub mtu: u32,
    pub local_ipv4: Ipv4Addr,
    pub remote_ipv4: Ipv4Addr,
    pub local_mac: [u8; 6],
}

/// Which slot holds which neighbour, both ways.
#[derive(Debug)]
pub(super) struct Slots {
    by_node: BTreeMap<NodeId, u32>,
    by_slot: Vec<Option<NodeId>>,
}

impl Default for Slots {
    fn default() -> Self {
        Self {
            by_node: BTreeMap::new(),
            by_slot: vec![None; MAX_NEIGHBORS as usize],
        }
    }
}

impl Slots {
    pub(super) fn get(&self, node: NodeId) -> Option<u32> {
        self.by_node.get(&node).copied()
    }

    pub(super) fn node_at(&self, slot: u32) -> Option<NodeId> {
        self.by_slot.get(slot as usize).copied().flatten()
    }

    /// The lowest slot no neighbour holds.
    fn free(&self) -> Option<u32> {
        self.by_slot
            .iter()
            .position(Option::is_none)
            .map(|s| s as u32)
    }

    fn insert(&mut self, node: NodeId, slot: u32) {
        self.by_node.insert(node, slot);
        self.by_slot[slot as usize] = Some(node);
    }

    fn remove(&mut self, node: NodeId) {
        if let Some(slot) = self.by_node.remove(&node) {
            self.by_slot[slot as usize] = None;
        }
    }

    /// Held slots in slot order.
    fn iter(&self) -> impl Iterator<Item = (u32, NodeId)> + '_ {
        let held = self.by_slot.iter().enumerate();
        held.filter_map(|(slot, node)| node.map(|n| (slot as u32, n)))
    }
}

impl DataPlane {
    /// The slots held in the map. A node found in two slots (an older agent killed while
    /// it moved neighbours between slots) keeps the first; the other is free for reuse.
    pub(super) fn adopt_slots(&self) -> Result<Slots> {
        let mut slots = Slots::default();
        for (slot, n) in self.valid_slots()? {
            let node = NodeId(n.node_id);
            if slots.get(node).is_none() {
                slots.insert(node, slot);
            }
        }
        Ok(slots)
    }

    /// Every valid `NEIGHBORS` entry with its slot, as the programs see the map.
    pub(super) fn valid_slots(&self) -> Result<Vec<(u32, Neighbor)>> {
        let mut out = Vec::new();
        for slot in 0..MAX_NEIGHBORS {
            let n = self.read_slot(slot)?;
            if n.flags & NEIGHBOR_F_VALID != 0 {
                out.push((slot, n));
            }
        }
        Ok(out)
    }

    fn slot(&self, node: NodeId) -> Result<u32> {
        (self.slots.get(node)).ok_or(DataPlaneError::UnknownNeighbor { node })
    }

    fn read_slot(&self, slot: u32) -> Result<Neighbor> {
        self.neighbors
            .get(&slot, 0)
            .map_err(map_err(names::NEIGHBORS, "read", slot))
    }

    /// Writes `slot` and indexes its underlay address, so packets from it are accepted.
    fn write_slot(&mut self, slot: u32, neighbor: Neighbor) -> Result<()> {
        // Slot first: a slot is never reachable by address before it is written...
        self.neighbors
            .set(slot, neighbor, 0)
            .map_err(map_err(names::NEIGHBORS, "write", slot))?;
        // ...and the address only maps to a fully written slot.
        self.neigh_by_addr
            .insert(neighbor.remote_ipv4, slot, 0)
            .map_err(map_err(
                names::NEIGH_BY_ADDR,
                "insert",
                Ipv4Addr::from(neighbor.remote_ipv4),
            ))
    }

    /// Adds neighbour `node` in a free slot, or updates the link of a known one. A new
    /// neighbour is unresolved: no packet goes to it before [`DataPlane::resolve_neighbor`].
    /// A known one at the same address keeps its MAC, so forwarding goes on across an
    /// agent restart.
    pub fn set_neighbor(&mut self, node: NodeId, link: UnderlayLink) -> Result<()> {
        let (slot, old) = match self.slots.get(node) {
            Some(slot) => (slot, Some(self.read_slot(slot)?)),
            None => (
                (self.slots.free()).ok_or(DataPlaneError::NoFreeSlot { node })?,
                None,
            ),
        };
        let remote_ipv4 = link.remote_ipv4.octets();
        let (remote_mac, flags) = match old {
            Some(o) if o.remote_ipv4 == remote_ipv4 => (o.remote_mac, o.flags),
            _ => ([0; 6], NEIGHBOR_F_VALID),
        };
        let neighbor = Neighbor {
            node_id: node.0,
            ifindex: link.ifindex,
            mtu: link.mtu,
            flags,
            local_ipv4: link.local_ipv4.octets(),
            remote_ipv4,
            local_mac: link.local_mac,
            remote_mac,
        };
        self.write_slot(slot, neighbor)?;
        self.slots.insert(node, slot);
        Ok(())
    }

    /// Marks neighbour `node` resolved with its underlay MAC: routes through it now carry
    /// packets.
    pub fn resolve_neighbor(&mut self, node: NodeId, mac: [u8; 6]) -> Result<()> {
        let slot = self.slot(node)?;
        let mut n = self.read_slot(slot)?;
        n.remote_mac = mac;
        n.flags |= NEIGHBOR_F_RESOLVED;
        self.write_slot(slot, n)
    }

    /// Forgets neighbour `node` and frees its slot.
    pub fn clear_neighbor(&mut self, node: NodeId) -> Result<()> {
        let slot = self.slot(node)?;
        let old = self.read_slot(slot)?;
        if old.flags & NEIGHBOR_F_VALID != 0 {
            match self.neigh_by_addr.remove(&old.remote_ipv4) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => {
                    return Err(map_err(
                        names::NEIGH_BY_ADDR,
                        "remove",
                        Ipv4Addr::from(old.remote_ipv4),
                    )(e));
                }
            }
        }
        self.neighbors
            .set(slot, Neighbor::default(), 0)
            .map_err(map_err(names::NEIGHBORS, "write", slot))?;
        self.slots.remove(node);
        Ok(())
    }

    /// Whether `node` is a neighbour in the data plane.
    pub fn has_neighbor(&self, node: NodeId) -> bool {
        self.slots.get(node).is_some()
    }

    /// The map entry of neighbour `node`.
    pub fn neighbor(&self, node: NodeId) -> Result<Neighbor> {
        self.read_slot(self.slot(node)?)
    }

    /// Every neighbour with its map entry.
    pub fn neighbors(&self) -> Result<Vec<(NodeId, Neighbor)>> {
        (self.slots.iter())
            .map(|(slot, node)| Ok((node, self.read_slot(slot)?)))
            .collect()
    }

    /// Traffic with neighbour `node`, summed over CPUs.
    pub fn neighbor_stats(&self, node: NodeId) -> Result<NeighborStats> {
        self.slot_stats(self.slot(node)?)
    }

    pub(super) fn slot_stats(&self, slot: u32) -> Result<NeighborStats> {
        let per_cpu =
            self.neigh_stats
                .get(&slot, 0)
                .map_err(map_err(names::NEIGH_STATS, "read", slot))?;
        Ok(per_cpu
            .iter()
            .fold(NeighborStats::default(), |a, s| NeighborStats {
                rx_packets: a.rx_packets + s.rx_packets,
                rx_bytes: a.rx_bytes + s.rx_bytes,
                tx_packets: a.tx_packets + s.tx_packets,
                tx_bytes: a.tx_bytes + s.tx_bytes,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_given_lowest_first_and_reused_once_freed() {
        let mut slots = Slots::default();
        let (a, b, c) = (
            NodeId(0x0001_0001),
            NodeId(0x0001_0002),
            NodeId(0x0001_0003),
        );
        for node in [a, b, c] {
            let slot = slots.free().unwrap();
            slots.insert(node, slot);
        }
        assert_eq!([a, b, c].map(|n| slots.get(n)), [Some(0), Some(1), Some(2)]);
        slots.remove(b);
        assert_eq!(
            (slots.get(b), slots.node_at(1), slots.free()),
            (None, None, Some(1))
        );
        assert_eq!(slots.node_at(2), Some(c));
        assert_eq!(slots.iter().collect::<Vec<_>>(), vec![(0, a), (2, c)]);
        assert_eq!(slots.node_at(MAX_NEIGHBORS), None);
    }

    #[test]
    fn no_slot_is_free_when_every_one_is_held() {
        let mut slots = Slots::default();
        for i in 0..MAX_NEIGHBORS {
            slots.insert(NodeId(0x0100_0000 + i), i);
        }
        assert_eq!(slots.free(), None);
    }
}
