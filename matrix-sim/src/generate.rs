//! Generated topologies: `random:N` and `grid:WxH`, seeded.
//!
//! Up to [`FLAT_MAX`] nodes a topology is one zone (ids `0.1 .. 0.N`). Above, it is
//! zoned the way DESIGN.md section 7 expects fleets to be: NodeIds carry a zone number
//! in their high 16 bits, the nodes of a zone form a connected cluster, and zones join
//! through a few border links, so the routing core keeps per-host routes inside its
//! zone and one route per remote zone.

use std::collections::HashSet;

use matrix_routing::NodeId;

use crate::{
    rng::{Rng, derive},
    topology::{LinkSpec, NodeSpec, Topology},
};

/// Largest topology generated as a single zone.
pub const FLAT_MAX: usize = 256;
/// Target average node degree of random graphs (and inside random zones).
const AVG_DEGREE: f64 = 3.5;
/// Target average number of neighbouring zones of a zone.
const ZONE_DEGREE: f64 = 4.0;
/// Border nodes per zone (meshed with each other): where inter-zone links attach.
const BORDERS: usize = 4;
/// Grid tiles that become zones in a large grid: 16x16 = 256 hosts.
const GRID_TILE: usize = 16;

/// Links inside a site: a LAN-ish 10 Mbit/s, 1-5 ms.
const LAN_MBPS: u64 = 10;
const LAN_DELAY_MS: (f64, f64) = (1.0, 5.0);
/// Links between zones and between a zone's border nodes: a WAN trunk, 10x the capacity
/// (every inter-zone flow crosses one), 5-20 ms.
const TRUNK_MBPS: u64 = 100;
const TRUNK_DELAY_MS: (f64, f64) = (5.0, 20.0);
/// Flat random graphs: 10 Mbit/s, 1-10 ms.
const FLAT_DELAY_MS: (f64, f64) = (1.0, 10.0);
/// Grid links: 10 Mbit/s, 2 ms.
const GRID_DELAY_MS: f64 = 2.0;

struct Builder {
    links: Vec<LinkSpec>,
    seen: HashSet<(usize, usize)>,
    rng: Rng,
}

impl Builder {
    fn new(seed: u64) -> Self {
        Self {
            links: Vec::new(),
            seen: HashSet::new(),
            rng: Rng::new(derive(seed, 0x70_70)),
        }
    }

    /// Adds link a-b unless it exists; true if added.
    fn link(&mut self, a: usize, b: usize, mbps: u64, delay_ms: (f64, f64)) -> bool {
        if a == b || !self.seen.insert((a.min(b), a.max(b))) {
            return false;
        }
        let delay = self.rng.range(delay_ms.0, delay_ms.1);
        self.links.push(LinkSpec {
            a,
            b,
            // Whole microseconds keep generated files and outputs readable.
            delay_ns: (delay * 1000.0).round() as u64 * 1000,
            capacity_bps: mbps * 1_000_000,
        });
        true
    }

    /// A connected random cluster over `members`: a random recursive tree (each node
    /// joins a uniformly chosen earlier one, so depth stays O(log n)) plus random chords
    /// up to `degree` on average.
    fn cluster(&mut self, members: &[usize], degree: f64, mbps: u64, delay: (f64, f64)) {
        let n = members.len();
        for i in 1..n {
            let j = self.rng.below(i);
            self.link(members[i], members[j], mbps, delay);
        }
        let max_edges = n * (n - 1) / 2;
        let want = ((degree * n as f64 / 2.0).round() as usize).min(max_edges);
        let mut edges = n - 1;
        let mut tries = 0;
        // Bounded: in a small, nearly complete cluster most draws hit existing links.
        while edges < want && tries < want * 20 {
            tries += 1;
            let (a, b) = (self.rng.below(n), self.rng.below(n));
            if self.link(members[a], members[b], mbps, delay) {
                edges += 1;
            }
        }
    }
}

fn node(zone: u32, host: usize) -> NodeSpec {
    let id = NodeId::new(zone, host as u32);
    NodeSpec {
        name: id.to_string(),
        id,
    }
}

