//! The routing core's one entry point. The driver (agent or simulator) feeds events with
//! the current time, calls `handle_timeout` when `poll_timeout` says so, and drains
//! `poll_action`.
//!
//! API CONTRACT (the agent and the simulator are written against it; keep it stable):
//! `Router::new`, `handle`, `handle_timeout`, `poll_timeout`, `poll_action`,
//! `set_param`, `params`, `neighbors`, `routes`, and the `Event`/`Action` enums.
//! Additions to the contract (nothing renamed or removed): `Router::ignored_messages`,
//! `counters`, `overlay_prefixes`, `pheromones`; `Counters`. The enums and the reports
//! live in `types`, re-exported here so `router::Action` and the like still name them.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use ipnet::IpNet;

use crate::{
    antnet::AntNet,
    demand::Demand,
    dest,
    lsdb::Lsdb,
    neighbor::NeighborTable,
    node::{NodeId, NodePrefix},
    overlay::OverlayTable,
    params::{ParamError, Params, StrategyKind},
    qrouting::QRouting,
    rng::Rng,
    routes::{Candidate, Hold, RouteTable},
    timer::{Timer, TimerTable},
    topology::Topology,
};

pub use crate::types::{Action, Counters, Event, NeighborInfo, RouteInfo};

// The rest of the router's methods, by concern: one handler per input, and what this node
// originates and floods.
mod events;
mod flood;

/// What a router is told at start-up.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    pub node: NodeId,
    /// Configured neighbours: the only nodes this router exchanges messages with.
    pub neighbors: Vec<NodeId>,
    /// Overlay prefixes this node owns; advertised to the fleet.
    pub prefixes: Vec<IpNet>,
    pub params: Params,
    /// Seed of the router's random choices (ant destinations, exploration): runs are
    /// reproducible.
    pub seed: u64,
}

/// Routes are recomputed this long after a change, so a burst of adverts or ants costs
/// one computation. A dead neighbour does not wait: its routes are repointed at once.
const RECOMPUTE_HOLD: Duration = Duration::from_millis(10);
/// Shortest-path runs are throttled as OSPF throttles SPF: after a run, the hold before
/// the next one doubles (from [`RECOMPUTE_HOLD`] up to this) while link-state changes
/// keep coming, so a fleet booting or a flapping link costs a few runs a second instead
/// of a hundred; the first change after a quiet spell still waits only
/// [`RECOMPUTE_HOLD`], and so does bad news (a link or prefix gone) at any time.
const SPF_HOLD_MAX: Duration = Duration::from_millis(160);
/// No shortest-path run for this long is a quiet spell: the hold is back to its minimum.
const SPF_QUIET: Duration = Duration::from_secs(1);
/// Adverts go out up to this fraction of an interval early, at random (seeded), so a
/// fleet that booted together does not flood in lockstep.
const ADVERT_JITTER: f64 = 0.1;

/// The routing core of one node.
pub struct Router {
    pub(crate) me: NodeId,
    pub(crate) params: Params,
    pub(crate) prefixes: Vec<IpNet>,
    pub(crate) rng: Rng,
    pub(crate) neighbors: NeighborTable,
    pub(crate) lsdb: Lsdb,
    pub(crate) advert_seq: u64,
    pub(crate) summary_seq: u64,
    /// Our last zone summary had content (we are, or were, a border node).
    pub(crate) summary_live: bool,
    /// When our unchanged zone summary is next refreshed.
    pub(crate) summary_refresh: Option<Instant>,
    pub(crate) topo: Topology,
    pub(crate) topo_dirty: bool,
    /// The pending change removes a link or prefix: failures are routed around after
    /// [`RECOMPUTE_HOLD`], whatever the SPF hold has grown to under cost churn.
    pub(crate) topo_lost: bool,
    /// AntNet: per destination, the eligible neighbours strictly closer to it than we
    /// are (the downstream filter), derived with `topo`.
    pub(crate) downstream: BTreeMap<NodePrefix, Vec<NodeId>>,
    /// Hold before the next shortest-path run, and when the last one ran.
    spf_hold: Duration,
    last_spf: Option<Instant>,
    /// Known destinations and the neighbours routes to each may use.
    pub(crate) dests: BTreeMap<NodePrefix, Vec<NodeId>>,
    pub(crate) antnet: AntNet,
    pub(crate) qrouting: QRouting,
    pub(crate) demand: Demand,
    pub(crate) routes: RouteTable,
    pub(crate) overlay: OverlayTable,
    pub(crate) timers: TimerTable,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) counters: Counters,
}

