//! Testbed topology files: nodes, links between them, optional route overrides.
//!
//! ```toml
//! [[node]]
//! name = "a"          # [a-z0-9], at most 8 characters; not l<digits> (wire namespaces)
//! id = "0.1"          # NodeId zone.host
//! workloads = 1       # workload namespaces behind this node (default 0)
//! [[link]]
//! a = "a"
//! b = "b"
//! mtu = 1500          # optional
//! tap = true          # optional: wire through a bridge that tcpdump can watch
//! [[route]]           # optional: replaces the computed route of `node` to `dst`
//! node = "b"
//! dst = "d"
//! via = ["a"]
//! weights = [1]       # optional
//! ```

use std::{collections::VecDeque, fmt, path::Path, str::FromStr};

use serde::Deserialize;

/// Next hops per route, as many as the data plane holds (matrix-common MAX_NEXT_HOPS).
pub const MAX_ECMP: usize = 4;
pub const DEFAULT_MTU: u32 = 1500;
/// Outer IPv4 + UDP + Geneve + Matrix option: what the overlay takes from the link MTU.
pub const ENCAP_OVERHEAD: u32 = 20 + 8 + 8 + 16;
/// The workload MTU must stay at or above IPv6's minimum of 1280.
pub const MIN_MTU: u32 = 1280 + ENCAP_OVERHEAD;
pub const MAX_MTU: u32 = 9000;
/// Node index n gets workload subnets 10.(100+n).x.0/24, and 10.200+ is for links.
pub const MAX_NODES: usize = 99;
/// Workload i of a node gets the third octet i.
pub const MAX_WORKLOADS: u32 = 256;
/// Link k gets 10.(200 + k/256).(k%256).0/24.
pub const MAX_LINKS: usize = 56 * 256;
const MAX_NAME_LEN: usize = 8;

/// `zone.host`: 16 bits each; 0.0 is reserved (the data plane's "not configured").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    pub zone: u16,
    pub host: u16,
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.zone, self.host)
    }
}

impl FromStr for NodeId {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (zone, host) = s.split_once('.').ok_or("not of the form zone.host")?;
        let part = |p: &str| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err("zone and host must be decimal numbers");
            }
            p.parse::<u16>()
                .map_err(|_| "zone and host must be at most 65535")
        };
        let id = NodeId {
            zone: part(zone)?,
            host: part(host)?,
        };
        if id.zone == 0 && id.host == 0 {
            return Err("0.0 is reserved");
        }
        Ok(id)
    }
}

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
    /// Adaptive routing for every agent (`[routing]` of the agent config, without
    /// `key_file`, which the testbed makes): no static routes are generated then.
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
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// A validated topology: names and ids unique, links between known nodes, the graph
/// connected, overrides through real neighbours. Nodes and links keep file order.
#[derive(Clone, Debug)]
pub struct Topology {
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
    pub overrides: Vec<RouteOverride>,
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
        if raw.node.len() > MAX_NODES {
            return Err(invalid(
                "[[node]]".into(),
                format!("{} nodes, at most {MAX_NODES}", raw.node.len()),
            ));
        }
        let mut nodes: Vec<Node> = Vec::new();
        for (i, n) in raw.node.iter().enumerate() {
            let what =
                |field: &str, value: &dyn fmt::Display| format!("node[{i}].{field} = \"{value}\"");
            let name_ok = !n.name.is_empty()
                && n.name.len() <= MAX_NAME_LEN
                && n.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !name_ok {
                return Err(invalid(
                    what("name", &n.name),
                    format!("names are 1 to {MAX_NAME_LEN} characters of [a-z0-9]"),
                ));
            }
            if is_wire_name(&n.name) {
                return Err(invalid(
                    what("name", &n.name),
                    "names of the form l<digits> are reserved for the wire namespaces of tapped links".into(),
                ));
            }
            if nodes.iter().any(|m| m.name == n.name) {
                return Err(invalid(what("name", &n.name), "used by two nodes".into()));
            }
            let id: NodeId =
                n.id.parse()
                    .map_err(|reason: &str| invalid(what("id", &n.id), reason.into()))?;
            if let Some(m) = nodes.iter().find(|m| m.id == id) {
                return Err(invalid(
                    what("id", &n.id),
                    format!("also the id of node `{}`", m.name),
                ));
            }
            if n.workloads > MAX_WORKLOADS {
                return Err(invalid(
                    what("workloads", &n.workloads),
                    format!("at most {MAX_WORKLOADS}"),
                ));
            }
            nodes.push(Node {
                name: n.name.clone(),
                id,
                workloads: n.workloads,
            });
        }
        let index = |name: &str| nodes.iter().position(|n| n.name == name);

