//! Tiers: one route per remote zone through its border nodes, prefixes learnt
//! fleet-wide, and the route budget.

mod util;

use matrix_routing::{NodePrefix, Params, StrategyKind};
use util::{Net, ms, n};

/// Zone 1: 1.1 - 1.2 (border) and 1.1 - 1.3; zone 2: 2.1 (border) - 2.2 - 2.3;
/// the zones meet on 1.2 - 2.1.
fn two_zones(strategy: StrategyKind) -> Net {
    let links = [
        (n(1, 1), n(1, 2), 1),
        (n(1, 1), n(1, 3), 1),
        (n(1, 2), n(2, 1), 10),
        (n(2, 1), n(2, 2), 1),
        (n(2, 2), n(2, 3), 1),
    ];
    let params = Params {
        strategy,
        ..Params::default()
    };
    Net::with_prefixes(
        &links,
        params,
        &[(n(2, 3), "10.2.3.0/24"), (n(1, 3), "10.1.3.0/24")],
    )
}

#[test]
fn a_remote_zone_is_one_route_via_the_border() {
    let mut net = two_zones(StrategyKind::Shortest);
    net.run_for(ms(4000));
    let routes = net.routes_of(n(1, 1));
    assert_eq!(
        routes.keys().copied().collect::<Vec<_>>(),
        vec![
            NodePrefix::host(n(1, 2)),
            NodePrefix::host(n(1, 3)),
            NodePrefix::of_zone(2)
        ],
        "one route for zone 2, none per host"
    );
    assert_eq!(
        routes[&NodePrefix::of_zone(2)],
        vec![(n(1, 2), 1)],
        "via the border"
    );
    let info = net.routers[&n(1, 1)].routes();
    assert!(
        info.iter()
            .find(|r| r.dst == NodePrefix::of_zone(2))
            .unwrap()
            .aggregate
    );
    // 1.3 reaches zone 2 through 1.1; the border through its inter-zone link.
    assert_eq!(net.lookup(n(1, 3), n(2, 3)), Some(&vec![(n(1, 1), 1)]));
    assert_eq!(net.lookup(n(1, 2), n(2, 3)), Some(&vec![(n(2, 1), 1)]));
    // Both ways, hop by hop, without loops.
    assert_eq!(net.walk(n(1, 3), n(2, 3)), Ok(5));
    assert_eq!(net.walk(n(2, 3), n(1, 3)), Ok(5));
    // Overlay prefixes are known fleet-wide with their owners.
    let p = "10.2.3.0/24".parse().unwrap();
    assert_eq!(net.overlay[&n(1, 3)].get(&p), Some(&n(2, 3)));
    let q = "10.1.3.0/24".parse().unwrap();
    assert_eq!(net.overlay[&n(2, 1)].get(&q), Some(&n(1, 3)));
}

#[test]
fn zone_routes_under_every_adaptive_strategy() {
    for s in [StrategyKind::Antnet, StrategyKind::QRouting] {
        let mut net = two_zones(s);
        net.run_for(ms(15_000));
        let routes = net.routes_of(n(1, 1));
        assert!(
            routes
                .keys()
                .all(|p| p.len == 32 && p.id.zone() == 1 || *p == NodePrefix::of_zone(2))
        );
        assert_eq!(net.lookup(n(1, 1), n(2, 3)).unwrap()[0].0, n(1, 2), "{s}");
        assert!(
            net.walk(n(1, 3), n(2, 3)).is_ok(),
            "{s}: {:?}",
            net.walk(n(1, 3), n(2, 3))
        );
    }
}

#[test]
fn the_budget_aggregates_host_routes() {
    // 1.1 - 1.2, and 1.2 is the hub of 1.3 ..= 1.12.
    let hub = n(1, 2);
    let mut links = vec![(n(1, 1), hub, 1)];
    links.extend((3..=12).map(|h| (hub, n(1, h), 1)));
    let mut net = Net::new(&links, Params::default());
    net.run_for(ms(3000));
    assert_eq!(net.routes_of(n(1, 1)).len(), 11);
    net.set_param(n(1, 1), "max_routes", "3");
    let info = net.routers[&n(1, 1)].routes();
    assert!(info.len() <= 3, "{info:?}");
    assert!(info.iter().any(|r| r.aggregate));
    for h in 2..=12 {
        assert_eq!(net.walk(n(1, 1), n(1, h)), Ok(if h == 2 { 1 } else { 2 }));
    }
    net.run_for(ms(2000));
    assert!(net.routes_of(n(1, 1)).len() <= 3);
    // Lifting the budget brings the host routes back.
    net.set_param(n(1, 1), "max_routes", "auto");
    assert_eq!(net.routes_of(n(1, 1)).len(), 11);
    assert!(net.routers[&n(1, 1)].routes().iter().all(|r| !r.aggregate));
}