impl Router {
    pub fn new(config: RouterConfig, now: Instant) -> Self {
        let me = config.node;
        let mut r = Self {
            me,
            rng: Rng::new(config.seed, me.0),
            neighbors: NeighborTable::new(&config.neighbors, me, now),
            lsdb: Lsdb::new(me),
            advert_seq: 0,
            summary_seq: 0,
            summary_live: false,
            summary_refresh: None,
            topo: Topology::default(),
            topo_dirty: true,
            topo_lost: false,
            downstream: BTreeMap::new(),
            spf_hold: RECOMPUTE_HOLD,
            last_spf: None,
            dests: BTreeMap::new(),
            antnet: AntNet::default(),
            qrouting: QRouting::default(),
            demand: Demand::default(),
            routes: RouteTable::default(),
            overlay: OverlayTable::default(),
            timers: TimerTable::default(),
            actions: VecDeque::new(),
            counters: Counters::default(),
            prefixes: config.prefixes,
            params: config.params,
        };
        // Our advert goes into our own database at once; nobody is alive to hear it yet.
        r.originate_advert(now);
        r.timers.set(Timer::Hello, now);
        let first = r.advert_delay();
        r.timers.set(Timer::Advert, now + first);
        if r.params.strategy == StrategyKind::Antnet {
            r.timers.set(Timer::Ant, now + r.params.ant_interval);
        }
        r
    }

