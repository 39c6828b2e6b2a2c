//! Neighbour liveness and link metrics through the whole router, on a virtual clock.

mod util;

use matrix_routing::{Action, Event, Message, NodePrefix, Params};
use util::{Net, ms, n};

#[test]
fn neighbours_come_up_and_measure_rtt_and_loss() {
    let (a, b, c) = (n(1, 1), n(1, 2), n(1, 3));
    let mut net = Net::new(&[(a, b, 5), (a, c, 1)], Params::default());
    net.link(a, c).loss = 0.2;
    net.run_for(ms(30_000));
    let info = net.routers[&a].neighbors();
    let ib = info.iter().find(|i| i.node == b).unwrap();
    assert!(ib.alive);
    assert_eq!(ib.srtt_us, Some(10_000));
    assert_eq!(ib.loss, 0.0);
    assert_eq!(ib.cost_us, 5120, "5 ms one way, quantised");
    // 20 % per direction: a hello and its ack both survive 64 % of the time.
    let ic = info.iter().find(|i| i.node == c).unwrap();
    assert!((0.15..0.6).contains(&ic.loss), "{}", ic.loss);
    assert!(
        ic.cost_us > 1000,
        "loss raises the cost (ETX): {}",
        ic.cost_us
    );
}

/// B dies silently (its link to A stops carrying anything): after `dead_count` missed
/// hellos A declares it dead, and in that very call every route through B is repointed.
#[test]
fn dead_neighbour_is_routed_around_in_the_same_step() {
    let (a, b, c, d) = (n(1, 1), n(1, 2), n(1, 3), n(1, 4));
    let mut net = Net::new(
        &[(a, b, 1), (b, d, 1), (a, c, 3), (c, d, 3)],
        Params::default(),
    );
    net.run_for(ms(3000));
    assert_eq!(net.lookup(a, d), Some(&vec![(b, 1)]));
    assert_eq!(net.lookup(a, b), Some(&vec![(b, 1)]));
    net.record = true;
    let cut = net.elapsed();
    net.link(a, b).up = false;
    net.run_for(ms(1000));
    let batch = net
        .batches
        .iter()
        .find(|x| {
            x.node == a
                && x.actions.contains(&Action::Neighbor {
                    neighbor: b,
                    alive: false,
                })
        })
        .expect("A declares B dead")
        .clone();
    // B's hellos due at the cut, +100 and +200 ms are missed; it is declared dead
    // 3.5 intervals after it was last heard (just before the cut).
    let silent = batch.at - cut;
    assert!(silent >= ms(250) && silent <= ms(350), "{silent:?}");
    // In the same call: D and B are reached through C, installed before anything is
    // withdrawn (the harness checks the order), and nothing uses B any more.
    let installs: Vec<_> = batch
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Install { dst, next_hops, .. } => Some((*dst, next_hops.clone())),
            _ => None,
        })
        .collect();
    assert!(
        installs.contains(&(NodePrefix::host(d), vec![(c, 1)])),
        "{installs:?}"
    );
    assert!(
        installs.contains(&(NodePrefix::host(b), vec![(c, 1)])),
        "{installs:?}"
    );
    assert!(net.routes_of(a).values().flatten().all(|(h, _)| *h != b));
    // And the rest of the fleet converges around the dead link.
    net.run_for(ms(2000));
    assert_eq!(net.walk(b, a), Ok(3));
    assert_eq!(net.walk(a, b), Ok(3));
}

#[test]
fn carrier_loss_is_acted_on_at_once() {
    let (a, b, c) = (n(1, 1), n(1, 2), n(1, 3));
    let mut net = Net::new(&[(a, b, 1), (b, c, 1), (a, c, 5)], Params::default());
    net.run_for(ms(3000));
    assert_eq!(net.lookup(a, c), Some(&vec![(b, 1)]));
    net.handle(
        a,
        Event::LinkState {
            neighbor: b,
            up: false,
        },
    );
    assert_eq!(net.lookup(a, c), Some(&vec![(c, 1)]));
    assert!(net.routes_of(a).values().flatten().all(|(h, _)| *h != b));
}

