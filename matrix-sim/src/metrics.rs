//! What a run measures, and how link-failure recovery is defined.
//!
//! Data packets count when they are *created* inside the measurement window
//! `[warmup, duration)`; every such packet ends delivered or dropped for exactly one
//! reason, so `offered = delivered + sum(drops)`.
//!
//! Recovery after a cut at time T (per `--fail`):
//! - the *affected pairs* are the (src, dst) pairs whose data packets were put on the cut
//!   link (either direction) during `[T - 1 s, T)`;
//! - their packets created from T on are binned by creation time into 100 ms windows;
//! - *normal* delivery is 95% of the pairs' own delivered ratio before the cut (packets
//!   created in `[T - 2 s, T - 0.2 s)`; 95% when fewer than 20 such packets exist);
//! - recovery_ms = start of the first window (relative to T) holding at least 5 of their
//!   packets whose delivered ratio reaches that level. 0 means traffic kept flowing
//!   within the first 100 ms; None means it never did before the traffic stopped.
//!
//! Packets in flight on the link at T are lost whatever routing does, and are not
//! counted against recovery (they were created before T). With several cuts the run
//! reports the slowest.
//!
//! A node failure (`--fail-node`) is tracked the same way over every link of the node:
//! the affected pairs are those whose packets were put on any of its links, both
//! directions, in the look-back (traffic to, from and through it), less the pairs that
//! have the dead node as an end, which nothing can deliver any more.
//!
//! Recovery of *all* affected traffic: recovery_all_ms = end of the last 100 ms window
//! (from T) in which a packet of an affected pair was lost; from then on every one of
//! them arrives. 0 when none was lost; None when the last window of traffic still lost
//! some.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::series::Recorder;

pub const RECOVERY_WINDOW_NS: u64 = 100_000_000;
/// Pairs crossing the link this long before the cut are the affected ones.
pub const AFFECTED_LOOKBACK_NS: u64 = 1_000_000_000;
const BASELINE_FROM_NS: u64 = 2_000_000_000;
const BASELINE_TO_NS: u64 = 200_000_000;
const BASELINE_MIN_PACKETS: u32 = 20;
const NORMAL_SHARE: f64 = 0.95;
const WINDOW_MIN_PACKETS: u32 = 5;

/// Why a measured data packet was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The link's queue was full (drop-tail).
    QueueFull,
    /// Hop limit ran out (a loop, or a path longer than the limit).
    HopLimit,
    /// No route to the destination, or a route of total weight 0.
    NoRoute,
    /// The chosen next hop's link is down, or not a neighbour at all.
    LinkDown,
    /// On a link (queued or propagating) when it was cut.
    LinkFailed,
    /// Still in the network when the run ended.
    InFlightAtEnd,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Drops {
    pub queue_full: u64,
    pub hop_limit: u64,
    pub no_route: u64,
    pub link_down: u64,
    pub link_failed: u64,
    pub in_flight_at_end: u64,
}

impl Drops {
    pub fn total(&self) -> u64 {
        self.queue_full
            + self.hop_limit
            + self.no_route
            + self.link_down
            + self.link_failed
            + self.in_flight_at_end
    }

    fn count(&mut self, reason: DropReason) {
        *match reason {
            DropReason::QueueFull => &mut self.queue_full,
            DropReason::HopLimit => &mut self.hop_limit,
            DropReason::NoRoute => &mut self.no_route,
            DropReason::LinkDown => &mut self.link_down,
            DropReason::LinkFailed => &mut self.link_failed,
            DropReason::InFlightAtEnd => &mut self.in_flight_at_end,
        } += 1;
    }
}

/// Control messages lost, over the whole run (warm-up included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ControlDrops {
    /// The link's queue was full.
    pub queue_full: u64,
    /// Sent on a link that was down, or on it when it was cut.
    pub link_down: u64,
    /// Arrived before the receiving node's router started.
    pub not_started: u64,
    /// Addressed to a node that is not a neighbour (the agent has no address for it).
    pub not_neighbor: u64,
    /// Larger than a datagram may be (the agent could not encode it).
    pub too_big: u64,
}

