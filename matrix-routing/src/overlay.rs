//! Overlay prefix owners learnt from adverts (our zone) and zone summaries (other
//! zones), written to the agent as differences: new and moved owners first, then
//! withdrawals.

use std::collections::{BTreeMap, VecDeque};

use ipnet::IpNet;

use crate::{node::NodeId, types::Action};

#[derive(Clone, Debug, Default)]
pub(crate) struct OverlayTable {
    owners: BTreeMap<IpNet, NodeId>,
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

    pub(crate) fn update(&mut self, wanted: BTreeMap<IpNet, NodeId>, out: &mut VecDeque<Action>) {
        for (prefix, owner) in &wanted {
            if self.owners.get(prefix) != Some(owner) {
                out.push_back(Action::Overlay {
                    prefix: *prefix,
                    owner: *owner,
                });
            }
        }
        for prefix in self.owners.keys().filter(|p| !wanted.contains_key(p)) {
            out.push_back(Action::OverlayWithdraw { prefix: *prefix });
        }
        self.owners = wanted;
    }

    pub(crate) fn len(&self) -> usize {
        self.owners.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        t.update(w.clone(), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            Action::Overlay {
                prefix: p,
                owner: a
            }
        );
        out.clear();
        t.update(w.clone(), &mut out);
        assert!(out.is_empty());
        w.remove(&q);
        t.update(w, &mut out);
        assert_eq!(out.pop_front(), Some(Action::OverlayWithdraw { prefix: q }));
        assert_eq!(t.len(), 1);
    }
}
