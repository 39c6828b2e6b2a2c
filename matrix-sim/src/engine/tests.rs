//! The engine driven by a scripted core (an oracle with global knowledge), so the
//! simulator's own mechanics are tested independently of the real routing core.

use std::{
    cell::RefCell,
    collections::{HashSet, VecDeque},
    rc::Rc,
    time::{Duration, Instant},
};

use matrix_routing::{
    Action, Event, Message, NodeId, NodePrefix, Params, RouterConfig, StrategyKind,
};

use super::{Core, Detect, RunConfig, RunResult, simulate_with};
use crate::{
    metrics::Drops,
    topology::Topology,
    traffic::{self, LoadSpec},
};

const HELLO: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Shortest hop-count paths (ECMP), recomputed at the next hello after any cut.
    Shortest,
    /// Everything to the first neighbour: packets wander in loops.
    Loop,
    /// No routes at all.
    Nothing,
}

#[derive(Default)]
struct Seen {
    /// LinkCapacity events: one per link end, at start.
    capacities: u64,
    link_loads: u64,
    last_tx_bytes: u64,
    demands: u64,
    timeouts: u64,
    hellos: u64,
    link_downs: u64,
}

struct Shared {
    topo: Topology,
    /// Cut links (by node pair), known to every oracle.
    down: HashSet<(NodeId, NodeId)>,
    version: u64,
    /// Hop counts to every destination over the links still up, per version.
    dist: Option<(u64, Vec<Vec<usize>>)>,
    adj: Vec<Vec<(usize, usize)>>,
    seen: Seen,
}

struct Oracle {
    me: usize,
    cfg: RouterConfig,
    shared: Rc<RefCell<Shared>>,
    mode: Mode,
    actions: VecDeque<Action>,
    next: Instant,
    version: Option<u64>,
    routes: usize,
    seq: u32,
}

impl Oracle {
    fn recompute(&mut self) {
        let mut sh = self.shared.borrow_mut();
        if self.version == Some(sh.version) {
            return;
        }
        self.version = Some(sh.version);
        if sh.dist.as_ref().is_none_or(|(v, _)| *v != sh.version) {
            let t = &sh.topo;
            let mut adj = t.adjacency();
            for (a, list) in adj.iter_mut().enumerate() {
                list.retain(|&(b, _)| {
                    let (x, y) = (t.nodes[a].id, t.nodes[b].id);
                    !sh.down.contains(&(x, y)) && !sh.down.contains(&(y, x))
                });
            }
            let dist = (0..t.nodes.len()).map(|d| t.hops_from(&adj, d)).collect();
            sh.dist = Some((sh.version, dist));
            sh.adj = adj;
        }
        let (t, adj) = (&sh.topo, &sh.adj);
        let dist = &sh.dist.as_ref().expect("computed above").1;
        self.routes = 0;
        for (dst, d) in dist.iter().enumerate() {
            if dst == self.me {
                continue;
            }
            let prefix = NodePrefix::host(t.nodes[dst].id);
            let next_hops: Vec<(NodeId, u32)> = match self.mode {
                Mode::Nothing => continue,
                Mode::Loop => vec![(self.cfg.neighbors[0], 1)],
                Mode::Shortest => adj[self.me]
                    .iter()
                    .filter(|&&(nb, _)| d[nb] != usize::MAX && d[nb] + 1 == d[self.me])
                    .take(4)
                    .map(|&(nb, _)| (t.nodes[nb].id, 1))
                    .collect(),
            };
            if next_hops.is_empty() {
                self.actions.push_back(Action::Withdraw { dst: prefix });
            } else {
                self.routes += 1;
                self.actions.push_back(Action::Install {
                    dst: prefix,
                    next_hops,
                    aggregate: false,
                });
            }
        }
    }
}