impl ControlDrops {
    pub fn total(&self) -> u64 {
        self.queue_full + self.link_down + self.not_started + self.not_neighbor + self.too_big
    }
}

/// Recovery bookkeeping of one `--fail` or `--fail-node`.
#[derive(Debug)]
pub struct FailureTrack {
    pub at: u64,
    /// The node that dies, for a node failure: pairs it is an end of do not count.
    pub node: Option<u32>,
    /// Pairs seen on the link during the look-back (filled until the cut).
    pub crossing: HashSet<(u32, u32)>,
    /// Per pair: (created, delivered) of packets from the baseline interval.
    baseline: HashMap<(u32, u32), (u32, u32)>,
    /// Per 100 ms window after the cut: (created, delivered) of affected pairs.
    windows: Vec<(u32, u32)>,
}

impl FailureTrack {
    pub fn new(at: u64) -> Self {
        Self {
            at,
            node: None,
            crossing: HashSet::new(),
            baseline: HashMap::new(),
            windows: Vec::new(),
        }
    }

    /// The failure of node `node` at `at`.
    pub fn of_node(at: u64, node: u32) -> Self {
        Self {
            node: Some(node),
            ..Self::new(at)
        }
    }

    /// Whether a packet put on the link at `now` makes its pair affected.
    pub fn in_lookback(&self, now: u64) -> bool {
        now < self.at && now + AFFECTED_LOOKBACK_NS >= self.at
    }

    /// Whether `pair` has the failed node as an end (never counted).
    fn ends_at_failure(&self, pair: (u32, u32)) -> bool {
        self.node.is_some_and(|n| pair.0 == n || pair.1 == n)
    }

    /// A packet of `pair` was put on a failing link at `now`.
    pub fn crossed(&mut self, now: u64, pair: (u32, u32)) {
        if self.in_lookback(now) && !self.ends_at_failure(pair) {
            self.crossing.insert(pair);
        }
    }

    fn record(&mut self, pair: (u32, u32), created: u64, delivered: bool) {
        if self.ends_at_failure(pair) {
            return;
        }
        let hit = u32::from(delivered);
        if created >= self.at {
            if !self.crossing.contains(&pair) {
                return;
            }
            let k = ((created - self.at) / RECOVERY_WINDOW_NS) as usize;
            if self.windows.len() <= k {
                self.windows.resize(k + 1, (0, 0));
            }
            self.windows[k].0 += 1;
            self.windows[k].1 += hit;
        } else if created + BASELINE_FROM_NS >= self.at && created + BASELINE_TO_NS < self.at {
            let e = self.baseline.entry(pair).or_default();
            e.0 += 1;
            e.1 += hit;
        }
    }

    /// Milliseconds from the cut to the first normal window (see the module docs).
    pub fn recovery_ms(&self) -> Option<f64> {
        let (mut created, mut delivered) = (0u32, 0u32);
        for (pair, (c, d)) in &self.baseline {
            if self.crossing.contains(pair) {
                created += c;
                delivered += d;
            }
        }
        let normal = if created >= BASELINE_MIN_PACKETS {
            NORMAL_SHARE * delivered as f64 / created as f64
        } else {
            NORMAL_SHARE
        };
        self.windows
            .iter()
            .position(|&(c, d)| c >= WINDOW_MIN_PACKETS && d as f64 >= normal * c as f64)
            .map(|k| (k as u64 * RECOVERY_WINDOW_NS) as f64 / 1e6)
    }

