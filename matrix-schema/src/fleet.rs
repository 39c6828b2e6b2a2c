//! The fleet file: every host of a real fleet in one place, from which
//! `matrix config gen` writes each host's agent configuration. The configs are built as
//! [`ConfigFile`]s and checked with [`Config::parse`], so what is generated is exactly
//! what the agent reads; neighbours come from the links, each end's address from that
//! node's interface.
//!
//! ```toml
//! vni = 1                              # optional, every node (default 1)
//! hop_limit = 16                       # optional, every node (default 16)
//!
//! [routing]                            # every node's [routing], as in the agent config
//! key_file = "/etc/matrix/cluster.key" # absolute: each agent reads it on its own host
//! strategy = "shortest"
//!
//! [metrics]                            # optional: every node serves metrics here
//! address = "127.0.0.1:9469"
//!
//! [[node]]
//! name = "edge-1"                      # the host: edge-1.toml, pins under matrix/edge-1
//! id = "1.1"                           # NodeId zone.host
//! metrics = "192.0.2.10:9469"          # optional: this node's own [metrics] address
//! underlay = [{ iface = "eth0", address = "192.0.2.10/24" }]
//! workload = [{ iface = "br-wl", prefixes = ["10.101.0.0/24"] }]
//!
//! [[link]]                             # two underlay interfaces on one subnet
//! a = "edge-1:eth0"                    # node (name or NodeId) : interface
//! b = "core-1:eth0"
//! ```
//!
//! Every error names the field and the value at fault, as in the agent config; where
//! the fleet copies a value into the configs unchanged (`vni`, `routing.*`, an
//! interface name, a workload prefix), the agent config's own check speaks for it under
//! the fleet file's field name.

use std::{collections::HashMap, net::SocketAddr, path::Path};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::{
    config::{
        Config, ConfigError, ConfigFile, MetricsFile, NeighborFile, UnderlayFile, WorkloadFile,
    },
    node::{NodeId, NodeIdError},
};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cannot read fleet file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("fleet file {path}: {source}")]
    Toml {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("`{field}` = \"{value}\": {source}")]
    NodeId {
        field: String,
        value: String,
        #[source]
        source: NodeIdError,
    },
    #[error("`{field}` = {value}: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
    /// The agent config generated for a node failed its own check on something the
    /// fleet file has no field for (e.g. too many links on one node).
    #[error("the config generated for node `{node}` is not valid: {error}")]
    Generated {
        node: String,
        error: Box<ConfigError>,
    },
    #[error("`--node` = \"{0}\": no such node in the fleet (nodes: {1})")]
    UnknownNode(String, String),
}

fn invalid(
    field: impl Into<String>,
    value: impl ToString,
    reason: impl Into<String>,
) -> FleetError {
    FleetError::Invalid {
        field: field.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The fleet file as written. Fields serialize in this order, optional ones only when
/// set, lists only when not empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop_limit: Option<u32>,
    /// Every node's `[routing]` table: `key_file` and any routing parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<toml::Table>,
    /// Every node's `[metrics]`, unless the node gives its own address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node: Vec<FleetNodeFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<FleetLinkFile>,
}

/// `[[node]]`: one host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetNodeFile {
    pub name: String,
    pub id: String,
    /// `IP:port` of this node's metrics, instead of the fleet's `[metrics]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub underlay: Vec<FleetUnderlayFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workload: Vec<WorkloadFile>,
}

/// `node.underlay`: an interface towards other nodes and its address with the prefix
/// length of its subnet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetUnderlayFile {
    pub iface: String,
    /// `192.0.2.10/24`.
    pub address: String,
}

/// `[[link]]`: two nodes that are neighbours, each end `node:iface`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetLinkFile {
    pub a: String,
    pub b: String,
}

