use std::path::PathBuf;

use super::*;

/// The shipped example: four nodes, two zones, a relay with two interfaces per site.
const EXAMPLE: &str = include_str!("../../../examples/fleet.toml");

/// Where the expected configs of the example live; `MATRIX_BLESS=1 cargo test -p
/// matrix-schema fleet` rewrites them when a change to the output is intended.
fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/fleet/golden")
}

#[test]
fn the_example_generates_the_expected_configs() {
    let fleet = Fleet::parse(EXAMPLE).unwrap();
    let names: Vec<&str> = fleet.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["edge-1", "core-1", "core-2", "edge-2"]);
    let bless = std::env::var_os("MATRIX_BLESS").is_some();
    for (i, node) in fleet.nodes.iter().enumerate() {
        let got = fleet.render(i, "examples/fleet.toml").unwrap();
        let path = golden_dir().join(format!("{}.toml", node.name));
        if bless {
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (MATRIX_BLESS=1 writes it)", path.display()));
        assert_eq!(
            got,
            want,
            "{} differs from the generated config",
            path.display()
        );
        // What is written is what the agent reads.
        let config = Config::parse(&got).unwrap();
        assert_eq!(config.name, node.name);
        assert_eq!(config.node, node.id);
    }
}

#[test]
fn neighbours_come_from_links_with_the_far_ends_address() {
    let fleet = Fleet::parse(EXAMPLE).unwrap();
    let core2 = fleet.find("core-2").unwrap();
    let c = fleet.config_file(core2);
    let neighbours: Vec<(&str, &str, &str)> = c
        .neighbor
        .iter()
        .map(|n| (n.node.as_str(), n.address.as_str(), n.iface.as_str()))
        .collect();
    // Link order: core-1 over the WAN on eth1, then edge-2 on the site LAN on eth0.
    assert_eq!(
        neighbours,
        [
            ("1.2", "198.51.100.1", "eth1"),
            ("2.2", "203.0.113.20", "eth0")
        ]
    );
    assert!(c.route.is_empty() && c.remote_prefix.is_empty());
    // The fleet's metrics address, unless the node has its own.
    assert_eq!(c.metrics.unwrap().address, "127.0.0.1:9469");
    let core1 = fleet.config_file(fleet.find("1.2").unwrap());
    assert_eq!(core1.metrics.unwrap().address, "192.0.2.1:9469");
    assert!(matches!(
        fleet.find("edge-9"),
        Err(FleetError::UnknownNode(..))
    ));
}

#[test]
fn fleet_files_round_trip_through_the_schema() {
    let file: FleetFile = toml::from_str(EXAMPLE).unwrap();
    let text = file.to_toml().unwrap();
    let again = Fleet::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, Fleet::parse(EXAMPLE).unwrap());
}

/// A small valid fleet to break one field at a time: a - b on one subnet.
const PAIR: &str = r#"
vni = 7
[routing]
key_file = "/etc/matrix/cluster.key"
strategy = "shortest"
[[node]]
name = "a"
id = "0.1"
underlay = [{ iface = "eth0", address = "10.0.0.1/24" }]
workload = [{ iface = "wl0", prefixes = ["10.101.0.0/24"] }]
[[node]]
name = "b"
id = "0.2"
underlay = [{ iface = "eth1", address = "10.0.0.2/24" }]
[[link]]
a = "a:eth0"
b = "b:eth1"
"#;

#[test]
fn a_pair_generates_neighbours_both_ways() {
    let fleet = Fleet::parse(PAIR).unwrap();
    let a = Config::parse(&fleet.render(0, "pair.toml").unwrap()).unwrap();
    let b = Config::parse(&fleet.render(1, "pair.toml").unwrap()).unwrap();
    assert_eq!(a.vni, 7);
    assert_eq!(a.neighbors[0].node, NodeId::new(0, 2));
    assert_eq!(
        a.neighbors[0].address,
        "10.0.0.2".parse::<std::net::Ipv4Addr>().unwrap()
    );
    assert_eq!(a.neighbors[0].iface, "eth0");
    assert_eq!(b.neighbors[0].node, NodeId::new(0, 1));
    assert_eq!(b.neighbors[0].iface, "eth1");
    assert_eq!(a.metrics, None);
    assert!(a.routing.is_some());
}

fn err(text: &str) -> String {
    Fleet::parse(text).unwrap_err().to_string()
}

