//! Routes: NodeId prefixes to weighted next hops, named by neighbour NodeId.

use aya::maps::lpm_trie::Key;
use matrix_common::{MAX_NEXT_HOPS, NextHopSet, names};

use super::{DataPlane, DataPlaneError, Result, map_err};
use crate::node::{NodeId, NodePrefix};

/// One next hop of a route read back from the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteHop {
    /// `None` when no neighbour holds the slot (a route left behind by its neighbour).
    pub node: Option<NodeId>,
    /// The neighbour's slot, for display (`matrix routes --json` shows it).
    pub slot: u32,
    pub weight: u32,
}

/// A route as read back from the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: NodePrefix,
    pub next_hops: Vec<RouteHop>,
}

fn key(dst: NodePrefix) -> Key<[u8; 4]> {
    Key::new(dst.len, dst.id.0.to_be_bytes())
}

impl DataPlane {
    /// The set the programs read for `next_hops`: every member a neighbour, at most
    /// [`MAX_NEXT_HOPS`] of them.
    fn next_hop_set(&self, dst: NodePrefix, next_hops: &[(NodeId, u32)]) -> Result<NextHopSet> {
        if next_hops.len() > MAX_NEXT_HOPS {
            let count = next_hops.len();
            return Err(DataPlaneError::TooManyNextHops { dst, count });
        }
        // A fixed array, not a Vec: route writes are the agent's hot path.
        let mut members = [(0, 0); MAX_NEXT_HOPS];
        for (m, &(node, weight)) in members.iter_mut().zip(next_hops) {
            let slot =
                (self.slots.get(node)).ok_or(DataPlaneError::UnknownNextHop { dst, node })?;
            *m = (slot, weight);
        }
        Ok(NextHopSet::new(&members[..next_hops.len()]))
    }

    /// Installs or replaces the route of `dst` through `next_hops` (neighbour, weight) in
    /// one map update, so the old set serves packets until the new one is in place.
    pub fn install_route(&mut self, dst: NodePrefix, next_hops: &[(NodeId, u32)]) -> Result<()> {
        let set = self.next_hop_set(dst, next_hops)?;
        self.routes
            .insert(&key(dst), set, 0)
            .map_err(map_err(names::ROUTES, "insert", dst))
    }

    /// Installs or replaces many routes in order, each as [`DataPlane::install_route`]
    /// does: one map update per route, so every route is whole at every instant. Not one
    /// `BPF_MAP_UPDATE_BATCH` call: the kernel takes it on the LPM trie, but aya 0.14 has
    /// no batch call and this crate forbids unsafe code (the `map_update` bench times
    /// both). Stops at the first failure, with the routes before it installed; returns
    /// how many were written.
    pub fn install_routes<H>(
        &mut self,
        routes: impl IntoIterator<Item = (NodePrefix, H)>,
    ) -> Result<usize>
    where
        H: AsRef<[(NodeId, u32)]>,
    {
        let mut written = 0;
        for (dst, next_hops) in routes {
            self.install_route(dst, next_hops.as_ref())?;
            written += 1;
        }
        Ok(written)
    }

    pub fn remove_route(&mut self, dst: NodePrefix) -> Result<()> {
        self.routes
            .remove(&key(dst))
            .map_err(map_err(names::ROUTES, "remove", dst))
    }

    /// Every route, by destination, its next hops named by neighbour.
    pub fn routes(&self) -> Result<Vec<RouteEntry>> {
        let mut out = Vec::new();
        for item in self.routes.iter() {
            let (key, set) = item.map_err(map_err(names::ROUTES, "iterate", "-"))?;
            let members = &set.hops[..(set.count as usize).min(MAX_NEXT_HOPS)];
            out.push(RouteEntry {
                dst: NodePrefix {
                    id: NodeId(u32::from_be_bytes(key.data())),
                    len: key.prefix_len(),
                },
                next_hops: members
                    .iter()
                    .map(|h| RouteHop {
                        node: self.slots.node_at(h.neighbor),
                        slot: h.neighbor,
                        weight: h.weight,
                    })
                    .collect(),
            });
        }
        out.sort_by_key(|r| r.dst);
        Ok(out)
    }
}
