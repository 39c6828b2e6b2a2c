//! The shortest-path computation as it was written first, over ordered maps: kept for
//! the tests, which check the faster one in `topology` returns exactly the same paths.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap},
};

use super::{MAX_NEXT_HOPS, Path, Topology};
use crate::{lsdb::Lsdb, node::NodeId};

fn merge(into: &mut Vec<NodeId>, from: &[NodeId]) {
    for n in from {
        if let Err(i) = into.binary_search(n)
            && into.len() < MAX_NEXT_HOPS
        {
            into.insert(i, *n);
        }
    }
}

/// Dijkstra from `source` (plus extra `seeds`: node, cost, first hops). An edge out of
/// `source` makes its target the first hop; any other edge passes its tail's first hops
/// on. Costs must be positive. The result excludes `source`.
fn shortest_paths(
    source: NodeId,
    seeds: &[(NodeId, u64, Vec<NodeId>)],
    mut edges: impl FnMut(NodeId, &mut Vec<(NodeId, u64)>),
) -> BTreeMap<NodeId, Path> {
    let mut best: BTreeMap<NodeId, Path> = BTreeMap::new();
    let mut done = BTreeSet::new();
    let mut heap = BinaryHeap::new();
    best.insert(
        source,
        Path {
            cost: 0,
            first_hops: vec![],
        },
    );
    heap.push(Reverse((0u64, source)));
    for (n, c, fh) in seeds {
        if *n == source {
            continue;
        }
        let e = best.entry(*n).or_insert(Path {
            cost: u64::MAX,
            first_hops: vec![],
        });
        if *c < e.cost {
            *e = Path {
                cost: *c,
                first_hops: vec![],
            };
            heap.push(Reverse((*c, *n)));
        }
        if *c == e.cost {
            merge(&mut e.first_hops, fh);
        }
    }
    let mut out = Vec::new();
    while let Some(Reverse((cost, u))) = heap.pop() {
        if best[&u].cost != cost || !done.insert(u) {
            continue;
        }
        let via = if u == source {
            None
        } else {
            Some(best[&u].first_hops.clone())
        };
        out.clear();
        edges(u, &mut out);
        for &(v, c) in &out {
            if done.contains(&v) {
                continue;
            }
            let nc = cost.saturating_add(c.max(1));
            let fh = via.clone().unwrap_or_else(|| vec![v]);
            let e = best.entry(v).or_insert(Path {
                cost: u64::MAX,
                first_hops: vec![],
            });
            if nc < e.cost {
                *e = Path {
                    cost: nc,
                    first_hops: fh,
                };
                heap.push(Reverse((nc, v)));
            } else if nc == e.cost {
                merge(&mut e.first_hops, &fh);
            }
        }
    }
    best.remove(&source);
    best.retain(|_, p| !p.first_hops.is_empty() && p.cost != u64::MAX);
    best
}

/// `Topology::compute` as it was.
pub(crate) struct Reference;

impl Reference {
    /// Computes paths from `me`; `alive` says which of our neighbours are up (our own
    /// links count only to those, whatever our last advert said).
    pub(crate) fn compute(me: NodeId, lsdb: &Lsdb, alive: impl Fn(NodeId) -> bool) -> Topology {
        let zone = me.zone();
        // Intra-zone links, both directions listed.
        let mut links: BTreeMap<NodeId, BTreeMap<NodeId, u32>> = BTreeMap::new();
        for a in lsdb.adverts().filter(|a| a.origin.zone() == zone) {
            links.insert(a.origin, a.links.iter().copied().collect());
        }
        let intra_edges = |u: NodeId, out: &mut Vec<(NodeId, u64)>| {
            let Some(ls) = links.get(&u) else { return };
            for (&v, &c) in ls {
                let ok = if u == me {
                    v.zone() == zone && alive(v)
                } else {
                    v.zone() == zone && (links.get(&v).is_some_and(|l| l.contains_key(&u)))
                };
                if ok {
                    out.push((v, u64::from(c)));
                }
            }
        };
        let hosts = shortest_paths(me, &[], intra_edges);

        // Border nodes of our zone: reachable nodes with a link out of the zone.
        let is_border = |n: NodeId| {
            links
                .get(&n)
                .is_some_and(|l| l.keys().any(|v| v.zone() != zone))
        };
        let borders: BTreeMap<NodeId, u64> = hosts
            .iter()
            .filter(|(n, _)| is_border(**n))
            .map(|(n, p)| (*n, p.cost))
            .collect();

        // Backbone: summary links of every border of the fleet; ours from our advert.
        let mut backbone: BTreeMap<NodeId, Vec<(NodeId, u64)>> = BTreeMap::new();
        for s in lsdb.summaries().filter(|s| s.origin != me && s.part == 0) {
            let e = backbone.entry(s.origin).or_default();
            e.extend(s.links.iter().map(|(v, c)| (*v, u64::from(*c))));
        }
        let mine: Vec<(NodeId, u64)> = links
            .get(&me)
            .map(|l| {
                l.iter()
                    .filter(|(v, _)| v.zone() != zone && alive(**v))
                    .map(|(v, c)| (*v, u64::from(*c)))
                    .collect()
            })
            .unwrap_or_default();
        backbone.insert(me, mine);
        let mut seeds: Vec<_> = borders
            .keys()
            .map(|b| (*b, hosts[b].cost, hosts[b].first_hops.clone()))
            .collect();
        // The crossings of our zone we published count as the fleet reads them, even if
        // our intra-zone costs have moved since: routing on other numbers than everyone
        // else would loop.
        for s in lsdb.summaries().filter(|s| s.origin == me && s.part == 0) {
            for (b, c) in s.links.iter().filter(|(b, _)| b.zone() == zone) {
                if let Some(p) = hosts.get(b) {
                    seeds.push((*b, u64::from(*c), p.first_hops.clone()));
                }
            }
        }
        let reached = shortest_paths(me, &seeds, |u, out| {
            if let Some(es) = backbone.get(&u) {
                // Our own crossing of our zone is known exactly from the seeds.
                out.extend(es.iter().filter(|(v, _)| u != me || v.zone() != zone));
            }
        });
        let mut zones: BTreeMap<u32, Path> = BTreeMap::new();
        for (n, p) in reached.iter().filter(|(n, _)| n.zone() != zone) {
            let e = zones.entry(n.zone()).or_insert_with(|| p.clone());
            if p.cost < e.cost {
                *e = p.clone();
            } else if p.cost == e.cost {
                merge(&mut e.first_hops, &p.first_hops);
            }
        }
        let backbone = reached
            .keys()
            .filter(|n| n.zone() != zone)
            .copied()
            .collect();
        Topology {
            hosts,
            zones,
            borders,
            backbone,
        }
    }
}
