//! Overlay prefix owners learnt from adverts (our zone) and zone summaries (other
//! zones), written to the agent as differences: new and moved owners first, then
//! withdrawals.

use std::{
    collections::{BTreeMap, VecDeque},
    time::Instant,
};

use ipnet::IpNet;

use crate::{node::NodeId, types::Action};

#[derive(Clone, Debug, Default)]
pub(crate) struct OverlayTable {
    owners: BTreeMap<IpNet, NodeId>,
    /// Prefixes whose owner became unreachable, still written, and since when: held as
    /// long as the routes to their owner (`Params::stale_hold`).
    stale: BTreeMap<IpNet, (NodeId, Instant)>,
}

impl OverlayTable {
    /// Adds `prefix -> owner` to a wanted map; when two nodes claim one prefix the
    /// lowest NodeId wins, so every node of the fleet picks the same owner.
    pub(crate) fn claim(wanted: &mut BTreeMap<IpNet, NodeId>, prefix: IpNet, owner: NodeId) {
        wanted
            .entry(prefix)
            .and_modify(|o| *o = (*o).min(owner))
            .or_insert(owner);
    }

    /// Writes the differences to `wanted`. A prefix no longer wanted because its owner
    /// fell out of reach (`held_owner`: the route to it is held stale) stays written for
    /// `hold.stale`, as long as that route; one its owner stopped claiming goes at once.
    /// Returns when the next held prefix expires.
    pub(crate) fn update(
        &mut self,
        wanted: BTreeMap<IpNet, NodeId>,
        held_owner: impl Fn(NodeId) -> bool,
        hold: crate::routes::Hold<impl Fn(crate::node::NodePrefix) -> bool>,
        out: &mut VecDeque<Action>,
    ) -> Option<Instant> {
        for (prefix, owner) in &wanted {
            let held = self.stale.get(prefix).map(|(o, _)| o);
            if self.owners.get(prefix) != Some(owner) && held != Some(owner) {
                out.push_back(Action::Overlay {
                    prefix: *prefix,
                    owner: *owner,
                });
            }
        }
        for (prefix, owner) in &self.owners {
            if !wanted.contains_key(prefix) {
                if held_owner(*owner) {
                    self.stale.entry(*prefix).or_insert((*owner, hold.now));
                } else {
                    out.push_back(Action::OverlayWithdraw { prefix: *prefix });
                }
            }
        }
        self.stale.retain(|prefix, (_, since)| {
            if wanted.contains_key(prefix) {
                return false;
            }
            if hold.now >= *since + hold.stale {
                out.push_back(Action::OverlayWithdraw { prefix: *prefix });
                return false;
            }
            true
        });
        self.owners = wanted;
        self.stale
            .values()
            .map(|(_, since)| *since + hold.stale)
            .min()
    }

    pub(crate) fn len(&self) -> usize {
        self.owners.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(ms: u64) -> crate::routes::Hold {
        use std::sync::OnceLock;
        static T0: OnceLock<Instant> = OnceLock::new();
        crate::routes::Hold {
            now: *T0.get_or_init(Instant::now) + std::time::Duration::from_millis(ms),
            stale: std::time::Duration::ZERO,
            lost: |_| true,
        }
    }

    #[test]
    fn differences_only() {
        let (a, b) = (NodeId::new(1, 2), NodeId::new(2, 1));
        let p: IpNet = "10.1.0.0/24".parse().unwrap();
        let q: IpNet = "10.2.0.0/24".parse().unwrap();
        let mut t = OverlayTable::default();
        let mut out = VecDeque::new();
        let mut w = BTreeMap::new();
        OverlayTable::claim(&mut w, p, b);
        OverlayTable::claim(&mut w, p, a);
        OverlayTable::claim(&mut w, q, b);
        t.update(w.clone(), |_| true, now(0), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            Action::Overlay {
                prefix: p,
                owner: a
            }
        );
        out.clear();
        t.update(w.clone(), |_| true, now(0), &mut out);
        assert!(out.is_empty());
        w.remove(&q);
        t.update(w, |_| true, now(0), &mut out);
        assert_eq!(out.pop_front(), Some(Action::OverlayWithdraw { prefix: q }));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_prefix_whose_owner_is_lost_is_held() {
        let (a, b) = (NodeId::new(1, 2), NodeId::new(2, 1));
        let p: IpNet = "10.1.0.0/24".parse().unwrap();
        let mut t = OverlayTable::default();
        let mut out = VecDeque::new();
        let held = |ms| crate::routes::Hold {
            stale: std::time::Duration::from_secs(5),
            ..now(ms)
        };
        t.update(BTreeMap::from([(p, a)]), |_| true, held(0), &mut out);
        out.clear();
        // The owner is unreachable: nothing is written, and the prefix expires in 5 s.
        let expires = t.update(BTreeMap::new(), |_| true, held(100), &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(expires, Some(held(5100).now));
        // Back with the same owner within the hold: still nothing to write.
        t.update(BTreeMap::from([(p, a)]), |_| true, held(1000), &mut out);
        assert!(out.is_empty(), "{out:?}");
        // Lost again, then claimed by another owner: written at once.
        t.update(BTreeMap::new(), |_| true, held(2000), &mut out);
        t.update(BTreeMap::from([(p, b)]), |_| true, held(3000), &mut out);
        assert_eq!(
            out.pop_front(),
            Some(Action::Overlay {
                prefix: p,
                owner: b
            })
        );
        // Lost for good: withdrawn when the hold ends.
        t.update(BTreeMap::new(), |_| true, held(4000), &mut out);
        assert!(out.is_empty());
        t.update(BTreeMap::new(), |_| true, held(9000), &mut out);
        assert_eq!(out.pop_front(), Some(Action::OverlayWithdraw { prefix: p }));
        // An owner still in reach that stops claiming a prefix: withdrawn at once.
        t.update(BTreeMap::from([(p, a)]), |_| true, held(10_000), &mut out);
        out.clear();
        let expires = t.update(BTreeMap::new(), |_| false, held(10_100), &mut out);
        assert_eq!(out.pop_front(), Some(Action::OverlayWithdraw { prefix: p }));
        assert_eq!(expires, None);
    }
}