        if raw.link.len() > MAX_LINKS {
            return Err(invalid(
                "[[link]]".into(),
                format!("{} links, at most {MAX_LINKS}", raw.link.len()),
            ));
        }
        let mut links: Vec<Link> = Vec::new();
        let mut ports = vec![0usize; nodes.len()];
        for (k, l) in raw.link.iter().enumerate() {
            let end = |field: &str, name: &str| {
                index(name).ok_or_else(|| {
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
            if let Some(j) = links
                .iter()
                .position(|m| (m.a, m.b) == (a, b) || (m.a, m.b) == (b, a))
            {
                // Neighbours are keyed by NodeId, so a second link to the same peer
                // could not be told apart.
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
            links.push(Link {
                a,
                b,
                a_port: ports[a],
                b_port: ports[b],
                mtu,
                tap: l.tap,
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
                topo.index(name).ok_or_else(|| {
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
            if r.via.is_empty() || r.via.len() > MAX_ECMP {
                return Err(invalid(
                    format!("route[{i}].via = {:?}", r.via),
                    format!("needs 1 to {MAX_ECMP} next hops"),
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
        let mut hops = vec![None; self.nodes.len()];
        hops[from] = Some(0);
        let mut queue = VecDeque::from([from]);
        while let Some(n) = queue.pop_front() {
            let next = hops[n].map(|h| h + 1);
            for adj in self.neighbors(n) {
                if hops[adj.peer].is_none() {
                    hops[adj.peer] = next;
                    queue.push_back(adj.peer);
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

/// `l<digits>`: the testbed names the wire namespace of tapped link k `<prefix>-l<k>`,
/// so no node may be called that.
pub fn is_wire_name(name: &str) -> bool {
    name.strip_prefix('l')
        .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"
[[node]]
name = "a"
id = "0.1"
workloads = 1
[[node]]
name = "b"
id = "0.2"
[[node]]
name = "c"
id = "0.3"
workloads = 2
[[link]]
a = "a"
b = "b"
[[link]]
a = "b"
b = "c"
mtu = 9000
"#;

    fn err(text: &str) -> String {
        Topology::parse(text, "t.toml").unwrap_err().to_string()
    }

    #[test]
    fn parses_nodes_links_and_ports() {
        let t = Topology::parse(LINE, "t.toml").unwrap();
        assert_eq!(t.nodes.len(), 3);
        assert_eq!(t.nodes[1].id, NodeId { zone: 0, host: 2 });
        assert_eq!(t.nodes[2].workloads, 2);
        assert_eq!(
            t.links[0],
            Link {
                a: 0,
                b: 1,
                a_port: 0,
                b_port: 0,
                mtu: 1500,
                tap: false
            }
        );
        // b's second link is its port 1.
        assert_eq!(
            t.links[1],
            Link {
                a: 1,
                b: 2,
                a_port: 1,
                b_port: 0,
                mtu: 9000,
                tap: false
            }
        );
        assert_eq!(t.hop_counts(0), vec![Some(0), Some(1), Some(2)]);
        assert_eq!(t.workload_mtu(), 1500 - 52);
        assert!(t.forwards(0) && !t.forwards(1));
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                LINE.replace("name = \"b\"", "name = \"B\""),
                "node[1].name = \"B\"",
            ),
            (
                LINE.replace("name = \"b\"", "name = \"a\""),
                "node[1].name = \"a\": used by two nodes",
            ),
            (
                LINE.replace("\"0.2\"", "\"0.1\""),
                "node[1].id = \"0.1\": also the id of node `a`",
            ),
            (LINE.replace("\"0.2\"", "\"x.2\""), "node[1].id = \"x.2\""),
            (LINE.replace("\"0.2\"", "\"0.0\""), "0.0 is reserved"),
            (LINE.replace("\"0.2\"", "\"0.70000\""), "at most 65535"),
            (
                LINE.replace("a = \"b\"\nb = \"c\"", "a = \"b\"\nb = \"z\""),
                "link[1].b = \"z\": no such node",
            ),
            (
                LINE.replace("a = \"b\"\nb = \"c\"", "a = \"b\"\nb = \"b\""),
                "link[1]: links node `b` to itself",
            ),
            (
                LINE.replace("a = \"b\"\nb = \"c\"", "a = \"b\"\nb = \"a\""),
                "same nodes as link[0]",
            ),
            (
                LINE.replace("mtu = 9000", "mtu = 1000"),
                "link[1].mtu = 1000",
            ),
            (
                LINE.replace("workloads = 2", "workloads = 300"),
                "node[2].workloads = \"300\"",
            ),
            (
                LINE.replace("workloads = 2", "workload = 2"),
                "unknown field `workload`",
            ),
            (
                format!("{LINE}[[node]]\nname = \"e\"\nid = \"0.5\"\n"),
                "node `e` is not connected to node `a`",
            ),
            (String::new(), "no nodes"),
            (
                LINE.replace("name = \"b\"", "name = \"l0\""),
                "node[1].name = \"l0\": names of the form l<digits> are reserved",
            ),
            (LINE.replace("mtu = 9000", "tap = \"yes\""), "invalid type"),
        ];
        for (text, want) in cases {
            let got = err(&text);
            assert!(got.contains(want), "want `{want}` in `{got}`");
            assert!(got.starts_with("topology t.toml"), "{got}");
        }
    }

    #[test]
    fn links_can_be_tapped() {
        let t = Topology::parse(&LINE.replace("mtu = 9000", "tap = true"), "t.toml").unwrap();
        let taps: Vec<bool> = t.links.iter().map(|l| l.tap).collect();
        assert_eq!(taps, [false, true]);
        // Names merely starting with `l` are fine.
        for ok in ["l", "la", "l1a", "lab1"] {
            assert!(!is_wire_name(ok), "{ok}");
        }
        for wire in ["l0", "l1", "l12345"] {
            assert!(is_wire_name(wire), "{wire}");
        }
    }

    #[test]
    fn route_overrides_are_checked() {
        let ok =
            format!("{LINE}[[route]]\nnode = \"a\"\ndst = \"c\"\nvia = [\"b\"]\nweights = [2]\n");
        let t = Topology::parse(&ok, "t.toml").unwrap();
        assert_eq!(
            t.overrides,
            vec![RouteOverride {
                node: 0,
                dst: 2,
                via: vec![1],
                weights: Some(vec![2])
            }]
        );
        let cases = [
            (
                ok.replace("via = [\"b\"]", "via = [\"c\"]")
                    .replace("weights = [2]\n", ""),
                "route[0].via[0] = \"c\": not a neighbour of `a`",
            ),
            (ok.replace("via = [\"b\"]", "via = []"), "route[0].via = []"),
            (
                ok.replace("dst = \"c\"", "dst = \"a\""),
                "route[0].dst = \"a\": is the node itself",
            ),
            (
                ok.replace("weights = [2]", "weights = [1, 2]"),
                "route[0].weights = [1, 2]",
            ),
            (
                format!("{ok}[[route]]\nnode = \"a\"\ndst = \"c\"\nvia = [\"b\"]\n"),
                "route[1] (a to c): overridden twice",
            ),
        ];
        for (text, want) in cases {
            let got = err(&text);
            assert!(got.contains(want), "want `{want}` in `{got}`");
        }
    }
}
