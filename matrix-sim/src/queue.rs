//! The engine's event queue: earliest time first, then first scheduled.
//!
//! A 4-ary heap in one vector. At ten thousand nodes the queue holds some hundred
//! thousand events, several megabytes, and `std`'s binary heap spent most of its time
//! waiting for memory while sifting down; four children share two cache lines, so a pop
//! touches half as many levels. Keys (time, sequence number) are unique, so the order of
//! pops is exactly that of any other correct priority queue.

/// Children per node of the heap.
const ARITY: usize = 4;

#[derive(Debug)]
struct Entry<T> {
    at: u64,
    seq: u64,
    item: T,
}

impl<T> Entry<T> {
    fn key(&self) -> (u64, u64) {
        (self.at, self.seq)
    }
}

/// Items by (time, insertion order).
#[derive(Debug)]
pub struct EventQueue<T> {
    heap: Vec<Entry<T>>,
    seq: u64,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        Self {
            heap: Vec::new(),
            seq: 0,
        }
    }
}

impl<T> EventQueue<T> {
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Schedules `item` at `at`, after everything already scheduled at `at`.
    pub fn push(&mut self, at: u64, item: T) {
        self.seq += 1;
        let entry = Entry {
            at,
            seq: self.seq,
            item,
        };
        self.heap.push(entry);
        self.sift_up(self.heap.len() - 1);
    }

    /// The time of the next item.
    pub fn peek_time(&self) -> Option<u64> {
        self.heap.first().map(|e| e.at)
    }

    /// The next item and its time.
    pub fn pop(&mut self) -> Option<(u64, T)> {
        let last = self.heap.pop()?;
        let top = if self.heap.is_empty() {
            last
        } else {
            let top = std::mem::replace(&mut self.heap[0], last);
            self.sift_down(0);
            top
        };
        Some((top.at, top.item))
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if self.heap[parent].key() <= self.heap[i].key() {
                break;
            }
            self.heap.swap(parent, i);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let first = i * ARITY + 1;
            if first >= n {
                break;
            }
            let mut best = first;
            for c in first + 1..(first + ARITY).min(n) {
                if self.heap[c].key() < self.heap[best].key() {
                    best = c;
                }
            }
            if self.heap[i].key() <= self.heap[best].key() {
                break;
            }
            self.heap.swap(i, best);
            i = best;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{cmp::Reverse, collections::BinaryHeap};

    use super::*;
    use crate::rng::Rng;

    #[test]
    fn pops_by_time_then_insertion_like_a_binary_heap() {
        let mut rng = Rng::new(3);
        let mut q = EventQueue::default();
        let mut reference = BinaryHeap::new();
        let mut seq = 0u64;
        let mut now = 0u64;
        for round in 0..20_000u32 {
            // Bursts of pushes at and after the current time (many equal times), then pops.
            for _ in 0..rng.below(4) {
                let at = now + rng.below(50) as u64;
                seq += 1;
                q.push(at, round);
                reference.push(Reverse((at, seq, round)));
            }
            for _ in 0..rng.below(4) {
                let want = reference.pop().map(|Reverse((at, _, r))| (at, r));
                assert_eq!(q.pop(), want);
                if let Some((at, _)) = want {
                    now = at;
                }
                assert_eq!(q.len(), reference.len());
            }
        }
        while let Some(Reverse((at, _, r))) = reference.pop() {
            assert_eq!(q.peek_time(), Some(at));
            assert_eq!(q.pop(), Some((at, r)));
        }
        assert!(q.is_empty() && q.pop().is_none());
    }
}
