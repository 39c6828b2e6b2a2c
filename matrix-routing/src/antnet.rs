//! AntNet (Di Caro & Dorigo, "AntNet: Distributed Stigmergetic Control for
//! Communications Networks", JAIR 9, 1998).
//!
//! Per destination `d` a node keeps a probabilistic routing table row `P_{n,d}` over its
//! eligible neighbours (always summing to 1) and a local traffic model `M_k(d)`: an
//! exponential mean and variance of trip times (factor `eta`) and the best trip time of
//! the last `w_max = 5 c / eta` observations (`c` = `antnet_window`).
//!
//! - Forward ants go, every `ant_interval`, to destinations drawn in proportion to local
//!   demand (uniformly when there is none). At each node an ant picks among unvisited
//!   neighbours with `P' = (P + alpha l) / (1 + alpha)`, `l` a load heuristic (the
//!   paper's queue-length term), or uniformly with probability `exploration`; it pushes
//!   the node and that node's delay estimate to the chosen neighbour.
//! - Loops: as in the paper, a forward ant that comes back to a node pops the cycle off
//!   its stack and goes on, unless the cycle lasted longer than the ant had lived
//!   before entering it, in which case it is destroyed.
//! - At the destination the ant turns backward and retraces its stack. Each node `k` on
//!   the way takes the trip time `T` from itself to `d` (sum of the pushed hop times),
//!   updates `M_k(d)` and reinforces the neighbour `f` the ant took:
//!   `r = c1 W_best/T + c2 (I_sup - I_inf)/((I_sup - I_inf) + (T - I_inf))` with
//!   `I_inf = W_best`, `I_sup = mu + z sigma / sqrt(w)`, squashed as `s(r)/s(1)`,
//!   `s(x) = 1/(1 + exp(a/(x |N_k|)))`; then `P_f += r (1 - P_f)`, `P_n -= r P_n`.
//!   Sub-paths (to every node after `k` on the stack) are learnt too, when their trip
//!   time is under `I_sup` of that destination's model, as the paper does.
//! - Data follow the table sharpened (`P^DATA_EXPONENT`, members under
//!   `DATA_MIN_PROB` dropped, at most 4), so stray exploration mass does not carry data.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::{
    demand::Demand,
    dest,
    error::ProcessError,
    message::{Ant, AntKind},
    neighbor::NeighborTable,
    node::{NodeId, NodePrefix},
    params::Params,
    rng::Rng,
    routes::Candidate,
    topology::MAX_NEXT_HOPS,
};

/// Confidence coefficient of `I_sup` (the paper's `z`, about a 0.65 confidence level
/// by Chebyshev's bound `z = 1/sqrt(1 - gamma)`).
const Z_CONFIDENCE: f64 = 1.7;
/// An ant that has taken this many hops (cycles included) is destroyed: the paper's
/// maximum ant lifetime.
pub(crate) const MAX_ANT_HOPS: usize = 48;
/// Exponent applied to probabilities for data (favours the best choices).
const DATA_EXPONENT: f64 = 1.4;
/// Probability under which a neighbour carries no data.
const DATA_MIN_PROB: f64 = 0.05;
/// Trip times are at least this (the model divides by them).
const MIN_TRIP_US: f64 = 1.0;

/// One routing-table row: eligible neighbours and their probabilities, sorted by node.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Row {
    entries: Vec<(NodeId, f64)>,
}

impl Row {
    pub(crate) fn uniform(ns: &[NodeId]) -> Self {
        let p = 1.0 / ns.len().max(1) as f64;
        let mut entries: Vec<_> = ns.iter().map(|n| (*n, p)).collect();
        entries.sort_by_key(|e| e.0);
        entries.dedup_by_key(|e| e.0);
        let mut row = Self { entries };
        row.normalise();
        row
    }

    pub(crate) fn entries(&self) -> &[(NodeId, f64)] {
        &self.entries
    }

    pub(crate) fn prob(&self, n: NodeId) -> Option<f64> {
        self.entries.iter().find(|e| e.0 == n).map(|e| e.1)
    }

    pub(crate) fn sum(&self) -> f64 {
        self.entries.iter().map(|e| e.1).sum()
    }

    fn normalise(&mut self) {
        let s = self.sum();
        if self.entries.is_empty() {
            return;
        }
        if s <= 0.0 || !s.is_finite() {
            let p = 1.0 / self.entries.len() as f64;
            self.entries.iter_mut().for_each(|e| e.1 = p);
        } else {
            self.entries.iter_mut().for_each(|e| e.1 /= s);
        }
    }

