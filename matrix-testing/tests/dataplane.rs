//! The `DataPlane` facade on a loaded, unpinned instance with the fixtures' standard
//! world: what it reads back, the neighbour slots it gives and frees, how a second handle
//! rebuilds them from the map, and the errors that name the neighbour at fault.
//!
//! Needs root (BPF_PROG_LOAD, map creation): without it the tests fail, they never skip.

use std::net::Ipv4Addr;

use matrix_common::{MAX_NEIGHBORS, NEIGHBOR_F_RESOLVED, NEIGHBOR_F_VALID, Neighbor};
use matrix_testing::fixtures::{self, Instance, NODE_ECMP, NODE_REDIRECT, NODE_TX, World};
use matrix_user::{
    dataplane::{DataPlane, DataPlaneError, UnderlayLink},
    node::{NodeId, NodePrefix},
};

fn load() -> Instance {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "tests/dataplane.rs loads XDP programs and needs root (euid is {euid}): \
         run it as root, e.g. `sudo -E cargo test -p matrix-testing --test dataplane`"
    );
    fixtures::load(&World::standard()).expect("load the data plane and build the fixture world")
}

/// A link to a made-up neighbour `i` on 100.65.`i`.0/24, clear of the world's links.
fn link(i: u8) -> UnderlayLink {
    UnderlayLink {
        ifindex: 1,
        mtu: 1500,
        local_ipv4: Ipv4Addr::new(100, 65, i, 1),
        remote_ipv4: Ipv4Addr::new(100, 65, i, 2),
        local_mac: [0x02, 0, 0, 1, i, 0x01],
    }
}

/// The slot `matrix neighbors` shows for `node`.
fn slot_of(dp: &DataPlane, node: NodeId) -> Option<u32> {
    let rows = dp.neighbor_rows().expect("read NEIGHBORS");
    rows.iter()
        .find(|r| r.node == node.to_string())
        .map(|r| r.slot)
}

