//! The discrete-event engine: one `matrix_routing::Router` per node, driven exactly as
//! the agent drives it (events in with `now`, `handle_timeout` at `poll_timeout`,
//! `poll_action` drained after every call), over simulated links and data planes.
//!
//! ```text
//!  traffic sources ─ SessionStart/SessionPacket ─▶ forward() at the origin
//!  forward(): hop limit, LPM, pick by flow hash ─▶ Channel (drop-tail FIFO) ─ Arrive ─▶
//!      forward() at the next node ... delivered at the destination
//!  Router actions: Send ─▶ the same Channel (control shares queues with data)
//!                  Install/Withdraw ─▶ the node's Fib
//!  Start ─▶ Event::LinkCapacity per link (its capacity, as the agent reads a NIC's speed)
//!  Counters (every 100 ms) ─▶ Event::LinkLoad, Event::Demand
//!  Fail ─▶ Channel::fail on both directions; with --detect carrier also
//!          Event::LinkState{up: false} at both ends (else they miss hellos)
//!  FailNode ─▶ the node's router stops, every link of it fails as above
//!  Delivered ─▶ metrics; the path's link delays ─▶ stretch (sampled sources)
//! ```
//!
//! Virtual time is u64 nanoseconds since the start; the Router sees `base + t`. Events
//! at the same time run in insertion order, so a run is a pure function of its inputs.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use matrix_common::maps::NextHopSet;
use matrix_routing::{
    Action, Event, Message, NodeId, Params, Router, RouterConfig, StrategyKind,
    message::{MAC_LEN, MAX_DATAGRAM},
};

use crate::{
    metrics::{DropReason, FailureTrack, Metrics},
    network::{Channel, Fib, NOT_A_NEIGHBOR},
    progress::{CHECK_EVENTS, Progress},
    queue::EventQueue,
    rng::{Rng, derive},
    stretch::{Stretch, StretchSampler},
    topology::Topology,
    traffic::{Session, TrafficPlan},
};

/// How often each node's router gets its link counters and demand (the agent's poll).
pub const COUNTER_INTERVAL_NS: u64 = 100_000_000;
/// Routers start at random instants in this span, as agents of a fleet never start in
/// the same microsecond (and lock-step hellos would make every queue burst at once).
const START_SPREAD_NS: u64 = 100_000_000;
/// After traffic stops, how long packets still in the network may take to arrive.
const DRAIN_NS: u64 = 5_000_000_000;
/// A router still due right after `handle_timeout` is called again this much later
/// rather than in a loop at the same instant.
const STUCK_TIMER_NS: u64 = 1_000;
/// Bytes a control message adds to its postcard body on the wire: Ethernet 14, IPv4 20,
/// UDP 8, version 1, MAC.
const CONTROL_OVERHEAD: u32 = 14 + 20 + 8 + 1 + MAC_LEN as u32;
/// The largest envelope the agent encodes: a datagram less the version byte and the MAC.
const MAX_BODY: usize = MAX_DATAGRAM - MAC_LEN - 1;
/// The epoch in simulated envelopes: an agent's start time in microseconds since 1970,
/// as large on the wire as a real one.
const SIM_EPOCH: u64 = 1_800_000_000_000_000;

/// What the engine needs of a routing core: the `Router` API the agent uses. A trait so
/// the engine's own tests can drive it with a scripted core.
pub trait Core {
    fn handle(&mut self, now: Instant, event: Event);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_timeout(&self) -> Option<Instant>;
    fn poll_action(&mut self) -> Option<Action>;
    fn state_entries(&self) -> usize;
}

