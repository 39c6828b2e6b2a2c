//! Simulated topologies: nodes with NodeIds, links with propagation delay and capacity.
//!
//! A file is the project's one topology format (`matrix_schema::topology`, the testbed's
//! `topologies/*.toml` included); the simulator takes `delay_ms` and `capacity_mbps` of
//! each link (defaults below) and ignores the testbed's fields (`workloads`, `mtu`, `tap`,
//! `[[route]]`, `[routing]`).
//!
//! A spec is a file path, `nsfnet` (the built-in copy of `topologies/nsfnet.toml`),
//! `random:N` or `grid:WxH` (see [`crate::generate`]).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::Path,
};

use matrix_routing::NodeId;
use matrix_schema::topology as file;

use crate::generate;

/// Link delay when a file gives none: hosts on one site.
pub const DEFAULT_DELAY_MS: f64 = 1.0;
/// Link capacity when a file gives none.
pub const DEFAULT_CAPACITY_MBPS: f64 = 10.0;
/// The NSFNET T1 backbone as Di Caro & Dorigo simulated it.
pub const NSFNET_TOML: &str = include_str!("../../topologies/nsfnet.toml");

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The file does not parse or validate.
    #[error(transparent)]
    File(#[from] file::TopologyError),
    #[error("topology {origin}: {what} `{value}`: {reason}")]
    Invalid {
        origin: String,
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("topology spec `{spec}`: {reason}")]
    Spec { spec: String, reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    pub id: NodeId,
}

/// A bidirectional link; each direction has its own queue and the full capacity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    pub a: usize,
    pub b: usize,
    pub delay_ns: u64,
    pub capacity_bps: u64,
}

/// A validated topology: names and ids unique, links between distinct known nodes, no
/// duplicate links, the graph connected.
#[derive(Clone, Debug)]
pub struct Topology {
    pub nodes: Vec<NodeSpec>,
    pub links: Vec<LinkSpec>,
    by_name: HashMap<String, usize>,
    by_id: HashMap<NodeId, usize>,
}