    pub fn node(&self) -> NodeId {
        self.me
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::Received { from, msg } => self.process_message(now, from, msg),
            Event::LinkLoad {
                neighbor,
                tx_bytes,
                tx_packets,
            } => self
                .neighbors
                .on_load(now, neighbor, tx_bytes, tx_packets, &self.params),
            Event::Demand { dst, packets } => self.demand.observe(now, dst, packets),
            Event::LinkCapacity { neighbor, mbps } => {
                self.neighbors.set_capacity(neighbor, mbps, &self.params);
            }
            Event::LinkState {
                neighbor,
                up: false,
            } => {
                if self.neighbors.set_down(neighbor) {
                    self.neighbor_down(now, neighbor);
                }
            }
            Event::LinkState { neighbor, up: true } => {
                // Carrier is back: probe now rather than at the next hello.
                if let Some(msg) = self.neighbors.hello_to(now, neighbor, &self.params) {
                    self.send(neighbor, msg);
                }
            }
        }
        self.rearm();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.take_expired(Timer::Dead, now) {
            for n in self.neighbors.expire(now, &self.params) {
                self.neighbor_down(now, n);
            }
        }
        if self.timers.take_expired(Timer::Age, now) {
            let topo = &self.topo;
            if self
                .lsdb
                .expire(now, |o| topo.reaches(o), self.params.advert_interval)
            {
                self.topo_dirty = true;
                self.schedule_recompute(now);
            }
        }
        if self.timers.take_expired(Timer::Hello, now) {
            for (to, msg) in self.neighbors.hellos(now, &self.params) {
                self.send(to, msg);
            }
            if self.params.strategy == StrategyKind::QRouting {
                let max_age = crate::neighbor::dead_interval(&self.params);
                if self.qrouting.expire(now, max_age) {
                    self.schedule_recompute(now);
                }
                self.send_estimates();
            }
            self.timers
                .set(Timer::Hello, now + self.params.hello_interval);
        }
        if self.timers.take_expired(Timer::Advert, now) {
            self.originate_advert(now);
            self.originate_summary(now, false);
            let next = self.advert_delay();
            self.timers.set(Timer::Advert, now + next);
        }
        if self.timers.take_expired(Timer::Ant, now) {
            self.launch_ant();
            self.timers.set(Timer::Ant, now + self.params.ant_interval);
        }
        // A stale route's hold is over: recomputing withdraws it unless it came back.
        if self.timers.take_expired(Timer::Recompute, now)
            | self.timers.take_expired(Timer::Stale, now)
        {
            self.recompute(now);
        }
        self.rearm();
    }

    /// The next instant `handle_timeout` must be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Changes a parameter at run time; changing `strategy` switches strategy and
    /// re-derives every route (make before break).
    pub fn set_param(&mut self, now: Instant, name: &str, value: &str) -> Result<(), ParamError> {
        let old = self.params.clone();
        self.params.set(name, value)?;
        match name {
            "strategy" if old.strategy != self.params.strategy => {
                self.antnet.clear();
                self.qrouting.clear();
                if self.params.strategy == StrategyKind::Antnet {
                    self.timers.set(Timer::Ant, now + self.params.ant_interval);
                } else {
                    self.timers.stop(Timer::Ant);
                }
                // AntNet's neighbour views are derived with the topology.
                self.topo_dirty = true;
                self.recompute(now);
            }
            "hello_interval_ms" => self
                .timers
                .set_earlier(Timer::Hello, now + self.params.hello_interval),
            "advert_interval_ms" => self
                .timers
                .set_earlier(Timer::Advert, now + self.params.advert_interval),
            "ant_interval_ms" if self.params.strategy == StrategyKind::Antnet => {
                self.timers
                    .set_earlier(Timer::Ant, now + self.params.ant_interval);
            }
            "link_capacity_mbps" => self.neighbors.refresh(&self.params),
            "hysteresis" | "max_routes" => self.recompute(now),
            _ => {}
        }
        self.rearm();
        Ok(())
    }

    pub fn neighbors(&self) -> Vec<NeighborInfo> {
        self.neighbors.info()
    }

    pub fn routes(&self) -> Vec<RouteInfo> {
        self.routes.info()
    }

    /// Entries of routing state this node holds (routes, pheromone/Q rows, LSDB entries):
    /// the simulator's `state_entries_per_node`.
    pub fn state_entries(&self) -> usize {
        self.routes.len()
            + self.antnet.state_entries()
            + self.qrouting.state_entries()
            + self.lsdb.len()
    }

    /// Messages dropped because their sender is not a configured neighbour.
    pub fn ignored_messages(&self) -> u64 {
        self.counters.from_strangers
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Overlay prefixes currently learnt from other nodes.
    pub fn overlay_prefixes(&self) -> usize {
        self.overlay.len()
    }

    /// AntNet's probability row for `dst` (neighbour, probability), if it has one.
    pub fn pheromones(&self, dst: NodePrefix) -> Option<Vec<(NodeId, f64)>> {
        self.antnet.rows().get(&dst).map(|r| r.entries().to_vec())
    }

    fn advert_delay(&mut self) -> Duration {
        self.params
            .advert_interval
            .mul_f64(1.0 - ADVERT_JITTER * self.rng.unit())
    }

    /// Asks for a recompute after the hold: the SPF hold when the link-state graph
    /// changed, [`RECOMPUTE_HOLD`] for strategy updates (ants, Q estimates).
    pub(crate) fn schedule_recompute(&mut self, now: Instant) {
        let quiet = self
            .last_spf
            .is_none_or(|t| now.saturating_duration_since(t) >= SPF_QUIET);
        let hold = if self.topo_dirty && !quiet && !self.topo_lost {
            self.spf_hold
        } else {
            RECOMPUTE_HOLD
        };
        self.timers.set_earlier(Timer::Recompute, now + hold);
    }

    /// Runs shortest paths and moves the SPF hold: doubled after a run that follows
    /// another within [`SPF_QUIET`].
    fn run_spf(&mut self, now: Instant) {
        let nbrs = &self.neighbors;
        self.topo = Topology::compute(self.me, &self.lsdb, |n| nbrs.is_alive(n));
        self.topo_dirty = false;
        self.topo_lost = false;
        let busy = self
            .last_spf
            .is_some_and(|t| now.saturating_duration_since(t) < SPF_QUIET);
        self.spf_hold = if busy {
            (self.spf_hold * 2).min(SPF_HOLD_MAX)
        } else {
            RECOMPUTE_HOLD
        };
        self.last_spf = Some(now);
    }

    fn rearm(&mut self) {
        self.timers
            .set_opt(Timer::Dead, self.neighbors.next_deadline(&self.params));
        self.timers.set_opt(Timer::Age, self.lsdb.next_expiry());
    }

    /// Re-derives destinations and the strategy's routes, and writes the differences.
    pub(crate) fn recompute(&mut self, now: Instant) {
        self.timers.stop(Timer::Recompute);
        // Destinations and who may carry them change only with the topology (a
        // neighbour coming or going marks it dirty too); ants and Q estimates between two
        // runs only move weights.
        if self.topo_dirty {
            self.run_spf(now);
            self.dests = self
                .topo
                .destinations()
                .map(|(d, _)| (d, dest::eligible(self.me, d, &self.neighbors)))
                .collect();
            self.downstream.clear();
            match self.params.strategy {
                StrategyKind::Antnet => {
                    self.antnet.sync(&self.dests);
                    self.downstream = self.downstream_neighbors();
                }
                StrategyKind::QRouting => self.qrouting.sync(&self.dests),
                StrategyKind::Direct | StrategyKind::Shortest => {}
            }
        }
        let wanted = self.wanted_routes();
        let nbrs = &self.neighbors;
        let topo = &self.topo;
        let hold = Hold {
            now,
            stale: self.params.stale_hold,
            // Hosts and zones only: a budget aggregate that goes is replaced, not lost.
            lost: |d: NodePrefix| {
                (d.len == 32 || d.len == crate::node::ZONE_BITS) && topo.path(d).is_none()
            },
        };
        let routes_expire = self.routes.update(
            self.me,
            wanted,
            |n| nbrs.is_alive(n),
            self.params.hysteresis,
            self.params.max_routes,
            hold,
            &mut self.actions,
        );
        let owners = self.overlay_owners();
        let routes = &self.routes;
        let overlay_expires = self.overlay.update(
            owners,
            |o| routes.holds_stale_route_to(o),
            hold,
            &mut self.actions,
        );
        let next = [routes_expire, overlay_expires].into_iter().flatten().min();
        self.timers.set_opt(Timer::Stale, next);
    }

    /// Whether data for `d` may go to neighbour `n`: `n` is strictly closer to `d` than
    /// we are by the link-state graph, so it cannot hand the packet back to us.
    ///
    /// AntNet's pheromone rows stay as the paper has them; only the data plane's next
    /// hops are restricted. Without this, after a failure behind a neighbour its
    /// pheromone (still high) keeps sending data into a loop until ants undo it, which
    /// takes seconds; with it, data moves as soon as the neighbour's advert changes.
    fn is_downstream(&self, n: NodeId, d: NodePrefix, views: &BTreeMap<NodeId, Topology>) -> bool {
        if d.contains(n) {
            return true;
        }
        let Some(mine) = self.topo.path(d).map(|p| p.cost) else {
            return true;
        };
        views
            .get(&n)
            .and_then(|v| v.path(d))
            .is_some_and(|p| p.cost < mine)
    }

    /// [`Self::is_downstream`] for every destination and eligible neighbour, from each
    /// live neighbour's own view of the link-state graph.
    fn downstream_neighbors(&self) -> BTreeMap<NodePrefix, Vec<NodeId>> {
        let views: BTreeMap<NodeId, Topology> = self
            .neighbors
            .alive_ids()
            .map(|n| (n, Topology::compute(n, &self.lsdb, |_| true)))
            .collect();
        self.dests
            .iter()
            .map(|(d, eligible)| {
                let down = eligible
                    .iter()
                    .copied()
                    .filter(|n| self.is_downstream(*n, *d, &views))
                    .collect();
                (*d, down)
            })
            .collect()
    }

    fn shortest_candidate(&self, d: NodePrefix) -> Option<Candidate> {
        let p = self.topo.path(d)?;
        Some(Candidate {
            hops: p.first_hops.iter().map(|n| (*n, 1.0)).collect(),
            detail: p.first_hops.iter().map(|n| (*n, p.cost as f64)).collect(),
            aggregate: d.len < 32,
        })
    }

    /// Every strategy's answer: a weighted next-hop set per destination.
    fn wanted_routes(&self) -> BTreeMap<NodePrefix, Candidate> {
        let dests = self.dests.keys().copied();
        match self.params.strategy {
            StrategyKind::Direct => self
                .neighbors
                .alive_ids()
                .map(|n| {
                    let cost = self.neighbors.get(n).map_or(0, |x| x.cost_us());
                    let c = Candidate {
                        hops: vec![(n, 1.0)],
                        detail: vec![(n, f64::from(cost))],
                        aggregate: false,
                    };
                    (NodePrefix::host(n), c)
                })
                .collect(),
            StrategyKind::Shortest => dests
                .filter_map(|d| Some((d, self.shortest_candidate(d)?)))
                .collect(),
            StrategyKind::Antnet => dests
                .filter_map(|d| {
                    let mut c = self.antnet.candidate(d)?;
                    let down = self.downstream.get(&d).map_or(&[][..], Vec::as_slice);
                    c.hops.retain(|(n, _)| down.contains(n));
                    if c.hops.is_empty() {
                        return Some((d, self.shortest_candidate(d)?));
                    }
                    Some((d, c))
                })
                .collect(),
            // Until the estimates for a destination arrive, its shortest path carries data.
            StrategyKind::QRouting => dests
                .filter_map(|d| {
                    let c = self.qrouting.candidate(d, self.params.exploration);
                    Some((d, c.or_else(|| self.shortest_candidate(d))?))
                })
                .collect(),
        }
    }

    /// Prefix owners: hosts of our zone from their adverts, other zones from summaries
    /// of zones we can reach. Our own prefixes are the agent's business.
    fn overlay_owners(&self) -> BTreeMap<IpNet, NodeId> {
        let mut wanted = BTreeMap::new();
        for h in self.topo.hosts.keys() {
            for p in self.lsdb.advert(*h).map_or(&[][..], |a| &a.prefixes[..]) {
                OverlayTable::claim(&mut wanted, *p, *h);
            }
        }
        let zone = self.me.zone();
        for s in self.lsdb.summaries() {
            if s.origin.zone() == zone || !self.topo.zones.contains_key(&s.origin.zone()) {
                continue;
            }
            for (p, owner) in s
                .prefixes
                .iter()
                .filter(|(_, o)| o.zone() == s.origin.zone())
            {
                OverlayTable::claim(&mut wanted, *p, *owner);
            }
        }
        wanted.retain(|p, _| !self.prefixes.contains(p));
        wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Advert, Message};

    /// Node 1.1 with neighbour 1.2, hearing adverts of 1.3 whose link cost changes.
    fn changing_adverts() -> (Router, Instant, impl FnMut(&mut Router, Instant)) {
        let t0 = Instant::now();
        let (me, b, c) = (NodeId::new(1, 1), NodeId::new(1, 2), NodeId::new(1, 3));
        let config = RouterConfig {
            node: me,
            neighbors: vec![b],
            prefixes: vec![],
            params: Params::default(),
            seed: 1,
        };
        let r = Router::new(config, t0);
        let mut seq = 0;
        let change = move |r: &mut Router, now: Instant| {
            seq += 1;
            hear(r, now, (b, c, seq), vec![(b, 100 + seq as u32 * 1000)]);
        };
        (r, t0, change)
    }

    /// `from` hands on `origin`'s advert number `seq` with `links`.
    fn hear(
        r: &mut Router,
        now: Instant,
        (from, origin, seq): (NodeId, NodeId, u64),
        links: Vec<(NodeId, u32)>,
    ) {
        let adv = Advert {
            origin,
            seq,
            links,
            prefixes: vec![],
            max_age_ms: 4000,
        };
        r.handle(
            now,
            Event::Received {
                from,
                msg: Message::Advert(adv),
            },
        );
    }

    /// The hold before a recompute after a change at `now`.
    fn hold(r: &Router, now: Instant) -> Duration {
        r.timers.get(Timer::Recompute).expect("scheduled") - now
    }

    #[test]
    fn shortest_path_runs_back_off_while_changes_keep_coming() {
        let (mut r, t0, mut change) = changing_adverts();
        // The run after start-up, then a quiet spell.
        r.handle_timeout(t0 + RECOMPUTE_HOLD);
        let mut now = t0 + RECOMPUTE_HOLD + SPF_QUIET;
        let mut holds = vec![];
        for _ in 0..7 {
            change(&mut r, now);
            holds.push(hold(&r, now).as_millis());
            now += hold(&r, now);
            r.handle_timeout(now);
            assert!(r.timers.get(Timer::Recompute).is_none(), "ran");
        }
        // The run after the quiet spell keeps the minimum; each one after it doubles it.
        assert_eq!(holds, [10, 10, 20, 40, 80, 160, 160]);
        // A quiet spell brings the first hold back to its minimum.
        now += SPF_QUIET;
        change(&mut r, now);
        assert_eq!(hold(&r, now), RECOMPUTE_HOLD);
    }

    #[test]
    fn a_lost_link_is_not_held_back() {
        let (mut r, t0, mut change) = changing_adverts();
        r.handle_timeout(t0 + RECOMPUTE_HOLD);
        let mut now = t0 + RECOMPUTE_HOLD + SPF_QUIET;
        // Cost churn grows the hold to its maximum.
        for _ in 0..6 {
            change(&mut r, now);
            now += hold(&r, now);
            r.handle_timeout(now);
        }
        change(&mut r, now);
        assert_eq!(hold(&r, now), SPF_HOLD_MAX);
        // 1.3 loses its link to 1.2: routed around after the minimum hold, and the grown
        // hold is kept for the churn that follows.
        let (b, c) = (NodeId::new(1, 2), NodeId::new(1, 3));
        hear(&mut r, now, (b, c, 1000), vec![]);
        assert_eq!(hold(&r, now), RECOMPUTE_HOLD);
        now += RECOMPUTE_HOLD;
        r.handle_timeout(now);
        assert!(r.timers.get(Timer::Recompute).is_none(), "ran");
        hear(&mut r, now, (b, c, 1001), vec![(b, 100)]);
        assert_eq!(hold(&r, now), SPF_HOLD_MAX);
    }
}