    /// Follows the eligible set: gone neighbours leave (their mass is spread
    /// proportionally), new ones enter with a uniform share.
    pub(crate) fn sync(&mut self, eligible: &[NodeId]) {
        self.entries.retain(|e| eligible.contains(&e.0));
        self.normalise();
        let share = 1.0 / eligible.len().max(1) as f64;
        for n in eligible {
            if self.prob(*n).is_none() {
                self.entries.iter_mut().for_each(|e| e.1 *= 1.0 - share);
                let i = self.entries.partition_point(|e| e.0 < *n);
                self.entries.insert(i, (*n, share));
            }
        }
        self.normalise();
    }

    /// `P_f += r (1 - P_f)`, `P_n -= r P_n`; `false` if `chosen` is not in the row.
    pub(crate) fn reinforce(&mut self, chosen: NodeId, r: f64) -> bool {
        if self.prob(chosen).is_none() {
            return false;
        }
        let r = if r.is_finite() {
            r.clamp(0.0, 1.0)
        } else {
            0.0
        };
        for e in &mut self.entries {
            if e.0 == chosen {
                e.1 += r * (1.0 - e.1);
            } else {
                e.1 -= r * e.1;
            }
        }
        self.normalise();
        true
    }
}

/// Minimum over the last `cap` observations (a monotonic queue: O(1) amortised).
#[derive(Clone, Debug)]
struct MinWindow {
    cap: u64,
    count: u64,
    mins: VecDeque<(u64, f64)>,
}

impl MinWindow {
    fn new(cap: u64) -> Self {
        Self {
            cap: cap.max(1),
            count: 0,
            mins: VecDeque::new(),
        }
    }

    fn push(&mut self, v: f64) {
        while self.mins.back().is_some_and(|(_, b)| *b >= v) {
            self.mins.pop_back();
        }
        self.mins.push_back((self.count, v));
        self.count += 1;
        while self
            .mins
            .front()
            .is_some_and(|(i, _)| *i + self.cap < self.count)
        {
            self.mins.pop_front();
        }
    }

    fn min(&self) -> Option<f64> {
        self.mins.front().map(|(_, v)| *v)
    }

    fn len(&self) -> u64 {
        self.count.min(self.cap)
    }
}

/// The local traffic model `M_k(d)`.
#[derive(Clone, Debug)]
pub(crate) struct TrafficModel {
    mean: f64,
    var: f64,
    window: MinWindow,
}

impl TrafficModel {
    fn new(params: &Params) -> Self {
        let w_max = (5.0 * params.antnet_window / params.antnet_eta.max(1e-9)).round();
        Self {
            mean: 0.0,
            var: 0.0,
            window: MinWindow::new(w_max.clamp(1.0, 1e6) as u64),
        }
    }

    fn i_sup(&self) -> f64 {
        self.mean
            + Z_CONFIDENCE * self.var.max(0.0).sqrt() / (self.window.len().max(1) as f64).sqrt()
    }

    fn observe(&mut self, t: f64, eta: f64) {
        if self.window.count == 0 {
            self.mean = t;
            self.var = 0.0;
        } else {
            self.mean += eta * (t - self.mean);
            self.var += eta * ((t - self.mean).powi(2) - self.var);
        }
        self.window.push(t);
    }

    /// The paper's reinforcement for trip time `t`, squashed for `n` neighbours.
    fn reinforcement(&self, t: f64, n: usize, params: &Params) -> f64 {
        let best = self.window.min().unwrap_or(t);
        let (i_inf, i_sup) = (best, self.i_sup());
        let spread = (i_sup - i_inf).max(0.0);
        let denom = spread + (t - i_inf).max(0.0);
        let confidence = if denom <= 0.0 { 1.0 } else { spread / denom };
        let r = (params.antnet_c1 * best / t + params.antnet_c2 * confidence).clamp(0.0, 1.0);
        squash(r, n, params.antnet_a)
    }
}

/// `s(r)/s(1)` with `s(x) = 1/(1 + exp(a/(x n)))`: flattens small reinforcements, the
/// more so the fewer neighbours there are.
pub(crate) fn squash(r: f64, n: usize, a: f64) -> f64 {
    if r <= 0.0 {
        return 0.0;
    }
    let n = n.max(1) as f64;
    let s = |x: f64| 1.0 / (1.0 + (a / (x * n)).exp());
    let one = s(1.0);
    if one <= 0.0 {
        0.0
    } else {
        (s(r) / one).min(1.0)
    }
}

