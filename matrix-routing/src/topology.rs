//! What the link-state database says is reachable, and the shortest paths to it.
//!
//! Two levels. Inside our zone: Dijkstra over the zone's host adverts (a link counts
//! only if both ends list each other), to every host. Across zones: Dijkstra over the
//! backbone (border nodes, their inter-zone links, and the cost of crossing each zone
//! between two of its borders, all from zone summaries), seeded with our intra-zone
//! distance to each border of our zone, to every remote zone. Every node of the fleet
//! uses the same backbone, so the cost to a zone strictly decreases hop by hop and the
//! routes are loop-free once the databases agree.
//!
//! Equal-cost first hops are merged (ECMP, up to [`MAX_NEXT_HOPS`]).

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet, BinaryHeap},
};

use crate::{
    lsdb::Lsdb,
    node::{NodeId, NodePrefix},
};

/// Members of a next-hop set (the data plane's `MAX_NEXT_HOPS`).
pub(crate) const MAX_NEXT_HOPS: usize = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Path {
    pub(crate) cost: u64,
    /// Sorted, at most [`MAX_NEXT_HOPS`].
    pub(crate) first_hops: Vec<NodeId>,
}

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
pub(crate) fn shortest_paths(
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

/// The reachable destinations of one node and the shortest paths to them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Topology {
    /// Hosts of our zone (not us).
    pub(crate) hosts: BTreeMap<NodeId, Path>,
    /// Other zones.
    pub(crate) zones: BTreeMap<u32, Path>,
    /// Border nodes of our zone other than us, with our intra-zone cost to them.
    pub(crate) borders: BTreeMap<NodeId, u64>,
    /// Border nodes of other zones the backbone reaches.
    pub(crate) backbone: BTreeSet<NodeId>,
}

impl Topology {
    /// Every destination: hosts as `/32`, zones as `/16`.
    pub(crate) fn destinations(&self) -> impl Iterator<Item = (NodePrefix, &Path)> {
        let hosts = self.hosts.iter().map(|(h, p)| (NodePrefix::host(*h), p));
        let zones = self.zones.iter().map(|(z, p)| (NodePrefix::of_zone(*z), p));
        hosts.chain(zones)
    }

    pub(crate) fn path(&self, dest: NodePrefix) -> Option<&Path> {
        if dest.len == 32 {
            self.hosts.get(&dest.id)
        } else {
            self.zones.get(&dest.id.zone())
        }
    }

    /// Computes paths from `me`; `alive` says which of our neighbours are up (our own
    /// links count only to those, whatever our last advert said).
    pub(crate) fn compute(me: NodeId, lsdb: &Lsdb, alive: impl Fn(NodeId) -> bool) -> Self {
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
        Self {
            hosts,
            zones,
            borders,
            backbone,
        }
    }

