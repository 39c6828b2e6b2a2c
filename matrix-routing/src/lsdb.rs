//! Link-state database: the newest host advert of every node of our zone and the newest
//! zone summary (every part) of every border node of the fleet.
//!
//! Entries are replaced only by a higher sequence number, so a flood stops at every node
//! that has already seen it; they expire `max_age_ms` after they were received, so a
//! dead node's state disappears even if nobody withdraws it. Our own entries never
//! expire (we re-originate them).
//!
//! An expired entry whose origin is still reachable is kept (and looked at again a
//! little later): flooding is not acknowledged, and on a long lossy path several
//! refreshes in a row can be lost, but a node that is really gone becomes unreachable at
//! once (its neighbours stop listing it), so reachability is the better test.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use crate::{
    message::{Advert, ZoneSummary},
    node::NodeId,
};

#[derive(Clone, Debug)]
struct Stored<T> {
    msg: T,
    expires: Instant,
}

/// What to do with a received advert or summary.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict<T> {
    /// Newer than ours: stored; flood it on. `changed`: its content differs from what it
    /// replaced (routes must be recomputed), not merely its sequence number. `lost`: a
    /// link or prefix it replaced is gone (bad news, which is not held back).
    New { changed: bool, lost: bool },
    /// The copy we hold: nothing to do.
    Duplicate,
    /// Older than ours: the sender has missed an update, send it ours.
    Stale(T),
}

/// An entry of the database, as the expiry index names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Advert(NodeId),
    Summary(NodeId, u16),
}

#[derive(Clone, Debug)]
pub(crate) struct Lsdb {
    me: NodeId,
    adverts: BTreeMap<NodeId, Stored<Advert>>,
    summaries: BTreeMap<(NodeId, u16), Stored<ZoneSummary>>,
    /// When each entry of another origin expires, earliest first: the router asks for
    /// the next expiry after every event, so it must not cost a scan of the database.
    expiries: BTreeSet<(Instant, Key)>,
}

fn lifetime(now: Instant, max_age_ms: u32) -> Instant {
    now + Duration::from_millis(u64::from(max_age_ms))
}

/// Whether a replacement drops a link (by neighbour) or a prefix the old entry had.
fn lost<P: PartialEq>(
    old_links: &[(NodeId, u32)],
    new_links: &[(NodeId, u32)],
    old_prefixes: &[P],
    new_prefixes: &[P],
) -> bool {
    old_links
        .iter()
        .any(|(n, _)| !new_links.iter().any(|(m, _)| m == n))
        || old_prefixes.iter().any(|p| !new_prefixes.contains(p))
}

impl Lsdb {
    pub(crate) fn new(me: NodeId) -> Self {
        Self {
            me,
            adverts: BTreeMap::new(),
            summaries: BTreeMap::new(),
            expiries: BTreeSet::new(),
        }
    }

    pub(crate) fn receive_advert(&mut self, now: Instant, adv: Advert) -> Verdict<Advert> {
        let expires = lifetime(now, adv.max_age_ms);
        let (changed, lost) = match self.adverts.get(&adv.origin) {
            Some(old) if old.msg.seq > adv.seq => return Verdict::Stale(old.msg.clone()),
            Some(old) if old.msg.seq == adv.seq => return Verdict::Duplicate,
            Some(old) => (
                old.msg.links != adv.links || old.msg.prefixes != adv.prefixes,
                lost(&old.msg.links, &adv.links, &old.msg.prefixes, &adv.prefixes),
            ),
            None => (true, false),
        };
        let key = Key::Advert(adv.origin);
        if let Some(old) = self
            .adverts
            .insert(adv.origin, Stored { msg: adv, expires })
        {
            self.expiries.remove(&(old.expires, key));
        }
        self.expiries.insert((expires, key));
        Verdict::New { changed, lost }
    }

