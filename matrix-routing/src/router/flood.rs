//! What this node tells the fleet, and how it spreads: our host advert (flooded inside
//! our zone), our zone summary when we are a border node (flooded to every zone), the
//! database hand-over to a neighbour that comes up, and Q-routing estimates.
//!
//! Flooding re-sends an entry only when it is newer than what a node holds (see `lsdb`),
//! so each origination crosses each link at most twice. Periodic re-origination covers
//! lost messages: adverts every `advert_interval`, zone summaries (flooded to the whole
//! fleet, so the costlier ones) when they change or else every
//! `SUMMARY_REFRESH_INTERVALS` advert intervals; entries live `LIFETIME_INTERVALS`
//! refresh periods.

use std::time::Instant;

use crate::{
    message::{Advert, Message, ZoneSummary},
    node::NodeId,
    types::Action,
};

use super::Router;

/// Adverts and summaries live this many refresh periods without a refresh.
const LIFETIME_INTERVALS: u32 = 4;
/// An unchanged zone summary is refreshed every this many advert intervals.
const SUMMARY_REFRESH_INTERVALS: u32 = 4;
/// An advertised link cost stays put until the measured one moves by more than this
/// fraction: every change reruns shortest paths fleet-wide and, while it floods, nodes
/// disagree (micro-loops), so jitter in RTT or loss must not reach the adverts.
const ADVERT_COST_DAMPING: f64 = 0.2;
/// Prefixes per summary datagram (a /128 entry is about 25 bytes encoded).
const PREFIXES_PER_PART: usize = 200;

impl Router {
    pub(crate) fn send(&mut self, to: NodeId, msg: Message) {
        self.counters.sent += 1;
        self.actions.push_back(Action::Send { to, msg });
    }

    /// Sends `msg` to every live neighbour but `except`; `zone_only`: only to those of
    /// our zone.
    pub(crate) fn flood(&mut self, msg: &Message, except: Option<NodeId>, zone_only: bool) {
        let zone = self.me.zone();
        let to: Vec<NodeId> = self
            .neighbors
            .alive_ids()
            .filter(|n| Some(*n) != except && (!zone_only || n.zone() == zone))
            .collect();
        for n in to {
            self.send(n, msg.clone());
        }
    }

    fn max_age_ms(&self, refresh_intervals: u32) -> u32 {
        let ms = self.params.advert_interval.as_millis()
            * u128::from(LIFETIME_INTERVALS * refresh_intervals);
        u32::try_from(ms).unwrap_or(u32::MAX)
    }

    /// A fresh advert of our live links and prefixes, flooded in our zone.
    pub(crate) fn originate_advert(&mut self, now: Instant) {
        self.advert_seq += 1;
        let old = self.lsdb.advert(self.me);
        let links: Vec<(NodeId, u32)> = self
            .neighbors
            .alive_ids()
            .filter_map(|n| {
                let cost = self.neighbors.get(n)?.cost_us();
                let was = old
                    .and_then(|a| a.links.iter().find(|l| l.0 == n))
                    .map(|l| l.1);
                Some(match was {
                    Some(w)
                        if (f64::from(cost) - f64::from(w)).abs()
                            <= ADVERT_COST_DAMPING * f64::from(w) =>
                    {
                        (n, w)
                    }
                    _ => (n, cost),
                })
            })
            .collect();
        let adv = Advert {
            origin: self.me,
            seq: self.advert_seq,
            links,
            prefixes: self.prefixes.clone(),
            max_age_ms: self.max_age_ms(1),
        };
        let changed = self
            .lsdb
            .advert(self.me)
            .is_none_or(|old| old.links != adv.links || old.prefixes != adv.prefixes);
        self.lsdb.set_own_advert(now, adv.clone());
        self.counters.adverts_originated += 1;
        if changed {
            self.topo_dirty = true;
            self.schedule_recompute(now);
        }
        self.flood(&Message::Advert(adv), None, true);
    }