impl Core for Router {
    fn handle(&mut self, now: Instant, event: Event) {
        Router::handle(self, now, event)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Router::handle_timeout(self, now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Router::poll_timeout(self)
    }
    fn poll_action(&mut self) -> Option<Action> {
        Router::poll_action(self)
    }
    fn state_entries(&self) -> usize {
        Router::state_entries(self)
    }
}

/// One simulation run: a strategy and everything that is the same for all strategies.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub strategy: StrategyKind,
    /// Router parameters; `strategy` is overridden by the field above.
    pub params: Params,
    pub packet_bytes: u32,
    pub hop_limit: u8,
    pub queue_bytes: u64,
    pub duration_ns: u64,
    pub warmup_ns: u64,
    pub seed: u64,
    /// (link index, cut time).
    pub failures: Vec<(usize, u64)>,
    /// (node index, time): the node dies, every link of it cut at once.
    pub node_failures: Vec<(usize, u64)>,
    pub detect: Detect,
    /// Lines on stderr during a long run (see `progress`).
    pub progress: bool,
}

/// How the two ends of a cut link find out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Detect {
    /// From missed hellos only (the agent's only signal).
    #[default]
    Hello,
    /// Both routers get `Event::LinkState { up: false }` at the cut.
    Carrier,
}

/// What a run leaves behind for the report.
#[derive(Debug)]
pub struct RunResult {
    pub metrics: Metrics,
    /// `Router::state_entries` of every node at the end of the run.
    pub state_entries: Vec<usize>,
    /// Forwarding entries of every node at the end of the run.
    pub fib_entries: Vec<usize>,
    pub events: u64,
    /// Path stretch of delivered measured packets (see `stretch`).
    pub stretch: Stretch,
}

#[derive(Clone, Copy, Debug)]
struct Packet {
    src: u32,
    dst: u32,
    created: u64,
    flow_hash: u16,
    hop_limit: u8,
    /// Propagation delay of the links crossed so far.
    path_ns: u64,
}

#[derive(Debug)]
enum Item {
    Data(Packet),
    // Boxed: control messages are the large variant, data packets the common one.
    Control(Box<Message>),
}

#[derive(Debug)]
enum Ev {
    Start(u32),
    Timer {
        node: u32,
        generation: u32,
    },
    Counters(u32),
    /// The item at the head of a channel's in-flight queue arrives.
    Arrive(u32),
    SessionStart(u32),
    SessionPacket(u32),
    Fail(u32),
    FailNode(u32),
}

/// A node's end of a link.
#[derive(Clone, Copy, Debug)]
struct Port {
    peer: u32,
    peer_id: NodeId,
    chan: u32,
}

struct Node<R> {
    id: NodeId,
    router: Option<R>,
    timer_generation: u32,
    timer_at: Option<u64>,
    fib: Fib,
    ports: Vec<Port>,
    /// Packets originated per destination node (the data plane's DEMAND map); ordered,
    /// so the router hears them in the same order every run.
    demand: BTreeMap<u32, u64>,
    /// Control datagrams sent: the envelope's sequence number, which the wire size counts.
    control_seq: u64,
}

impl<R> Node<R> {
    fn port_to(&self, id: NodeId) -> Option<Port> {
        self.ports.iter().copied().find(|p| p.peer_id == id)
    }
}

struct Sim<'a, R, F> {
    cfg: &'a RunConfig,
    make_router: F,
    base: Instant,
    now: u64,
    queue: EventQueue<Ev>,
    nodes: Vec<Node<R>>,
    chans: Vec<Channel>,
    /// Per channel, what is on the wire: (arrival time, epoch, item). A channel is a
    /// FIFO, so arrival times only grow along a queue and the event heap holds just each
    /// queue's head: it stays as small as the fleet, not as the traffic.
    wire: Vec<VecDeque<(u64, u32, Item)>>,
    /// Per channel: the failures (link or node) whose affected pairs it records.
    chan_failure: Vec<Vec<usize>>,
    plan: TrafficPlan,
    sessions: Vec<Option<Session>>,
    free_sessions: Vec<u32>,
    metrics: Metrics,
    /// Data packets on channels: the run may end once traffic stopped and this is 0.
    in_flight: u64,
    actions: Vec<Action>,
    events: u64,
    stretch: StretchSampler,
}

