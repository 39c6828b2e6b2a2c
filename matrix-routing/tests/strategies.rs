//! Each strategy end to end, and switching between them at run time.

mod util;

use matrix_routing::{Action, NodePrefix, Params, StrategyKind};
use util::{Net, ms, n};

fn params(strategy: StrategyKind) -> Params {
    Params {
        strategy,
        ..Params::default()
    }
}

/// A diamond: A - B - D fast (1 ms links), A - C - D slow (`slow` ms links).
fn diamond(strategy: StrategyKind, slow: u64) -> Net {
    let (a, b, c, d) = (n(1, 1), n(1, 2), n(1, 3), n(1, 4));
    Net::new(
        &[(a, b, 1), (b, d, 1), (a, c, slow), (c, d, slow)],
        params(strategy),
    )
}

#[test]
fn shortest_uses_equal_cost_paths_with_equal_weights() {
    let mut net = diamond(StrategyKind::Shortest, 1);
    net.run_for(ms(3000));
    let (a, b, c, d) = (n(1, 1), n(1, 2), n(1, 3), n(1, 4));
    assert_eq!(net.lookup(a, d), Some(&vec![(b, 1), (c, 1)]));
    assert_eq!(net.lookup(a, b), Some(&vec![(b, 1)]));
    let info = net.routers[&a].routes();
    let r = info.iter().find(|r| r.dst == NodePrefix::host(d)).unwrap();
    assert_eq!(
        r.detail,
        vec![(b, 2048.0), (c, 2048.0)],
        "path cost per next hop"
    );
    for x in [a, b, c, d] {
        for y in [a, b, c, d].into_iter().filter(|y| *y != x) {
            assert_eq!(net.walk(x, y).map(|h| h <= 2), Ok(true), "{x} -> {y}");
        }
    }
}

#[test]
fn antnet_converges_to_the_faster_branch() {
    let mut net = diamond(StrategyKind::Antnet, 5);
    let (a, b, c, d) = (n(1, 1), n(1, 2), n(1, 3), n(1, 4));
    net.run_for(ms(20_000));
    let row = net.routers[&a]
        .pheromones(NodePrefix::host(d))
        .expect("a row for D");
    let p = |x| row.iter().find(|e| e.0 == x).map_or(0.0, |e| e.1);
    assert!(p(b) > 0.8, "{row:?}");
    assert!((row.iter().map(|e| e.1).sum::<f64>() - 1.0).abs() < 1e-9);
    // Data follow: B carries (nearly) all of A's traffic to D.
    let hops = net.lookup(a, d).unwrap().clone();
    let wb = hops.iter().find(|h| h.0 == b).map_or(0, |h| h.1);
    let wc = hops.iter().find(|h| h.0 == c).map_or(0, |h| h.1);
    assert!(wb > 4 * wc, "{hops:?}");
    let info = net.routers[&a].routes();
    assert!(
        info.iter()
            .all(|r| (r.detail.iter().map(|e| e.1).sum::<f64>() - 1.0).abs() < 1e-9)
    );
    assert!(net.routers[&a].counters().ants_returned > 50);
}

#[test]
fn q_routing_learns_delivery_times() {
    let mut net = diamond(StrategyKind::QRouting, 5);
    let (a, b, c, d) = (n(1, 1), n(1, 2), n(1, 3), n(1, 4));
    net.run_for(ms(5000));
    let hops = net.lookup(a, d).unwrap().clone();
    assert_eq!(hops[0].0, b, "{hops:?}");
    let info = net.routers[&a].routes();
    let r = info.iter().find(|r| r.dst == NodePrefix::host(d)).unwrap();
    let q = |x| r.detail.iter().find(|e| e.0 == x).unwrap().1;
    // Q(d, b) ~ 2 links of ~1 ms; Q(d, c) ~ 2 links of ~5 ms.
    assert!((q(b) - 2048.0).abs() < 100.0, "{:?}", r.detail);
    assert!((q(c) - 10240.0).abs() < 500.0, "{:?}", r.detail);
    // C is not closer to D than A is (10 ms vs 2 ms): it gets no share.
    assert_eq!(hops, vec![(b, 1)]);
}

#[test]
fn direct_routes_only_to_neighbours() {
    let (a, b, c) = (n(1, 1), n(1, 2), n(1, 3));
    let mut net = Net::new(&[(a, b, 1), (b, c, 1)], params(StrategyKind::Direct));
    net.run_for(ms(3000));
    assert_eq!(
        net.routes_of(a).into_iter().collect::<Vec<_>>(),
        vec![(NodePrefix::host(b), vec![(b, 1)])]
    );
    assert_eq!(net.routes_of(b).len(), 2);
}

/// Switching strategy re-derives every route in the same call, make before break.
#[test]
fn strategy_switch_rederives_routes() {
    let mut net = diamond(StrategyKind::Shortest, 5);
    let (a, b, c, d) = (n(1, 1), n(1, 2), n(1, 3), n(1, 4));
    net.run_for(ms(3000));
    assert_eq!(net.routes_of(a).len(), 3);
    net.record = true;

    net.set_param(a, "strategy", "direct");
    let last = net.batches.last().unwrap().actions.clone();
    assert!(
        last.contains(&Action::Withdraw {
            dst: NodePrefix::host(d)
        }),
        "{last:?}"
    );
    assert_eq!(net.routes_of(a).len(), 2);
    assert_eq!(net.lookup(a, c), Some(&vec![(c, 1)]));

    net.set_param(a, "strategy", "shortest");
    assert_eq!(net.lookup(a, d), Some(&vec![(b, 1)]));
    assert_eq!(
        net.lookup(a, c),
        Some(&vec![(c, 1)]),
        "5 ms direct beats 7 ms round"
    );

    net.set_param_all("strategy", "antnet");
    assert_eq!(net.routers[&a].params().strategy, StrategyKind::Antnet);
    // Fresh pheromone is uniform, but data only goes to neighbours closer to D than A
    // is (the downstream filter): B, on the 5 ms side; C's own path to D is longer.
    assert_eq!(net.lookup(a, d), Some(&vec![(b, 1)]));
    net.run_for(ms(10_000));
    assert!(net.routers[&a].pheromones(NodePrefix::host(d)).is_some());

    net.set_param_all("strategy", "q-routing");
    assert_eq!(
        net.routers[&a].pheromones(NodePrefix::host(d)),
        None,
        "tables dropped"
    );
    net.run_for(ms(3000));
    assert_eq!(net.lookup(a, d).unwrap()[0].0, b);
    assert!(net.walk(c, b).is_ok());
}
