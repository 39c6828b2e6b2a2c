//! The per-packet arithmetic shared with the XDP programs, in userspace: the flow hash
//! and the weighted next-hop choice.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use matrix_common::{IPPROTO_TCP, NextHopSet, flow_hash_v4, flow_hash_v6};

fn flow_hash(c: &mut Criterion) {
    c.bench_function("flow_hash_v4", |b| {
        b.iter(|| {
            flow_hash_v4(
                black_box([10, 1, 0, 10]),
                black_box([10, 2, 0, 20]),
                IPPROTO_TCP,
                black_box(40000),
                80,
            )
        })
    });
    let (src, dst) = ([0xfd; 16], [0xfe; 16]);
    c.bench_function("flow_hash_v6", |b| {
        b.iter(|| {
            flow_hash_v6(
                black_box(src),
                black_box(dst),
                IPPROTO_TCP,
                black_box(40000),
                443,
            )
        })
    });
}

fn pick(c: &mut Criterion) {
    let one = NextHopSet::new(&[(1, 1)]);
    let four = NextHopSet::new(&[(1, 1), (2, 3), (3, 5), (4, 7)]);
    c.bench_function("next_hop_pick_1", |b| {
        b.iter(|| one.pick(black_box(0xBEEF)))
    });
    // The last member: the walk over the cumulative weights goes all the way.
    c.bench_function("next_hop_pick_4_last", |b| {
        b.iter(|| four.pick(black_box(0xFFFF)))
    });
}

criterion_group!(benches, flow_hash, pick);
criterion_main!(benches);
