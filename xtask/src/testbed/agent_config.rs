//! The agent configuration file (`matrix agent --config`) of each testbed node.

use matrix_schema::config::{
    ConfigFile, MetricsFile, NeighborFile, RemotePrefixFile, RouteFile, UnderlayFile, WorkloadFile,
};

use super::state::State;
use crate::{routes::Route, topology::Topology};

/// Where every testbed agent serves Prometheus metrics: each node is a namespace with a
/// loopback of its own, so one address serves them all (`testbed exec NODE -- curl ...`).
pub const METRICS_ADDRESS: &str = "127.0.0.1:9469";

/// The TOML config of node `node` (index), with `routes` from [`crate::routes::compute`].
#[cfg(test)]
pub fn render(topo: &Topology, state: &State, node: usize, routes: &[Route]) -> String {
    render_with(topo, state, node, routes, None)
}

/// Like [`render`]; with `routing` (the agent's `[routing]` table, key file included)
/// the agents find routes and overlay prefixes themselves, so none are written.
pub fn render_with(
    topo: &Topology,
    state: &State,
    node: usize,
    routes: &[Route],
    routing: Option<&toml::Table>,
) -> String {
    let dynamic = routing.is_some();
    let me = &state.nodes[node];
    let id = |i: usize| topo.nodes[i].id.to_string();
    let neighbor = topo
        .neighbors(node)
        .into_iter()
        .map(|adj| {
            let link = &state.links[adj.link];
            let (address, iface) = if topo.links[adj.link].a == node {
                (link.b_addr, &link.a_iface)
            } else {
                (link.a_addr, &link.b_iface)
            };
            NeighborFile {
                node: id(adj.peer),
                address: address.to_string(),
                iface: iface.clone(),
            }
        })
        .collect();
    let remote_prefix = state
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != node)
        .flat_map(|(i, n)| {
            n.workloads.iter().flat_map(move |w| {
                [&w.prefix, &w.prefix6].map(|p| RemotePrefixFile {
                    prefix: p.clone(),
                    node: id(i),
                })
            })
        })
        .collect();
    let config = ConfigFile {
        node: id(node),
        name: Some(me.pin.clone()),
        underlay: me
            .underlay
            .iter()
            .map(|u| UnderlayFile {
                iface: u.iface.clone(),
                address: u.address.to_string(),
            })
            .collect(),
        workload: me
            .workloads
            .iter()
            .map(|w| WorkloadFile {
                iface: w.iface.clone(),
                prefixes: vec![w.prefix.clone(), w.prefix6.clone()],
            })
            .collect(),
        neighbor,
        route: routes
            .iter()
            .filter(|_| !dynamic)
            .map(|r| RouteFile {
                dst: format!("{}/32", id(r.dst)),
                via: r.via.iter().map(|&v| id(v)).collect(),
                weights: r.weights.clone(),
            })
            .collect(),
        remote_prefix: if dynamic { Vec::new() } else { remote_prefix },
        metrics: Some(MetricsFile {
            address: METRICS_ADDRESS.into(),
        }),
        routing: routing.cloned(),
        ..ConfigFile::default()
    };
    let body = config.to_toml().expect("agent config serializes to TOML");
    format!(
        "# Agent config of testbed node `{}`, written by `cargo xtask testbed up` from {}.\n{body}",
        me.name,
        state.topology.display()
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::routes;

    const DIAMOND: &str = r#"
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
[[node]]
name = "d"
id = "0.4"
workloads = 1
[[link]]
a = "a"
b = "b"
[[link]]
a = "a"
b = "c"
[[link]]
a = "b"
b = "d"
[[link]]
a = "c"
b = "d"
mtu = 9000
[[route]]
node = "b"
dst = "c"
via = ["a"]
"#;

    fn configs() -> Vec<String> {
        let topo = crate::topology::parse(DIAMOND, "diamond.toml").unwrap();
        let state = State::plan(&topo, "mx-t", Path::new("diamond.toml"), Path::new("/s"));
        let routes = routes::compute(&topo);
        (0..4)
            .map(|i| render(&topo, &state, i, &routes[i]))
            .collect()
    }

    #[test]
    fn entry_node_config() {
        let want = r#"# Agent config of testbed node `a`, written by `cargo xtask testbed up` from diamond.toml.
node = "0.1"
name = "mx-t-a"

[[underlay]]
iface = "u0"
address = "10.200.0.1"

[[underlay]]
iface = "u1"
address = "10.200.1.1"

[[workload]]
iface = "w0"
prefixes = ["10.101.0.0/24", "fd00:1:0::/64"]

[[neighbor]]
node = "0.2"
address = "10.200.0.2"
iface = "u0"

[[neighbor]]
node = "0.3"
address = "10.200.1.2"
iface = "u1"

[[route]]
dst = "0.2/32"
via = ["0.2"]

[[route]]
dst = "0.3/32"
via = ["0.3"]

[[route]]
dst = "0.4/32"
via = ["0.2", "0.3"]

[[remote_prefix]]
prefix = "10.104.0.0/24"
node = "0.4"

[[remote_prefix]]
prefix = "fd00:4:0::/64"
node = "0.4"

[metrics]
address = "127.0.0.1:9469"
"#;
        assert_eq!(configs()[0], want);
    }

    #[test]
    fn relay_config_has_no_workloads_and_honours_overrides() {
        let b = &configs()[1];
        assert!(b.contains("node = \"0.2\"\nname = \"mx-t-b\"\n"), "{b}");
        // b's first link is to a (its u0, address .2 of link 0), then to d (u1, link 2).
        assert!(
            b.contains("iface = \"u0\"\naddress = \"10.200.0.2\""),
            "{b}"
        );
        assert!(
            b.contains("iface = \"u1\"\naddress = \"10.200.2.1\""),
            "{b}"
        );
        assert!(
            b.contains("node = \"0.4\"\naddress = \"10.200.2.2\"\niface = \"u1\""),
            "{b}"
        );
        assert!(!b.contains("[[workload]]"), "{b}");
        // The override sends b to c through a only, instead of a and d.
        assert!(b.contains("dst = \"0.3/32\"\nvia = [\"0.1\"]\n"), "{b}");
        assert!(
            b.contains("prefix = \"fd00:1:0::/64\"\nnode = \"0.1\""),
            "{b}"
        );
        assert!(
            b.contains("prefix = \"10.104.0.0/24\"\nnode = \"0.4\""),
            "{b}"
        );
    }

    #[test]
    fn config_is_valid_toml_with_the_agent_fields_only() {
        for text in configs() {
            // What the testbed writes is what the agent reads: one schema.
            matrix_schema::config::Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let v: toml::Table = toml::from_str(&text).unwrap();
            for key in v.keys() {
                let known = [
                    "node",
                    "name",
                    "underlay",
                    "workload",
                    "neighbor",
                    "route",
                    "remote_prefix",
                    "metrics",
                ];
                assert!(known.contains(&key.as_str()), "unexpected key {key}");
            }
        }
    }
}