/// What an ant step needs from the router.
pub(crate) struct Ctx<'a> {
    pub(crate) me: NodeId,
    pub(crate) params: &'a Params,
    pub(crate) neighbors: &'a NeighborTable,
    pub(crate) rng: &'a mut Rng,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct AntNet {
    rows: BTreeMap<NodePrefix, Row>,
    models: BTreeMap<NodePrefix, TrafficModel>,
    next_id: u32,
}

impl AntNet {
    pub(crate) fn rows(&self) -> &BTreeMap<NodePrefix, Row> {
        &self.rows
    }

    pub(crate) fn clear(&mut self) {
        self.rows.clear();
        self.models.clear();
    }

    /// Keeps one row per known destination, over its eligible neighbours.
    pub(crate) fn sync(&mut self, dests: &BTreeMap<NodePrefix, Vec<NodeId>>) {
        self.rows
            .retain(|d, _| dests.get(d).is_some_and(|e| !e.is_empty()));
        self.models.retain(|d, _| dests.contains_key(d));
        for (d, eligible) in dests.iter().filter(|(_, e)| !e.is_empty()) {
            match self.rows.get_mut(d) {
                Some(row) => row.sync(eligible),
                None => {
                    self.rows.insert(*d, Row::uniform(eligible));
                }
            }
        }
    }

    /// A new forward ant from this node, and the neighbour to send it to.
    pub(crate) fn launch(&mut self, ctx: &mut Ctx, demand: &Demand) -> Option<(NodeId, Ant)> {
        let rates = demand.rates(ctx.me.zone());
        let weights: Vec<(NodePrefix, f64)> = self
            .rows
            .keys()
            .map(|d| (*d, rates.get(d).copied().unwrap_or(0.0)))
            .collect();
        let dst = ctx.rng.weighted(&weights)?;
        self.next_id = self.next_id.wrapping_add(1);
        let ant = Ant {
            kind: AntKind::Forward,
            id: self.next_id,
            src: ctx.me,
            dst: dest::to_wire(dst),
            stack: Vec::new(),
            hops: 0,
        };
        self.step(ctx, ant).ok()
    }

    /// A forward ant arrived from `from`: turn it back at the destination, or pass it on.
    pub(crate) fn on_forward(
        &mut self,
        ctx: &mut Ctx,
        from: NodeId,
        mut ant: Ant,
    ) -> Result<(NodeId, Ant), ProcessError> {
        let me = ctx.me;
        if ant.stack.last().map(|e| e.0) != Some(from) {
            return Err(ProcessError::AntStack { from, id: ant.id });
        }
        if dest::reached(me, ant.dst, ant.src.zone()) {
            ant.stack.push((me, 0));
            ant.kind = AntKind::Backward;
            return Ok((from, ant));
        }
        if let Some(pos) = ant.stack.iter().position(|e| e.0 == me) {
            let before: u64 = ant.stack[..pos].iter().map(|e| u64::from(e.1)).sum();
            let cycle: u64 = ant.stack[pos..].iter().map(|e| u64::from(e.1)).sum();
            if cycle > before {
                return Err(ProcessError::AntLoop { id: ant.id, at: me });
            }
            ant.stack.truncate(pos);
        }
        self.step(ctx, ant)
    }

    /// Chooses the next hop of a forward ant at this node and pushes this node.
    fn step(&mut self, ctx: &mut Ctx, mut ant: Ant) -> Result<(NodeId, Ant), ProcessError> {
        if usize::from(ant.hops) >= MAX_ANT_HOPS || ant.stack.len() >= MAX_ANT_HOPS {
            return Err(ProcessError::AntTooLong {
                id: ant.id,
                max: MAX_ANT_HOPS,
            });
        }
        let d = dest::from_wire(ant.dst, ctx.me.zone());
        let eligible = dest::eligible(ctx.me, d, ctx.neighbors);
        let visited: BTreeSet<NodeId> = ant.stack.iter().map(|e| e.0).collect();
        let mut cands: Vec<NodeId> = eligible
            .iter()
            .copied()
            .filter(|n| !visited.contains(n))
            .collect();
        if cands.is_empty() {
            // Every neighbour seen: go anyway; the next node cuts the cycle.
            cands = eligible;
        }
        if cands.is_empty() {
            return Err(ProcessError::AntNoRoute {
                id: ant.id,
                dst: ant.dst,
            });
        }
        let next = if ctx.rng.unit() < ctx.params.exploration {
            cands[ctx.rng.below(cands.len())]
        } else {
            let probs = self.choice(ctx, d, &cands);
            ctx.rng.weighted(&probs).unwrap_or(cands[0])
        };
        let delay = ctx.neighbors.get(next).map_or(0.0, |n| n.delay_us());
        ant.stack
            .push((ctx.me, delay.round().clamp(0.0, f64::from(u32::MAX)) as u32));
        ant.hops = ant.hops.saturating_add(1);
        Ok((next, ant))
    }

