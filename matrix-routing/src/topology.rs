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

/// First hops of a path while it is computed: [`merge`] without a heap allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hops {
    len: u8,
    ids: [NodeId; MAX_NEXT_HOPS],
}

impl Default for Hops {
    fn default() -> Self {
        Self {
            len: 0,
            ids: [NodeId(0); MAX_NEXT_HOPS],
        }
    }
}

impl Hops {
    fn of(ids: &[NodeId]) -> Self {
        let mut h = Self::default();
        h.merge(ids);
        h
    }

    fn as_slice(&self) -> &[NodeId] {
        &self.ids[..usize::from(self.len)]
    }

    /// As [`merge`]: each of `from` not held yet goes in at its sorted place while
    /// there is room.
    fn merge(&mut self, from: &[NodeId]) {
        for n in from {
            let len = usize::from(self.len);
            if let Err(i) = self.ids[..len].binary_search(n)
                && len < MAX_NEXT_HOPS
            {
                self.ids.copy_within(i..len, i + 1);
                self.ids[i] = *n;
                self.len += 1;
            }
        }
    }
}

/// A directed graph over the nodes one computation looks at, numbered in NodeId order
/// (so a tie between equal costs goes to the lower NodeId, as over ordered maps), with
/// each node's out-edges in one slice.
#[derive(Debug, Default)]
struct Graph {
    /// Sorted, unique.
    ids: Vec<NodeId>,
    /// Out-edges of node `i`: `edges[start[i]..start[i + 1]]`.
    start: Vec<usize>,
    edges: Vec<(u32, u64)>,
}

impl Graph {
    /// Numbers `ids` (sorted and deduplicated here); edges are added with [`Self::add`].
    fn over(mut ids: Vec<NodeId>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        Self {
            ids,
            start: vec![0],
            edges: Vec::new(),
        }
    }

    fn index(&self, n: NodeId) -> Option<usize> {
        self.ids.binary_search(&n).ok()
    }

    /// The out-edges of the next node in order (call once per node, in order).
    fn add(&mut self, out: impl Iterator<Item = (NodeId, u64)>) {
        for (v, c) in out {
            let v = self.index(v).expect("every edge's end is numbered");
            self.edges.push((v as u32, c));
        }
        self.start.push(self.edges.len());
    }

    fn out(&self, u: usize) -> &[(u32, u64)] {
        &self.edges[self.start[u]..self.start[u + 1]]
    }
}

