//! Destinations as the strategies see them: a host of this node's zone (`/32`) or a
//! whole other zone (`/16`). On the wire (ants, Q estimates) a zone is written `zone.0`;
//! a receiver tells the two apart by comparing the zone with its own, which works
//! because no node ever routes to a single host of another zone.

use crate::{
    neighbor::NeighborTable,
    node::{NodeId, NodePrefix},
};

/// The destination key `id` stands for at a node of zone `here_zone`.
pub(crate) fn from_wire(id: NodeId, here_zone: u32) -> NodePrefix {
    if id.zone() == here_zone {
        NodePrefix::host(id)
    } else {
        NodePrefix::of_zone(id.zone())
    }
}

/// A destination key as written in messages.
pub(crate) fn to_wire(dest: NodePrefix) -> NodeId {
    dest.id
}

/// Whether a node of `here` has reached the destination written `dst` by an ant from a
/// node of `src_zone`.
pub(crate) fn reached(here: NodeId, dst: NodeId, src_zone: u32) -> bool {
    here == dst || (dst.zone() != src_zone && here.zone() == dst.zone())
}

/// Live neighbours a route to `dest` may use: same-zone ones only for a host of our zone
/// (a zone's hosts are reached inside the zone), any for another zone.
pub(crate) fn eligible(me: NodeId, dest: NodePrefix, neighbors: &NeighborTable) -> Vec<NodeId> {
    neighbors
        .alive_ids()
        .filter(|n| dest.len < 32 || n.zone() == me.zone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_arrival() {
        let h = NodeId::new(1, 5);
        assert_eq!(from_wire(h, 1), NodePrefix::host(h));
        assert_eq!(from_wire(h, 2), NodePrefix::of_zone(1));
        assert_eq!(to_wire(NodePrefix::of_zone(3)), NodeId::new(3, 0));
        assert!(reached(NodeId::new(3, 9), NodeId::new(3, 0), 1));
        assert!(!reached(NodeId::new(1, 9), NodeId::new(1, 2), 1));
        assert!(reached(NodeId::new(1, 2), NodeId::new(1, 2), 1));
    }
}
