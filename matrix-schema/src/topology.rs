//! The topology file: nodes, links between them, optional route overrides and routing.
//! One format for the testbed (`cargo xtask testbed`, the benches) and the simulator
//! (`matrix sim`); each tool uses the fields it needs and ignores the rest.
//!
//! ```toml
//! [[node]]
//! name = "a"          # unique; the testbed wants [a-z0-9]{1,8} (xtask checks that)
//! id = "0.1"          # NodeId zone.host
//! workloads = 1       # testbed: workload namespaces behind this node (default 0)
//! [[link]]
//! a = "a"             # a node's name or NodeId
//! b = "b"
//! mtu = 1500          # testbed: link MTU (default 1500)
//! tap = true          # testbed: wire through a bridge that tcpdump can watch
//! delay_ms = 10.5     # simulator: propagation delay
//! capacity_mbps = 1.5 # simulator: capacity of each direction
//! [[route]]           # testbed: replaces the computed route of `node` to `dst`
//! node = "b"
//! dst = "d"
//! via = ["a"]
//! weights = [1]       # optional
//! [routing]           # testbed: the agents' `[routing]` table, without `key_file`
//! strategy = "antnet"
//! ```

use std::{collections::VecDeque, fmt, path::Path};

use matrix_common::{ENCAP_MTU_OVERHEAD, MAX_NEXT_HOPS};
use serde::Deserialize;

use crate::node::NodeId;

pub const DEFAULT_MTU: u32 = 1500;
/// What the overlay takes from a link's MTU: outer IPv4 + UDP + Geneve + Matrix option.
pub const ENCAP_OVERHEAD: u32 = ENCAP_MTU_OVERHEAD as u32;
/// The workload MTU must stay at or above IPv6's minimum of 1280.
pub const MIN_MTU: u32 = 1280 + ENCAP_OVERHEAD;
pub const MAX_MTU: u32 = 9000;

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read topology {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("topology {origin}: {source}")]
    Toml {
        origin: String,
        #[source]
        source: toml::de::Error,
    },
    /// `what` names the field and its value (`link[1].b = "z"`).
    #[error("topology {origin}: {what}: {reason}")]
    Invalid {
        origin: String,
        what: String,
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    #[serde(default)]
    node: Vec<RawNode>,
    #[serde(default)]
    link: Vec<RawLink>,
    #[serde(default)]
    route: Vec<RawRoute>,
    routing: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    id: String,
    #[serde(default)]
    workloads: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    a: String,
    b: String,
    mtu: Option<u32>,
    #[serde(default)]
    tap: bool,
    delay_ms: Option<f64>,
    capacity_mbps: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    node: String,
    dst: String,
    via: Vec<String>,
    weights: Option<Vec<u32>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub id: NodeId,
    pub workloads: u32,
}

/// A point-to-point link; `a_port`/`b_port` are the ordinals of the underlay
/// interfaces it gets on each end (`u<port>`: each node numbers its links in file order).
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub a: usize,
    pub b: usize,
    pub a_port: usize,
    pub b_port: usize,
    pub mtu: u32,
    /// Wired through a bridge in a namespace of its own rather than as one veth pair:
    /// the data plane's XDP redirects bypass packet taps on the veths themselves, but
    /// the bridge forwards through the stack, where `tcpdump` sees every frame. Same
    /// interfaces and addresses on the nodes either way.
    pub tap: bool,
    /// Propagation delay, when the file gives one (finite, >= 0).
    pub delay_ms: Option<f64>,
    /// Capacity of each direction, when the file gives one (finite, > 0).
    pub capacity_mbps: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteOverride {
    pub node: usize,
    pub dst: usize,
    pub via: Vec<usize>,
    pub weights: Option<Vec<u32>>,
}

/// One end of a link as seen from a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adjacency {
    pub link: usize,
    pub peer: usize,
    /// This node's port (underlay interface ordinal) on the link.
    pub port: usize,
    pub peer_port: usize,
}

/// A validated topology: names and ids unique, links between distinct known nodes with
/// no pair linked twice, the graph connected, overrides through real neighbours. Nodes
/// and links keep file order.
#[derive(Clone, Debug)]
pub struct Topology {
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
    pub overrides: Vec<RouteOverride>,
    /// The agents' `[routing]` table (without `key_file`); `None`: static routes.
    pub routing: Option<toml::Table>,
}

