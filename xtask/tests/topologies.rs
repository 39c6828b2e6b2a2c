//! The shipped topology files parse and have the shape their comments promise.

use xtask::{
    cargo, routes,
    topology::{self, Topology},
};

fn load(name: &str) -> Topology {
    topology::load(&cargo::workspace_root().join("topologies").join(name)).unwrap()
}

/// Via names of `node`'s route to `dst`.
fn via(t: &Topology, node: &str, dst: &str) -> Vec<String> {
    let (n, d) = (t.index(node).unwrap(), t.index(dst).unwrap());
    let route = routes::compute(t)[n]
        .iter()
        .find(|r| r.dst == d)
        .cloned()
        .unwrap();
    route.via.iter().map(|&v| t.nodes[v].name.clone()).collect()
}

#[test]
fn line_has_two_relays() {
    let t = load("line.toml");
    assert_eq!(t.nodes.len(), 4);
    assert_eq!(t.hop_counts(0)[3], Some(3));
    let workloads: Vec<u32> = t.nodes.iter().map(|n| n.workloads).collect();
    assert_eq!(workloads, [1, 0, 0, 1]);
    assert_eq!(via(&t, "a", "d"), ["b"]);
}

#[test]
fn diamond_is_ecmp_both_ways() {
    let t = load("diamond.toml");
    assert_eq!(via(&t, "a", "d"), ["b", "c"]);
    assert_eq!(via(&t, "d", "a"), ["b", "c"]);
}

#[test]
fn two_subnet_relay_has_two_interfaces() {
    let t = load("two-subnet.toml");
    let r = t.index("r").unwrap();
    let ports: Vec<usize> = t.neighbors(r).iter().map(|adj| adj.port).collect();
    assert_eq!(ports, [0, 1]);
    assert!(!t.forwards(r));
    assert_eq!(via(&t, "a", "b"), ["r"]);
}
