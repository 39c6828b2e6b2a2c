//! Topology files for the testbed: the project's one format (`matrix_schema::topology`,
//! which documents every field), plus what the testbed's own address and naming plan
//! needs of it.

use std::path::Path;

pub use matrix_schema::topology::{
    Adjacency, DEFAULT_MTU, ENCAP_OVERHEAD, Link, MAX_MTU, MIN_MTU, Node, RouteOverride, Topology,
    TopologyError,
};

/// Node index n gets workload subnets 10.(100+n).x.0/24, and 10.200+ is for links.
pub const MAX_NODES: usize = 99;
/// Workload i of a node gets the third octet i.
pub const MAX_WORKLOADS: u32 = 256;
/// Link k gets 10.(200 + k/256).(k%256).0/24.
pub const MAX_LINKS: usize = 56 * 256;
/// Node names prefix namespace and interface names, which are at most 15 characters.
const MAX_NAME_LEN: usize = 8;

/// Loads `path` and checks it fits the testbed ([`check`]).
pub fn load(path: &Path) -> Result<Topology, TopologyError> {
    let topo = Topology::load(path)?;
    check(&topo, &path.display().to_string())?;
    Ok(topo)
}

/// Parses `text` and checks it fits the testbed; `origin` prefixes every error.
pub fn parse(text: &str, origin: &str) -> Result<Topology, TopologyError> {
    let topo = Topology::parse(text, origin)?;
    check(&topo, origin)?;
    Ok(topo)
}

/// What the testbed's plan needs beyond a valid topology: node names that fit namespace
/// and interface names, and counts that fit its address plan.
pub fn check(topo: &Topology, origin: &str) -> Result<(), TopologyError> {
    let invalid = |what: String, reason: String| TopologyError::Invalid {
        origin: origin.to_string(),
        what,
        reason,
    };
    if topo.nodes.len() > MAX_NODES {
        return Err(invalid(
            "[[node]]".into(),
            format!("{} nodes, at most {MAX_NODES}", topo.nodes.len()),
        ));
    }
    for (i, n) in topo.nodes.iter().enumerate() {
        let name_ok = n.name.len() <= MAX_NAME_LEN
            && n.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !name_ok {
            return Err(invalid(
                format!("node[{i}].name = \"{}\"", n.name),
                format!("names are 1 to {MAX_NAME_LEN} characters of [a-z0-9]"),
            ));
        }
        if is_wire_name(&n.name) {
            return Err(invalid(
                format!("node[{i}].name = \"{}\"", n.name),
                "names of the form l<digits> are reserved for the wire namespaces of tapped links"
                    .into(),
            ));
        }
        if n.workloads > MAX_WORKLOADS {
            return Err(invalid(
                format!("node[{i}].workloads = \"{}\"", n.workloads),
                format!("at most {MAX_WORKLOADS}"),
            ));
        }
    }
    if topo.links.len() > MAX_LINKS {
        return Err(invalid(
            "[[link]]".into(),
            format!("{} links, at most {MAX_LINKS}", topo.links.len()),
        ));
    }
    Ok(())
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

    /// The shipped line fleet: a - b - c - d.
    fn line() -> String {
        let path = crate::cargo::workspace_root().join("topologies/line.toml");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn err(text: &str) -> String {
        parse(text, "t.toml").unwrap_err().to_string()
    }

    #[test]
    fn testbed_limits_are_named() {
        let line = line();
        assert!(parse(&line, "t.toml").is_ok());
        let cases = [
            (line.replace("\"b\"", "\"B\""), "node[1].name = \"B\""),
            (
                line.replace("\"b\"", "\"relay1234\""),
                "node[1].name = \"relay1234\": names are 1 to 8 characters",
            ),
            (
                line.replacen("workloads = 1", "workloads = 300", 1),
                "node[0].workloads = \"300\"",
            ),
            (
                line.replace("\"b\"", "\"l0\""),
                "node[1].name = \"l0\": names of the form l<digits> are reserved",
            ),
            // The format's own checks come first.
            (
                line.replace("name = \"b\"", "name = \"a\""),
                "node[1].name = \"a\": used by two nodes",
            ),
        ];
        for (text, want) in cases {
            let got = err(&text);
            assert!(got.contains(want), "want `{want}` in `{got}`");
            assert!(got.starts_with("topology t.toml"), "{got}");
        }
        // The simulator's NSFNET names its nodes by NodeId: a valid topology, not a
        // testbed one.
        let nsfnet = crate::cargo::workspace_root().join("topologies/nsfnet.toml");
        let e = load(&nsfnet).unwrap_err().to_string();
        assert!(e.contains("node[0].name = \"0.1\""), "{e}");
    }

    #[test]
    fn wire_names() {
        // Names merely starting with `l` are fine.
        for ok in ["l", "la", "l1a", "lab1"] {
            assert!(!is_wire_name(ok), "{ok}");
        }
        for wire in ["l0", "l1", "l12345"] {
            assert!(is_wire_name(wire), "{wire}");
        }
    }
}
