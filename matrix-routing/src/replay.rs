//! Freshness of control messages: a captured datagram replayed later must change nothing.
//!
//! Every datagram carries the sender's `epoch` and a `seq` that grows by one per
//! datagram (inside the MAC, see [`crate::message`]). The epoch is fixed for the life of
//! an agent and larger after a restart (the agent takes its start time), so a restarted
//! peer is accepted at once and the window starts over, while anything of an older epoch
//! is stale. Inside an epoch a sliding window of [`WINDOW`] sequence numbers accepts each
//! number once, in any order within the window, as RFC 8967 (Babel MAC) and IPsec's
//! anti-replay window do.
//!
//! Check a datagram only after its MAC verified: the window moves on what it accepts, so
//! unauthenticated input must never reach it.

use std::collections::HashMap;

use crate::node::NodeId;

/// Sequence numbers behind the highest one seen that are still accepted (once each).
pub const WINDOW: u64 = 128;

/// Why a datagram was not fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Replay {
    #[error("from {from}: epoch {epoch} is older than the sender's current {current}")]
    StaleEpoch {
        from: NodeId,
        epoch: u64,
        current: u64,
    },
    #[error("from {from}: sequence number {seq} was already accepted")]
    Duplicate { from: NodeId, seq: u64 },
    #[error("from {from}: sequence number {seq} is more than {WINDOW} behind {top}")]
    TooOld { from: NodeId, seq: u64, top: u64 },
}

/// A fresh datagram: what it says about its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fresh {
    /// The first datagram heard from this sender.
    First,
    /// A new epoch: the sender restarted since its last datagram.
    Restarted { previous_epoch: u64 },
    /// The same epoch, a sequence number not seen before.
    Next,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    epoch: u64,
    /// Highest sequence number accepted in `epoch`.
    top: u64,
    /// Bit i set: `top - i` was accepted.
    seen: u128,
}

/// Per-sender replay windows.
#[derive(Clone, Debug, Default)]
pub struct ReplayGuard {
    senders: HashMap<NodeId, Window>,
}

const _: () = assert!(WINDOW == u128::BITS as u64);

impl ReplayGuard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `(epoch, seq)` from `from` once; anything older or repeated is a
    /// [`Replay`] and leaves the window as it was.
    pub fn check(&mut self, from: NodeId, epoch: u64, seq: u64) -> Result<Fresh, Replay> {
        let fresh = Window {
            epoch,
            top: seq,
            seen: 1,
        };
        let Some(w) = self.senders.get_mut(&from) else {
            self.senders.insert(from, fresh);
            return Ok(Fresh::First);
        };
        if epoch < w.epoch {
            return Err(Replay::StaleEpoch {
                from,
                epoch,
                current: w.epoch,
            });
        }
        if epoch > w.epoch {
            let previous_epoch = w.epoch;
            *w = fresh;
            return Ok(Fresh::Restarted { previous_epoch });
        }
        if seq > w.top {
            let shift = seq - w.top;
            w.seen = if shift >= WINDOW { 0 } else { w.seen << shift };
            w.seen |= 1;
            w.top = seq;
            return Ok(Fresh::Next);
        }
        let behind = w.top - seq;
        if behind >= WINDOW {
            return Err(Replay::TooOld {
                from,
                seq,
                top: w.top,
            });
        }
        let bit = 1u128 << behind;
        if w.seen & bit != 0 {
            return Err(Replay::Duplicate { from, seq });
        }
        w.seen |= bit;
        Ok(Fresh::Next)
    }

    /// Forgets `from` (a neighbour removed from the configuration).
    pub fn forget(&mut self, from: NodeId) {
        self.senders.remove(&from);
    }
}

/// The sending side: this agent's epoch and the next sequence number.
#[derive(Clone, Debug)]
pub struct SendSequence {
    epoch: u64,
    next: u64,
}

impl SendSequence {
    /// `epoch` must grow across restarts of the agent (its start time in microseconds
    /// since the Unix epoch does, while the clock does not step back).
    pub fn new(epoch: u64) -> Self {
        Self { epoch, next: 1 }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The sequence number for the next datagram.
    pub fn next_seq(&mut self) -> u64 {
        let seq = self.next;
        self.next += 1;
        seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId::new(0, 1);
    const B: NodeId = NodeId::new(0, 2);

    #[test]
    fn each_number_once_in_any_order_within_the_window() {
        let mut g = ReplayGuard::new();
        assert_eq!(g.check(A, 5, 10), Ok(Fresh::First));
        assert_eq!(g.check(A, 5, 12), Ok(Fresh::Next));
        // 11 arrives late but inside the window: accepted once.
        assert_eq!(g.check(A, 5, 11), Ok(Fresh::Next));
        assert_eq!(
            g.check(A, 5, 11),
            Err(Replay::Duplicate { from: A, seq: 11 })
        );
        assert_eq!(
            g.check(A, 5, 12),
            Err(Replay::Duplicate { from: A, seq: 12 })
        );
        assert_eq!(
            g.check(A, 5, 10),
            Err(Replay::Duplicate { from: A, seq: 10 })
        );
        // Senders are independent.
        assert_eq!(g.check(B, 5, 10), Ok(Fresh::First));
    }

    #[test]
    fn too_old_and_big_jumps() {
        let mut g = ReplayGuard::new();
        g.check(A, 1, 1).unwrap();
        g.check(A, 1, 1 + WINDOW).unwrap();
        // 1 is now exactly WINDOW behind: outside.
        assert_eq!(
            g.check(A, 1, 1),
            Err(Replay::TooOld {
                from: A,
                seq: 1,
                top: 1 + WINDOW
            })
        );
        // A jump past the whole window clears it: numbers just behind the new top are
        // unseen, and accepted once.
        g.check(A, 1, 10 * WINDOW).unwrap();
        assert_eq!(g.check(A, 1, 10 * WINDOW - 1), Ok(Fresh::Next));
        assert!(g.check(A, 1, 10 * WINDOW - 1).is_err());
        // The edge of the window: WINDOW - 1 behind is still inside.
        assert_eq!(g.check(A, 1, 9 * WINDOW + 1), Ok(Fresh::Next));
    }

    #[test]
    fn a_restart_is_a_new_epoch_and_old_epochs_are_stale() {
        let mut g = ReplayGuard::new();
        for seq in 1..=50 {
            g.check(A, 100, seq).unwrap();
        }
        // The peer restarts: its sequence numbers start over under a larger epoch.
        assert_eq!(
            g.check(A, 200, 1),
            Ok(Fresh::Restarted {
                previous_epoch: 100
            })
        );
        assert_eq!(g.check(A, 200, 2), Ok(Fresh::Next));
        // A datagram captured before the restart, replayed now.
        assert_eq!(
            g.check(A, 100, 51),
            Err(Replay::StaleEpoch {
                from: A,
                epoch: 100,
                current: 200
            })
        );
        // A rejected datagram does not move the window.
        assert_eq!(g.check(A, 200, 3), Ok(Fresh::Next));
        g.forget(A);
        assert_eq!(g.check(A, 100, 1), Ok(Fresh::First));
    }

    #[test]
    fn the_sender_counts_from_one() {
        let mut s = SendSequence::new(42);
        assert_eq!((s.epoch(), s.next_seq(), s.next_seq()), (42, 1, 2));
    }
}