    pub(crate) fn receive_summary(&mut self, now: Instant, s: ZoneSummary) -> Verdict<ZoneSummary> {
        let expires = lifetime(now, s.max_age_ms);
        let key = (s.origin, s.part);
        let (changed, lost) = match self.summaries.get(&key) {
            Some(old) if old.msg.seq > s.seq => return Verdict::Stale(old.msg.clone()),
            Some(old) if old.msg.seq == s.seq => return Verdict::Duplicate,
            Some(old) => (
                old.msg.links != s.links || old.msg.prefixes != s.prefixes,
                lost(&old.msg.links, &s.links, &old.msg.prefixes, &s.prefixes),
            ),
            None => (true, false),
        };
        // Parts past the new count belong to an older, longer origination.
        let stale: Vec<_> = self
            .summaries
            .range((s.origin, s.parts)..=(s.origin, u16::MAX))
            .filter(|(_, old)| old.msg.seq < s.seq)
            .map(|(k, _)| *k)
            .collect();
        let dropped = !stale.is_empty();
        for k in stale {
            if let Some(old) = self.summaries.remove(&k) {
                self.expiries.remove(&(old.expires, Key::Summary(k.0, k.1)));
            }
        }
        if let Some(old) = self.summaries.insert(key, Stored { msg: s, expires }) {
            self.expiries
                .remove(&(old.expires, Key::Summary(key.0, key.1)));
        }
        self.expiries.insert((expires, Key::Summary(key.0, key.1)));
        Verdict::New {
            changed: changed || dropped,
            lost: lost || dropped,
        }
    }

