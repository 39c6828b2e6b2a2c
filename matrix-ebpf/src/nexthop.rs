//! The next-hop step shared by transit and encapsulation: NodeId -> route -> member by
//! flow hash -> neighbour.

use aya_ebpf::btf_maps::lpm_trie::Key;
use matrix_common::{DROP_NEIGHBOR_DOWN, DROP_NO_ROUTE, Neighbor};

use crate::maps::{NEIGHBORS, ROUTES};

/// The chosen neighbour: its slot (for counters) and a copy of its entry.
pub struct Hop {
    pub slot: u32,
    pub neighbor: Neighbor,
}

/// Longest-prefix lookup of `dst_node` and choice of one member by `flow_hash`.
/// `Err` carries the drop reason.
#[inline(always)]
pub fn next_hop(dst_node: u32, flow_hash: u16) -> Result<Hop, u32> {
    let key = Key::new(32, dst_node.to_be_bytes());
    let set = ROUTES.get(&key).ok_or(DROP_NO_ROUTE)?;
    let slot = set.pick(flow_hash).ok_or(DROP_NO_ROUTE)?;
    let neighbor = *NEIGHBORS.get(slot).ok_or(DROP_NO_ROUTE)?;
    if !neighbor.usable() {
        return Err(DROP_NEIGHBOR_DOWN);
    }
    Ok(Hop { slot, neighbor })
}