    /// Milliseconds from the failure to the end of the last window that lost a packet
    /// of an affected pair (see the module docs).
    pub fn recovery_all_ms(&self) -> Option<f64> {
        match self.windows.iter().rposition(|&(c, d)| d < c) {
            None => Some(0.0),
            Some(k) if k + 1 == self.windows.len() => None,
            Some(k) => Some(((k + 1) as u64 * RECOVERY_WINDOW_NS) as f64 / 1e6),
        }
    }
}

/// Counters of one run.
#[derive(Debug)]
pub struct Metrics {
    pub window: (u64, u64),
    pub offered: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    /// Delays of delivered measured packets, microseconds.
    pub delays_us: Vec<u32>,
    /// Links crossed by delivered measured packets: sum and longest path.
    pub hops_sum: u64,
    pub hops_max: u8,
    pub drops: Drops,
    pub control_msgs: u64,
    pub control_bytes: u64,
    pub control_drops: ControlDrops,
    pub route_updates: u64,
    pub failures: Vec<FailureTrack>,
    /// Offered and delivered over the whole run, per window (for `--plot`).
    pub series: Recorder,
}

impl Metrics {
    pub fn new(window: (u64, u64), failures: Vec<FailureTrack>) -> Self {
        Self {
            window,
            offered: 0,
            delivered: 0,
            delivered_bytes: 0,
            delays_us: Vec::new(),
            hops_sum: 0,
            hops_max: 0,
            drops: Drops::default(),
            control_msgs: 0,
            control_bytes: 0,
            control_drops: ControlDrops::default(),
            route_updates: 0,
            failures,
            series: Recorder::new(window.1),
        }
    }

    pub fn in_window(&self, t: u64) -> bool {
        (self.window.0..self.window.1).contains(&t)
    }

    fn track(&mut self, pair: (u32, u32), created: u64, delivered: bool) {
        for f in &mut self.failures {
            f.record(pair, created, delivered);
        }
    }

    /// A data packet of `bytes` entered the overlay at `now`.
    pub fn offered(&mut self, now: u64, bytes: u32) {
        self.series.offered(now, bytes);
        if self.in_window(now) {
            self.offered += 1;
        }
    }

    /// A packet reached its destination after `hops` links.
    pub fn delivered(&mut self, pair: (u32, u32), created: u64, now: u64, bytes: u32, hops: u8) {
        self.track(pair, created, true);
        self.series.delivered(now, now - created, bytes);
        if self.in_window(created) {
            self.delivered += 1;
            self.delivered_bytes += bytes as u64;
            self.hops_sum += u64::from(hops);
            self.hops_max = self.hops_max.max(hops);
            self.delays_us
                .push(((now - created) / 1000).min(u32::MAX as u64) as u32);
        }
    }

    pub fn dropped(&mut self, pair: (u32, u32), created: u64, reason: DropReason) {
        self.track(pair, created, false);
        if self.in_window(created) {
            self.drops.count(reason);
        }
    }