/// Dijkstra from `source` (plus extra `seeds`: node, cost, first hops) over `g`. An edge
/// out of `source` makes its target the first hop; any other edge passes its tail's
/// first hops on. Costs must be positive. The result excludes `source`.
fn shortest_paths(
    g: &Graph,
    source: NodeId,
    seeds: &[(NodeId, u64, Vec<NodeId>)],
) -> BTreeMap<NodeId, Path> {
    let n = g.ids.len();
    let mut best = vec![(u64::MAX, Hops::default()); n];
    let mut done = vec![false; n];
    let mut heap = BinaryHeap::new();
    let src = g.index(source).expect("the source is numbered");
    best[src].0 = 0;
    heap.push(Reverse((0u64, src)));
    for (s, c, fh) in seeds {
        if *s == source {
            continue;
        }
        let i = g.index(*s).expect("every seed is numbered");
        let e = &mut best[i];
        if *c < e.0 {
            *e = (*c, Hops::default());
            heap.push(Reverse((*c, i)));
        }
        if *c == e.0 {
            e.1.merge(fh);
        }
    }
    while let Some(Reverse((cost, u))) = heap.pop() {
        if best[u].0 != cost || done[u] {
            continue;
        }
        done[u] = true;
        let via = (u != src).then_some(best[u].1);
        for &(v, c) in g.out(u) {
            let v = v as usize;
            if done[v] {
                continue;
            }
            let nc = cost.saturating_add(c.max(1));
            let fh = via.unwrap_or_else(|| Hops::of(&[g.ids[v]]));
            let e = &mut best[v];
            if nc < e.0 {
                *e = (nc, fh);
                heap.push(Reverse((nc, v)));
            } else if nc == e.0 {
                e.1.merge(fh.as_slice());
            }
        }
    }
    best.iter()
        .enumerate()
        .filter(|&(i, (cost, fh))| i != src && fh.len > 0 && *cost != u64::MAX)
        .map(|(i, (cost, fh))| {
            let path = Path {
                cost: *cost,
                first_hops: fh.as_slice().to_vec(),
            };
            (g.ids[i], path)
        })
        .collect()
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
    ///
    /// Each run numbers the nodes it sees and works over arrays: a fleet's nodes rerun
    /// this whenever any zone summary changes, and over ordered maps it was the largest
    /// cost of simulating ten thousand of them.
    pub(crate) fn compute(me: NodeId, lsdb: &Lsdb, alive: impl Fn(NodeId) -> bool) -> Self {
        let zone = me.zone();
        // Intra-zone links of each advert of our zone, by neighbour (the last listing
        // of a neighbour counts, as it would in a map).
        let mut links: Vec<(NodeId, Vec<(NodeId, u32)>)> = lsdb
            .adverts()
            .filter(|a| a.origin.zone() == zone)
            .map(|a| {
                let mut ls: Vec<(NodeId, u32)> = Vec::with_capacity(a.links.len());
                for &(v, c) in &a.links {
                    match ls.iter_mut().find(|l| l.0 == v) {
                        Some(l) => l.1 = c,
                        None => ls.push((v, c)),
                    }
                }
                ls.sort_unstable_by_key(|l| l.0);
                (a.origin, ls)
            })
            .collect();
        links.sort_unstable_by_key(|l| l.0);
        let links_of = |n: NodeId| {
            links
                .binary_search_by_key(&n, |l| l.0)
                .ok()
                .map(|i| &links[i].1[..])
        };
        let lists = |u: NodeId, v: NodeId| {
            links_of(u).is_some_and(|l| l.binary_search_by_key(&v, |x| x.0).is_ok())
        };
        // Every link counts once both ends list it; ours count to live neighbours.
        let mut ids: Vec<NodeId> = vec![me];
        for (o, ls) in &links {
            ids.push(*o);
            ids.extend(ls.iter().map(|l| l.0));
        }
        let mut intra = Graph::over(ids);
        for i in 0..intra.ids.len() {
            let u = intra.ids[i];
            let out: Vec<(NodeId, u64)> = links_of(u)
                .unwrap_or(&[])
                .iter()
                .filter(|&&(v, _)| v.zone() == zone && if u == me { alive(v) } else { lists(v, u) })
                .map(|&(v, c)| (v, u64::from(c)))
                .collect();
            intra.add(out.into_iter());
        }
        let hosts = shortest_paths(&intra, me, &[]);

        // Border nodes of our zone: reachable nodes with a link out of the zone.
        let is_border =
            |n: NodeId| links_of(n).is_some_and(|l| l.iter().any(|v| v.0.zone() != zone));
        let borders: BTreeMap<NodeId, u64> = hosts
            .iter()
            .filter(|(n, _)| is_border(**n))
            .map(|(n, p)| (*n, p.cost))
            .collect();

        // Backbone: summary links of every border of the fleet; ours from our advert.
        let mut backbone: Vec<(NodeId, Vec<(NodeId, u64)>)> = lsdb
            .summaries()
            .filter(|s| s.origin != me && s.part == 0)
            .map(|s| {
                let es = s.links.iter().map(|(v, c)| (*v, u64::from(*c))).collect();
                (s.origin, es)
            })
            .collect();
        // Ours: the live links out of the zone (our crossings of it come as seeds).
        let mine: Vec<(NodeId, u64)> = links_of(me)
            .unwrap_or(&[])
            .iter()
            .filter(|(v, _)| v.zone() != zone && alive(*v))
            .map(|(v, c)| (*v, u64::from(*c)))
            .collect();
        backbone.push((me, mine));
        backbone.sort_by_key(|b| b.0);
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
        let mut ids: Vec<NodeId> = seeds.iter().map(|s| s.0).collect();
        for (o, es) in &backbone {
            ids.push(*o);
            ids.extend(es.iter().map(|e| e.0));
        }
        let mut graph = Graph::over(ids);
        for i in 0..graph.ids.len() {
            let u = graph.ids[i];
            let es = backbone
                .binary_search_by_key(&u, |b| b.0)
                .map_or(&[][..], |k| &backbone[k].1[..]);
            graph.add(es.iter().copied());
        }
        let reached = shortest_paths(&graph, me, &seeds);
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
mod reference;

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

    /// A link-state database with what can go wrong in one: one-way and repeated
    /// listings, zero and equal costs (more equal first hops than a route holds), nodes
    /// without adverts, summaries of several parts, of our zone's borders and our own.
    fn messy_lsdb() -> impl Strategy<Value = (Lsdb, u32)> {
        let listing = (1u32..3, 1u32..8, 1u32..4, 1u32..8, 0u32..4);
        let summary = (
            1u32..4,
            1u32..7,
            0u16..2,
            proptest::collection::vec((1u32..4, 1u32..7, 0u32..4), 0..5),
        );
        (
            proptest::collection::vec(listing, 0..60),
            proptest::collection::vec(summary, 0..14),
            0u32..256,
            (any::<u32>(), any::<u32>()),
            any::<bool>(),
        )
            .prop_map(|(listings, summaries, no_advert, dead, star)| {
                let me = n(1, 1);
                let t0 = Instant::now();
                let mut adverts: BTreeMap<NodeId, Vec<(NodeId, u32)>> = BTreeMap::new();
                // Often five equal ways from us to 1.7: more first hops than a route holds.
                let middles = (2..7).filter(|_| star);
                let ways = middles.flat_map(|h| {
                    [
                        (1, 1, 1, h, 1),
                        (1, h, 1, 1, 1),
                        (1, h, 1, 7, 1),
                        (1, 7, 1, h, 1),
                    ]
                });
                for (za, ha, zb, hb, c) in ways.chain(listings) {
                    adverts
                        .entry(n(za, ha))
                        .or_default()
                        .push((n(zb, hb), c * 10));
                }
                let mut db = Lsdb::new(me);
                for (h, (o, links)) in adverts.into_iter().enumerate() {
                    if o.zone() != 1 || (o != me && no_advert & (1 << (h % 8)) != 0) {
                        continue;
                    }
                    let adv = Advert {
                        origin: o,
                        seq: 1,
                        links,
                        prefixes: vec![],
                        max_age_ms: 1000,
                    };
                    db.receive_advert(t0, adv);
                }
                for (z, h, part, links) in summaries {
                    let s = ZoneSummary {
                        origin: n(z, h),
                        seq: 1,
                        part,
                        parts: 2,
                        links: links
                            .into_iter()
                            .map(|(z, h, c)| (n(z, h), c * 10))
                            .collect(),
                        prefixes: vec![],
                        max_age_ms: 1000,
                    };
                    db.receive_summary(t0, s);
                }
                (db, dead.0 & dead.1)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2000,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x7370_6621),
            ..ProptestConfig::default()
        })]
        /// The array-based computation finds exactly what the map-based one did.
        #[test]
        fn compute_matches_the_reference((db, dead) in messy_lsdb()) {
            let me = n(1, 1);
            let alive = |v: NodeId| dead & (1 << (v.host() % 32)) == 0;
            let want = reference::Reference::compute(me, &db, alive);
            prop_assert_eq!(Topology::compute(me, &db, alive), want);
        }
    }
}
