//! The installed route set: what every strategy's weighted next hops become in the data
//! plane. Quantised to small integer weights, held back by hysteresis, cut to the route
//! budget by aggregation, and written as differences, make before break.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use crate::{
    aggregate,
    node::{NodeId, NodePrefix},
    topology::MAX_NEXT_HOPS,
    types::{Action, RouteInfo},
};

/// The heaviest member of a set is quantised to this, the others in proportion.
const WEIGHT_SCALE: f64 = 64.0;

/// A strategy's wish for one destination.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Candidate {
    /// Next hops with relative weights (any positive scale).
    pub(crate) hops: Vec<(NodeId, f64)>,
    /// Strategy detail per neighbour (`RouteInfo::detail`).
    pub(crate) detail: Vec<(NodeId, f64)>,
    /// Stands for more than one host (a zone route).
    pub(crate) aggregate: bool,
}

/// A quantised route: members sorted by node, weights small and coprime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) next_hops: Vec<(NodeId, u32)>,
    pub(crate) aggregate: bool,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Keeps the `MAX_NEXT_HOPS` heaviest live members and gives them integer weights:
/// the smallest scale (heaviest member = 1..=`WEIGHT_SCALE`) that keeps every ratio
/// within half a `WEIGHT_SCALE`th of the wanted one. Equal weights become all 1s
/// (ECMP), 3:1 stays 3:1, a lone next hop gets 1; members that round to 0 go.
pub(crate) fn quantise(
    hops: &[(NodeId, f64)],
    alive: impl Fn(NodeId) -> bool,
) -> Vec<(NodeId, u32)> {
    let mut live: Vec<(NodeId, f64)> = hops
        .iter()
        .filter(|(n, w)| alive(*n) && w.is_finite() && *w > 0.0)
        .copied()
        .collect();
    live.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    live.dedup_by_key(|e| e.0);
    live.truncate(MAX_NEXT_HOPS);
    let Some(max) = live.first().map(|e| e.1) else {
        return vec![];
    };
    let ratios: Vec<f64> = live.iter().map(|(_, w)| w / max).collect();
    let tolerance = 0.5 / WEIGHT_SCALE;
    let scale = (1..=WEIGHT_SCALE as u32)
        .map(f64::from)
        .find(|s| {
            ratios
                .iter()
                .all(|r| ((r * s).round() / s - r).abs() <= tolerance)
        })
        .unwrap_or(WEIGHT_SCALE);
    let mut q: Vec<(NodeId, u32)> = live
        .iter()
        .zip(&ratios)
        .map(|((n, _), r)| (*n, (r * scale).round() as u32))
        .filter(|(_, w)| *w > 0)
        .collect();
    let g = q.iter().fold(0, |g, (_, w)| gcd(g, *w)).max(1);
    q.iter_mut().for_each(|e| e.1 /= g);
    q.sort_by_key(|e| e.0);
    q
}

/// Whether `new` differs enough from `old` to be written: another member set, another
/// aggregate flag, or some member's share of the total moved by more than `hysteresis`.
fn worth_installing(old: &Route, new: &Route, hysteresis: f64) -> bool {
    if old.aggregate != new.aggregate
        || old.next_hops.len() != new.next_hops.len()
        || old
            .next_hops
            .iter()
            .zip(&new.next_hops)
            .any(|(a, b)| a.0 != b.0)
    {
        return true;
    }
    let total = |r: &Route| {
        r.next_hops
            .iter()
            .map(|e| f64::from(e.1))
            .sum::<f64>()
            .max(1.0)
    };
    let (to, tn) = (total(old), total(new));
    old.next_hops
        .iter()
        .zip(&new.next_hops)
        .any(|(a, b)| (f64::from(a.1) / to - f64::from(b.1) / tn).abs() > hysteresis)
}

#[derive(Clone, Debug, Default)]
pub(crate) struct RouteTable {
    installed: BTreeMap<NodePrefix, Route>,
    detail: BTreeMap<NodePrefix, Vec<(NodeId, f64)>>,
    /// Installed routes whose destination lost every live next hop with nothing to
    /// replace them, and since when: kept for the stale hold (see `Params::stale_hold`).
    stale: BTreeMap<NodePrefix, Instant>,
}

/// What the table must know to hold stale routes: the clock, the hold, and which
/// destinations the topology lost (no path at all, as opposed to a strategy that no
/// longer wants a route to a destination it still reaches).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hold<L = fn(NodePrefix) -> bool> {
    pub(crate) now: Instant,
    pub(crate) stale: Duration,
    pub(crate) lost: L,
}

impl RouteTable {
    pub(crate) fn len(&self) -> usize {
        self.installed.len()
    }