    /// `P' = (P + alpha l) / (1 + alpha)` over `cands`, `P` renormalised to them, `l` the
    /// share of spare load (`1 - load_n / sum load`, normalised).
    fn choice(&self, ctx: &Ctx, d: NodePrefix, cands: &[NodeId]) -> Vec<(NodeId, f64)> {
        let row = self.rows.get(&d);
        let mut p: Vec<f64> = cands
            .iter()
            .map(|n| row.and_then(|r| r.prob(*n)).unwrap_or(0.0))
            .collect();
        let ps: f64 = p.iter().sum();
        if ps <= 0.0 {
            p.iter_mut().for_each(|x| *x = 1.0 / cands.len() as f64);
        } else {
            p.iter_mut().for_each(|x| *x /= ps);
        }
        let loads: Vec<f64> = cands
            .iter()
            .map(|n| ctx.neighbors.get(*n).map_or(0.0, |x| x.load_bps()))
            .collect();
        let total: f64 = loads.iter().sum();
        let k = cands.len() as f64;
        let l: Vec<f64> = if total <= 0.0 || cands.len() < 2 {
            vec![1.0 / k; cands.len()]
        } else {
            loads
                .iter()
                .map(|q| (1.0 - q / total) / (k - 1.0))
                .collect()
        };
        let alpha = ctx.params.antnet_alpha;
        cands
            .iter()
            .zip(p.iter().zip(&l))
            .map(|(n, (p, l))| (*n, (p + alpha * l) / (1.0 + alpha)))
            .collect()
    }

    /// A backward ant arrived from `from`: learn, and say where it goes next (`None`
    /// once home).
    pub(crate) fn on_backward(
        &mut self,
        ctx: &Ctx,
        from: NodeId,
        ant: Ant,
    ) -> Result<Option<(NodeId, Ant)>, ProcessError> {
        let me = ctx.me;
        let i = ant
            .stack
            .iter()
            .rposition(|e| e.0 == me)
            .ok_or(ProcessError::AntNotOnStack { from, id: ant.id })?;
        if ant.stack.get(i + 1).map(|e| e.0) != Some(from) {
            return Err(ProcessError::AntStack { from, id: ant.id });
        }
        self.learn(ctx.me, ctx.params, &ant.stack, i);
        if i == 0 {
            return Ok(None);
        }
        Ok(Some((ant.stack[i - 1].0, ant)))
    }

    /// Updates models and rows of node `stack[i]` from the trip times after it.
    pub(crate) fn learn(&mut self, me: NodeId, params: &Params, stack: &[(NodeId, u32)], i: usize) {
        let Some(&(f, _)) = stack.get(i + 1) else {
            return;
        };
        let last = stack.len() - 1;
        let mut t = 0.0;
        let mut seen = BTreeSet::new();
        for j in i + 1..=last {
            t += f64::from(stack[j - 1].1);
            let d = dest::from_wire(stack[j].0, me.zone());
            // A zone is reached at its first node on the path.
            if stack[j].0 == me || !seen.insert(d) {
                continue;
            }
            self.update(d, f, t.max(MIN_TRIP_US), j == last, params);
        }
    }

    fn update(&mut self, d: NodePrefix, f: NodeId, t: f64, is_dst: bool, params: &Params) {
        let Some(row) = self.rows.get_mut(&d) else {
            return;
        };
        if row.prob(f).is_none() {
            return;
        }
        let model = self
            .models
            .entry(d)
            .or_insert_with(|| TrafficModel::new(params));
        if !is_dst && model.window.count > 0 && t >= model.i_sup() {
            return; // a sub-path only teaches when it is good
        }
        model.observe(t, params.antnet_eta);
        let r = model.reinforcement(t, row.entries.len(), params);
        row.reinforce(f, r);
    }

    /// The weighted next hops data should use for `d`.
    pub(crate) fn candidate(&self, d: NodePrefix) -> Option<Candidate> {
        let row = self.rows.get(&d)?;
        let mut sorted = row.entries.clone();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let hops: Vec<(NodeId, f64)> = sorted
            .iter()
            .enumerate()
            .filter(|(i, e)| *i == 0 || e.1 >= DATA_MIN_PROB)
            .take(MAX_NEXT_HOPS)
            .map(|(_, e)| (e.0, e.1.powf(DATA_EXPONENT)))
            .collect();
        Some(Candidate {
            hops,
            detail: row.entries.clone(),
            aggregate: d.len < 32,
        })
    }

