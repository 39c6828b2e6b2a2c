//! The routing core through its public API (`Router::new`, `handle`, `handle_timeout`,
//! `poll_action`): AntNet ant processing, and the shortest-path recompute that follows
//! a link-cost change on 1k and 10k node graphs (criterion).
//!
//! Each graph is a ring with two chords per node (deterministic), every node in one
//! zone, so the router under test (node 0.1) routes to every host. The harness plays
//! the neighbours: it answers the router's hellos, so they stay alive on the virtual
//! clock, and feeds every other node's advert through one of them.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use matrix_routing::{
    Action, Advert, Ant, AntKind, Event, Message, NodeId, Params, Router, RouterConfig,
    StrategyKind,
};

const LINK_COST_US: u32 = 100;
/// The router under test waits this long after the first change after a quiet spell
/// before recomputing (later changes wait longer: shortest-path runs are throttled).
const HOLD: Duration = Duration::from_millis(11);
/// Virtual time between two measured changes: longer than the router's quiet spell, so
/// every change meets the shortest hold and the recompute runs inside the timed region.
const QUIET: Duration = Duration::from_millis(1_100);

fn id(i: usize) -> NodeId {
    NodeId::new(0, i as u32 + 1)
}

/// Ring plus two pseudo-random chords per node, symmetric, no self-loops.
fn graph(n: usize) -> Vec<Vec<usize>> {
    let mut adj = vec![Vec::new(); n];
    let mut link = |a: usize, b: usize| {
        if a != b && !adj[a].contains(&b) {
            adj[a].push(b);
            adj[b].push(a);
        }
    };
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..n {
        link(i, (i + 1) % n);
        for _ in 0..2 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            link(i, (x >> 33) as usize % n);
        }
    }
    adj
}

/// Node 0's router, with every other node known from its advert.
struct Harness {
    router: Router,
    now: Instant,
    adj: Vec<Vec<usize>>,
    seq: Vec<u64>,
}

impl Harness {
    fn new(n: usize, strategy: StrategyKind) -> Self {
        let adj = graph(n);
        let now = Instant::now();
        let params = Params {
            strategy,
            ..Params::default()
        };
        let config = RouterConfig {
            node: id(0),
            neighbors: adj[0].iter().map(|&j| id(j)).collect(),
            prefixes: Vec::new(),
            params,
            seed: 7,
        };
        let mut h = Harness {
            router: Router::new(config, now),
            now,
            adj,
            seq: vec![0; n],
        };
        h.router.handle_timeout(h.now);
        h.pump();
        for v in 1..n {
            let advert = h.advert(v, LINK_COST_US);
            h.deliver(advert);
        }
        // Through the recompute (whatever its hold after the neighbours came up) and
        // into a quiet spell.
        h.idle(QUIET);
        let routes = h.router.routes().len();
        if routes + 1 < n {
            eprintln!(
                "warning: the router knows {routes} routes for {} other nodes: the routing core \
                 is not complete yet, the figures below measure what it does today",
                n - 1
            );
        }
        h
    }

    /// Node `v`'s next advert, every link at `cost` except its first at `first_cost`.
    fn advert(&mut self, v: usize, first_cost: u32) -> Message {
        self.seq[v] += 1;
        let links = self.adj[v]
            .iter()
            .enumerate()
            .map(|(k, &j)| (id(j), if k == 0 { first_cost } else { LINK_COST_US }))
            .collect();
        Message::Advert(Advert {
            origin: id(v),
            seq: self.seq[v],
            links,
            prefixes: Vec::new(),
            max_age_ms: 3_600_000,
        })
    }

    /// Hands `msg` to the router as if from its first neighbour, then drains.
    fn deliver(&mut self, msg: Message) {
        let from = id(self.adj[0][0]);
        self.router.handle(self.now, Event::Received { from, msg });
        self.pump();
    }

