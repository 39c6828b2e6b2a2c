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
    assert_eq!(t.nodes[1].id, NodeId::new(0, 2));
    assert_eq!(t.nodes[2].workloads, 2);
    assert_eq!(
        t.links[0],
        Link {
            a: 0,
            b: 1,
            a_port: 0,
            b_port: 0,
            mtu: 1500,
            tap: false,
            delay_ms: None,
            capacity_mbps: None,
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
            tap: false,
            delay_ms: None,
            capacity_mbps: None,
        }
    );
    assert_eq!(t.hop_counts(0), vec![Some(0), Some(1), Some(2)]);
    assert_eq!(t.workload_mtu(), 1500 - 52);
    assert!(t.forwards(0) && !t.forwards(1));
}

#[test]
fn simulator_fields_and_ids_as_endpoints() {
    let text = LINE
        .replace(
            "a = \"a\"\nb = \"b\"",
            "a = \"0.1\"\nb = \"b\"\ndelay_ms = 10.5",
        )
        .replace("mtu = 9000", "capacity_mbps = 1.5");
    let t = Topology::parse(&text, "t.toml").unwrap();
    assert_eq!((t.links[0].a, t.links[0].b), (0, 1));
    assert_eq!(t.links[0].delay_ms, Some(10.5));
    assert_eq!(t.links[1].capacity_mbps, Some(1.5));
    assert_eq!(t.links[1].delay_ms, None);
}

#[test]
fn bad_values_are_named() {
    let cases = [
        (
            LINE.replace("name = \"b\"", "name = \"a\""),
            "node[1].name = \"a\": used by two nodes",
        ),
        (
            LINE.replace("name = \"b\"", "name = \"\""),
            "node[1].name = \"\"",
        ),
        (
            LINE.replace("\"0.2\"", "\"0.1\""),
            "node[1].id = \"0.1\": also the id of node `a`",
        ),
        (LINE.replace("\"0.2\"", "\"x.2\""), "node[1].id = \"x.2\""),
        (LINE.replace("\"0.2\"", "\"0.0\""), "0.0 is reserved"),
        (LINE.replace("\"0.2\"", "\"0.70000\""), "host 70000"),
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
            LINE.replace("a = \"b\"\nb = \"c\"", "a = \"b\"\nb = \"0.1\""),
            "same nodes as link[0]",
        ),
        (
            LINE.replace("mtu = 9000", "mtu = 1000"),
            "link[1].mtu = 1000",
        ),
        (
            LINE.replace("mtu = 9000", "delay_ms = -3.0"),
            "link[1].delay_ms = -3: link b-c: must be a finite number >= 0",
        ),
        (
            LINE.replace("mtu = 9000", "capacity_mbps = 0.0"),
            "link[1].capacity_mbps = 0: link b-c: must be a finite number > 0",
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
        (LINE.replace("mtu = 9000", "tap = \"yes\""), "invalid type"),
        (
            format!("{LINE}[routing]\nkey_file = \"k\"\n"),
            "routing.key_file",
        ),
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
}

#[test]
fn route_overrides_are_checked() {
    let ok = format!("{LINE}[[route]]\nnode = \"a\"\ndst = \"c\"\nvia = [\"b\"]\nweights = [2]\n");
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

/// Every file under `topologies/` parses: one schema for the testbed's and the
/// simulator's files.
#[test]
fn the_projects_topologies_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Topology::load(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 4, "only {seen} topologies under {}", dir.display());
}
