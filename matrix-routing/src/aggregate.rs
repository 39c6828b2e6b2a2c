//! Route budget: when more routes are wanted than `max_routes`, routes to hosts of our
//! zone are merged into coarser prefixes, from /31 down to the zone prefix, each
//! aggregate taking the next-hop set most of its hosts share. Hosts with another set
//! keep their own (longer) route, which longest-prefix match prefers. Merging stops as
//! soon as the table fits, so no more precision is given up than the budget asks.
//!
//! An aggregate also covers hosts that have no route (unknown, unreachable, or this node,
//! which the data plane delivers locally before any lookup); their packets follow the
//! aggregate and the hop limit bounds the damage.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    node::{NodeId, NodePrefix, ZONE_BITS},
    routes::{Route, quantise},
};

/// Merges routes of `zone` until at most `max` remain (or the zone is one prefix).
pub(crate) fn to_budget(
    zone: u32,
    mut routes: BTreeMap<NodePrefix, Route>,
    max: usize,
) -> BTreeMap<NodePrefix, Route> {
    for len in (ZONE_BITS..32).rev() {
        if routes.len() <= max {
            break;
        }
        // Own-zone routes finer than `len`, by the `len` prefix covering them.
        let mut groups: BTreeMap<NodePrefix, Vec<NodePrefix>> = BTreeMap::new();
        for dst in routes.keys().filter(|d| d.id.zone() == zone && d.len > len) {
            groups
                .entry(NodePrefix::covering(dst.id, len))
                .or_default()
                .push(*dst);
        }
        let mut plans = Vec::new();
        for (cover, members) in groups {
            if members.len() < 2 || routes.contains_key(&cover) {
                continue;
            }
            // The most common member set (ties: the smallest set, for determinism).
            let mut by_set: BTreeMap<BTreeSet<NodeId>, Vec<NodePrefix>> = BTreeMap::new();
            for m in members {
                let set = routes[&m].next_hops.iter().map(|e| e.0).collect();
                by_set.entry(set).or_default().push(m);
            }
            let (_, merged) = by_set
                .into_iter()
                .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(&a.0)))
                .expect("a group has members");
            if merged.len() >= 2 {
                plans.push((merged.len() - 1, cover, merged));
            }
        }
        plans.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, cover, merged) in plans {
            if routes.len() <= max {
                break;
            }
            // The aggregate's weights: the members' weights summed, re-quantised.
            let mut sum: BTreeMap<NodeId, f64> = BTreeMap::new();
            for m in &merged {
                let r = routes.remove(m).expect("planned from the table");
                let total: f64 = r.next_hops.iter().map(|e| f64::from(e.1)).sum();
                for (n, w) in r.next_hops {
                    *sum.entry(n).or_default() += f64::from(w) / total.max(1.0);
                }
            }
            let hops: Vec<(NodeId, f64)> = sum.into_iter().collect();
            routes.insert(
                cover,
                Route {
                    next_hops: quantise(&hops, |_| true),
                    aggregate: true,
                },
            );
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(hops: &[u32]) -> Route {
        Route {
            next_hops: hops.iter().map(|h| (NodeId::new(1, *h), 1)).collect(),
            aggregate: false,
        }
    }

    #[test]
    fn merges_only_as_far_as_the_budget_needs() {
        // Hosts 1.2..=1.9 via 1.2, host 1.10 via 1.3, zone 2 via 1.2.
        let mut routes: BTreeMap<NodePrefix, Route> = (2..=9)
            .map(|h| (NodePrefix::host(NodeId::new(1, h)), route(&[2])))
            .collect();
        routes.insert(NodePrefix::host(NodeId::new(1, 10)), route(&[3]));
        routes.insert(NodePrefix::of_zone(2), route(&[2]));
        let out = to_budget(1, routes.clone(), 6);
        assert!(out.len() <= 6, "{out:?}");
        assert!(out.values().any(|r| r.aggregate));
        // The odd one out keeps its host route; the other zone is untouched.
        assert_eq!(out[&NodePrefix::host(NodeId::new(1, 10))], route(&[3]));
        assert!(out.contains_key(&NodePrefix::of_zone(2)));
        // Every host still resolves (longest prefix) to its original next hops.
        for (dst, r) in &routes {
            let hit = out
                .iter()
                .filter(|(p, _)| p.contains(dst.id) && p.len <= dst.len)
                .max_by_key(|(p, _)| p.len)
                .unwrap();
            assert_eq!(hit.1.next_hops, r.next_hops, "{dst}");
        }
        // A tight budget goes down to a handful of entries.
        assert!(to_budget(1, routes, 3).len() <= 3);
    }
}