impl Topology {
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates `text`; `origin` (a file name) prefixes every error.
    pub fn parse(text: &str, origin: &str) -> Result<Self, TopologyError> {
        let raw: RawTopology = toml::from_str(text).map_err(|source| TopologyError::Toml {
            origin: origin.to_string(),
            source,
        })?;
        let invalid = |what: String, reason: String| TopologyError::Invalid {
            origin: origin.to_string(),
            what,
            reason,
        };

        if raw.node.is_empty() {
            return Err(invalid("[[node]]".into(), "no nodes".into()));
        }
        let mut nodes: Vec<Node> = Vec::with_capacity(raw.node.len());
        let mut by_name = std::collections::HashMap::with_capacity(raw.node.len());
        let mut by_id = std::collections::HashMap::with_capacity(raw.node.len());
        for (i, n) in raw.node.iter().enumerate() {
            let what =
                |field: &str, value: &dyn fmt::Display| format!("node[{i}].{field} = \"{value}\"");
            if n.name.is_empty() {
                return Err(invalid(what("name", &n.name), "names are not empty".into()));
            }
            if by_name.insert(n.name.clone(), i).is_some() {
                return Err(invalid(what("name", &n.name), "used by two nodes".into()));
            }
            let id: NodeId =
                n.id.parse()
                    .map_err(|e: crate::NodeIdError| invalid(what("id", &n.id), e.to_string()))?;
            if let Some(&m) = by_id.get(&id) {
                let other: &Node = &nodes[m];
                return Err(invalid(
                    what("id", &n.id),
                    format!("also the id of node `{}`", other.name),
                ));
            }
            by_id.insert(id, i);
            nodes.push(Node {
                name: n.name.clone(),
                id,
                workloads: n.workloads,
            });
        }
        // A node is named by its name or, failing that, its NodeId.
        let find = |key: &str| {
            by_name.get(key).copied().or_else(|| {
                key.parse::<NodeId>()
                    .ok()
                    .and_then(|id| by_id.get(&id).copied())
            })
        };

        let mut links: Vec<Link> = Vec::with_capacity(raw.link.len());
        let mut seen = std::collections::HashMap::with_capacity(raw.link.len());
        let mut ports = vec![0usize; nodes.len()];
        for (k, l) in raw.link.iter().enumerate() {
            let end = |field: &str, name: &str| {
                find(name).ok_or_else(|| {
                    invalid(
                        format!("link[{k}].{field} = \"{name}\""),
                        "no such node".into(),
                    )
                })
            };
            let (a, b) = (end("a", &l.a)?, end("b", &l.b)?);
            if a == b {
                return Err(invalid(
                    format!("link[{k}]"),
                    format!("links node `{}` to itself", l.a),
                ));
            }
            // Neighbours are keyed by NodeId, so a second link to the same peer could not
            // be told apart.
            if let Some(j) = seen.insert((a.min(b), a.max(b)), k) {
                return Err(invalid(
                    format!("link[{k}] ({} - {})", l.a, l.b),
                    format!("same nodes as link[{j}]"),
                ));
            }
            let mtu = l.mtu.unwrap_or(DEFAULT_MTU);
            if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
                return Err(invalid(
                    format!("link[{k}].mtu = {mtu}"),
                    format!(
                        "must be in {MIN_MTU}..={MAX_MTU} (workloads need {ENCAP_OVERHEAD} bytes of headroom over IPv6's 1280)"
                    ),
                ));
            }
            if let Some(d) = l.delay_ms
                && !(d >= 0.0 && d.is_finite())
            {
                return Err(invalid(
                    format!("link[{k}].delay_ms = {d}"),
                    format!("link {}-{}: must be a finite number >= 0", l.a, l.b),
                ));
            }
            if let Some(c) = l.capacity_mbps
                && !(c > 0.0 && c.is_finite())
            {
                return Err(invalid(
                    format!("link[{k}].capacity_mbps = {c}"),
                    format!("link {}-{}: must be a finite number > 0", l.a, l.b),
                ));
            }
            links.push(Link {
                a,
                b,
                a_port: ports[a],
                b_port: ports[b],
                mtu,
                tap: l.tap,
                delay_ms: l.delay_ms,
                capacity_mbps: l.capacity_mbps,
            });
            ports[a] += 1;
            ports[b] += 1;
        }