    /// Drains the router's actions, answering its hellos as the neighbours would.
    fn pump(&mut self) {
        loop {
            let mut acks = Vec::new();
            while let Some(action) = self.router.poll_action() {
                if let Action::Send {
                    to,
                    msg: Message::Hello { seq, sent_us },
                } = action
                {
                    acks.push((to, Message::HelloAck { seq, sent_us }));
                }
            }
            if acks.is_empty() {
                return;
            }
            for (from, msg) in acks {
                self.router.handle(self.now, Event::Received { from, msg });
            }
        }
    }

    /// Lets `d` of virtual time pass, firing the router's timers as they fall due and
    /// answering its hellos, so its neighbours stay alive.
    fn idle(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            let next = self.router.poll_timeout().map_or(end, |t| t.min(end));
            self.now = next.max(self.now + Duration::from_millis(1));
            self.router.handle_timeout(self.now);
            self.pump();
        }
    }

    /// A node at least two hops away from the router under test.
    fn far_node(&self) -> usize {
        (1..self.adj.len())
            .find(|&v| !self.adj[0].contains(&v) && !self.adj[v].contains(&0))
            .expect("a node beyond the neighbours")
    }
}

/// One advert changes one link's cost; the router recomputes every route after its
/// hold time. Timed: handling the advert, the recompute, draining the actions. Between
/// two changes the router idles (untimed) past its quiet spell.
fn shortest_recompute(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing_shortest_recompute");
    group.sample_size(10);
    for n in [1_000, 10_000] {
        let mut h = Harness::new(n, StrategyKind::Shortest);
        let v = h.far_node();
        let mut flip = false;
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    h.idle(QUIET);
                    flip = !flip;
                    let msg = h.advert(v, if flip { 3 * LINK_COST_US } else { LINK_COST_US });
                    let t = Instant::now();
                    h.deliver(msg);
                    h.now += HOLD;
                    h.router.handle_timeout(h.now);
                    h.pump();
                    total += t.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

/// A path from the router under test through its first neighbour, `len` nodes long,
/// following the graph.
fn path(h: &Harness, len: usize) -> Vec<usize> {
    let mut p = vec![0, h.adj[0][0]];
    while p.len() < len {
        let last = *p.last().expect("non-empty");
        match h.adj[last].iter().find(|j| !p.contains(j)) {
            Some(&j) => p.push(j),
            None => break,
        }
    }
    p
}

/// AntNet on a 1k-node graph: a forward ant passing through (next-hop choice, stack
/// push, send), and a backward ant coming home (trip-time models and pheromone rows of
/// every destination on its path).
fn antnet_ants(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing_antnet_ant");
    let h = Harness::new(1_000, StrategyKind::Antnet);
    let p = path(&h, 8);
    let nb = id(p[1]);
    // Forward: launched at the path's far end, now arriving here from the neighbour.
    let forward = Ant {
        kind: AntKind::Forward,
        id: 1,
        src: id(p[p.len() - 1]),
        dst: id(h.far_node()),
        stack: p[1..].iter().rev().map(|&v| (id(v), 120)).collect(),
        hops: (p.len() - 1) as u16,
    };
    // Backward: launched here, turned around at the path's end, arriving home.
    let mut stack: Vec<(NodeId, u32)> = p.iter().map(|&v| (id(v), 120)).collect();
    stack.last_mut().expect("non-empty").1 = 0;
    let backward = Ant {
        kind: AntKind::Backward,
        id: 2,
        src: id(0),
        dst: id(p[p.len() - 1]),
        stack,
        hops: (p.len() - 1) as u16,
    };
    let mut h = h;
    for (name, ant) in [("forward", forward), ("backward", backward)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || ant.clone(),
                |ant| {
                    h.router.handle(
                        h.now,
                        Event::Received {
                            from: nb,
                            msg: Message::Ant(ant),
                        },
                    );
                    while let Some(a) = h.router.poll_action() {
                        black_box(a);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    let c = h.router.counters();
    if c.ants_dropped > 0 {
        eprintln!(
            "warning: the router dropped {} of the benchmarked ants (counters: {c:?})",
            c.ants_dropped
        );
    }
    group.finish();
}

criterion_group!(benches, antnet_ants, shortest_recompute);
criterion_main!(benches);