    /// (mean, p99) delay in milliseconds; None when nothing was delivered.
    pub fn delay_ms(&mut self) -> (Option<f64>, Option<f64>) {
        if self.delays_us.is_empty() {
            return (None, None);
        }
        let n = self.delays_us.len();
        let mean = self.delays_us.iter().map(|&d| d as f64).sum::<f64>() / n as f64 / 1000.0;
        // Nearest-rank p99.
        let rank = ((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1;
        let (_, p99, _) = self.delays_us.select_nth_unstable(rank);
        (Some(mean), Some(*p99 as f64 / 1000.0))
    }

    /// The slowest recovery over all cuts; None if there were none or any never recovered.
    pub fn recovery_ms(&self) -> Option<f64> {
        self.slowest(FailureTrack::recovery_ms)
    }

    /// [`FailureTrack::recovery_all_ms`], the slowest over all failures.
    pub fn recovery_all_ms(&self) -> Option<f64> {
        self.slowest(FailureTrack::recovery_all_ms)
    }

    fn slowest(&self, of: impl Fn(&FailureTrack) -> Option<f64>) -> Option<f64> {
        let mut worst: Option<f64> = None;
        for f in &self.failures {
            let r = of(f)?;
            worst = Some(worst.map_or(r, |w: f64| w.max(r)));
        }
        worst
    }

    /// Pairs whose traffic crossed a failure (the ones recovery is measured on).
    pub fn affected_flows(&self) -> usize {
        self.failures.iter().map(|f| f.crossing.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn recovery_is_the_first_normal_window() {
        let mut m = Metrics::new((0, 10_000 * MS), vec![FailureTrack::new(5_000 * MS)]);
        m.failures[0].crossing.insert((1, 2));
        // Baseline: 40 packets of the pair, all delivered; an unaffected pair is ignored.
        for i in 0..40 {
            m.delivered((1, 2), 3_500 * MS + i * 10 * MS, 4_900 * MS, 100, 1);
            m.dropped((3, 4), 3_500 * MS + i * 10 * MS, DropReason::NoRoute);
        }
        // Windows 0 and 1 lose everything, window 2 has too few packets, window 3 is fine.
        for i in 0..20 {
            m.dropped((1, 2), 5_000 * MS + i * 10 * MS, DropReason::LinkDown);
        }
        m.delivered((1, 2), 5_210 * MS, 5_300 * MS, 100, 1);
        for i in 0..10 {
            m.delivered((1, 2), 5_300 * MS + i * 10 * MS, 5_500 * MS, 100, 1);
        }
        m.dropped((3, 4), 5_000 * MS, DropReason::NoRoute);
        assert_eq!(m.recovery_ms(), Some(300.0));
        // The last loss of the pair was in window 1 (window 2 lost none of its one).
        assert_eq!(m.recovery_all_ms(), Some(200.0));
        assert_eq!(m.offered, 0, "offered is counted by the engine");
        assert_eq!(m.drops.link_down, 20);
    }

    #[test]
    fn no_recovery_without_a_normal_window() {
        let mut m = Metrics::new((0, 10_000 * MS), vec![FailureTrack::new(5_000 * MS)]);
        m.failures[0].crossing.insert((1, 2));
        for i in 0..50 {
            m.dropped((1, 2), 5_000 * MS + i * 10 * MS, DropReason::NoRoute);
        }
        assert_eq!(m.recovery_ms(), None);
        assert_eq!(m.recovery_all_ms(), None);
        assert_eq!(Metrics::new((0, 1), vec![]).recovery_ms(), None);
    }

    #[test]
    fn a_dead_nodes_own_pairs_do_not_count() {
        let mut t = FailureTrack::of_node(5_000 * MS, 7);
        t.crossed(4_500 * MS, (1, 2));
        t.crossed(4_500 * MS, (7, 2));
        t.crossed(4_500 * MS, (1, 7));
        t.crossed(3_000 * MS, (3, 4));
        assert_eq!(t.crossing, HashSet::from([(1, 2)]));
        let mut m = Metrics::new((0, 10_000 * MS), vec![t]);
        // Traffic to the dead node is lost for good; the pair through it comes back.
        for i in 0..20 {
            m.dropped((1, 7), 5_000 * MS + i * 10 * MS, DropReason::LinkDown);
            m.delivered((1, 2), 5_000 * MS + i * 10 * MS, 5_400 * MS, 100, 3);
        }
        assert_eq!(m.recovery_ms(), Some(0.0));
        assert_eq!(m.recovery_all_ms(), Some(0.0));
        assert_eq!(m.affected_flows(), 1);
    }

    #[test]
    fn nearest_rank_p99() {
        let mut m = Metrics::new((0, 1), vec![]);
        m.delays_us = (1..=1000).rev().map(|d| d * 1000).collect();
        let (mean, p99) = m.delay_ms();
        assert_eq!(mean, Some(500.5));
        assert_eq!(p99, Some(990.0));
    }
}
