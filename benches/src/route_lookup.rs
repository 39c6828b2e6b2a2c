//! Route lookup at scale: the per-packet transit cost with 10, 1k and 100k routes in
//! `ROUTES`, each table filled with distinct /32 NodeIds, through BPF_PROG_TEST_RUN.
//!
//! One instance of the object per table size, all loaded at once, so the rounds of
//! [`crate::xdp_cost::measure`] interleave the sizes. The looked-up destinations are
//! members of the fill, so the LPM trie walk to them is as deep as the table makes it.
//! Transit rewrites its frame, so it is measured paired with a re-runnable twin that
//! does the very same lookups (route, neighbour) and then drops as too big for the next
//! hop: a destination in the same fill routed to the small-MTU neighbour.

use anyhow::Context as _;
use aya::Ebpf;
use matrix_common::{DROP_TOO_BIG, PATH_TRANSIT};
use matrix_testing::fixtures::{
    self, Action, Encap, Expect, Fixture, Inner, Instance, Kind, NET_LOCAL, NET_TX, NODE_REDIRECT,
    NODE_SMALL_MTU, NODE_TX, Prog, SMALL_MTU, World, arriving, ov4, relayed,
};
use matrix_user::node::{NodeId, NodePrefix};
use serde_json::{Value, json};

use crate::{
    run::{median, ratios, spread},
    xdp_cost::{self, Case, Report, Settings},
};

/// Route table sizes measured.
pub const SIZES: [usize; 3] = [10, 1_000, 100_000];

/// `n` distinct NodeIds spread over the whole id space (an odd multiplier is a bijection
/// on u32), clear of zones 0-3 where the standard world's nodes live.
pub fn fill_ids(n: usize) -> Vec<u32> {
    (1u32..)
        .map(|i| i.wrapping_mul(0x9E37_79B1))
        .filter(|id| id >> 16 > 3)
        .take(n)
        .collect()
}

/// The looked-up destinations in a fill of `ids`: one routed to the TX neighbour
/// (transit), one to the small-MTU neighbour (the too-big twin).
fn destinations(ids: &[u32]) -> (u32, u32) {
    (ids[ids.len() / 2], ids[ids.len() / 3])
}

/// The standard world plus `n` /32 routes.
pub fn world(n: usize) -> World {
    let ids = fill_ids(n);
    let (_, too_big) = destinations(&ids);
    let mut w = World::standard();
    for id in ids {
        let via = if id == too_big {
            NODE_SMALL_MTU
        } else {
            NODE_TX
        };
        let dst = NodePrefix::host(NodeId(id));
        w.routes.push((dst, vec![(NodeId(via), 1)]));
    }
    w
}

fn fixture(name: String, input: &Encap, expect: Expect, output: Vec<u8>) -> Fixture {
    Fixture {
        name,
        kind: if matches!(expect, Expect::Counted(Action::Drop, _)) {
            Kind::Drop
        } else {
            Kind::Transit
        },
        prog: Prog::Underlay,
        input: input.build(),
        expect,
        output,
        neigh: Vec::new(),
    }
}

/// The transit case and its too-big twin for a table of `n` routes on `instance`.
fn cases(n: usize, instance: usize) -> [Case; 2] {
    let (transit_dst, big_dst) = destinations(&fill_ids(n));
    let inner = Inner::v4(ov4(NET_LOCAL, 10), ov4(NET_TX, 20)).tcp(40000, 80);
    let transit = arriving(NODE_REDIRECT, &inner, transit_dst);
    let out = relayed(&transit, NODE_TX).build();
    let big_inner = inner.ip_len(SMALL_MTU as usize - fixtures::ENCAP_GROWTH + 1);
    let big = arriving(NODE_REDIRECT, &big_inner, big_dst);
    let (t, b) = (format!("transit_{n}"), format!("too_big_{n}"));
    let tx = Expect::Counted(Action::Tx, PATH_TRANSIT);
    let drop = Expect::Counted(Action::Drop, DROP_TOO_BIG);
    let big_out = big.build();
    [
        Case::new(
            &t,
            instance,
            fixture(t.clone(), &transit, tx, out),
            Some(&b),
        ),
        Case::new(&b, instance, fixture(b.clone(), &big, drop, big_out), None),
    ]
}

/// Loads one instance per size and measures; returns the report and the JSON.
pub fn run(settings: &Settings) -> anyhow::Result<(Report, Value)> {
    let mut instances: Vec<Instance> = Vec::new();
    for n in SIZES {
        println!("loading an instance with {n} routes");
        instances.push(fixtures::load(&world(n)).with_context(|| format!("{n} routes"))?);
    }
    let refs: Vec<&Ebpf> = instances.iter().map(|i| &i.ebpf).collect();
    let mut all = vec![Case::new(
        "baseline_tx",
        0,
        fixtures::by_name("baseline/tx"),
        None,
    )];
    for (i, n) in SIZES.into_iter().enumerate() {
        all.extend(cases(n, i));
    }
    let report = xdp_cost::measure(&refs, all, settings)?;
    let transit = |n: usize| report.row(&format!("transit_{n}"));
    let (small, large) = (transit(SIZES[0])?, transit(SIZES[2])?);
    let growth = ratios(&large.ns, &small.ns);
    let sizes: Vec<Value> = SIZES
        .iter()
        .map(|&n| {
            let t = transit(n)?;
            Ok(json!({
                "routes": n,
                "transit_ns_per_packet": t.ns_median(),
                "transit_ns_spread": spread(&t.ns),
                "transit_ratio_to_baseline": t.ratio_median(),
                "too_big_twin_ns_per_packet": report.row(&format!("too_big_{n}"))?.ns_median(),
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    let json = json!({
        "bench": "route_lookup",
        "sizes": sizes,
        "lookup_100k_vs_10": median(&growth),
        "lookup_100k_vs_10_rounds": growth,
        "fill": "distinct /32 NodeIds i * 0x9E3779B1 (zones > 3); the looked-up destinations \
                 are fill members",
        "xdp_cost": report.to_json(),
    });
    Ok((report, json))
}
