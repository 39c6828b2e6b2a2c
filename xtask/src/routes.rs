//! Static routes for a testbed's agent configs: hop-count shortest paths with every
//! tied neighbour as an equal-cost next hop, unless the topology overrides the pair.

use matrix_common::MAX_NEXT_HOPS;

use crate::topology::Topology;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: usize,
    /// Neighbour node indices, in the node's link order.
    pub via: Vec<usize>,
    /// `None`: equal weights.
    pub weights: Option<Vec<u32>>,
}

/// For every node (by index), its routes to every other node (in node order).
pub fn compute(topo: &Topology) -> Vec<Vec<Route>> {
    // Hop counts *to* each destination; links are symmetric, so BFS from it.
    let to: Vec<Vec<Option<u32>>> = (0..topo.nodes.len()).map(|d| topo.hop_counts(d)).collect();
    (0..topo.nodes.len())
        .map(|node| {
            (0..topo.nodes.len())
                .filter(|&dst| dst != node)
                .filter_map(|dst| route(topo, &to[dst], node, dst))
                .collect()
        })
        .collect()
}

fn route(topo: &Topology, to_dst: &[Option<u32>], node: usize, dst: usize) -> Option<Route> {
    if let Some(o) = topo
        .overrides
        .iter()
        .find(|o| (o.node, o.dst) == (node, dst))
    {
        return Some(Route {
            dst,
            via: o.via.clone(),
            weights: o.weights.clone(),
        });
    }
    let here = to_dst[node]?;
    let via: Vec<usize> = topo
        .neighbors(node)
        .into_iter()
        .map(|adj| adj.peer)
        .filter(|&peer| to_dst[peer].is_some_and(|h| h + 1 == here))
        .take(MAX_NEXT_HOPS)
        .collect();
    Some(Route {
        dst,
        via,
        weights: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(nodes: &[&str], links: &[(&str, &str)], extra: &str) -> Topology {
        let mut text = String::new();
        for (i, n) in nodes.iter().enumerate() {
            text += &format!("[[node]]\nname = \"{n}\"\nid = \"0.{}\"\n", i + 1);
        }
        for (a, b) in links {
            text += &format!("[[link]]\na = \"{a}\"\nb = \"{b}\"\n");
        }
        Topology::parse(&(text + extra), "test").unwrap()
    }

    /// Routes of `node` as (dst name, via names).
    fn named(t: &Topology, node: &str) -> Vec<(String, Vec<String>)> {
        let all = compute(t);
        all[t.index(node).unwrap()]
            .iter()
            .map(|r| {
                let via = r.via.iter().map(|&v| t.nodes[v].name.clone()).collect();
                (t.nodes[r.dst].name.clone(), via)
            })
            .collect()
    }

    fn r(dst: &str, via: &[&str]) -> (String, Vec<String>) {
        (dst.into(), via.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn line_routes_go_one_way() {
        let t = topo(
            &["a", "b", "c", "d"],
            &[("a", "b"), ("b", "c"), ("c", "d")],
            "",
        );
        assert_eq!(
            named(&t, "a"),
            vec![r("b", &["b"]), r("c", &["b"]), r("d", &["b"])]
        );
        assert_eq!(
            named(&t, "b"),
            vec![r("a", &["a"]), r("c", &["c"]), r("d", &["c"])]
        );
        assert_eq!(
            named(&t, "d"),
            vec![r("a", &["c"]), r("b", &["c"]), r("c", &["c"])]
        );
    }

    #[test]
    fn diamond_splits_over_both_branches() {
        let t = topo(
            &["a", "b", "c", "d"],
            &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
            "",
        );
        assert_eq!(
            named(&t, "a"),
            vec![r("b", &["b"]), r("c", &["c"]), r("d", &["b", "c"])]
        );
        assert_eq!(
            named(&t, "d"),
            vec![r("a", &["b", "c"]), r("b", &["b"]), r("c", &["c"])]
        );
        // b reaches c over a or d, both 2 hops.
        assert_eq!(
            named(&t, "b"),
            vec![r("a", &["a"]), r("c", &["a", "d"]), r("d", &["d"])]
        );
    }

    #[test]
    fn ecmp_is_capped() {
        let mids = ["m1", "m2", "m3", "m4", "m5"];
        let mut nodes = vec!["s", "t"];
        nodes.extend(mids);
        let links: Vec<(&str, &str)> = mids.iter().flat_map(|m| [("s", *m), (*m, "t")]).collect();
        let t = topo(&nodes, &links, "");
        let to_t = named(&t, "s").into_iter().find(|(d, _)| d == "t").unwrap();
        assert_eq!(to_t, r("t", &["m1", "m2", "m3", "m4"]));
    }

    #[test]
    fn overrides_replace_the_computed_route() {
        let over = "[[route]]\nnode = \"a\"\ndst = \"d\"\nvia = [\"c\"]\nweights = [3]\n";
        let t = topo(
            &["a", "b", "c", "d"],
            &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
            over,
        );
        let all = compute(&t);
        let a_to_d = all[0].iter().find(|r| r.dst == 3).unwrap();
        assert_eq!(
            a_to_d,
            &Route {
                dst: 3,
                via: vec![2],
                weights: Some(vec![3])
            }
        );
        // Other pairs are untouched.
        assert_eq!(named(&t, "d")[0], r("a", &["b", "c"]));
    }
}
