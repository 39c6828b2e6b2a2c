//! Property tests through the whole router: random connected fleets converge to
//! loop-free shortest-path routes.

mod util;

use matrix_routing::Params;
use proptest::prelude::*;
use util::{Net, ms, n};

fn fleet() -> impl Strategy<Value = Vec<(u32, u32, u64)>> {
    (3u32..9).prop_flat_map(|nodes| {
        let tree = proptest::collection::vec((any::<u32>(), 1u64..8), (nodes - 1) as usize);
        let extra = proptest::collection::vec((0..nodes, 0..nodes, 1u64..8), 0..nodes as usize);
        (tree, extra).prop_map(|(tree, extra)| {
            let mut links: Vec<(u32, u32, u64)> = tree
                .into_iter()
                .enumerate()
                .map(|(i, (r, d))| (r % (i as u32 + 1), i as u32 + 1, d))
                .collect();
            links.extend(extra.into_iter().filter(|(a, b, _)| a != b));
            links.sort_by_key(|l| (l.0.min(l.1), l.0.max(l.1)));
            links.dedup_by_key(|l| (l.0.min(l.1), l.0.max(l.1)));
            links
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        // Deterministic: the same cases on every run.
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6d61_7472_6978),
        ..ProptestConfig::default()
    })]

    #[test]
    fn shortest_routes_are_loop_free(links in fleet()) {
        let id = |i: u32| n(1, i + 1);
        let links: Vec<_> = links.iter().map(|(a, b, d)| (id(*a), id(*b), *d)).collect();
        let mut net = Net::new(&links, Params::default());
        net.run_for(ms(4000));
        let nodes: Vec<_> = net.routers.keys().copied().collect();
        for src in &nodes {
            for dst in nodes.iter().filter(|d| *d != src) {
                prop_assert!(net.walk(*src, *dst).is_ok(), "{:?}", net.walk(*src, *dst));
            }
        }
    }
}