impl FleetFile {
    /// The file's text, as [`Fleet::parse`] reads it back.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

/// A validated fleet: names and NodeIds unique, every link between two underlay
/// interfaces of two different nodes on one subnet, no pair of nodes linked twice,
/// every node reachable over links, and every node's generated config valid.
#[derive(Clone, Debug, PartialEq)]
pub struct Fleet {
    /// The file as written; the configs copy its fleet-wide fields.
    file: FleetFile,
    pub nodes: Vec<FleetNode>,
    pub links: Vec<FleetLink>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FleetNode {
    pub name: String,
    pub id: NodeId,
    /// Interface name and its address on its subnet, in file order.
    pub underlay: Vec<(String, Ipv4Net)>,
}

/// One end of a link: a node and one of its underlay interfaces (indices).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkEnd {
    pub node: usize,
    pub underlay: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetLink {
    pub a: LinkEnd,
    pub b: LinkEnd,
}

impl Fleet {
    pub fn load(path: &Path) -> Result<Self, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|source| FleetError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            FleetError::Toml { source, .. } => FleetError::Toml {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, FleetError> {
        let file: FleetFile = toml::from_str(text).map_err(|source| FleetError::Toml {
            path: "<fleet>".into(),
            source,
        })?;
        check_routing(file.routing.as_ref())?;
        let nodes = parse_nodes(&file.node)?;
        let links = parse_links(&file.link, &nodes)?;
        let fleet = Fleet { file, nodes, links };
        fleet.check_connected()?;
        for i in 0..fleet.nodes.len() {
            fleet.render(i, "")?;
        }
        Ok(fleet)
    }

    /// The node named `key`, by name or NodeId.
    pub fn find(&self, key: &str) -> Result<usize, FleetError> {
        let id = key.parse::<NodeId>().ok();
        self.nodes
            .iter()
            .position(|n| n.name == key || Some(n.id) == id)
            .ok_or_else(|| {
                let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                FleetError::UnknownNode(key.to_string(), names.join(", "))
            })
    }

    /// Node `node`'s agent config: its own interfaces, one neighbour per link (the far
    /// end's address, reached through this end's interface, in link order), the fleet's
    /// `vni`, `hop_limit`, `[routing]` and metrics address. No static routes or remote
    /// prefixes: the agents learn them from each other's adverts.
    pub fn config_file(&self, node: usize) -> ConfigFile {
        let me = &self.nodes[node];
        let raw = &self.file.node[node];
        let neighbor = self
            .links
            .iter()
            .filter_map(|l| {
                let (mine, far) = if l.a.node == node {
                    (l.a, l.b)
                } else if l.b.node == node {
                    (l.b, l.a)
                } else {
                    return None;
                };
                let peer = &self.nodes[far.node];
                Some(NeighborFile {
                    node: peer.id.to_string(),
                    address: peer.underlay[far.underlay].1.addr().to_string(),
                    iface: me.underlay[mine.underlay].0.clone(),
                })
            })
            .collect();
        let metrics = match &raw.metrics {
            Some(address) => Some(MetricsFile {
                address: address.clone(),
            }),
            None => self.file.metrics.clone(),
        };
        ConfigFile {
            node: me.id.to_string(),
            name: Some(me.name.clone()),
            vni: self.file.vni,
            hop_limit: self.file.hop_limit,
            underlay: me
                .underlay
                .iter()
                .map(|(iface, net)| UnderlayFile {
                    iface: iface.clone(),
                    address: net.addr().to_string(),
                })
                .collect(),
            workload: raw.workload.clone(),
            neighbor,
            metrics,
            routing: self.file.routing.clone(),
            ..ConfigFile::default()
        }
    }

    /// Node `node`'s config file text, headed by a comment naming `origin` (the fleet
    /// file), and checked by the agent's own [`Config::parse`].
    pub fn render(&self, node: usize, origin: &str) -> Result<String, FleetError> {
        let me = &self.nodes[node];
        let body = self
            .config_file(node)
            .to_toml()
            .expect("agent config serializes to TOML");
        let text = format!(
            "# Agent config of node `{}` ({}), written by `matrix config gen` from {origin}.\n{body}",
            me.name, me.id
        );
        Config::parse(&text).map_err(|e| relocate(e, node, &me.name))?;
        Ok(text)
    }

    /// Every node reaches the first one over links: nodes cut off from the rest would
    /// never learn routes to them.
    fn check_connected(&self) -> Result<(), FleetError> {
        let mut reached = vec![false; self.nodes.len()];
        reached[0] = true;
        let mut stack = vec![0];
        while let Some(n) = stack.pop() {
            for l in &self.links {
                for (from, to) in [(l.a.node, l.b.node), (l.b.node, l.a.node)] {
                    if from == n && !reached[to] {
                        reached[to] = true;
                        stack.push(to);
                    }
                }
            }
        }
        match reached.iter().position(|r| !r) {
            None => Ok(()),
            Some(far) => Err(invalid(
                format!("node[{far}].name"),
                format!("\"{}\"", self.nodes[far].name),
                format!(
                    "no [[link]] path to node `{}`: the fleet would be split",
                    self.nodes[0].name
                ),
            )),
        }
    }
}

fn check_routing(routing: Option<&toml::Table>) -> Result<(), FleetError> {
    let Some(routing) = routing else {
        return Err(invalid(
            "routing",
            "(missing)",
            "a fleet runs adaptive routing: give [routing] with `key_file` and `strategy`",
        ));
    };
    if let Some(toml::Value::String(key)) = routing.get("key_file")
        && !Path::new(key).is_absolute()
    {
        return Err(invalid(
            "routing.key_file",
            format!("\"{key}\""),
            "use an absolute path: each agent reads it on its own host",
        ));
    }
    Ok(())
}

/// A node name names its config file and its pin directory.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_nodes(raw: &[FleetNodeFile]) -> Result<Vec<FleetNode>, FleetError> {
    if raw.is_empty() {
        return Err(invalid("node", "[]", "no nodes"));
    }
    let mut nodes: Vec<FleetNode> = Vec::with_capacity(raw.len());
    let mut names = HashMap::new();
    let mut ids = HashMap::new();
    for (i, n) in raw.iter().enumerate() {
        let field = |f: &str| format!("node[{i}].{f}");
        if !plain_name(&n.name) {
            return Err(invalid(
                field("name"),
                format!("\"{}\"", n.name),
                "use letters, digits, `-` and `_`: it names the config file and the pin directory",
            ));
        }
        if let Some(j) = names.insert(n.name.as_str(), i) {
            return Err(invalid(
                field("name"),
                format!("\"{}\"", n.name),
                format!("also the name of node[{j}]"),
            ));
        }
        let id: NodeId = n.id.parse().map_err(|source| FleetError::NodeId {
            field: field("id"),
            value: n.id.clone(),
            source,
        })?;
        if let Some(j) = ids.insert(id, i) {
            return Err(invalid(
                field("id"),
                format!("\"{}\"", n.id),
                format!("also the id of node `{}`", raw[j].name),
            ));
        }
        if let Some(m) = &n.metrics
            && m.parse::<SocketAddr>().is_err()
        {
            return Err(invalid(
                field("metrics"),
                format!("\"{m}\""),
                "not an IP:port like 127.0.0.1:9469 or [::]:9469",
            ));
        }
        let mut underlay = Vec::with_capacity(n.underlay.len());
        for (j, u) in n.underlay.iter().enumerate() {
            let net = host_address(field(&format!("underlay[{j}].address")), &u.address)?;
            underlay.push((u.iface.clone(), net));
        }
        nodes.push(FleetNode {
            name: n.name.clone(),
            id,
            underlay,
        });
    }
    Ok(nodes)
}

/// `192.0.2.10/24`: a host's address on its subnet.
fn host_address(field: String, value: &str) -> Result<Ipv4Net, FleetError> {
    let net: Ipv4Net = value.parse().map_err(|_| {
        invalid(
            field.clone(),
            format!("\"{value}\""),
            "not an IPv4 address with its prefix length, like 192.0.2.10/24",
        )
    })?;
    // /31 and /32 have no network or broadcast address (RFC 3021).
    let addr = net.addr();
    if net.prefix_len() < 31 && (addr == net.network() || addr == net.broadcast()) {
        return Err(invalid(
            field,
            format!("\"{value}\""),
            "is the subnet's network or broadcast address, not a host's",
        ));
    }
    Ok(net)
}

fn parse_links(raw: &[FleetLinkFile], nodes: &[FleetNode]) -> Result<Vec<FleetLink>, FleetError> {
    let mut links: Vec<FleetLink> = Vec::with_capacity(raw.len());
    let mut pairs = HashMap::new();
    for (k, l) in raw.iter().enumerate() {
        let a = link_end(format!("link[{k}].a"), &l.a, nodes)?;
        let b = link_end(format!("link[{k}].b"), &l.b, nodes)?;
        let b_field = || format!("link[{k}].b");
        if a.node == b.node {
            return Err(invalid(
                b_field(),
                format!("\"{}\"", l.b),
                format!("same node as `link[{k}].a` = \"{}\"", l.a),
            ));
        }
        // Neighbours are keyed by NodeId: a second link between the same two nodes
        // could not be told apart.
        if let Some(j) = pairs.insert((a.node.min(b.node), a.node.max(b.node)), k) {
            return Err(invalid(
                format!("link[{k}]"),
                format!("\"{} - {}\"", l.a, l.b),
                format!("the same two nodes as link[{j}]; one link per pair of nodes"),
            ));
        }
        let (a_net, b_net) = (
            nodes[a.node].underlay[a.underlay].1,
            nodes[b.node].underlay[b.underlay].1,
        );
        if a_net.addr() == b_net.addr() {
            return Err(invalid(
                b_field(),
                format!("\"{}\"", l.b),
                format!("has the address of `{}` ({})", l.a, a_net.addr()),
            ));
        }
        // Each end must reach the other directly: on the same subnet, as each host
        // sees it.
        if !a_net.contains(&b_net.addr()) || !b_net.contains(&a_net.addr()) {
            return Err(invalid(
                b_field(),
                format!("\"{}\"", l.b),
                format!(
                    "its address {b_net} is not on the subnet of `{}` ({a_net}): link ends share a subnet",
                    l.a,
                ),
            ));
        }
        links.push(FleetLink { a, b });
    }
    Ok(links)
}

/// `node:iface`, the node by name or NodeId, the interface one of its underlays.
fn link_end(field: String, value: &str, nodes: &[FleetNode]) -> Result<LinkEnd, FleetError> {
    let quoted = || format!("\"{value}\"");
    let Some((node, iface)) = value.split_once(':') else {
        return Err(invalid(
            field,
            quoted(),
            "not of the form node:iface (e.g. edge-1:eth0)",
        ));
    };
    let id = node.parse::<NodeId>().ok();
    let Some(n) = nodes
        .iter()
        .position(|x| x.name == node || Some(x.id) == id)
    else {
        let names: Vec<&str> = nodes.iter().map(|x| x.name.as_str()).collect();
        return Err(invalid(
            field,
            quoted(),
            format!("no node `{node}` (nodes: {})", names.join(", ")),
        ));
    };
    let Some(u) = nodes[n].underlay.iter().position(|(i, _)| i == iface) else {
        let ifaces: Vec<&str> = nodes[n].underlay.iter().map(|(i, _)| i.as_str()).collect();
        return Err(invalid(
            field,
            quoted(),
            format!(
                "node `{}` has no underlay interface `{iface}` (it has: {})",
                nodes[n].name,
                ifaces.join(", ")
            ),
        ));
    };
    Ok(LinkEnd {
        node: n,
        underlay: u,
    })
}

/// A generated config's error, named by the fleet file's field: the node's interfaces
/// and prefixes are `node[i].…`, fleet-wide values keep their names.
fn relocate(e: ConfigError, node: usize, name: &str) -> FleetError {
    let field_of = |field: &str| {
        if field.starts_with("underlay[") || field.starts_with("workload[") {
            Some(format!("node[{node}].{field}"))
        } else if ["vni", "hop_limit", "metrics.address"].contains(&field)
            || field.starts_with("routing.")
        {
            Some(field.to_string())
        } else {
            None
        }
    };
    match e {
        ConfigError::Invalid {
            field,
            value,
            reason,
        } => match field_of(&field) {
            Some(field) => FleetError::Invalid {
                field,
                value,
                reason,
            },
            None => FleetError::Generated {
                node: name.to_string(),
                error: Box::new(ConfigError::Invalid {
                    field,
                    value,
                    reason,
                }),
            },
        },
        ConfigError::NodeId {
            field,
            value,
            source,
        } => match field_of(&field) {
            Some(field) => FleetError::NodeId {
                field,
                value,
                source,
            },
            None => FleetError::Generated {
                node: name.to_string(),
                error: Box::new(ConfigError::NodeId {
                    field,
                    value,
                    source,
                }),
            },
        },
        error => FleetError::Generated {
            node: name.to_string(),
            error: Box::new(error),
        },
    }
}

/// Length of the cluster keys `matrix config key` writes: 256 random bits.
pub const KEY_LEN: usize = 32;

#[cfg(test)]
mod tests;