    /// Installs the strategy's `wanted` routes: writes `Install`s for new and changed
    /// routes, then `Withdraw`s for the ones no longer wanted, so a destination is never
    /// left without a route while a replacement exists. No installed route keeps a
    /// member that `alive` rejects, whatever the hysteresis, but one: a route to a
    /// destination the topology lost, with no covering replacement, stays as it was for
    /// `hold.stale` (the neighbour that stopped answering may be forwarding on while its
    /// agent restarts), then goes. Returns when the next stale route expires.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &mut self,
        me: NodeId,
        wanted: BTreeMap<NodePrefix, Candidate>,
        alive: impl Fn(NodeId) -> bool,
        hysteresis: f64,
        budget: Option<usize>,
        hold: Hold<impl Fn(NodePrefix) -> bool>,
        out: &mut VecDeque<Action>,
    ) -> Option<Instant> {
        let mut routes: BTreeMap<NodePrefix, Route> = BTreeMap::new();
        self.detail.clear();
        for (dst, c) in wanted {
            let next_hops = quantise(&c.hops, &alive);
            if next_hops.is_empty() {
                continue;
            }
            routes.insert(
                dst,
                Route {
                    next_hops,
                    aggregate: c.aggregate,
                },
            );
            self.detail.insert(dst, c.detail);
        }
        if let Some(max) = budget
            && routes.len() > max
        {
            routes = aggregate::to_budget(me.zone(), routes, max);
        }
        let mut withdraws = Vec::new();
        for dst in self
            .installed
            .keys()
            .filter(|dst| !routes.contains_key(dst))
        {
            let covered = routes.keys().any(|p| p.len < dst.len && p.contains(dst.id));
            if covered || !(hold.lost)(*dst) {
                withdraws.push(*dst);
                continue;
            }
            let since = *self.stale.entry(*dst).or_insert(hold.now);
            if hold.now >= since + hold.stale {
                withdraws.push(*dst);
            }
        }
        self.stale.retain(|dst, _| !routes.contains_key(dst));
        for (dst, new) in routes {
            let write = match self.installed.get(&dst) {
                Some(old) => worth_installing(old, &new, hysteresis),
                None => true,
            };
            if write {
                out.push_back(Action::Install {
                    dst,
                    next_hops: new.next_hops.clone(),
                    aggregate: new.aggregate,
                });
                self.installed.insert(dst, new);
            }
        }
        for dst in withdraws {
            self.installed.remove(&dst);
            self.stale.remove(&dst);
            out.push_back(Action::Withdraw { dst });
        }
        self.stale.values().map(|since| *since + hold.stale).min()
    }

    /// Whether the route that carries traffic to `node` is one held stale.
    pub(crate) fn holds_stale_route_to(&self, node: NodeId) -> bool {
        self.stale.keys().any(|p| p.contains(node))
    }

    pub(crate) fn info(&self) -> Vec<RouteInfo> {
        self.installed
            .iter()
            .map(|(dst, r)| RouteInfo {
                dst: *dst,
                next_hops: r.next_hops.clone(),
                aggregate: r.aggregate,
                detail: self.detail.get(dst).cloned().unwrap_or_default(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stale routes withdrawn at once: the tables' behaviour before holds.
    fn no_hold() -> Hold {
        Hold {
            now: Instant::now(),
            stale: Duration::ZERO,
            lost: |_: NodePrefix| true,
        }
    }

    fn n(h: u32) -> NodeId {
        NodeId::new(1, h)
    }

    fn cand(hops: &[(u32, f64)]) -> Candidate {
        Candidate {
            hops: hops.iter().map(|(h, w)| (n(*h), *w)).collect(),
            detail: vec![],
            aggregate: false,
        }
    }

    #[test]
    fn quantisation() {
        let all = |_| true;
        assert_eq!(
            quantise(&[(n(2), 0.3), (n(3), 0.3)], all),
            vec![(n(2), 1), (n(3), 1)]
        );
        assert_eq!(quantise(&[(n(2), 0.9)], all), vec![(n(2), 1)]);
        assert_eq!(
            quantise(&[(n(2), 0.75), (n(3), 0.25)], all),
            vec![(n(2), 3), (n(3), 1)]
        );
        // Tiny members vanish, at most 4 stay, dead ones never appear.
        assert_eq!(
            quantise(&[(n(2), 1.0), (n(3), 0.001)], all),
            vec![(n(2), 1)]
        );
        let many: Vec<_> = (2..9).map(|h| (n(h), f64::from(h))).collect();
        assert_eq!(quantise(&many, all).len(), 4);
        assert_eq!(
            quantise(&[(n(2), 1.0), (n(3), 1.0)], |x| x != n(2)),
            vec![(n(3), 1)]
        );
    }

    #[test]
    fn hysteresis_and_make_before_break() {
        let me = n(1);
        let mut t = RouteTable::default();
        let mut out = VecDeque::new();
        let d = |h| NodePrefix::host(n(h));
        let all = |_| true;
        t.update(
            me,
            BTreeMap::from([(d(5), cand(&[(2, 0.5), (3, 0.5)]))]),
            all,
            0.1,
            None,
            no_hold(),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        out.clear();
        // 0.55/0.45 quantises to 11:9, a share of 0.55 against 0.5: left alone.
        t.update(
            me,
            BTreeMap::from([(d(5), cand(&[(2, 0.55), (3, 0.45)]))]),
            all,
            0.1,
            None,
            no_hold(),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        // 0.8/0.2 moves by 0.3: reinstalled.
        t.update(
            me,
            BTreeMap::from([(d(5), cand(&[(2, 0.8), (3, 0.2)]))]),
            all,
            0.1,
            None,
            no_hold(),
            &mut out,
        );
        assert_eq!(
            out.pop_front(),
            Some(Action::Install {
                dst: d(5),
                next_hops: vec![(n(2), 4), (n(3), 1)],
                aggregate: false
            })
        );
        // A member dying always reinstalls, hysteresis or not.
        t.update(
            me,
            BTreeMap::from([(d(5), cand(&[(2, 0.8), (3, 0.2)]))]),
            |x| x != n(3),
            0.9,
            None,
            no_hold(),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        out.clear();
        // Replacing d5 by d6: the install comes before the withdraw.
        t.update(
            me,
            BTreeMap::from([(d(6), cand(&[(2, 1.0)]))]),
            all,
            0.1,
            None,
            no_hold(),
            &mut out,
        );
        assert!(matches!(out[0], Action::Install { dst, .. } if dst == d(6)));
        assert_eq!(out[1], Action::Withdraw { dst: d(5) });
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_destination_with_no_live_next_hop_is_held_then_withdrawn() {
        let me = n(1);
        let (d, zone) = (NodePrefix::host(n(5)), NodePrefix::of_zone(1));
        let mut t = RouteTable::default();
        let mut out = VecDeque::new();
        let t0 = Instant::now();
        let hold = |ms| Hold {
            now: t0 + Duration::from_millis(ms),
            stale: Duration::from_secs(5),
            lost: |_| true,
        };
        let via2 = BTreeMap::from([(d, cand(&[(2, 1.0)]))]);
        assert_eq!(
            t.update(me, via2.clone(), |_| true, 0.1, None, hold(0), &mut out),
            None
        );
        out.clear();
        // Neighbour 2 dies and nothing else reaches 5: the route stays as it was.
        let expires = t.update(
            me,
            via2.clone(),
            |x| x != n(2),
            0.1,
            None,
            hold(100),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(t.len(), 1);
        assert_eq!(expires, Some(t0 + Duration::from_millis(5100)));
        // Still held just before the end of the hold, withdrawn at it.
        t.update(
            me,
            via2.clone(),
            |x| x != n(2),
            0.1,
            None,
            hold(5099),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        let expires = t.update(
            me,
            via2.clone(),
            |x| x != n(2),
            0.1,
            None,
            hold(5100),
            &mut out,
        );
        assert_eq!(out.pop_front(), Some(Action::Withdraw { dst: d }));
        assert_eq!((t.len(), expires), (0, None));
        // Back: installed again; dead again and then alive before the end: never
        // withdrawn, and the hold starts over next time.
        t.update(me, via2.clone(), |_| true, 0.1, None, hold(6000), &mut out);
        out.clear();
        t.update(
            me,
            via2.clone(),
            |x| x != n(2),
            0.1,
            None,
            hold(6100),
            &mut out,
        );
        t.update(me, via2.clone(), |_| true, 0.1, None, hold(7000), &mut out);
        assert!(out.is_empty(), "{out:?}");
        let expires = t.update(
            me,
            via2.clone(),
            |x| x != n(2),
            0.1,
            None,
            hold(8000),
            &mut out,
        );
        assert_eq!(expires, Some(t0 + Duration::from_millis(13000)));
        // A covering route that replaces it: withdrawn at once.
        let zone_via3 = BTreeMap::from([(zone, cand(&[(3, 1.0)]))]);
        t.update(
            me,
            zone_via3,
            |x| x != n(2),
            0.1,
            None,
            hold(8100),
            &mut out,
        );
        assert!(matches!(out[0], Action::Install { dst, .. } if dst == zone));
        assert_eq!(out[1], Action::Withdraw { dst: d });
        out.clear();
        // A destination the topology still reaches but the strategy no longer wants (a
        // switch to `direct`): withdrawn at once.
        let reached = Hold {
            now: t0 + Duration::from_millis(9000),
            stale: Duration::from_secs(5),
            lost: |_| false,
        };
        t.update(me, BTreeMap::new(), |_| true, 0.1, None, reached, &mut out);
        assert_eq!(out.pop_front(), Some(Action::Withdraw { dst: zone }));
    }
}