/// `random:N`: connected, average degree ~3.5; zoned above [`FLAT_MAX`] nodes.
pub fn random(n: usize, seed: u64) -> Result<Topology, String> {
    if n < 2 {
        return Err(format!("N `{n}`: need at least 2 nodes"));
    }
    if n > u16::MAX as usize * 64 {
        return Err(format!("N `{n}`: at most {} nodes", u16::MAX as usize * 64));
    }
    let mut b = Builder::new(seed);
    if n <= FLAT_MAX {
        let nodes: Vec<NodeSpec> = (1..=n).map(|h| node(0, h)).collect();
        let members: Vec<usize> = (0..n).collect();
        b.cluster(&members, AVG_DEGREE, LAN_MBPS, FLAT_DELAY_MS);
        return Topology::from_parts(nodes, b.links);
    }
    // Zones of about sqrt(N) hosts balance per-host routes inside a zone against
    // per-zone routes outside it: ~2 sqrt(N) routes per node.
    let size = ((n as f64).sqrt().round() as usize).clamp(16, FLAT_MAX);
    let zones = n.div_ceil(size);
    let mut nodes = Vec::with_capacity(n);
    let mut zone_members: Vec<Vec<usize>> = Vec::with_capacity(zones);
    for z in 0..zones {
        // Spread the remainder so zone sizes differ by at most one.
        let count = n / zones + usize::from(z < n % zones);
        let first = nodes.len();
        nodes.extend((1..=count).map(|h| node(z as u32 + 1, h)));
        zone_members.push((first..first + count).collect());
    }
    for members in &zone_members {
        b.cluster(members, AVG_DEGREE, LAN_MBPS, LAN_DELAY_MS);
        // The tree's first nodes are its root and the root's early children: close to
        // every host of the zone, so they make good borders.
        let borders = &members[..BORDERS.min(members.len())];
        for (i, &x) in borders.iter().enumerate() {
            for &y in &borders[i + 1..] {
                b.link(x, y, TRUNK_MBPS, (1.0, 1.0));
            }
        }
    }
    // The zone graph: a random recursive tree (connected) plus chords.
    let mut zone_edges = Vec::new();
    let mut seen = HashSet::new();
    for z in 1..zones {
        let y = b.rng.below(z);
        seen.insert((y, z));
        zone_edges.push((y, z));
    }
    let want = ((ZONE_DEGREE * zones as f64 / 2.0).round() as usize).min(zones * (zones - 1) / 2);
    let mut tries = 0;
    while zone_edges.len() < want && tries < want * 20 {
        tries += 1;
        let (x, y) = (b.rng.below(zones), b.rng.below(zones));
        if x != y && seen.insert((x.min(y), x.max(y))) {
            zone_edges.push((x.min(y), x.max(y)));
        }
    }
    for (x, y) in zone_edges {
        let bx = BORDERS.min(zone_members[x].len());
        let by = BORDERS.min(zone_members[y].len());
        // A few tries to find a border pair not yet linked; tree edges must land.
        for _ in 0..16 {
            let a = zone_members[x][b.rng.below(bx)];
            let c = zone_members[y][b.rng.below(by)];
            if b.link(a, c, TRUNK_MBPS, TRUNK_DELAY_MS) {
                break;
            }
        }
    }
    Topology::from_parts(nodes, b.links)
}

/// `grid:WxH`: node (x, y) joins its right and lower neighbours. Above [`FLAT_MAX`]
/// nodes each 16x16 tile is a zone (a connected sub-grid).
pub fn grid(w: usize, h: usize) -> Result<Topology, String> {
    if w == 0 || h == 0 || w * h < 2 {
        return Err(format!("`{w}x{h}`: need at least 2 nodes"));
    }
    if w * h > 1 << 20 {
        return Err(format!("`{w}x{h}`: at most {} nodes", 1 << 20));
    }
    let zoned = w * h > FLAT_MAX;
    let tiles_x = w.div_ceil(GRID_TILE);
    let nodes = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            if zoned {
                let zone = (y / GRID_TILE) * tiles_x + x / GRID_TILE + 1;
                let host = (y % GRID_TILE) * GRID_TILE + x % GRID_TILE + 1;
                node(zone as u32, host)
            } else {
                node(0, i + 1)
            }
        })
        .collect();
    let mut links = Vec::new();
    let spec = |a, b| LinkSpec {
        a,
        b,
        delay_ns: (GRID_DELAY_MS * 1e6) as u64,
        capacity_bps: LAN_MBPS * 1_000_000,
    };
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if x + 1 < w {
                links.push(spec(i, i + 1));
            }
            if y + 1 < h {
                links.push(spec(i, i + w));
            }
        }
    }
    Topology::from_parts(nodes, links)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_connected(t: &Topology) {
        let adj = t.adjacency();
        assert!(t.hops_from(&adj, 0).iter().all(|&d| d != usize::MAX));
    }

    #[test]
    fn random_flat_is_connected_with_degree_near_target() {
        for (n, seed) in [(2, 1), (3, 1), (14, 7), (100, 3), (256, 9)] {
            let t = random(n, seed).unwrap();
            assert_eq!(t.nodes.len(), n);
            assert_connected(&t);
            assert_eq!(t.zone_count(), 1);
            let degree = 2.0 * t.links.len() as f64 / n as f64;
            if n >= 14 {
                assert!((3.0..=4.0).contains(&degree), "n={n} degree={degree}");
            }
        }
    }

    #[test]
    fn random_is_seeded() {
        assert_eq!(random(50, 4).unwrap().links, random(50, 4).unwrap().links);
        assert_ne!(random(50, 4).unwrap().links, random(50, 5).unwrap().links);
    }

    #[test]
    fn large_random_is_zoned_and_connected() {
        let t = random(1000, 1).unwrap();
        assert_eq!(t.nodes.len(), 1000);
        assert_connected(&t);
        let zones = t.zone_count();
        assert!(zones > 1 && zones < 100, "{zones}");
        // Every zone is connected on its own links: zones are clusters, not stripes.
        for zone in 1..=zones as u32 {
            let inside: Vec<usize> = (0..t.nodes.len())
                .filter(|&i| t.nodes[i].id.zone() == zone)
                .collect();
            let mut adj = vec![Vec::new(); t.nodes.len()];
            for (k, l) in t.links.iter().enumerate() {
                if t.nodes[l.a].id.zone() == zone && t.nodes[l.b].id.zone() == zone {
                    adj[l.a].push((l.b, k));
                    adj[l.b].push((l.a, k));
                }
            }
            let d = t.hops_from(&adj, inside[0]);
            assert!(inside.iter().all(|&i| d[i] != usize::MAX), "zone {zone}");
        }
        // Few border links: well under one per node.
        let inter = t
            .links
            .iter()
            .filter(|l| t.nodes[l.a].id.zone() != t.nodes[l.b].id.zone())
            .count();
        assert!(inter < t.nodes.len() / 10, "{inter}");
    }

    #[test]
    fn grids() {
        let t = grid(4, 3).unwrap();
        assert_eq!((t.nodes.len(), t.links.len()), (12, 17));
        assert_connected(&t);
        let t = grid(40, 20).unwrap();
        assert_connected(&t);
        assert_eq!(t.zone_count(), 6);
        assert!(grid(1, 1).unwrap_err().contains("1x1"));
    }
}