/// Runs one strategy over `topo` with the traffic of `plan`.
pub fn simulate(topo: &Topology, plan: &TrafficPlan, cfg: &RunConfig) -> RunResult {
    simulate_with(topo, plan, cfg, Router::new)
}

/// [`simulate`] with another routing core, made per node by `make_router`.
pub fn simulate_with<R: Core>(
    topo: &Topology,
    plan: &TrafficPlan,
    cfg: &RunConfig,
    make_router: impl FnMut(RouterConfig, Instant) -> R,
) -> RunResult {
    Sim::new(topo, plan, cfg, make_router).run(topo)
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

impl<'a, R: Core, F: FnMut(RouterConfig, Instant) -> R> Sim<'a, R, F> {
    fn new(topo: &Topology, plan: &TrafficPlan, cfg: &'a RunConfig, make_router: F) -> Self {
        let mut nodes: Vec<Node<R>> = topo
            .nodes
            .iter()
            .map(|n| Node {
                id: n.id,
                router: None,
                timer_generation: 0,
                timer_at: None,
                fib: Fib::default(),
                ports: Vec::new(),
                demand: BTreeMap::new(),
                control_seq: 0,
            })
            .collect();
        let mut chans = Vec::with_capacity(2 * topo.links.len());
        for l in &topo.links {
            for (from, to) in [(l.a, l.b), (l.b, l.a)] {
                let chan = chans.len() as u32;
                chans.push(Channel::new(
                    from as u32,
                    to as u32,
                    l.delay_ns,
                    l.capacity_bps,
                    cfg.queue_bytes,
                ));
                let peer_id = nodes[to].id;
                nodes[from].ports.push(Port {
                    peer: to as u32,
                    peer_id,
                    chan,
                });
            }
        }
        let wire = chans.iter().map(|_| VecDeque::new()).collect();
        let mut chan_failure = vec![Vec::new(); chans.len()];
        let mut failures = Vec::with_capacity(cfg.failures.len() + cfg.node_failures.len());
        for &(link, at) in &cfg.failures {
            chan_failure[2 * link].push(failures.len());
            chan_failure[2 * link + 1].push(failures.len());
            failures.push(FailureTrack::new(at));
        }
        for &(n, at) in &cfg.node_failures {
            // Both directions of each of its links: traffic to, from and through it.
            for p in &nodes[n].ports {
                chan_failure[p.chan as usize].push(failures.len());
                chan_failure[p.chan as usize ^ 1].push(failures.len());
            }
            failures.push(FailureTrack::of_node(at, n as u32));
        }
        let metrics = Metrics::new((cfg.warmup_ns, cfg.duration_ns), failures);
        Self {
            cfg,
            make_router,
            base: Instant::now(),
            now: 0,
            queue: EventQueue::default(),
            nodes,
            chans,
            wire,
            chan_failure,
            plan: plan.clone(),
            sessions: Vec::new(),
            free_sessions: Vec::new(),
            metrics,
            in_flight: 0,
            actions: Vec::new(),
            events: 0,
            stretch: StretchSampler::new(topo.nodes.len(), derive(cfg.seed, 0x5712)),
        }
    }

    fn at(&mut self, at: u64, ev: Ev) {
        self.queue.push(at, ev);
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_nanos(self.now)
    }

    fn run(mut self, topo: &Topology) -> RunResult {
        let mut rng = Rng::new(derive(self.cfg.seed, 0x57A7));
        for n in 0..self.nodes.len() {
            let start = rng.below(START_SPREAD_NS as usize) as u64;
            self.at(start, Ev::Start(n as u32));
        }
        for s in 0..self.plan.sources.len() {
            let gap = self.plan.sources[s].next_gap();
            self.at_secs(gap, Ev::SessionStart(s as u32));
        }
        for (i, &(_, at)) in self.cfg.failures.iter().enumerate() {
            self.at(at, Ev::Fail(i as u32));
        }
        for (i, &(_, at)) in self.cfg.node_failures.iter().enumerate() {
            self.at(at, Ev::FailNode(i as u32));
        }
        let end = self.cfg.duration_ns;
        let mut progress = self.cfg.progress.then(|| {
            let (n, strategy) = (self.nodes.len(), self.cfg.strategy.name());
            Progress::new(format!("{n} nodes, {strategy}"))
        });
        while let Some(at) = self.queue.peek_time() {
            if at >= end && (self.in_flight == 0 || at >= end + DRAIN_NS) {
                break;
            }
            let (at, ev) = self.queue.pop().expect("peeked");
            self.now = at;
            self.events += 1;
            self.dispatch(ev);
            if self.events.is_multiple_of(CHECK_EVENTS)
                && let Some(p) = progress.as_mut()
            {
                p.tick(self.now, end, self.events);
            }
        }
        // Whatever data is still on a link never arrived.
        for q in std::mem::take(&mut self.wire) {
            for (_, _, item) in q {
                if let Item::Data(p) = item {
                    self.drop_packet(&p, DropReason::InFlightAtEnd);
                }
            }
        }
        let state_entries = self
            .nodes
            .iter()
            .map(|n| n.router.as_ref().map_or(0, |r| r.state_entries()))
            .collect();
        let fib_entries = self.nodes.iter().map(|n| n.fib.len()).collect();
        RunResult {
            metrics: self.metrics,
            state_entries,
            fib_entries,
            events: self.events,
            stretch: self.stretch.finish(topo),
        }
    }

    /// Schedules `ev` `secs` from now, unless that is past the end of traffic.
    fn at_secs(&mut self, secs: f64, ev: Ev) -> bool {
        let t = self.now.saturating_add((secs * 1e9) as u64);
        if t >= self.cfg.duration_ns {
            return false;
        }
        self.at(t, ev);
        true
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Start(n) => self.start(n as usize),
            Ev::Timer { node, generation } => self.timer(node as usize, generation),
            Ev::Counters(n) => self.counters(n as usize),
            Ev::Arrive(chan) => {
                let q = &mut self.wire[chan as usize];
                let (_, epoch, item) = q.pop_front().expect("an arrival event has its item");
                if let Some(&(next, _, _)) = q.front() {
                    self.at(next, Ev::Arrive(chan));
                }
                self.arrive(chan as usize, epoch, item);
            }
            Ev::SessionStart(s) => self.session_start(s as usize),
            Ev::SessionPacket(slot) => self.session_packet(slot as usize),
            Ev::Fail(i) => self.fail(i as usize),
            Ev::FailNode(i) => self.fail_node(i as usize),
        }
    }

    fn start(&mut self, n: usize) {
        let mut params = self.cfg.params.clone();
        params.strategy = self.cfg.strategy;
        let node = &self.nodes[n];
        let config = RouterConfig {
            node: node.id,
            neighbors: node.ports.iter().map(|p| p.peer_id).collect(),
            prefixes: Vec::new(),
            params,
            seed: derive(self.cfg.seed, n as u64),
        };
        let now = self.instant();
        let mut router = (self.make_router)(config, now);
        // Like the agent reading each interface's speed: the link's own capacity.
        for p in &node.ports {
            let bps = self.chans[p.chan as usize].bps;
            router.handle(
                now,
                Event::LinkCapacity {
                    neighbor: p.peer_id,
                    mbps: Some(bps as f64 / 1e6),
                },
            );
        }
        self.nodes[n].router = Some(router);
        self.after_router(n, false);
        self.at(self.now + COUNTER_INTERVAL_NS, Ev::Counters(n as u32));
    }

    /// Drains the router's actions, applies them, and re-arms its timer.
    fn after_router(&mut self, n: usize, fired: bool) {
        let mut actions = std::mem::take(&mut self.actions);
        if let Some(r) = self.nodes[n].router.as_mut() {
            while let Some(a) = r.poll_action() {
                actions.push(a);
            }
        }
        for a in actions.drain(..) {
            self.apply(n, a);
        }
        self.actions = actions;
        self.rearm(n, fired);
    }

    fn rearm(&mut self, n: usize, fired: bool) {
        let (base, now) = (self.base, self.now);
        let node = &mut self.nodes[n];
        let Some(deadline) = node.router.as_ref().and_then(|r| r.poll_timeout()) else {
            return;
        };
        let mut at = ns(deadline.saturating_duration_since(base)).max(now);
        if fired && at == now {
            at = now + STUCK_TIMER_NS;
        }
        // An earlier deadline replaces the armed one (whose event then goes stale); a
        // later one waits for the armed event, which re-arms when it finds nothing due.
        if node.timer_at.is_none_or(|t| at < t) {
            node.timer_generation += 1;
            node.timer_at = Some(at);
            let generation = node.timer_generation;
            self.at(
                at,
                Ev::Timer {
                    node: n as u32,
                    generation,
                },
            );
        }
    }

    fn timer(&mut self, n: usize, generation: u32) {
        let now = self.instant();
        let node = &mut self.nodes[n];
        if generation != node.timer_generation {
            return;
        }
        node.timer_at = None;
        let Some(router) = node.router.as_mut() else {
            return;
        };
        let due = router.poll_timeout().is_some_and(|d| d <= now);
        if due {
            router.handle_timeout(now);
        }
        self.after_router(n, due);
    }

    fn apply(&mut self, n: usize, action: Action) {
        match action {
            Action::Send { to, msg } => self.send_control(n, to, msg),
            Action::Install { dst, next_hops, .. } => {
                let node = &mut self.nodes[n];
                let members: Vec<(u32, u32)> = next_hops
                    .iter()
                    .map(|&(hop, w)| (node.port_to(hop).map_or(NOT_A_NEIGHBOR, |p| p.peer), w))
                    .collect();
                node.fib.insert(dst, NextHopSet::new(&members));
                self.count_route_update();
            }
            Action::Withdraw { dst } => {
                self.nodes[n].fib.remove(dst);
                self.count_route_update();
            }
            // Overlay prefixes and neighbour liveness have no simulated consumer.
            Action::Overlay { .. } | Action::OverlayWithdraw { .. } | Action::Neighbor { .. } => {}
        }
    }

    fn count_route_update(&mut self) {
        if self.metrics.in_window(self.now) {
            self.metrics.route_updates += 1;
        }
    }

    fn send_control(&mut self, n: usize, to: NodeId, msg: Message) {
        let from = self.nodes[n].id;
        let Some(port) = self.nodes[n].port_to(to) else {
            // Not a configured neighbour: the agent has no socket address for it.
            self.metrics.control_drops.not_neighbor += 1;
            return;
        };
        // The agent would fail to encode a datagram past MAX_DATAGRAM and send nothing.
        // The envelope as the agent sends it (postcard encodes a tuple as the struct).
        self.nodes[n].control_seq += 1;
        let seq = self.nodes[n].control_seq;
        // Only its size matters here: counted, not written.
        let envelope = (from, SIM_EPOCH, seq, [0u8; 6], &msg);
        let body =
            postcard::serialize_with_flavor(&envelope, postcard::ser_flavors::Size::default());
        let Some(body) = body.ok().filter(|&b| b <= MAX_BODY) else {
            self.metrics.control_drops.too_big += 1;
            return;
        };
        let bytes = body as u32 + CONTROL_OVERHEAD;
        if self.metrics.in_window(self.now) {
            self.metrics.control_msgs += 1;
            self.metrics.control_bytes += bytes as u64;
        }
        let chan = &mut self.chans[port.chan as usize];
        let (epoch, up) = (chan.epoch, chan.up);
        match chan.enqueue(self.now, bytes) {
            Some(t) => {
                self.put_on_wire(port.chan, t, epoch, Item::Control(Box::new(msg)));
            }
            None if up => self.metrics.control_drops.queue_full += 1,
            None => self.metrics.control_drops.link_down += 1,
        }
    }

    fn arrive(&mut self, chan: usize, epoch: u32, item: Item) {
        let c = &self.chans[chan];
        let (from, to, lost) = (c.from as usize, c.to as usize, c.epoch != epoch);
        match item {
            Item::Data(p) => {
                self.in_flight -= 1;
                if lost {
                    self.drop_packet(&p, DropReason::LinkFailed);
                } else {
                    self.forward(to, p, false);
                }
            }
            Item::Control(msg) => {
                let from = self.nodes[from].id;
                let now = self.instant();
                if lost {
                    self.metrics.control_drops.link_down += 1;
                } else if let Some(r) = self.nodes[to].router.as_mut() {
                    r.handle(now, Event::Received { from, msg: *msg });
                    self.after_router(to, false);
                } else {
                    self.metrics.control_drops.not_started += 1;
                }
            }
        }
    }

    fn drop_packet(&mut self, p: &Packet, reason: DropReason) {
        self.metrics.dropped((p.src, p.dst), p.created, reason);
    }

    /// The data plane at node `at`: deliver, or decrement the hop limit (transit only,
    /// as the XDP program does), look up, pick by flow hash and queue.
    fn forward(&mut self, at: usize, mut p: Packet, origin: bool) {
        if p.dst as usize == at {
            let bytes = self.cfg.packet_bytes;
            // The origin does not decrement (as the XDP program), every transit does.
            let hops = if origin {
                0
            } else {
                self.cfg.hop_limit - p.hop_limit + 1
            };
            self.metrics
                .delivered((p.src, p.dst), p.created, self.now, bytes, hops);
            if self.metrics.in_window(p.created) {
                self.stretch.record(p.src, p.dst, p.path_ns);
            }
            return;
        }
        if !origin {
            if p.hop_limit <= 1 {
                return self.drop_packet(&p, DropReason::HopLimit);
            }
            p.hop_limit -= 1;
        }
        let dst_id = self.nodes[p.dst as usize].id.0;
        let node = &self.nodes[at];
        let Some(slot) = node
            .fib
            .lookup(dst_id)
            .and_then(|set| set.pick(p.flow_hash))
        else {
            return self.drop_packet(&p, DropReason::NoRoute);
        };
        let Some(port) = node.ports.iter().find(|q| q.peer == slot) else {
            return self.drop_packet(&p, DropReason::LinkDown);
        };
        let chan_ix = port.chan as usize;
        let chan = &mut self.chans[chan_ix];
        if !chan.up {
            return self.drop_packet(&p, DropReason::LinkDown);
        }
        let epoch = chan.epoch;
        let Some(arrival) = chan.enqueue(self.now, self.cfg.packet_bytes) else {
            return self.drop_packet(&p, DropReason::QueueFull);
        };
        chan.tx_bytes += self.cfg.packet_bytes as u64;
        chan.tx_packets += 1;
        p.path_ns += chan.delay_ns;
        for &f in &self.chan_failure[chan_ix] {
            self.metrics.failures[f].crossed(self.now, (p.src, p.dst));
        }
        self.in_flight += 1;
        self.put_on_wire(chan_ix as u32, arrival, epoch, Item::Data(p));
    }

    fn put_on_wire(&mut self, chan: u32, at: u64, epoch: u32, item: Item) {
        let q = &mut self.wire[chan as usize];
        debug_assert!(q.back().is_none_or(|b| b.0 <= at), "a channel is a FIFO");
        let first = q.is_empty();
        q.push_back((at, epoch, item));
        if first {
            self.at(at, Ev::Arrive(chan));
        }
    }

    fn counters(&mut self, n: usize) {
        self.at(self.now + COUNTER_INTERVAL_NS, Ev::Counters(n as u32));
        let node = &self.nodes[n];
        let mut events: Vec<Event> = Vec::with_capacity(node.ports.len() + node.demand.len());
        for p in &node.ports {
            let c = &self.chans[p.chan as usize];
            events.push(Event::LinkLoad {
                neighbor: p.peer_id,
                tx_bytes: c.tx_bytes,
                tx_packets: c.tx_packets,
            });
        }
        // Like the agent: every destination's counter, every poll.
        for (&dst, &packets) in &node.demand {
            events.push(Event::Demand {
                dst: self.nodes[dst as usize].id,
                packets,
            });
        }
        let now = self.instant();
        let Some(router) = self.nodes[n].router.as_mut() else {
            return;
        };
        for e in events {
            router.handle(now, e);
        }
        self.after_router(n, false);
    }

    fn session_start(&mut self, s: usize) {
        let source = &mut self.plan.sources[s];
        let session = source.start_session();
        let gap = source.next_gap();
        self.at_secs(gap, Ev::SessionStart(s as u32));
        let Some(session) = session else {
            return;
        };
        let slot = match self.free_sessions.pop() {
            Some(slot) => {
                self.sessions[slot as usize] = Some(session);
                slot
            }
            None => {
                self.sessions.push(Some(session));
                self.sessions.len() as u32 - 1
            }
        };
        self.session_packet(slot as usize);
    }

    fn session_packet(&mut self, slot: usize) {
        let session = self.sessions[slot]
            .as_mut()
            .expect("packet events only exist for live sessions");
        let p = Packet {
            src: session.src,
            dst: session.dst,
            created: self.now,
            flow_hash: session.flow_hash,
            hop_limit: self.cfg.hop_limit,
            path_ns: 0,
        };
        session.remaining -= 1;
        let more = session.remaining > 0;
        let gap = session.next_gap();
        if !(more && self.at_secs(gap, Ev::SessionPacket(slot as u32))) {
            self.sessions[slot] = None;
            self.free_sessions.push(slot as u32);
        }
        self.metrics.offered(self.now, self.cfg.packet_bytes);
        let node = &mut self.nodes[p.src as usize];
        *node.demand.entry(p.dst).or_insert(0) += 1;
        self.forward(p.src as usize, p, true);
    }

    fn fail(&mut self, i: usize) {
        let (link, _) = self.cfg.failures[i];
        let mut ends = Vec::with_capacity(2);
        self.cut(link, &mut ends);
        self.tell_ends(ends);
    }

    /// Node `n` dies: its router stops (no hellos, adverts or answers any more) and
    /// every link of it is cut at once. Its traffic sources keep offering packets, which
    /// go nowhere.
    fn fail_node(&mut self, i: usize) {
        let (n, _) = self.cfg.node_failures[i];
        self.nodes[n].router = None;
        let links: Vec<usize> = self.nodes[n]
            .ports
            .iter()
            .map(|p| p.chan as usize / 2)
            .collect();
        let mut ends = Vec::with_capacity(2 * links.len());
        for link in links {
            self.cut(link, &mut ends);
        }
        self.tell_ends(ends);
    }

    /// Fails both directions of `link` (those still up); adds their (from, to) to `ends`.
    fn cut(&mut self, link: usize, ends: &mut Vec<(usize, usize)>) {
        for chan in [2 * link, 2 * link + 1] {
            let c = &mut self.chans[chan];
            if c.up {
                c.fail(self.now);
                ends.push((c.from as usize, c.to as usize));
            }
        }
    }

    /// With carrier detection, the router at each cut end hears that its link is down.
    fn tell_ends(&mut self, ends: Vec<(usize, usize)>) {
        if self.cfg.detect == Detect::Hello {
            return;
        }
        let now = self.instant();
        for (n, peer) in ends {
            let neighbor = self.nodes[peer].id;
            if let Some(r) = self.nodes[n].router.as_mut() {
                r.handle(
                    now,
                    Event::LinkState {
                        neighbor,
                        up: false,
                    },
                );
                self.after_router(n, false);
            }
        }
    }
}

#[cfg(test)]
mod tests;