#[test]
fn every_error_names_the_field_and_value() {
    let third = "[[node]]\nname = \"c\"\nid = \"0.3\"\nunderlay = [{ iface = \"eth0\", address = \"10.0.0.3/24\" }]\n";
    let cases = [
        (
            PAIR.replace("id = \"0.2\"", "id = \"two\""),
            "`node[1].id` = \"two\": node id `two`",
        ),
        (
            PAIR.replace("id = \"0.2\"", "id = \"0.1\""),
            "`node[1].id` = \"0.1\": also the id of node `a`",
        ),
        (
            PAIR.replace("name = \"b\"", "name = \"a\""),
            "`node[1].name` = \"a\": also the name of node[0]",
        ),
        (
            PAIR.replace("name = \"b\"", "name = \"b.x\""),
            "`node[1].name` = \"b.x\": use letters",
        ),
        (
            PAIR.replace("10.0.0.2/24", "10.0.0.2"),
            "`node[1].underlay[0].address` = \"10.0.0.2\": not an IPv4 address with its prefix length",
        ),
        (
            PAIR.replace("10.0.0.2/24", "10.0.0.0/24"),
            "`node[1].underlay[0].address` = \"10.0.0.0/24\": is the subnet's network",
        ),
        (
            PAIR.replace("10.0.0.2/24", "10.0.1.2/24"),
            "`link[0].b` = \"b:eth1\": its address 10.0.1.2/24 is not on the subnet of `a:eth0` (10.0.0.1/24)",
        ),
        // Each end must see the other on its own subnet.
        (
            PAIR.replace("10.0.0.2/24", "10.0.0.2/30")
                .replace("10.0.0.1/24", "10.0.0.9/24"),
            "`link[0].b` = \"b:eth1\": its address 10.0.0.2/30 is not on the subnet of `a:eth0`",
        ),
        (
            PAIR.replace("10.0.0.2/24", "10.0.0.1/24"),
            "`link[0].b` = \"b:eth1\": has the address of `a:eth0` (10.0.0.1)",
        ),
        (
            PAIR.replace("b = \"b:eth1\"", "b = \"b:eth0\""),
            "`link[0].b` = \"b:eth0\": node `b` has no underlay interface `eth0` (it has: eth1)",
        ),
        (
            PAIR.replace("b = \"b:eth1\"", "b = \"z:eth1\""),
            "`link[0].b` = \"z:eth1\": no node `z` (nodes: a, b)",
        ),
        (
            PAIR.replace("b = \"b:eth1\"", "b = \"b\""),
            "`link[0].b` = \"b\": not of the form node:iface",
        ),
        (
            PAIR.replace("b = \"b:eth1\"", "b = \"0.1:eth0\""),
            "`link[0].b` = \"0.1:eth0\": same node as `link[0].a` = \"a:eth0\"",
        ),
        (
            format!("{PAIR}[[link]]\na = \"0.2:eth1\"\nb = \"a:eth0\"\n"),
            "`link[1]` = \"0.2:eth1 - a:eth0\": the same two nodes as link[0]",
        ),
        (
            format!("{PAIR}{third}"),
            "`node[2].name` = \"c\": no [[link]] path to node `a`",
        ),
        (
            PAIR.replace(
                "key_file = \"/etc/matrix/cluster.key\"",
                "key_file = \"cluster.key\"",
            ),
            "`routing.key_file` = \"cluster.key\": use an absolute path",
        ),
        (
            PAIR.replace("key_file = \"/etc/matrix/cluster.key\"\n", ""),
            "`routing.key_file` = (missing)",
        ),
        (
            PAIR.replace("strategy = \"shortest\"", "strategy = \"ospf\""),
            "`routing.strategy` = \"ospf\"",
        ),
        (
            PAIR.replace(
                "[routing]\nkey_file = \"/etc/matrix/cluster.key\"\nstrategy = \"shortest\"\n",
                "",
            ),
            "`routing` = (missing)",
        ),
        (
            PAIR.replace("vni = 7", "vni = 16777216"),
            "`vni` = 16777216: VNI is 24 bits",
        ),
        (PAIR.replace("vni = 7", "hop_limit = 1"), "`hop_limit` = 1"),
        (
            PAIR.replace("iface = \"eth1\"", "iface = \"a-very-long-interface\"")
                .replace("b:eth1", "b:a-very-long-interface"),
            "`node[1].underlay[0].iface` = \"a-very-long-interface\": not a valid interface name",
        ),
        (
            PAIR.replace("10.101.0.0/24", "10.101.0.1/24"),
            "`node[0].workload[0].prefixes[0]` = \"10.101.0.1/24\": has host bits set",
        ),
        (
            PAIR.replace("iface = \"wl0\"", "iface = \"eth0\""),
            "`node[0].workload[0].iface` = \"eth0\": already used",
        ),
        (
            PAIR.replace("id = \"0.2\"", "id = \"0.2\"\nmetrics = \"localhost\""),
            "`node[1].metrics` = \"localhost\": not an IP:port",
        ),
        (
            format!("{PAIR}[metrics]\naddress = \"9469\"\n"),
            "`metrics.address` = \"9469\": not an IP:port",
        ),
        (
            PAIR.replace("vni = 7", "colour = 7"),
            "unknown field `colour`",
        ),
        (
            "[routing]\nkey_file = \"/k\"\n".to_string(),
            "`node` = []: no nodes",
        ),
    ];
    for (text, want) in cases {
        let got = err(&text);
        assert!(got.contains(want), "want `{want}` in `{got}`\n{text}");
    }
}

#[test]
fn too_many_links_on_one_node_are_named() {
    let n = matrix_common::MAX_NEIGHBORS as usize + 1;
    let mut text = String::from(
        "[routing]\nkey_file = \"/k\"\n[[node]]\nname = \"hub\"\nid = \"0.1\"\nunderlay = [{ iface = \"eth0\", address = \"10.0.0.1/16\" }]\n",
    );
    for i in 0..n {
        text += &format!(
            "[[node]]\nname = \"n{i}\"\nid = \"0.{}\"\nunderlay = [{{ iface = \"eth0\", address = \"10.0.{}.{}/16\" }}]\n[[link]]\na = \"hub:eth0\"\nb = \"n{i}:eth0\"\n",
            i + 2,
            1 + i / 200,
            1 + i % 200
        );
    }
    let got = err(&text);
    assert!(
        got.contains("the config generated for node `hub` is not valid: `neighbor` ="),
        "{got}"
    );
}