#[test]
fn the_world_reads_back_as_it_was_built() {
    let world = World::standard();
    let Instance { dp, .. } = load();
    assert_eq!(dp.config().unwrap(), world.config);
    // In the order they were added; an unresolved neighbour has no MAC yet.
    let want: Vec<(NodeId, Neighbor)> = (world.neighbors.iter())
        .map(|n| {
            let resolved = n.flags & NEIGHBOR_F_RESOLVED != 0;
            let remote_mac = if resolved { n.remote_mac } else { [0; 6] };
            (NodeId(n.node_id), Neighbor { remote_mac, ..*n })
        })
        .collect();
    assert_eq!(dp.neighbors().unwrap(), want);
    let mut want = world.routes.clone();
    want.sort();
    let got: Vec<(NodePrefix, Vec<(NodeId, u32)>)> = (dp.routes().unwrap().into_iter())
        .map(|r| {
            let hops = r.next_hops.iter();
            (
                r.dst,
                hops.map(|h| (h.node.expect("a neighbour"), h.weight))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(got, want);
    let mut want = world.overlay.clone();
    want.sort();
    assert_eq!(dp.overlay_prefixes().unwrap(), want);
}

#[test]
fn a_second_handle_finds_every_neighbour_in_its_slot() {
    let Instance { ebpf, mut dp } = load();
    let mut again = DataPlane::of_loaded(&ebpf).unwrap();
    assert_eq!(again.neighbors().unwrap(), dp.neighbors().unwrap());
    assert_eq!(again.routes().unwrap(), dp.routes().unwrap());
    // Either handle writes where the other reads, by NodeId.
    let (tx, fresh) = (NodeId(NODE_TX), NodeId(0x0001_0042));
    again.clear_neighbor(tx).unwrap();
    again.set_neighbor(fresh, link(42)).unwrap();
    let again_sees = DataPlane::of_loaded(&ebpf).unwrap();
    assert!(!again_sees.has_neighbor(tx) && again_sees.has_neighbor(fresh));
    let hops = [(NodeId(NODE_REDIRECT), 1), (fresh, 2)];
    let dst = NodePrefix::host(NodeId(NODE_ECMP));
    again.install_route(dst, &hops).unwrap();
    // A handle learns the slots when it opens the maps.
    dp = DataPlane::of_loaded(&ebpf).unwrap();
    let route = dp.routes().unwrap().into_iter().find(|r| r.dst == dst);
    let nodes: Vec<_> = route
        .unwrap()
        .next_hops
        .iter()
        .map(|h| (h.node, h.weight))
        .collect();
    assert_eq!(
        nodes,
        vec![(Some(NodeId(NODE_REDIRECT)), 1), (Some(fresh), 2)]
    );
}

#[test]
fn a_cleared_neighbour_frees_its_slot_for_the_next() {
    let Instance { mut dp, .. } = load();
    let tx = NodeId(NODE_TX);
    let slot = slot_of(&dp, tx).expect("TX has a slot");
    dp.clear_neighbor(tx).unwrap();
    assert!(!dp.has_neighbor(tx) && slot_of(&dp, tx).is_none());
    // Its route stays, naming the slot and no neighbour.
    let routes = dp.routes().unwrap();
    let route = routes
        .iter()
        .find(|r| r.dst == NodePrefix::host(tx))
        .unwrap();
    assert_eq!(
        (route.next_hops[0].node, route.next_hops[0].slot),
        (None, slot)
    );
    // The next neighbour added takes the slot, unresolved.
    let fresh = NodeId(0x0001_0042);
    dp.set_neighbor(fresh, link(42)).unwrap();
    assert_eq!(slot_of(&dp, fresh), Some(slot));
    let n = dp.neighbor(fresh).unwrap();
    assert_eq!((n.flags, n.remote_mac), (NEIGHBOR_F_VALID, [0; 6]));
    assert!(!n.usable());
    dp.resolve_neighbor(fresh, [0x02, 0, 0, 2, 42, 0x02])
        .unwrap();
    assert!(dp.neighbor(fresh).unwrap().usable());
}

#[test]
fn set_neighbor_keeps_the_learnt_mac_while_the_address_stays() {
    let Instance { mut dp, .. } = load();
    let tx = NodeId(NODE_TX);
    let before = dp.neighbor(tx).unwrap();
    let link = UnderlayLink {
        ifindex: before.ifindex,
        mtu: 1400,
        local_ipv4: before.local_ipv4.into(),
        remote_ipv4: before.remote_ipv4.into(),
        local_mac: before.local_mac,
    };
    let slot = slot_of(&dp, tx);
    dp.set_neighbor(tx, link).unwrap();
    assert_eq!(slot_of(&dp, tx), slot);
    assert_eq!(
        dp.neighbor(tx).unwrap(),
        Neighbor {
            mtu: 1400,
            ..before
        }
    );
    // A new address: the MAC must be learnt again.
    let moved = UnderlayLink {
        remote_ipv4: Ipv4Addr::new(192, 0, 2, 3),
        ..link
    };
    dp.set_neighbor(tx, moved).unwrap();
    let n = dp.neighbor(tx).unwrap();
    assert_eq!(
        (n.flags, n.remote_mac, n.remote_ipv4),
        (NEIGHBOR_F_VALID, [0; 6], [192, 0, 2, 3])
    );
    assert_eq!(slot_of(&dp, tx), slot);
}

#[test]
fn errors_name_the_neighbour_or_route_at_fault() {
    let Instance { mut dp, .. } = load();
    let stranger = NodeId(0x0009_0009);
    let dst = NodePrefix::host(NodeId(0x0003_0003));
    let tx = NodeId(NODE_TX);
    let err = dp
        .install_route(dst, &[(tx, 1), (stranger, 1)])
        .unwrap_err();
    assert!(
        matches!(err, DataPlaneError::UnknownNextHop { dst: d, node } if d == dst && node == stranger),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "route 3.3/32: next hop 9.9 is not a neighbour in the data plane"
    );
    assert!(
        dp.routes().unwrap().iter().all(|r| r.dst != dst),
        "nothing written"
    );
    let err = dp.install_route(dst, &[(tx, 1); 5]).unwrap_err();
    assert!(
        matches!(err, DataPlaneError::TooManyNextHops { count: 5, .. }),
        "{err:?}"
    );
    for err in [
        dp.resolve_neighbor(stranger, [2; 6]).unwrap_err(),
        dp.clear_neighbor(stranger).unwrap_err(),
        dp.neighbor(stranger).unwrap_err(),
        dp.neighbor_stats(stranger).unwrap_err(),
    ] {
        assert!(
            matches!(err, DataPlaneError::UnknownNeighbor { node } if node == stranger),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "no neighbour 9.9 in the data plane");
    }
    // Every slot taken: the next neighbour is refused, by name.
    let held = dp.neighbors().unwrap().len() as u32;
    for i in 0..MAX_NEIGHBORS - held {
        dp.set_neighbor(NodeId(0x0100_0000 + i), link(i as u8))
            .unwrap();
    }
    let one_more = NodeId(0x0200_0001);
    let err = dp.set_neighbor(one_more, link(255)).unwrap_err();
    assert!(
        matches!(err, DataPlaneError::NoFreeSlot { node } if node == one_more),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("no free neighbour slot for {one_more}: all {MAX_NEIGHBORS} are taken")
    );
}
