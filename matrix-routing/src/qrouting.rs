//! Q-routing (Boyan & Littman, "Packet Routing in Dynamically Changing Networks: A
//! Reinforcement Learning Approach", NIPS 1994).
//!
//! Node `x` keeps `Q_x(d, y)`, its estimate of the time to deliver to `d` through
//! neighbour `y`. Every hello interval it sends each neighbour its `min_y Q_x(d, y)` per
//! destination (batched, [`crate::Message::QEstimates`]); on receiving `y`'s estimate
//! `t` for `d`, `Q_x(d, y) += lr (link_cost(y) + t - Q_x(d, y))`. Instead of the paper's
//! per-packet updates the estimates travel in these batches, so learning does not
//! depend on data traffic. An entry not refreshed for a dead interval is dropped, so a
//! destination a neighbour stops reporting is forgotten instead of counted to infinity.
//!
//! One deviation, the classic distance-vector guard: the estimate sent to `y` is the
//! best over neighbours other than `y` (split horizon), and "unreachable" when only `y`
//! leads there (poisoned reverse). With plain `min_y` two neighbours whose estimates
//! come from each other form a two-node loop whenever the real path gets dearer, and
//! only climb out of it slowly; per-packet Q-routing sees that as rising delivery times,
//! batched estimates would not.
//!
//! Weights: the best neighbour gets `1 - exploration`; the exploration share goes to the
//! other neighbours whose own estimate is clearly below ours (by [`FEASIBLE_MARGIN`]), so
//! a packet never climbs back up the estimates even when the two ends' estimates are a
//! little stale; in proportion to `1/Q`.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::{
    dest,
    node::{NodeId, NodePrefix},
    routes::Candidate,
    topology::MAX_NEXT_HOPS,
};

/// Estimates per message, so a batch fits a datagram.
const BATCH: usize = 400;
/// Estimates are capped here (a minute): beyond that a destination is unreachable.
const Q_MAX_US: f64 = 60e6;
/// A neighbour other than the best carries data only if its own estimate is at least
/// this fraction below ours: estimates a hello interval old, on links whose cost moves
/// in steps of up to 12 %, must not let two nodes each see the other as closer.
const FEASIBLE_MARGIN: f64 = 0.1;

/// The neighbour a batch came from and our link cost to it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Via {
    pub(crate) neighbor: NodeId,
    pub(crate) cost_us: f64,
}

#[derive(Clone, Debug)]
struct Entry {
    q: f64,
    /// The neighbour's own estimate, last reported.
    reported: f64,
    updated: Instant,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct QRouting {
    rows: BTreeMap<NodePrefix, BTreeMap<NodeId, Entry>>,
}

impl QRouting {
    pub(crate) fn clear(&mut self) {
        self.rows.clear();
    }

    /// Drops rows of unknown destinations and entries of ineligible neighbours.
    pub(crate) fn sync(&mut self, dests: &BTreeMap<NodePrefix, Vec<NodeId>>) {
        self.rows.retain(|d, row| match dests.get(d) {
            Some(eligible) => {
                row.retain(|n, _| eligible.contains(n));
                !row.is_empty()
            }
            None => false,
        });
    }

    /// Forgets entries not refreshed since `now - max_age`; `true` if any went.
    pub(crate) fn expire(&mut self, now: Instant, max_age: Duration) -> bool {
        let mut changed = false;
        self.rows.retain(|_, row| {
            let before = row.len();
            row.retain(|_, e| e.updated + max_age > now);
            changed |= row.len() != before;
            !row.is_empty()
        });
        changed
    }

    /// Learns from the batch a neighbour sent (`via`).
    pub(crate) fn on_estimates(
        &mut self,
        now: Instant,
        me: NodeId,
        via: Via,
        batch: &[(NodeId, u32)],
        lr: f64,
        dests: &BTreeMap<NodePrefix, Vec<NodeId>>,
    ) {
        let (from, link_cost_us) = (via.neighbor, via.cost_us);
        for &(id, est) in batch {
            if id == me {
                continue;
            }
            let d = dest::from_wire(id, me.zone());
            if !dests.get(&d).is_some_and(|e| e.contains(&from)) {
                continue;
            }
            if f64::from(est) >= Q_MAX_US {
                // Poisoned: `from` only reaches `d` through us.
                if let Some(row) = self.rows.get_mut(&d) {
                    row.remove(&from);
                }
                continue;
            }
            let target = (link_cost_us + f64::from(est)).min(Q_MAX_US);
            let row = self.rows.entry(d).or_default();
            match row.get_mut(&from) {
                Some(e) => {
                    e.q += lr * (target - e.q);
                    e.reported = f64::from(est);
                    e.updated = now;
                }
                None => {
                    row.insert(
                        from,
                        Entry {
                            q: target,
                            reported: f64::from(est),
                            updated: now,
                        },
                    );
                }
            }
        }
    }

    /// `min_y Q(d, y)`, over `y` other than `except`.
    fn best_except(&self, d: NodePrefix, except: Option<NodeId>) -> Option<(NodeId, f64)> {
        self.rows
            .get(&d)?
            .iter()
            .filter(|(n, _)| Some(**n) != except)
            .map(|(n, e)| (*n, e.q))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
    }

    fn best(&self, d: NodePrefix) -> Option<(NodeId, f64)> {
        self.best_except(d, None)
    }