    /// Drops expired entries of origins `reachable` rejects; an expired entry of a
    /// reachable origin gets `recheck` more. `true` if any went.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        reachable: impl Fn(NodeId) -> bool,
        recheck: Duration,
    ) -> bool {
        let mut gone = false;
        while let Some(&(at, key)) = self.expiries.first()
            && at <= now
        {
            self.expiries.pop_first();
            let origin = match key {
                Key::Advert(o) | Key::Summary(o, _) => o,
            };
            if reachable(origin) {
                let expires = now + recheck;
                match key {
                    Key::Advert(o) => self.adverts.get_mut(&o).map(|e| e.expires = expires),
                    Key::Summary(o, p) => {
                        self.summaries.get_mut(&(o, p)).map(|e| e.expires = expires)
                    }
                };
                self.expiries.insert((expires, key));
                continue;
            }
            gone |= match key {
                Key::Advert(o) => self.adverts.remove(&o).is_some(),
                Key::Summary(o, p) => self.summaries.remove(&(o, p)).is_some(),
            };
        }
        gone
    }

    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _)| *at)
    }

    pub(crate) fn advert(&self, origin: NodeId) -> Option<&Advert> {
        self.adverts.get(&origin).map(|e| &e.msg)
    }

    pub(crate) fn adverts(&self) -> impl Iterator<Item = &Advert> {
        self.adverts.values().map(|e| &e.msg)
    }

    /// Every stored summary part.
    pub(crate) fn summaries(&self) -> impl Iterator<Item = &ZoneSummary> {
        self.summaries.values().map(|e| &e.msg)
    }

    /// Entries held: the simulator's measure of link-state memory.
    pub(crate) fn len(&self) -> usize {
        self.adverts.len() + self.summaries.len()
    }

    /// Replaces our own summary parts (all of one origination).
    pub(crate) fn set_own_summary(&mut self, now: Instant, parts: Vec<ZoneSummary>) {
        let me = self.me;
        self.summaries.retain(|(o, _), _| *o != me);
        for s in parts {
            self.summaries.insert(
                (me, s.part),
                Stored {
                    msg: s,
                    expires: now,
                },
            );
        }
    }

    pub(crate) fn set_own_advert(&mut self, now: Instant, adv: Advert) {
        self.adverts.insert(
            adv.origin,
            Stored {
                msg: adv,
                expires: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adv(origin: NodeId, seq: u64, links: &[(NodeId, u32)]) -> Advert {
        Advert {
            origin,
            seq,
            links: links.to_vec(),
            prefixes: vec![],
            max_age_ms: 4000,
        }
    }

    #[test]
    fn sequence_numbers_order_adverts() {
        let t0 = Instant::now();
        let (me, a, b) = (NodeId::new(1, 1), NodeId::new(1, 2), NodeId::new(1, 3));
        let mut db = Lsdb::new(me);
        assert_eq!(
            db.receive_advert(t0, adv(a, 5, &[(b, 10)])),
            Verdict::New {
                changed: true,
                lost: false
            }
        );
        assert_eq!(
            db.receive_advert(t0, adv(a, 5, &[(b, 10)])),
            Verdict::Duplicate
        );
        assert_eq!(
            db.receive_advert(t0, adv(a, 4, &[])),
            Verdict::Stale(adv(a, 5, &[(b, 10)]))
        );
        // A refresh with the same content is new (it is flooded and resets the age) but
        // does not change routes.
        assert_eq!(
            db.receive_advert(t0, adv(a, 6, &[(b, 10)])),
            Verdict::New {
                changed: false,
                lost: false
            }
        );
        // A cost change is news; a link gone is bad news.
        assert_eq!(
            db.receive_advert(t0, adv(a, 7, &[(b, 20)])),
            Verdict::New {
                changed: true,
                lost: false
            }
        );
        assert_eq!(
            db.receive_advert(t0, adv(a, 8, &[(me, 20)])),
            Verdict::New {
                changed: true,
                lost: true
            }
        );
        assert_eq!(db.advert(a).unwrap().seq, 8);
    }

    #[test]
    fn entries_age_out_but_ours_do_not() {
        let t0 = Instant::now();
        let (me, a) = (NodeId::new(1, 1), NodeId::new(1, 2));
        let mut db = Lsdb::new(me);
        db.set_own_advert(t0, adv(me, 1, &[]));
        db.receive_advert(t0, adv(a, 1, &[]));
        let gone = |_| false;
        let second = Duration::from_secs(1);
        assert_eq!(db.next_expiry(), Some(t0 + Duration::from_secs(4)));
        assert!(!db.expire(t0 + Duration::from_millis(3999), gone, second));
        // A refresh pushes the expiry out.
        db.receive_advert(t0 + Duration::from_secs(3), adv(a, 2, &[]));
        assert_eq!(db.next_expiry(), Some(t0 + Duration::from_secs(7)));
        assert!(!db.expire(t0 + Duration::from_secs(5), gone, second));
        // Past its age, an entry whose origin is still reachable is looked at again later.
        assert!(!db.expire(t0 + Duration::from_secs(7), |o| o == a, second));
        assert_eq!(db.next_expiry(), Some(t0 + Duration::from_secs(8)));
        assert!(db.expire(t0 + Duration::from_secs(8), gone, second));
        assert!(db.advert(a).is_none());
        assert!(db.advert(me).is_some());
        assert_eq!(db.next_expiry(), None);
        assert_eq!(db.len(), 1);
    }

    #[test]
    fn shorter_summary_drops_old_parts() {
        let t0 = Instant::now();
        let (me, b) = (NodeId::new(1, 1), NodeId::new(2, 1));
        let mut db = Lsdb::new(me);
        let part = |seq, part, parts| ZoneSummary {
            origin: b,
            seq,
            part,
            parts,
            links: vec![],
            prefixes: vec![("10.0.0.0/24".parse().unwrap(), b)],
            max_age_ms: 4000,
        };
        db.receive_summary(t0, part(1, 0, 2));
        db.receive_summary(t0, part(1, 1, 2));
        assert_eq!(db.len(), 2);
        assert_eq!(
            db.receive_summary(t0, part(2, 0, 1)),
            Verdict::New {
                changed: true,
                lost: true
            }
        );
        assert_eq!(db.len(), 1);
        assert_eq!(db.summaries().map(|s| s.seq).collect::<Vec<_>>(), vec![2]);
        // The dropped part is gone from the expiry index too: one entry left to age.
        assert!(db.expire(t0 + Duration::from_secs(4), |_| false, Duration::ZERO));
        assert_eq!((db.len(), db.next_expiry()), (0, None));
    }
}