impl Topology {
    /// Resolves a `--topology` value; `seed` drives the generators.
    pub fn from_spec(spec: &str, seed: u64) -> Result<Self, TopologyError> {
        let bad = |reason: String| TopologyError::Spec {
            spec: spec.to_string(),
            reason,
        };
        if spec == "nsfnet" {
            return Self::parse(NSFNET_TOML, "nsfnet (built in)");
        }
        if let Some(n) = spec.strip_prefix("random:") {
            let n: usize = n
                .parse()
                .map_err(|_| bad(format!("N `{n}` is not a positive integer")))?;
            return generate::random(n, seed).map_err(bad);
        }
        if let Some(dims) = spec.strip_prefix("grid:") {
            let (w, h) = dims
                .split_once('x')
                .ok_or_else(|| bad(format!("`{dims}` is not of the form WxH (e.g. 8x8)")))?;
            let dim = |s: &str| {
                s.parse::<usize>()
                    .map_err(|_| bad(format!("`{s}` is not a positive integer")))
            };
            return generate::grid(dim(w)?, dim(h)?).map_err(bad);
        }
        Self::load(Path::new(spec))
    }

    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        Self::from_file(file::Topology::load(path)?, &path.display().to_string())
    }

    /// Parses and validates `text`; `origin` (a file name) prefixes every error.
    pub fn parse(text: &str, origin: &str) -> Result<Self, TopologyError> {
        Self::from_file(file::Topology::parse(text, origin)?, origin)
    }

    /// The simulator's view of a topology file: its delays and capacities, defaulted.
    fn from_file(t: file::Topology, origin: &str) -> Result<Self, TopologyError> {
        let nodes = t
            .nodes
            .into_iter()
            .map(|n| NodeSpec {
                name: n.name,
                id: n.id,
            })
            .collect();
        let links = t
            .links
            .iter()
            .map(|l| LinkSpec {
                a: l.a,
                b: l.b,
                delay_ns: (l.delay_ms.unwrap_or(DEFAULT_DELAY_MS) * 1e6).round() as u64,
                capacity_bps: (l.capacity_mbps.unwrap_or(DEFAULT_CAPACITY_MBPS) * 1e6)
                    .round()
                    .max(1.0) as u64,
            })
            .collect();
        // The file is validated already; what is left is the simulator's own minimum.
        Self::index(nodes, links).map_err(|(what, value, reason)| TopologyError::Invalid {
            origin: origin.to_string(),
            what,
            value,
            reason,
        })
    }

    /// Builds a topology from parts (the generators); checks what `parse` checks.
    pub fn from_parts(nodes: Vec<NodeSpec>, links: Vec<LinkSpec>) -> Result<Self, String> {
        let topo = Self::index(nodes, links).map_err(|(w, v, r)| format!("{w} `{v}`: {r}"))?;
        topo.validate_links()
            .map_err(|(w, v, r)| format!("{w} `{v}`: {r}"))?;
        Ok(topo)
    }

    fn index(
        nodes: Vec<NodeSpec>,
        links: Vec<LinkSpec>,
    ) -> Result<Self, (&'static str, String, String)> {
        if nodes.len() < 2 {
            return Err((
                "node count",
                nodes.len().to_string(),
                "a simulation needs at least 2 nodes".into(),
            ));
        }
        let mut by_name = HashMap::with_capacity(nodes.len());
        let mut by_id = HashMap::with_capacity(nodes.len());
        for (i, n) in nodes.iter().enumerate() {
            if by_name.insert(n.name.clone(), i).is_some() {
                return Err(("node name", n.name.clone(), "used twice".into()));
            }
            if by_id.insert(n.id, i).is_some() {
                return Err(("node id", n.id.to_string(), "used twice".into()));
            }
        }
        Ok(Self {
            nodes,
            links,
            by_name,
            by_id,
        })
    }

    fn validate_links(&self) -> Result<(), (&'static str, String, String)> {
        let mut seen = HashSet::with_capacity(self.links.len());
        for l in &self.links {
            let pair = format!("{}-{}", self.nodes[l.a].name, self.nodes[l.b].name);
            if l.a == l.b {
                return Err(("link", pair, "joins a node to itself".into()));
            }
            if !seen.insert((l.a.min(l.b), l.a.max(l.b))) {
                return Err(("link", pair, "listed twice".into()));
            }
        }
        if let Some(lost) = self.unreachable_from_first() {
            let reason = format!("not reachable from `{}`", self.nodes[0].name);
            return Err(("node", self.nodes[lost].name.clone(), reason));
        }
        Ok(())
    }

    /// Node index by name, or by NodeId written `zone.host`.
    pub fn find(&self, key: &str) -> Option<usize> {
        if let Some(&i) = self.by_name.get(key) {
            return Some(i);
        }
        key.parse::<NodeId>()
            .ok()
            .and_then(|id| self.by_id.get(&id).copied())
    }

    pub fn index_of_id(&self, id: NodeId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// Per node: (peer, link index), in link order.
    pub fn adjacency(&self) -> Vec<Vec<(usize, usize)>> {
        let mut adj = vec![Vec::new(); self.nodes.len()];
        for (i, l) in self.links.iter().enumerate() {
            adj[l.a].push((l.b, i));
            adj[l.b].push((l.a, i));
        }
        adj
    }

    /// Hop counts from `src` to every node (usize::MAX where unreachable).
    pub fn hops_from(&self, adj: &[Vec<(usize, usize)>], src: usize) -> Vec<usize> {
        let mut dist = vec![usize::MAX; self.nodes.len()];
        let mut queue = VecDeque::from([src]);
        dist[src] = 0;
        while let Some(u) = queue.pop_front() {
            for &(v, _) in &adj[u] {
                if dist[v] == usize::MAX {
                    dist[v] = dist[u] + 1;
                    queue.push_back(v);
                }
            }
        }
        dist
    }

    fn unreachable_from_first(&self) -> Option<usize> {
        let adj = self.adjacency();
        self.hops_from(&adj, 0)
            .iter()
            .position(|&d| d == usize::MAX)
    }

    /// Distinct zones (high 16 bits of the NodeIds).
    pub fn zone_count(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| n.id.zone())
            .collect::<HashSet<_>>()
            .len()
    }

    /// Whether node `n` has a link to another zone (a border node).
    pub fn is_border(&self, n: usize) -> bool {
        let zone = self.nodes[n].id.zone();
        self.links.iter().any(|l| {
            (l.a == n && self.nodes[l.b].id.zone() != zone)
                || (l.b == n && self.nodes[l.a].id.zone() != zone)
        })
    }

    /// The link between nodes `a` and `b`, if any.
    pub fn link_between(&self, a: usize, b: usize) -> Option<usize> {
        self.links
            .iter()
            .position(|l| (l.a, l.b) == (a, b) || (l.a, l.b) == (b, a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsfnet_is_the_papers_backbone() {
        let t = Topology::from_spec("nsfnet", 1).unwrap();
        assert_eq!(t.nodes.len(), 14);
        assert_eq!(t.links.len(), 21);
        assert!(t.links.iter().all(|l| l.capacity_bps == 1_500_000));
        let delays: Vec<u64> = t.links.iter().map(|l| l.delay_ns / 1_000_000).collect();
        assert!(delays.iter().all(|d| (4..=20).contains(d)), "{delays:?}");
        assert_eq!(t.find("0.14"), Some(13));
        assert_eq!(t.zone_count(), 1);
    }

    #[test]
    fn testbed_files_load_with_defaults() {
        // The testbed's line fleet: no delays or capacities, a tapped link, workloads.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies/line.toml");
        let t = Topology::load(&path).unwrap();
        assert_eq!(t.nodes.len(), 4);
        assert!(t.links.iter().all(|l| l.delay_ns == 1_000_000));
        assert!(t.links.iter().all(|l| l.capacity_bps == 10_000_000));
    }

    fn err(text: &str) -> String {
        Topology::parse(text, "t.toml").unwrap_err().to_string()
    }

    const TWO: &str =
        "[[node]]\nname = \"a\"\nid = \"0.1\"\n[[node]]\nname = \"b\"\nid = \"0.2\"\n";

    #[test]
    fn errors_name_the_bad_value() {
        let e = err("[[node]]\nname = \"a\"\nid = \"zz\"\n");
        assert!(e.contains("node[0].id = \"zz\""), "{e}");
        let e = err(&format!("{TWO}[[link]]\na = \"a\"\nb = \"c\"\n"));
        assert!(e.contains("link[0].b = \"c\": no such node"), "{e}");
        let e = err(&format!(
            "{TWO}[[link]]\na = \"a\"\nb = \"b\"\ndelay_ms = -3.0\n"
        ));
        assert!(
            e.contains("link[0].delay_ms = -3") && e.contains("a-b"),
            "{e}"
        );
        let e = err(&format!(
            "{TWO}[[link]]\na = \"a\"\nb = \"b\"\ncapacity_mbps = 0.0\n"
        ));
        assert!(e.contains("link[0].capacity_mbps = 0"), "{e}");
        let e = err(TWO);
        assert!(e.contains("node `b` is not connected to node `a`"), "{e}");
        let e = err(&format!("{TWO}[[node]]\nname = \"a\"\nid = \"0.3\"\n"));
        assert!(e.contains("node[2].name = \"a\": used by two nodes"), "{e}");
        let e = err(&format!("{TWO}[[link]]\na = \"a\"\nb = \"a\"\n"));
        assert!(e.contains("link[0]: links node `a` to itself"), "{e}");
        let e = err("[[node]]\nname = \"a\"\nid = \"0.1\"\n");
        assert!(
            e.contains("node count `1`: a simulation needs at least 2 nodes"),
            "{e}"
        );
        let e = err("[[node]]\nname = 3\n");
        assert!(e.starts_with("topology t.toml:"), "{e}");
        for (spec, bad) in [
            ("random:abc", "`abc`"),
            ("grid:4by4", "`4by4`"),
            ("grid:4xq", "`q`"),
            ("random:1", "`1`"),
        ] {
            let e = Topology::from_spec(spec, 1).unwrap_err().to_string();
            assert!(e.contains(spec) && e.contains(bad), "{e}");
        }
        let e = Topology::from_spec("/nonexistent/t.toml", 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/t.toml"), "{e}");
    }
}