impl Core for Oracle {
    fn handle(&mut self, _now: Instant, event: Event) {
        let mut sh = self.shared.borrow_mut();
        match event {
            Event::Received { from, msg } => {
                if let Message::Hello { seq, sent_us } = msg {
                    sh.seen.hellos += 1;
                    self.actions.push_back(Action::Send {
                        to: from,
                        msg: Message::HelloAck { seq, sent_us },
                    });
                }
            }
            Event::LinkLoad { tx_bytes, .. } => {
                sh.seen.link_loads += 1;
                sh.seen.last_tx_bytes = sh.seen.last_tx_bytes.max(tx_bytes);
            }
            Event::Demand { .. } => sh.seen.demands += 1,
            Event::LinkCapacity { mbps, .. } => {
                assert!(mbps.is_some_and(|m| m > 0.0));
                sh.seen.capacities += 1;
            }
            Event::LinkState { neighbor, up } => {
                assert!(!up);
                sh.seen.link_downs += 1;
                sh.down.insert((self.cfg.node, neighbor));
                sh.version += 1;
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.shared.borrow_mut().seen.timeouts += 1;
        self.next = now + HELLO;
        self.seq += 1;
        for &to in &self.cfg.neighbors {
            self.actions.push_back(Action::Send {
                to,
                msg: Message::Hello {
                    seq: self.seq,
                    sent_us: 0,
                },
            });
        }
        self.recompute();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next)
    }

    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn state_entries(&self) -> usize {
        self.routes
    }
}

struct Run {
    result: RunResult,
    seen: Seen,
}

fn config(duration_s: u64, failures: Vec<(usize, u64)>) -> RunConfig {
    RunConfig {
        strategy: StrategyKind::Shortest,
        params: Params::default(),
        packet_bytes: 512,
        hop_limit: 16,
        queue_bytes: 64 * 1024,
        duration_ns: duration_s * 1_000_000_000,
        warmup_ns: 1_000_000_000,
        seed: 1,
        failures,
        node_failures: vec![],
        detect: Detect::Carrier,
        progress: false,
    }
}

fn run(topo: &Topology, load: &LoadSpec, rate: f64, cfg: &RunConfig, mode: Mode) -> Run {
    let plan = traffic::plan(load, topo, cfg.packet_bytes, rate, cfg.seed);
    let shared = Rc::new(RefCell::new(Shared {
        topo: topo.clone(),
        down: HashSet::new(),
        version: 0,
        dist: None,
        adj: Vec::new(),
        seen: Seen::default(),
    }));
    let make = |config: RouterConfig, now: Instant| {
        let me = topo.index_of_id(config.node).unwrap();
        let mut o = Oracle {
            me,
            cfg: config,
            shared: shared.clone(),
            mode,
            actions: VecDeque::new(),
            next: now + HELLO,
            version: None,
            routes: 0,
            seq: 0,
        };
        o.recompute();
        o
    };
    let result = simulate_with(topo, &plan, cfg, make);
    let seen = std::mem::take(&mut shared.borrow_mut().seen);
    Run { result, seen }
}

fn nsfnet() -> Topology {
    Topology::from_spec("nsfnet", 1).unwrap()
}

fn conserved(r: &RunResult) {
    let m = &r.metrics;
    assert_eq!(m.offered, m.delivered + m.drops.total(), "{:?}", m.drops);
}

#[test]
fn delivers_with_sane_delays_and_feeds_the_core() {
    let t = nsfnet();
    let mut r = run(
        &t,
        &LoadSpec::Uniform,
        1.0,
        &config(6, vec![]),
        Mode::Shortest,
    );
    conserved(&r.result);
    let m = &mut r.result.metrics;
    assert!(m.offered > 10_000, "{}", m.offered);
    let ratio = m.delivered as f64 / m.offered as f64;
    assert!(ratio > 0.99, "{ratio} {:?}", m.drops);
    let (mean, p99) = m.delay_ms();
    // Shortest paths of 1-4 hops with 4-20 ms links, 2.7 ms to serialise 512 B.
    let (mean, p99) = (mean.unwrap(), p99.unwrap());
    assert!((8.0..60.0).contains(&mean), "{mean}");
    assert!(p99 >= mean && p99 < 400.0, "{p99}");
    // Hellos every 100 ms on 42 link ends, plus their acks: 2 * 42 * 10 per second.
    let per_s = m.control_msgs as f64 / 5.0;
    assert!((per_s - 840.0).abs() < 30.0, "{per_s}");
    assert_eq!(r.result.state_entries, vec![13; 14]);
    assert_eq!(r.result.fib_entries, vec![13; 14]);
    // One timeout per 100 ms per node, LinkLoad per link end per 100 ms, some demand.
    assert!(
        (r.seen.timeouts as f64 - 14.0 * 60.0).abs() < 20.0,
        "{}",
        r.seen.timeouts
    );
    assert!(
        (r.seen.link_loads as f64 - 42.0 * 60.0).abs() < 50.0,
        "{}",
        r.seen.link_loads
    );
    assert!(r.seen.demands > 100 && r.seen.last_tx_bytes > 100_000);
    assert!(r.seen.hellos > 0);
    assert_eq!(r.seen.capacities, 42);
}

#[test]
fn same_seed_same_result() {
    let t = nsfnet();
    let a = run(
        &t,
        &LoadSpec::Hotspot,
        1.0,
        &config(3, vec![]),
        Mode::Shortest,
    );
    let b = run(
        &t,
        &LoadSpec::Hotspot,
        1.0,
        &config(3, vec![]),
        Mode::Shortest,
    );
    assert_eq!(a.result.metrics.delays_us, b.result.metrics.delays_us);
    assert_eq!(a.result.events, b.result.events);
    let mut other = config(3, vec![]);
    other.seed = 2;
    let c = run(&t, &LoadSpec::Hotspot, 1.0, &other, Mode::Shortest);
    assert_ne!(a.result.metrics.delays_us, c.result.metrics.delays_us);
}

#[test]
fn overload_fills_queues_and_drops_tail() {
    let t = nsfnet();
    let r = run(
        &t,
        &LoadSpec::Uniform,
        4.0,
        &config(4, vec![]),
        Mode::Shortest,
    );
    conserved(&r.result);
    let m = &r.result.metrics;
    assert!(m.drops.queue_full > 1000, "{:?}", m.drops);
    assert!(
        m.control_drops.queue_full > 0,
        "hellos share the full queues"
    );
}

#[test]
fn loops_end_at_the_hop_limit_and_missing_routes_drop() {
    let t = nsfnet();
    let r = run(&t, &LoadSpec::Uniform, 0.3, &config(3, vec![]), Mode::Loop);
    conserved(&r.result);
    let d = r.result.metrics.drops;
    assert!(d.hop_limit > 100, "{d:?}");
    let r = run(
        &t,
        &LoadSpec::Uniform,
        0.3,
        &config(3, vec![]),
        Mode::Nothing,
    );
    conserved(&r.result);
    let m = &r.result.metrics;
    assert_eq!(m.delivered, 0);
    assert_eq!(
        m.drops,
        Drops {
            no_route: m.offered,
            ..Drops::default()
        }
    );
}

#[test]
fn a_cut_loses_what_is_on_the_link_and_traffic_recovers() {
    let t = nsfnet();
    // Champaign - Pittsburgh: on the shortest paths between the western and eastern nodes.
    let link = t
        .link_between(t.find("0.8").unwrap(), t.find("0.9").unwrap())
        .unwrap();
    let cfg = config(6, vec![(link, 3_000_000_000)]);
    let r = run(&t, &LoadSpec::Uniform, 1.0, &cfg, Mode::Shortest);
    conserved(&r.result);
    assert_eq!(r.seen.link_downs, 2, "both ends are told");
    let m = &r.result.metrics;
    assert!(
        m.failures[0].crossing.len() > 5,
        "{}",
        m.failures[0].crossing.len()
    );
    assert!(m.drops.link_failed > 0, "{:?}", m.drops);
    // The oracle repairs at the next hello, within 100 ms: the first or second window.
    let rec = m.recovery_ms().expect("recovers");
    assert!(rec <= 100.0, "{rec}");
    // Without repair (no routes change: Loop mode ignores cuts) there is no recovery.
    let r = run(&t, &LoadSpec::Uniform, 1.0, &cfg, Mode::Loop);
    assert!(r.result.metrics.recovery_ms().is_none());
    // Detected by hellos only, the ends hear nothing of the cut.
    let hello = RunConfig {
        detect: Detect::Hello,
        ..cfg
    };
    let r = run(&t, &LoadSpec::Uniform, 1.0, &hello, Mode::Shortest);
    assert_eq!(r.seen.link_downs, 0);
    assert!(r.result.metrics.drops.link_failed > 0);
}

#[test]
fn zoned_topologies_run() {
    let t = Topology::from_spec("random:300", 1).unwrap();
    assert!(t.zone_count() > 1);
    let mut cfg = config(2, vec![]);
    cfg.warmup_ns = 500_000_000;
    let r = run(&t, &LoadSpec::Uniform, 0.05, &cfg, Mode::Shortest);
    conserved(&r.result);
    let m = &r.result.metrics;
    assert!(m.offered > 100);
    assert!(
        m.delivered as f64 > 0.95 * m.offered as f64,
        "{:?}",
        m.drops
    );
}

#[test]
fn stretch_is_one_on_least_delay_paths_and_more_on_fewest_hops() {
    // A flat grid, every link 2 ms: the fewest hops are the least delay.
    let t = Topology::from_spec("grid:6x6", 1).unwrap();
    let r = run(
        &t,
        &LoadSpec::Uniform,
        0.5,
        &config(3, vec![]),
        Mode::Shortest,
    );
    let s = r.result.stretch;
    assert!(s.packets > 1000, "{s:?}");
    assert_eq!((s.min, s.mean, s.max), (Some(1.0), Some(1.0), Some(1.0)));
    // NSFNET's links differ in delay (4-20 ms): fewest hops is not always least delay,
    // and never better than it.
    let r = run(
        &nsfnet(),
        &LoadSpec::Uniform,
        1.0,
        &config(3, vec![]),
        Mode::Shortest,
    );
    let s = r.result.stretch;
    eprintln!("{s:?}");
    assert_eq!(
        s.packets, r.result.metrics.delivered,
        "every source sampled"
    );
    assert_eq!(s.min, Some(1.0));
    let (mean, p99, max) = (s.mean.unwrap(), s.p99.unwrap(), s.max.unwrap());
    assert!(mean > 1.0 && p99 >= mean && max >= p99, "{s:?}");
}

#[test]
fn a_dead_node_goes_silent_and_traffic_around_it_recovers() {
    let t = nsfnet();
    // Pittsburgh: on the paths between the western and eastern nodes.
    let dead = t.find("0.9").unwrap();
    let degree = t.adjacency()[dead].len() as u64;
    let mut cfg = config(6, vec![]);
    cfg.node_failures = vec![(dead, 3_000_000_000)];
    let r = run(&t, &LoadSpec::Uniform, 1.0, &cfg, Mode::Shortest);
    conserved(&r.result);
    // Carrier: each neighbour hears of its own link, the dead node of nothing.
    assert_eq!(r.seen.link_downs, degree);
    assert_eq!(r.result.state_entries[dead], 0, "its router is gone");
    let m = &r.result.metrics;
    let f = &m.failures[0];
    assert!(f.crossing.len() > 5, "{}", f.crossing.len());
    let dead = dead as u32;
    assert!(f.crossing.iter().all(|&(s, d)| s != dead && d != dead));
    // Its own traffic is lost for good; everyone else's moves within a hello.
    assert!(m.drops.link_down + m.drops.no_route > 100, "{:?}", m.drops);
    assert!(m.recovery_ms().expect("recovers") <= 100.0);
    assert!(m.recovery_all_ms().expect("settles") <= 200.0);
    assert_eq!(m.affected_flows(), f.crossing.len());
}