        if let Some(r) = &raw.routing
            && r.contains_key("key_file")
        {
            return Err(invalid(
                "routing.key_file".into(),
                "the testbed writes the cluster key itself".into(),
            ));
        }
        let mut topo = Topology {
            nodes,
            links,
            overrides: Vec::new(),
            routing: raw.routing.clone(),
        };
        let hops = topo.hop_counts(0);
        if let Some(far) = hops.iter().position(Option::is_none) {
            return Err(invalid(
                "[[link]]".into(),
                format!(
                    "node `{}` is not connected to node `{}`",
                    topo.nodes[far].name, topo.nodes[0].name
                ),
            ));
        }

        for (i, r) in raw.route.iter().enumerate() {
            let node_ref = |field: &str, name: &str| {
                find(name).ok_or_else(|| {
                    invalid(
                        format!("route[{i}].{field} = \"{name}\""),
                        "no such node".into(),
                    )
                })
            };
            let node = node_ref("node", &r.node)?;
            let dst = node_ref("dst", &r.dst)?;
            if node == dst {
                return Err(invalid(
                    format!("route[{i}].dst = \"{}\"", r.dst),
                    "is the node itself".into(),
                ));
            }
            if topo
                .overrides
                .iter()
                .any(|o| (o.node, o.dst) == (node, dst))
            {
                return Err(invalid(
                    format!("route[{i}] ({} to {})", r.node, r.dst),
                    "overridden twice".into(),
                ));
            }
            if r.via.is_empty() || r.via.len() > MAX_NEXT_HOPS {
                return Err(invalid(
                    format!("route[{i}].via = {:?}", r.via),
                    format!("needs 1 to {MAX_NEXT_HOPS} next hops"),
                ));
            }
            let neighbours = topo.neighbors(node);
            let mut via = Vec::new();
            for (j, v) in r.via.iter().enumerate() {
                let hop = node_ref(&format!("via[{j}]"), v)?;
                if !neighbours.iter().any(|adj| adj.peer == hop) {
                    return Err(invalid(
                        format!("route[{i}].via[{j}] = \"{v}\""),
                        format!("not a neighbour of `{}`", r.node),
                    ));
                }
                if via.contains(&hop) {
                    return Err(invalid(
                        format!("route[{i}].via[{j}] = \"{v}\""),
                        "listed twice".into(),
                    ));
                }
                via.push(hop);
            }
            if let Some(w) = &r.weights
                && (w.len() != via.len() || w.iter().all(|x| *x == 0))
            {
                return Err(invalid(
                    format!("route[{i}].weights = {w:?}"),
                    format!("needs one weight per via ({}), not all 0", via.len()),
                ));
            }
            topo.overrides.push(RouteOverride {
                node,
                dst,
                via,
                weights: r.weights.clone(),
            });
        }
        Ok(topo)
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The links of `node`, in link (and so port) order.
    pub fn neighbors(&self, node: usize) -> Vec<Adjacency> {
        self.links
            .iter()
            .enumerate()
            .filter_map(|(k, l)| {
                if l.a == node {
                    Some(Adjacency {
                        link: k,
                        peer: l.b,
                        port: l.a_port,
                        peer_port: l.b_port,
                    })
                } else if l.b == node {
                    Some(Adjacency {
                        link: k,
                        peer: l.a,
                        port: l.b_port,
                        peer_port: l.a_port,
                    })
                } else {
                    None
                }
            })
            .collect()
    }

    /// Hop counts from `from` to every node (BFS); `None` where unreachable.
    pub fn hop_counts(&self, from: usize) -> Vec<Option<u32>> {
        let mut adj = vec![Vec::new(); self.nodes.len()];
        for l in &self.links {
            adj[l.a].push(l.b);
            adj[l.b].push(l.a);
        }
        let mut hops = vec![None; self.nodes.len()];
        hops[from] = Some(0);
        let mut queue = VecDeque::from([from]);
        while let Some(n) = queue.pop_front() {
            let next = hops[n].map(|h| h + 1);
            for &peer in &adj[n] {
                if hops[peer].is_none() {
                    hops[peer] = next;
                    queue.push_back(peer);
                }
            }
        }
        hops
    }

    /// The MTU of workload interfaces: the smallest link MTU less the encapsulation,
    /// since a workload's packets may cross any link.
    pub fn workload_mtu(&self) -> u32 {
        self.links
            .iter()
            .map(|l| l.mtu)
            .min()
            .unwrap_or(DEFAULT_MTU)
            - ENCAP_OVERHEAD
    }

    /// Nodes with workloads deliver decapsulated packets through their own stack, so
    /// they forward; pure relays must not.
    pub fn forwards(&self, node: usize) -> bool {
        self.nodes[node].workloads > 0
    }
}

#[cfg(test)]
mod tests;
