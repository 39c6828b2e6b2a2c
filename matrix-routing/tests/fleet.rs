//! Fleet-level behaviour: flooding cost, message loss, several zones.

mod util;

use matrix_routing::{NodeId, Params, StrategyKind};
use util::{Net, ms, n};

/// Each origination crosses each link at most once per direction, even in a full mesh
/// where every advert comes back to its origin around many cycles.
#[test]
fn flooding_does_not_storm() {
    let ids: Vec<NodeId> = (1..=6).map(|h| n(1, h)).collect();
    let mut links = vec![];
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            links.push((*a, *b, 1));
        }
    }
    let mut net = Net::new(&links, Params::default());
    net.run_for(ms(10_000));
    let originated: u64 = net
        .routers
        .values()
        .map(|r| r.counters().adverts_originated)
        .sum();
    let adverts = net.kinds["advert"];
    assert!(
        adverts <= originated * 2 * links.len() as u64,
        "{adverts} adverts for {originated}"
    );
    // The steady state is one origination per node per advert interval, plus start-up.
    assert!(originated <= 6 * (10 + 8), "{originated}");
}

/// A deterministic random fleet: `zones` zones of `per` hosts (a random tree plus a few
/// chords each), consecutive zones joined by two links.
pub fn fleet_pub(zones: u32, per: u32, seed: u64) -> Vec<(NodeId, NodeId, u64)> {
    fleet(zones, per, seed)
}
fn fleet(zones: u32, per: u32, seed: u64) -> Vec<(NodeId, NodeId, u64)> {
    let mut x = seed;
    let mut r = move |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let mut links = vec![];
    for z in 1..=zones {
        for h in 2..=per {
            let parent = 1 + r(u64::from(h - 1)) as u32;
            links.push((n(z, parent), n(z, h), 1 + r(8)));
        }
        for _ in 0..per / 2 {
            let (a, b) = (1 + r(u64::from(per)) as u32, 1 + r(u64::from(per)) as u32);
            if a != b {
                links.push((n(z, a), n(z, b), 1 + r(8)));
            }
        }
        if z > 1 {
            for _ in 0..2 {
                let (a, b) = (1 + r(u64::from(per)) as u32, 1 + r(u64::from(per)) as u32);
                links.push((n(z - 1, a), n(z, b), 5 + r(10)));
            }
        }
    }
    links.sort_by_key(|l| (l.0.min(l.1), l.0.max(l.1)));
    links.dedup_by_key(|l| (l.0.min(l.1), l.0.max(l.1)));
    links
}

/// With 10 % of all control messages lost, shortest path and Q-routing still route every
/// pair of nodes of a four-zone fleet: no black hole at any moment, and a loop only
/// while a changed advert is still flooding (a link-state micro-loop), gone 200 ms
/// later. Every node holds one route per host of its zone and one per other zone.
///
/// `dead_count` is 5 here: at 10 % loss per message, 3 silent hello intervals (a hello
/// and an ack lost three times over) happen every few minutes somewhere in the fleet,
/// and a leaf is then briefly unreachable, as it should be.
#[test]
fn a_lossy_multi_zone_fleet_converges_loop_free() {
    for (seed, strategy) in [
        (7, StrategyKind::Shortest),
        (5, StrategyKind::Shortest),
        (7, StrategyKind::QRouting),
    ] {
        let links = fleet(4, 8, seed);
        let params = Params {
            strategy,
            dead_count: 5,
            ..Params::default()
        };
        let mut net = Net::new(&links, params);
        for (a, b, _) in &links {
            net.link(*a, *b).loss = 0.1;
        }
        net.run_for(ms(10_000));
        let nodes: Vec<NodeId> = net.routers.keys().copied().collect();
        assert_eq!(nodes.len(), 32);
        for _ in 0..4 {
            net.run_for(ms(2_345));
            let mut looping = vec![];
            for a in &nodes {
                assert!(
                    net.routes_of(*a).len() <= 7 + 3,
                    "{a}: {:?}",
                    net.routes_of(*a)
                );
                for b in nodes.iter().filter(|b| *b != a) {
                    match net.walk(*a, *b) {
                        Ok(_) => {}
                        Err(e) if e.starts_with("loop") => looping.push((*a, *b)),
                        Err(e) => panic!("{strategy}, seed {seed}: {e}"),
                    }
                }
            }
            net.run_for(ms(200));
            for (a, b) in looping {
                assert!(
                    net.walk(a, b).is_ok(),
                    "{strategy}, seed {seed}: {:?}",
                    net.walk(a, b)
                );
            }
        }
    }
}
