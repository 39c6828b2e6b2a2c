//! The oracle on its own (no program runs, no root): it accepts what every fixture
//! expects, and it reports each kind of wrong result a broken data plane could give.

use etherparse::Ipv4HeaderSlice;
use matrix_common::{
    COUNTER_SLOTS, DROP_BAD_FLAGS, DROP_NO_ROUTE, ETH_HDR_LEN, PATH_DECAP, PATH_ENCAP,
    PATH_PASSTHROUGH, PATH_TRANSIT, VERDICT_ABORTED, VERDICT_DROP, VERDICT_PASS, VERDICT_TX,
};

use super::*;
use crate::fixtures::{self, Action, Expect, Fixture, GENEVE_OFF, Kind, Prog, World};

fn oracle() -> Oracle {
    Oracle::new(World::standard())
}

fn fixture(name: &str) -> Fixture {
    fixtures::by_name(name)
}

/// Judges `f`'s input with `action` and `output`; panics unless the oracle objects, and
/// returns its faults joined.
fn rejected(f: &Fixture, action: Action, output: &[u8]) -> String {
    match oracle().judge(f.prog, &f.input, action as u32, output) {
        Ok(j) => panic!("{}: the oracle accepted {action:?} as {j:?}", f.name),
        Err(faults) => faults.join("\n"),
    }
}

fn assert_mentions(faults: &str, words: &str) {
    assert!(
        faults.contains(words),
        "expected a fault about `{words}`, got:\n{faults}"
    );
}