#[test]
fn strangers_are_ignored_and_counted() {
    let (a, b) = (n(1, 1), n(1, 2));
    let mut net = Net::new(&[(a, b, 1)], Params::default());
    net.run_for(ms(1000));
    let before = net.routers[&a].routes();
    net.handle(
        a,
        Event::Received {
            from: n(9, 9),
            msg: Message::Hello { seq: 1, sent_us: 0 },
        },
    );
    assert_eq!(net.routers[&a].ignored_messages(), 1);
    assert_eq!(net.routers[&a].routes(), before);
}

#[test]
fn a_dead_nodes_state_ages_out() {
    let (a, b, c) = (n(1, 1), n(1, 2), n(1, 3));
    let links = [(a, b, 1), (b, c, 1)];
    let mut net = Net::with_prefixes(&links, Params::default(), &[(c, "10.0.3.0/24")]);
    net.run_for(ms(3000));
    let p = "10.0.3.0/24".parse().unwrap();
    assert_eq!(net.overlay[&a].get(&p), Some(&c));
    let entries = net.routers[&a].state_entries();
    // C vanishes: B notices, re-advertises, and A forgets C's routes and prefixes.
    net.link(b, c).up = false;
    net.run_for(ms(6000));
    assert!(net.lookup(a, c).is_none());
    assert!(!net.overlay[&a].contains_key(&p));
    // C's advert ages out of A's database (4 advert intervals).
    assert!(net.routers[&a].state_entries() < entries);
}

/// A restarted agent starts its sequence numbers again at 1: its neighbours answer with
/// the newer copy they hold, and it outbids that at once instead of going unheard until
/// the old advert ages out.
#[test]
fn a_restarted_node_outbids_its_old_adverts() {
    let (a, b, c) = (n(1, 1), n(1, 2), n(1, 3));
    let links = [(a, b, 1), (b, c, 1)];
    let mut net = Net::with_prefixes(&links, Params::default(), &[(c, "10.0.3.0/24")]);
    net.run_for(ms(10_000));
    let old: ipnet::IpNet = "10.0.3.0/24".parse().unwrap();
    let new: ipnet::IpNet = "10.0.9.0/24".parse().unwrap();
    assert_eq!(net.overlay[&a].get(&old), Some(&c));
    net.restart(c, &["10.0.9.0/24"]);
    net.run_for(ms(1000));
    assert_eq!(
        net.overlay[&a].get(&new),
        Some(&c),
        "well before the 4 s age limit"
    );
    assert!(!net.overlay[&a].contains_key(&old));
    assert_eq!(net.walk(a, c), Ok(2));
}

/// B's agent stops (its control messages cease; its data plane may forward on): A and C
/// have no other way to each other, so they keep their routes through B for the stale
/// hold instead of leaving the destination without a route, and withdraw them after it.
/// Where another way exists it is taken at once (see the tests above).
#[test]
fn a_silent_neighbour_with_no_alternative_keeps_its_routes_for_the_hold() {
    let (a, b, c) = (n(1, 1), n(1, 2), n(1, 3));
    let mut net = Net::new(&[(a, b, 1), (b, c, 1)], Params::default());
    net.run_for(ms(3000));
    assert_eq!(net.lookup(a, c), Some(&vec![(b, 1)]));
    assert_eq!(net.lookup(c, a), Some(&vec![(b, 1)]));
    net.link(a, b).up = false;
    net.link(b, c).up = false;
    // Declared dead after 350 ms, yet the routes stay.
    net.run_for(ms(1000));
    assert!(
        !net.routers[&a]
            .neighbors()
            .iter()
            .any(|i| i.node == b && i.alive)
    );
    assert_eq!(net.lookup(a, c), Some(&vec![(b, 1)]));
    assert_eq!(net.lookup(c, a), Some(&vec![(b, 1)]));
    // B answers again within the hold: nothing was ever withdrawn.
    net.link(a, b).up = true;
    net.link(b, c).up = true;
    net.run_for(ms(2000));
    assert_eq!(net.lookup(a, c), Some(&vec![(b, 1)]));
    // Silent for longer than the hold (5 s): withdrawn.
    net.link(a, b).up = false;
    net.link(b, c).up = false;
    net.run_for(ms(6000));
    assert_eq!(net.lookup(a, c), None);
    assert_eq!(net.lookup(c, a), None);
}
