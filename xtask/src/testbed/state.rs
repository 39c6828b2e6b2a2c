//! What a testbed is made of: namespace, interface and address names, derived once
//! from the topology and the prefix, and saved as `state.json` so that `down`,
//! `status` and `exec` work from another process.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::wire::wire_netns;
use crate::topology::Topology;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    pub prefix: String,
    pub topology: PathBuf,
    /// The `matrix` binary the agents were started with; a restart runs the same one.
    /// Absent in state files written before restarts existed.
    #[serde(default)]
    pub matrix_bin: Option<PathBuf>,
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// NodeId, `zone.host`.
    pub id: String,
    pub netns: String,
    /// Pin directory name: `/sys/fs/bpf/matrix/<pin>`, also the agent's `--node` name.
    pub pin: String,
    /// Whether the namespace forwards IP (only nodes with workloads do).
    pub forwarding: bool,
    /// The pid of the node's current agent, once started (after a restart, the new one).
    pub pid: Option<u32>,
    /// How many times the agent was started again after the first time.
    #[serde(default)]
    pub restarts: u32,
    pub config: PathBuf,
    pub log: PathBuf,
    pub underlay: Vec<Underlay>,
    pub workloads: Vec<Workload>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Underlay {
    pub iface: String,
    pub address: Ipv4Addr,
    /// Index into [`State::links`].
    pub link: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Workload {
    pub netns: String,
    /// The node-side interface (`w<i>`); the workload side is always `eth0`.
    pub iface: String,
    /// The workload's addresses.
    pub addr: Ipv4Addr,
    pub addr6: Ipv6Addr,
    /// The node side's addresses, the workload's default gateways.
    pub gateway: Ipv4Addr,
    pub gateway6: Ipv6Addr,
    pub prefix: String,
    pub prefix6: String,
    /// MTU of the workload's `eth0`.
    pub mtu: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Link {
    pub a: String,
    pub b: String,
    pub a_iface: String,
    pub b_iface: String,
    pub a_addr: Ipv4Addr,
    pub b_addr: Ipv4Addr,
    pub mtu: u32,
    /// For a tapped link, its wire namespace `<prefix>-l<k>`: `a_iface` and `b_iface`
    /// are then veths to ports `pa` and `pb` of bridge `br0` there (see `wire.rs`).
    /// `None`: the two ends are one veth pair.
    #[serde(default)]
    pub tap_netns: Option<String>,
}

/// Link k's subnet is 10.(200 + k/256).(k%256).0/24; end a is .1, end b is .2.
pub fn link_addr(k: usize, end_b: bool) -> Ipv4Addr {
    Ipv4Addr::new(
        10,
        200 + (k / 256) as u8,
        (k % 256) as u8,
        if end_b { 2 } else { 1 },
    )
}

impl State {
    /// Names and addresses for `topo` under `prefix`; agent files go in `dir`.
    pub fn plan(topo: &Topology, prefix: &str, topology: &Path, dir: &Path) -> State {
        let links: Vec<Link> = topo
            .links
            .iter()
            .enumerate()
            .map(|(k, l)| Link {
                a: topo.nodes[l.a].name.clone(),
                b: topo.nodes[l.b].name.clone(),
                a_iface: format!("u{}", l.a_port),
                b_iface: format!("u{}", l.b_port),
                a_addr: link_addr(k, false),
                b_addr: link_addr(k, true),
                mtu: l.mtu,
                tap_netns: l.tap.then(|| wire_netns(prefix, k)),
            })
            .collect();
        let nodes = topo
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let netns = format!("{prefix}-{}", n.name);
                let underlay = topo
                    .neighbors(i)
                    .iter()
                    .map(|adj| {
                        let l = &topo.links[adj.link];
                        Underlay {
                            iface: format!("u{}", adj.port),
                            address: link_addr(adj.link, l.b == i),
                            link: adj.link,
                        }
                    })
                    .collect();
                // n in the addressing scheme is the 1-based node index.
                let n1 = i + 1;
                let workloads = (0..n.workloads)
                    .map(|w| {
                        let (third, hex_n, hex_w) = (w as u8, n1 as u16, w as u16);
                        Workload {
                            netns: format!("{netns}-w{w}"),
                            iface: format!("w{w}"),
                            addr: Ipv4Addr::new(10, 100 + n1 as u8, third, 2),
                            addr6: Ipv6Addr::new(0xfd00, hex_n, hex_w, 0, 0, 0, 0, 2),
                            gateway: Ipv4Addr::new(10, 100 + n1 as u8, third, 1),
                            gateway6: Ipv6Addr::new(0xfd00, hex_n, hex_w, 0, 0, 0, 0, 1),
                            prefix: format!("10.{}.{w}.0/24", 100 + n1),
                            prefix6: format!("fd00:{n1:x}:{w:x}::/64"),
                            mtu: topo.workload_mtu(),
                        }
                    })
                    .collect();
                Node {
                    name: n.name.clone(),
                    id: n.id.to_string(),
                    pin: netns.clone(),
                    netns,
                    forwarding: topo.forwards(i),
                    pid: None,
                    restarts: 0,
                    config: dir.join(format!("{}.toml", n.name)),
                    log: dir.join(format!("{}.log", n.name)),
                    underlay,
                    workloads,
                }
            })
            .collect();
        State {
            prefix: prefix.to_string(),
            topology: topology.to_path_buf(),
            matrix_bin: None,
            nodes,
            links,
        }
    }

    /// Every namespace of the testbed: nodes, workloads, then wires of tapped links.
    pub fn namespaces(&self) -> Vec<String> {
        let nodes = self.nodes.iter().map(|n| n.netns.clone());
        let workloads = self
            .nodes
            .iter()
            .flat_map(|n| n.workloads.iter().map(|w| w.netns.clone()));
        let wires = self.links.iter().filter_map(|l| l.tap_netns.clone());
        nodes.chain(workloads).chain(wires).collect()
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_without_restart_fields_still_load() {
        let topo = crate::topology::parse(
            "[[node]]\nname = \"a\"\nid = \"0.1\"\n[[node]]\nname = \"b\"\nid = \"0.2\"\n\
             [[link]]\na = \"a\"\nb = \"b\"\n",
            "test",
        )
        .unwrap();
        let mut state = State::plan(&topo, "mx", Path::new("t.toml"), Path::new("/tmp/mx"));
        state.nodes[0].pid = Some(42);
        let mut v = serde_json::to_value(&state).unwrap();
        v.as_object_mut().unwrap().remove("matrix_bin").unwrap();
        for n in v["nodes"].as_array_mut().unwrap() {
            n.as_object_mut().unwrap().remove("restarts").unwrap();
        }
        let old: State = serde_json::from_value(v).unwrap();
        assert_eq!(old, state);
        assert_eq!(old.nodes[0].restarts, 0);
    }
}