/// The IPv4 header checksum of an outer header, fixed after an edit.
fn fix_checksum(frame: &mut [u8]) {
    let c = ipv4_checksum(&frame[ETH_HDR_LEN..ETH_HDR_LEN + 20]);
    frame[ETH_HDR_LEN + 10..ETH_HDR_LEN + 12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn accepts_every_fixture_result() {
    let oracle = oracle();
    let mut judged = 0;
    for f in fixtures::all() {
        if f.prog == Prog::BaselineTx {
            continue;
        }
        let (action, slot) = match f.expect {
            Expect::Counted(a, slot) => (a, Some(slot)),
            Expect::Uncounted(a) => (a, None),
            // Garbage: whichever the program does, one of the two must be right.
            Expect::PassOrDrop => {
                let pass = oracle.judge(f.prog, &f.input, Action::Pass as u32, &f.input);
                let drop = oracle.judge(f.prog, &f.input, Action::Drop as u32, &f.input);
                assert!(
                    pass.is_ok() || drop.is_ok(),
                    "{}: {pass:?} {drop:?}",
                    f.name
                );
                continue;
            }
        };
        let j = oracle
            .judge(f.prog, &f.input, action as u32, &f.output)
            .unwrap_or_else(|e| panic!("{}: the oracle rejects:\n  {}", f.name, e.join("\n  ")));
        let want = match (f.kind, slot) {
            (Kind::Transit, _) => "transit",
            (Kind::Encap, _) => "encap",
            (Kind::Decap, _) => "decap",
            (_, Some(PATH_PASSTHROUGH)) => "pass",
            _ => "drop",
        };
        assert_eq!(j.name(), want, "{}", f.name);
        // The counters the fixture expects are the ones the tally expects.
        let mut tally = Tally::default();
        tally.add(f.prog, &f.input, action as u32, &f.output);
        let mut delta = vec![0; COUNTER_SLOTS as usize];
        delta[action as usize] = 1;
        delta[slot.expect("a counted fixture") as usize] = 1;
        assert_eq!(tally.check(&delta), Vec::<String>::new(), "{}", f.name);
        judged += 1;
    }
    assert!(judged > 60, "only {judged} fixtures judged");
}

#[test]
fn checksum_agrees_with_etherparse() {
    let frame = fixture("underlay/transit_tx_v4_tcp").input;
    let header = &frame[ETH_HDR_LEN..ETH_HDR_LEN + 20];
    let h = Ipv4HeaderSlice::from_slice(header).unwrap().to_header();
    assert!(ipv4_checksum_ok(header));
    assert_eq!(ipv4_checksum(header), h.calc_header_checksum());
    for bit in 0..160 {
        let mut bad = header.to_vec();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(!ipv4_checksum_ok(&bad), "bit {bit}");
    }
}

#[test]
fn reports_aborted() {
    for name in [
        "underlay/transit_tx_v4_tcp",
        "workload/encap_v4_tcp",
        "underlay/pass_arp",
    ] {
        let f = fixture(name);
        assert_mentions(&rejected(&f, Action::Aborted, &f.output), "XDP_ABORTED");
    }
}

#[test]
fn reports_a_transit_with_a_wrong_checksum() {
    let f = fixture("underlay/transit_tx_v4_tcp");
    let mut out = f.output.clone();
    out[ETH_HDR_LEN + 10] ^= 0x01;
    assert_mentions(&rejected(&f, Action::Tx, &out), "checksum");
}

#[test]
fn reports_a_transit_with_the_hop_limit_not_decremented() {
    let f = fixture("underlay/transit_tx_v4_tcp");
    let mut out = f.output.clone();
    out[GENEVE_OFF + 8 + 12] += 1;
    assert_mentions(&rejected(&f, Action::Tx, &out), "hop limit");
}

#[test]
fn reports_a_transit_to_the_wrong_neighbour_or_by_the_wrong_action() {
    let f = fixture("underlay/transit_tx_v4_tcp");
    let redirect = fixture("underlay/transit_redirect_v4_udp");
    // The right bytes, sent by XDP_REDIRECT where the next hop is behind the ingress.
    assert_mentions(&rejected(&f, Action::Redirect, &f.output), "expected Tx");
    // The frame for another neighbour's link.
    let mut out = f.output.clone();
    out[..12].copy_from_slice(&redirect.output[..12]);
    assert_mentions(&rejected(&f, Action::Tx, &out), "Ethernet destination");
    let mut out = f.output.clone();
    out[ETH_HDR_LEN + 16..ETH_HDR_LEN + 20].copy_from_slice(&[192, 0, 2, 9]);
    fix_checksum(&mut out);
    assert_mentions(&rejected(&f, Action::Tx, &out), "outer IP destination");
}

#[test]
fn reports_a_transit_that_changed_the_inner_packet_or_the_lengths() {
    let f = fixture("underlay/transit_tx_v6_udp");
    let mut out = f.output.clone();
    *out.last_mut().unwrap() ^= 0xFF;
    assert_mentions(&rejected(&f, Action::Tx, &out), "inner packet");
    let mut out = f.output.clone();
    out.push(0);
    assert_mentions(&rejected(&f, Action::Tx, &out), "IP total length");
}

#[test]
fn reports_forwarding_what_must_be_dropped() {
    // Each of these inputs must be dropped: relaying it, with an otherwise perfect
    // output, is what the oracle must catch.
    let cases = [
        ("underlay/drop_bad_checksum", "checksum"),
        ("underlay/drop_bad_flags_oam", "Geneve flags"),
        (
            "underlay/drop_bad_flags_reserved_after_vni",
            "reserved byte",
        ),
        ("underlay/drop_unknown_option_vni", "VNI"),
        ("underlay/drop_unknown_option_class", "Matrix option"),
        ("underlay/drop_unknown_option_inner_arp", "inner protocol"),
        ("underlay/drop_unknown_neighbor", "no configured neighbour"),
        ("underlay/drop_malformed_udp_len", "UDP length"),
        (
            "underlay/drop_malformed_frame_past_total_len",
            "IP total length",
        ),
        ("underlay/drop_expired", "hop limit 1"),
        ("underlay/drop_no_route", "no route"),
        ("underlay/drop_neighbor_down", "is down"),
        ("underlay/drop_too_big", "MTU"),
    ];
    for (name, words) in cases {
        let f = fixture(name);
        let good = fixture("underlay/transit_tx_v4_tcp");
        let faults = rejected(&f, Action::Tx, &good.output);
        assert_mentions(&faults, words);
    }
    // Decapsulating a frame from an outsider.
    let f = fixture("underlay/drop_unknown_neighbor");
    let mut decap = f.input[..12].to_vec();
    decap.extend_from_slice(&[0x08, 0x00]);
    decap.extend_from_slice(&f.input[66..]);
    assert_mentions(
        &rejected(&f, Action::Pass, &decap),
        "no configured neighbour",
    );
    // A tagged overlay frame relayed.
    let f = fixture("underlay/drop_vlan_8021q");
    let good = fixture("underlay/transit_tx_v4_tcp");
    assert_mentions(&rejected(&f, Action::Tx, &good.output), "EtherType");
}

#[test]
fn reports_a_pass_that_changed_a_byte() {
    for name in [
        "underlay/pass_tcp",
        "workload/pass_arp",
        "workload/pass_unowned_v4",
    ] {
        let f = fixture(name);
        let mut out = f.input.clone();
        out[20] ^= 0x10;
        let faults = rejected(&f, Action::Pass, &out);
        assert!(
            faults.contains("changed") || faults.contains("decapsulated"),
            "{name}: {faults}"
        );
    }
}

#[test]
fn reports_a_wrong_decapsulation() {
    let f = fixture("underlay/decap_v4_tcp");
    let mut out = f.output.clone();
    out[13] = 0xDD; // EtherType 0x08DD
    assert_mentions(&rejected(&f, Action::Pass, &out), "EtherType");
    let out = f.output[..f.output.len() - 1].to_vec();
    assert_mentions(&rejected(&f, Action::Pass, &out), "minus 52 bytes");
    // A transit frame decapsulated here.
    let t = fixture("underlay/transit_tx_v4_tcp");
    let mut out = t.input[..12].to_vec();
    out.extend_from_slice(&[0x08, 0x00]);
    out.extend_from_slice(&t.input[66..]);
    assert_mentions(&rejected(&t, Action::Pass, &out), "not this node");
}

#[test]
fn reports_overlay_traffic_passed_and_host_traffic_dropped() {
    for name in [
        "underlay/transit_tx_v4_tcp",
        "underlay/decap_v4_tcp",
        "underlay/drop_bad_checksum",
        "underlay/drop_vlan_8021q",
    ] {
        let f = fixture(name);
        assert_mentions(&rejected(&f, Action::Pass, &f.input), "untouched");
    }
    for name in [
        "underlay/pass_tcp",
        "underlay/pass_vlan_tcp",
        "underlay/pass_ip_fragment",
    ] {
        let f = fixture(name);
        assert_mentions(&rejected(&f, Action::Drop, &f.input), "host's own traffic");
    }
    let f = fixture("workload/encap_v4_tcp");
    assert_mentions(
        &rejected(&f, Action::Pass, &f.input),
        "must be encapsulated",
    );
    for name in [
        "workload/pass_arp",
        "workload/pass_unowned_v6",
        "workload/pass_local_owner_v4",
    ] {
        let f = fixture(name);
        assert_mentions(&rejected(&f, Action::Drop, &f.input), "must pass untouched");
    }
}

#[test]
fn reports_a_wrong_encapsulation() {
    const OPT: usize = GENEVE_OFF + 8;
    let f = fixture("workload/encap_v4_tcp");
    type Edit = fn(&mut [u8]);
    let edits: [(&str, Edit); 7] = [
        ("VNI", |o| o[GENEVE_OFF + 6] ^= 1),
        ("source node", |o| o[OPT + 11] ^= 1),
        ("destination node", |o| o[OPT + 7] ^= 1),
        ("option hop limit", |o| o[OPT + 12] -= 1),
        ("UDP source port", |o| o[ETH_HDR_LEN + 21] ^= 1),
        ("flow hash", |o| {
            // Hash and port changed together: consistent, but not the packet's.
            o[OPT + 15] ^= 1;
            o[ETH_HDR_LEN + 21] ^= 1;
        }),
        ("IP packet", |o| *o.last_mut().unwrap() ^= 1),
    ];
    for (words, edit) in edits {
        let mut out = f.output.clone();
        edit(&mut out);
        assert_mentions(&rejected(&f, Action::Tx, &out), words);
    }
    let mut out = f.output.clone();
    out[ETH_HDR_LEN + 8] -= 1; // TTL, checksum left
    assert_mentions(&rejected(&f, Action::Tx, &out), "checksum");
    fix_checksum(&mut out);
    assert_mentions(&rejected(&f, Action::Tx, &out), "IP TTL");
    // Encapsulating what must not be.
    let arp = fixture("workload/pass_arp");
    assert_mentions(&rejected(&arp, Action::Tx, &f.output), "no IPv4 or IPv6");
    let local = fixture("workload/pass_local_owner_v4");
    assert_mentions(
        &rejected(&local, Action::Tx, &f.output),
        "owned by this node",
    );
    let unowned = fixture("workload/pass_unowned_v4");
    assert_mentions(&rejected(&unowned, Action::Tx, &f.output), "no node owns");
    let big = fixture("workload/drop_too_big_v4");
    assert_mentions(&rejected(&big, Action::Tx, &f.output), "too big");
}

#[test]
fn tally_reports_counters_that_disagree() {
    let f = fixture("underlay/drop_bad_flags_oam");
    let t = fixture("underlay/transit_tx_v4_tcp");
    let mut tally = Tally::default();
    tally.add(f.prog, &f.input, Action::Drop as u32, &f.input);
    tally.add(t.prog, &t.input, Action::Tx as u32, &t.output);
    let mut delta = vec![0; COUNTER_SLOTS as usize];
    for slot in [VERDICT_DROP, DROP_BAD_FLAGS, VERDICT_TX, PATH_TRANSIT] {
        delta[slot as usize] += 1;
    }
    assert!(tally.check(&delta).is_empty());
    let wrong = |edit: fn(&mut Vec<u64>)| {
        let mut d = delta.clone();
        edit(&mut d);
        tally.check(&d).join("\n")
    };
    assert_mentions(&wrong(|d| d[VERDICT_ABORTED as usize] += 1), "aborted");
    assert_mentions(&wrong(|d| d[DROP_BAD_FLAGS as usize] = 0), "drop reasons");
    assert_mentions(
        &wrong(|d| {
            d[DROP_BAD_FLAGS as usize] = 0;
            d[DROP_NO_ROUTE as usize] = 2;
        }),
        "drop reasons",
    );
    assert_mentions(
        &wrong(|d| {
            d[PATH_TRANSIT as usize] = 0;
            d[PATH_DECAP as usize] = 1;
        }),
        "transit",
    );
    assert_mentions(
        &wrong(|d| {
            d[VERDICT_TX as usize] = 0;
            d[VERDICT_PASS as usize] = 1;
        }),
        "pass",
    );
    assert_mentions(&wrong(|d| d[PATH_ENCAP as usize] = 1), "encap");
}

#[test]
fn frames_are_deterministic_from_seed_and_index() {
    let (a, b) = (Generator::new(7), Generator::new(7));
    for i in [0, 1, 999, 123_456] {
        assert_eq!(a.case(i).frame, b.case(i).frame, "frame {i}");
        assert_eq!(a.case(i).steps, b.case(i).steps, "frame {i}");
    }
    let other = Generator::new(8);
    let differ = (0..100).filter(|&i| a.case(i).frame != other.case(i).frame);
    assert!(differ.count() > 90);
}

#[test]
fn frames_cover_every_origin_mutation_and_program() {
    let g = Generator::new(1);
    let mut origins = std::collections::BTreeSet::new();
    let mut steps = std::collections::BTreeSet::new();
    let mut progs = std::collections::BTreeSet::new();
    for i in 0..5000 {
        let c = g.case(i);
        origins.insert(c.origin);
        progs.insert(format!("{:?}", c.prog));
        steps.extend(c.steps);
        assert!(c.frame.len() <= 2048);
    }
    assert_eq!(origins.len(), 3);
    assert_eq!(progs.len(), 2);
    for m in mutation_names() {
        assert!(steps.contains(m), "mutation {m} never drawn");
    }
}

#[test]
fn hex_round_trips() {
    let bytes = [0u8, 1, 0xAB, 0xFF];
    assert_eq!(hex(&bytes), "0001abff");
    assert_eq!(from_hex("00 01 ab ff").unwrap(), bytes);
    assert!(from_hex("0").is_none());
}