    /// Our zone summary, if we are a border node (a live neighbour in another zone) and
    /// it changed, or its refresh is due, or `force`; an empty one, once, when we stop
    /// being a border node.
    pub(crate) fn originate_summary(&mut self, now: Instant, force: bool) {
        let zone = self.me.zone();
        let border = self.neighbors.alive_ids().any(|n| n.zone() != zone);
        if !border && !self.summary_live {
            return;
        }
        let (links, prefixes) = if border {
            let mut links: Vec<(NodeId, u32)> = self
                .topo
                .borders
                .iter()
                .map(|(b, c)| (*b, u32::try_from(*c).unwrap_or(u32::MAX)))
                .collect();
            // Inter-zone links at the cost our advert gives them: we route on the advert,
            // the fleet on the summary, and the two must agree or routes loop.
            let advertised = self.lsdb.advert(self.me).map_or(&[][..], |a| &a.links[..]);
            for n in self.neighbors.alive_ids().filter(|n| n.zone() != zone) {
                let cost = advertised.iter().find(|l| l.0 == n).map(|l| l.1);
                links.push((
                    n,
                    cost.unwrap_or_else(|| self.neighbors.get(n).map_or(u32::MAX, |x| x.cost_us())),
                ));
            }
            let mut prefixes: Vec<_> = self.prefixes.iter().map(|p| (*p, self.me)).collect();
            for h in self.topo.hosts.keys() {
                if let Some(a) = self.lsdb.advert(*h) {
                    prefixes.extend(a.prefixes.iter().map(|p| (*p, *h)));
                }
            }
            (links, prefixes)
        } else {
            (vec![], vec![])
        };
        let mine: Vec<&ZoneSummary> = self
            .lsdb
            .summaries()
            .filter(|s| s.origin == self.me)
            .collect();
        let same = mine.iter().flat_map(|s| &s.links).eq(links.iter())
            && mine.iter().flat_map(|s| &s.prefixes).eq(prefixes.iter());
        if same && !force && self.summary_refresh.is_some_and(|due| now < due) {
            return;
        }
        self.summary_seq += 1;
        let chunks: Vec<_> = prefixes
            .chunks(PREFIXES_PER_PART)
            .map(<[_]>::to_vec)
            .collect();
        let count = chunks.len().max(1);
        let mut links = Some(links);
        let parts: Vec<ZoneSummary> = (0..count)
            .map(|i| ZoneSummary {
                origin: self.me,
                seq: self.summary_seq,
                part: i as u16,
                parts: count as u16,
                links: if i == 0 {
                    links.take().unwrap_or_default()
                } else {
                    vec![]
                },
                prefixes: chunks.get(i).cloned().unwrap_or_default(),
                max_age_ms: self.max_age_ms(SUMMARY_REFRESH_INTERVALS),
            })
            .collect();
        self.summary_live = border;
        self.summary_refresh = Some(now + self.params.advert_interval * SUMMARY_REFRESH_INTERVALS);
        self.counters.summaries_originated += 1;
        self.lsdb.set_own_summary(now, parts.clone());
        for p in parts {
            self.flood(&Message::ZoneSummary(p), None, false);
        }
    }

    /// Database hand-over to a neighbour that just came up: every advert it should hold
    /// (our zone's, if it is in it) and every summary. Our advert went out just before.
    pub(crate) fn sync_neighbor(&mut self, to: NodeId) {
        let same_zone = to.zone() == self.me.zone();
        let mut msgs: Vec<Message> = Vec::new();
        if same_zone {
            msgs.extend(
                self.lsdb
                    .adverts()
                    .filter(|a| a.origin != self.me)
                    .map(|a| Message::Advert(a.clone())),
            );
        }
        msgs.extend(
            self.lsdb
                .summaries()
                .map(|s| Message::ZoneSummary(s.clone())),
        );
        for m in msgs {
            self.send(to, m);
        }
    }

    /// Q-routing: our best estimates to every live neighbour.
    pub(crate) fn send_estimates(&mut self) {
        let to: Vec<NodeId> = self.neighbors.alive_ids().collect();
        for n in to {
            for batch in self.qrouting.estimates_for(self.me, n) {
                self.send(n, Message::QEstimates(batch));
            }
        }
    }
}