    /// Rows plus traffic models held.
    pub(crate) fn state_entries(&self) -> usize {
        self.rows.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ids(k: u32) -> Vec<NodeId> {
        (1..=k).map(|h| NodeId::new(1, h)).collect()
    }

    #[test]
    fn reinforcement_follows_the_paper() {
        let p = Params::default();
        let mut m = TrafficModel::new(&p);
        assert_eq!(m.window.cap, 300, "w_max = 5 c / eta");
        for t in [1000.0, 1100.0, 900.0, 1000.0] {
            m.observe(t, p.antnet_eta);
        }
        // The best trip so far earns more than a trip twice as long.
        let good = m.reinforcement(900.0, 3, &p);
        let bad = m.reinforcement(1800.0, 3, &p);
        assert!(good > bad && bad > 0.0 && good <= 1.0, "{good} {bad}");
        // Squash: s(1)/s(1) = 1, and it is monotone.
        assert!((squash(1.0, 2, 10.0) - 1.0).abs() < 1e-12);
        assert!(squash(0.5, 2, 10.0) < squash(0.7, 2, 10.0));
        assert_eq!(squash(0.0, 2, 10.0), 0.0);
    }

    #[test]
    fn min_window_slides() {
        let mut w = MinWindow::new(3);
        for v in [5.0, 3.0, 4.0, 6.0, 7.0] {
            w.push(v);
        }
        assert_eq!(w.min(), Some(4.0));
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn backward_learning_moves_mass_to_the_faster_path() {
        let p = Params::default();
        let (me, b, c, d) = (
            NodeId::new(1, 1),
            NodeId::new(1, 2),
            NodeId::new(1, 3),
            NodeId::new(1, 4),
        );
        let mut a = AntNet::default();
        a.sync(&BTreeMap::from([(NodePrefix::host(d), vec![b, c])]));
        for _ in 0..20 {
            a.learn(me, &p, &[(me, 1000), (b, 1000), (d, 0)], 0);
            a.learn(me, &p, &[(me, 5000), (c, 5000), (d, 0)], 0);
        }
        let row = &a.rows()[&NodePrefix::host(d)];
        assert!(row.prob(b).unwrap() > 0.9, "{row:?}");
        assert!((row.sum() - 1.0).abs() < 1e-9);
        let cand = a.candidate(NodePrefix::host(d)).unwrap();
        assert_eq!(cand.hops[0].0, b);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Reinforce(usize, f64),
        Learn(Vec<(usize, u32)>),
        Sync(Vec<usize>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..6, -0.5f64..1.5).prop_map(|(n, r)| Op::Reinforce(n, r)),
            proptest::collection::vec((0usize..6, 0u32..100_000), 1..6).prop_map(Op::Learn),
            proptest::collection::vec(0usize..6, 1..6).prop_map(Op::Sync),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            // Deterministic: the same cases on every run.
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6d61_7472_6978),
            ..ProptestConfig::default()
        })]
        #[test]
        fn rows_always_sum_to_one(ops in proptest::collection::vec(op(), 1..60)) {
            let p = Params::default();
            let ns = ids(6);
            let me = NodeId::new(1, 100);
            let dests: Vec<NodePrefix> = ns.iter().map(|n| NodePrefix::host(*n)).collect();
            let mut a = AntNet::default();
            a.sync(&dests.iter().map(|d| (*d, ns.clone())).collect());
            for op in ops {
                match op {
                    Op::Reinforce(n, r) => {
                        for d in &dests {
                            if let Some(row) = a.rows.get_mut(d) {
                                row.reinforce(ns[n], r);
                            }
                        }
                    }
                    Op::Learn(path) => {
                        let mut stack = vec![(me, 10)];
                        stack.extend(path.iter().map(|(n, t)| (ns[*n], *t)));
                        a.learn(me, &p, &stack, 0);
                    }
                    Op::Sync(keep) => {
                        let mut e: Vec<NodeId> = keep.iter().map(|i| ns[*i]).collect();
                        e.sort();
                        e.dedup();
                        a.sync(&dests.iter().map(|d| (*d, e.clone())).collect());
                    }
                }
                for row in a.rows().values() {
                    prop_assert!((row.sum() - 1.0).abs() < 1e-9, "{:?}", row);
                    prop_assert!(row.entries().iter().all(|e| e.1 >= 0.0 && e.1 <= 1.0));
                }
            }
        }
    }
}