    /// Whether `n` (a host of our zone or a border node of another) is reachable.
    pub(crate) fn reaches(&self, n: NodeId) -> bool {
        self.hosts.contains_key(&n) || self.backbone.contains(&n)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use proptest::prelude::*;

    use super::*;
    use crate::message::{Advert, ZoneSummary};

    fn n(z: u32, h: u32) -> NodeId {
        NodeId::new(z, h)
    }

    /// An LSDB as `me` would hold it for undirected `edges` (cost per direction).
    fn lsdb(me: NodeId, edges: &[(NodeId, NodeId, u32)]) -> Lsdb {
        let t0 = Instant::now();
        let mut db = Lsdb::new(me);
        let mut adj: BTreeMap<NodeId, Vec<(NodeId, u32)>> = BTreeMap::new();
        for (a, b, c) in edges {
            adj.entry(*a).or_default().push((*b, *c));
            adj.entry(*b).or_default().push((*a, *c));
        }
        for (o, links) in adj.into_iter().filter(|(o, _)| o.zone() == me.zone()) {
            let adv = Advert {
                origin: o,
                seq: 1,
                links,
                prefixes: vec![],
                max_age_ms: 1000,
            };
            db.receive_advert(t0, adv);
        }
        db
    }

    #[test]
    fn ecmp_and_two_way_check() {
        let (a, b, c, d) = (n(1, 1), n(1, 2), n(1, 3), n(1, 4));
        let db = lsdb(a, &[(a, b, 10), (a, c, 10), (b, d, 10), (c, d, 10)]);
        let t = Topology::compute(a, &db, |_| true);
        assert_eq!(
            t.hosts[&d],
            Path {
                cost: 20,
                first_hops: vec![b, c]
            }
        );
        // Our own link to a dead neighbour does not count.
        let t = Topology::compute(a, &db, |x| x != b);
        assert_eq!(t.hosts[&d].first_hops, vec![c]);
        assert_eq!(
            t.hosts[&b],
            Path {
                cost: 30,
                first_hops: vec![c]
            }
        );
    }

    #[test]
    fn remote_zone_via_border() {
        // Zone 1: a - b(border) ; zone 2: x(border) - y.
        let (a, b, x, y) = (n(1, 1), n(1, 2), n(2, 1), n(2, 2));
        let mut db = lsdb(a, &[(a, b, 10), (b, x, 50), (x, y, 10)]);
        let s = |origin, links: Vec<(NodeId, u32)>| ZoneSummary {
            origin,
            seq: 1,
            part: 0,
            parts: 1,
            links,
            prefixes: vec![],
            max_age_ms: 1000,
        };
        db.receive_summary(Instant::now(), s(b, vec![(x, 50)]));
        db.receive_summary(Instant::now(), s(x, vec![(b, 50)]));
        let t = Topology::compute(a, &db, |_| true);
        assert_eq!(
            t.zones[&2],
            Path {
                cost: 60,
                first_hops: vec![b]
            }
        );
        assert!(!t.hosts.contains_key(&x) && !t.hosts.contains_key(&y));
        assert_eq!(t.borders, BTreeMap::from([(b, 10)]));
    }

    /// A random connected graph: a random spanning tree plus extra edges.
    fn graph() -> impl Strategy<Value = (u32, Vec<(u32, u32, u32)>)> {
        (3u32..12).prop_flat_map(|nodes| {
            let tree = proptest::collection::vec((any::<u32>(), 1u32..6), (nodes - 1) as usize);
            let extra =
                proptest::collection::vec((0..nodes, 0..nodes, 1u32..6), 0..(nodes as usize * 2));
            (Just(nodes), tree, extra).prop_map(|(nodes, tree, extra)| {
                let mut edges: Vec<(u32, u32, u32)> = tree
                    .into_iter()
                    .enumerate()
                    .map(|(i, (r, c))| {
                        let child = i as u32 + 1;
                        (r % child, child, c * 100)
                    })
                    .collect();
                edges.extend(
                    extra
                        .into_iter()
                        .filter(|(a, b, _)| a != b)
                        .map(|(a, b, c)| (a, b, c * 100)),
                );
                edges.sort_by_key(|e| (e.0.min(e.1), e.0.max(e.1)));
                edges.dedup_by_key(|e| (e.0.min(e.1), e.0.max(e.1)));
                (nodes, edges)
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            // Deterministic: the same cases on every run.
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6d61_7472_6978),
            ..ProptestConfig::default()
        })]
        /// Following every installed next hop from any node reaches the destination
        /// without revisiting a node, whatever the (consistent) costs.
        #[test]
        fn shortest_paths_are_loop_free((nodes, edges) in graph()) {
            let id = |i: u32| n(1, i + 1);
            let edges: Vec<_> = edges.iter().map(|(a, b, c)| (id(*a), id(*b), *c)).collect();
            let tables: BTreeMap<NodeId, Topology> = (0..nodes)
                .map(|i| (id(i), Topology::compute(id(i), &lsdb(id(i), &edges), |_| true)))
                .collect();
            for dst in (0..nodes).map(id) {
                for src in (0..nodes).map(id).filter(|s| *s != dst) {
                    // Depth-first over every next-hop choice.
                    let mut stack = vec![(src, vec![src])];
                    while let Some((at, path)) = stack.pop() {
                        if at == dst {
                            continue;
                        }
                        let hops = &tables[&at].hosts.get(&dst).expect("connected").first_hops;
                        prop_assert!(!hops.is_empty());
                        for h in hops {
                            prop_assert!(!path.contains(h), "loop {:?} -> {}", path, h);
                            let mut p = path.clone();
                            p.push(*h);
                            stack.push((*h, p));
                        }
                    }
                }
            }
        }
    }
}