    /// Our estimates as neighbour `to` should read them, in datagram-sized batches.
    /// A neighbour in our zone hears about our zone's hosts and other zones; one in
    /// another zone only about zones (ours is reached at us: 0).
    pub(crate) fn estimates_for(&self, me: NodeId, to: NodeId) -> Vec<Vec<(NodeId, u32)>> {
        let same_zone = to.zone() == me.zone();
        let mut all = vec![if same_zone {
            (me, 0)
        } else {
            (NodeId::new(me.zone(), 0), 0)
        }];
        for d in self.rows.keys() {
            if (d.len == 32 && !same_zone) || (d.len < 32 && d.id.zone() == to.zone()) {
                continue;
            }
            let q = match self.best_except(*d, Some(to)) {
                Some((_, q)) if q < Q_MAX_US => q,
                _ if self.best(*d).is_some() => Q_MAX_US, // poisoned reverse
                _ => continue,
            };
            all.push((dest::to_wire(*d), q.round() as u32));
        }
        all.chunks(BATCH).map(<[_]>::to_vec).collect()
    }

    pub(crate) fn candidate(&self, d: NodePrefix, exploration: f64) -> Option<Candidate> {
        let row = self.rows.get(&d)?;
        let (best, best_q) = self.best(d)?;
        let mut others: Vec<(NodeId, f64)> = row
            .iter()
            .filter(|(n, e)| **n != best && e.reported < best_q * (1.0 - FEASIBLE_MARGIN))
            .map(|(n, e)| (*n, e.q))
            .collect();
        others.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        others.truncate(MAX_NEXT_HOPS - 1);
        let mut hops = vec![(best, 1.0)];
        if !others.is_empty() && exploration > 0.0 {
            hops[0].1 = 1.0 - exploration;
            let inv: f64 = others.iter().map(|(_, q)| 1.0 / q.max(1.0)).sum();
            hops.extend(
                others
                    .iter()
                    .map(|(n, q)| (*n, exploration * (1.0 / q.max(1.0)) / inv)),
            );
        }
        Some(Candidate {
            hops,
            detail: row.iter().map(|(n, e)| (*n, e.q)).collect(),
            aggregate: d.len < 32,
        })
    }

    pub(crate) fn state_entries(&self) -> usize {
        self.rows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_towards_cost_plus_estimate() {
        let t0 = Instant::now();
        let (me, b, c, d) = (
            NodeId::new(1, 1),
            NodeId::new(1, 2),
            NodeId::new(1, 3),
            NodeId::new(1, 4),
        );
        let dests = BTreeMap::from([
            (NodePrefix::host(d), vec![b, c]),
            (NodePrefix::host(b), vec![b, c]),
        ]);
        let mut q = QRouting::default();
        q.on_estimates(
            t0,
            me,
            Via {
                neighbor: b,
                cost_us: 500.0,
            },
            &[(d, 1000), (b, 0)],
            0.5,
            &dests,
        );
        q.on_estimates(
            t0,
            me,
            Via {
                neighbor: c,
                cost_us: 500.0,
            },
            &[(d, 3000)],
            0.5,
            &dests,
        );
        assert_eq!(q.best(NodePrefix::host(d)), Some((b, 1500.0)));
        q.on_estimates(
            t0,
            me,
            Via {
                neighbor: b,
                cost_us: 500.0,
            },
            &[(d, 5000)],
            0.5,
            &dests,
        );
        // 1500 + 0.5 (5500 - 1500) = 3500: now c (3500) ties, b wins on id.
        assert_eq!(q.best(NodePrefix::host(d)), Some((b, 3500.0)));
        // c's own estimate (3000) is clearly below ours (3500): a feasible second choice.
        let cand = q.candidate(NodePrefix::host(d), 0.1).unwrap();
        assert_eq!(cand.hops.len(), 2);
        assert!((cand.hops[0].1 - 0.9).abs() < 1e-9);
        // To a neighbour of our zone: ourselves at 0, then our best per destination that
        // does not go through it (split horizon), or unreachable (poisoned reverse).
        let batch = &q.estimates_for(me, c)[0];
        assert_eq!(batch[0], (me, 0));
        assert!(batch.contains(&(d, 3500)));
        assert_eq!(
            q.estimates_for(me, b)[0][1..],
            [(b, Q_MAX_US as u32), (d, 3500)]
        );
        // A poisoned report removes the entry.
        q.on_estimates(
            t0,
            me,
            Via {
                neighbor: c,
                cost_us: 500.0,
            },
            &[(d, Q_MAX_US as u32)],
            0.5,
            &dests,
        );
        assert_eq!(q.best(NodePrefix::host(d)), Some((b, 3500.0)));
        assert_eq!(q.rows[&NodePrefix::host(d)].len(), 1);
        // Unrefreshed entries go.
        assert!(q.expire(t0 + Duration::from_secs(1), Duration::from_millis(350)));
        assert_eq!(q.state_entries(), 0);
    }

    #[test]
    fn other_zone_neighbours_hear_only_zones() {
        let t0 = Instant::now();
        let (me, b, x) = (NodeId::new(1, 1), NodeId::new(1, 2), NodeId::new(2, 1));
        let z3 = NodePrefix::of_zone(3);
        let dests = BTreeMap::from([(NodePrefix::host(b), vec![b, x]), (z3, vec![b, x])]);
        let mut q = QRouting::default();
        let via = Via {
            neighbor: b,
            cost_us: 100.0,
        };
        q.on_estimates(
            t0,
            me,
            via,
            &[(b, 0), (NodeId::new(3, 0), 700)],
            1.0,
            &dests,
        );
        let batch = &q.estimates_for(me, x)[0];
        assert_eq!(
            batch,
            &vec![(NodeId::new(1, 0), 0), (NodeId::new(3, 0), 800)]
        );
    }
}
