//! The simulated network: one FIFO channel per link direction, and each node's
//! forwarding table, looked up and picked from exactly as the XDP data plane does.

use std::collections::{HashMap, VecDeque};

use matrix_common::maps::NextHopSet;
use matrix_routing::NodePrefix;

/// One direction of a link: a drop-tail FIFO in front of a serialiser of `bps`, then
/// `delay_ns` of propagation. Packets never overtake each other, so the queue is kept as
/// the finish times of what is still being serialised; no per-packet transmit events.
#[derive(Debug)]
pub struct Channel {
    pub from: u32,
    pub to: u32,
    pub delay_ns: u64,
    pub bps: u64,
    pub limit_bytes: u64,
    pub up: bool,
    /// Bumped when the link fails: arrivals scheduled under an older epoch were lost.
    pub epoch: u32,
    busy_until: u64,
    /// (serialisation finish time, bytes) of packets not yet fully sent.
    backlog: VecDeque<(u64, u32)>,
    backlog_bytes: u64,
    /// Data bytes and packets accepted: the data plane's per-neighbour counters
    /// (control messages go through the kernel stack, which those counters never see).
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

impl Channel {
    pub fn new(from: u32, to: u32, delay_ns: u64, bps: u64, limit_bytes: u64) -> Self {
        Self {
            from,
            to,
            delay_ns,
            bps,
            limit_bytes,
            up: true,
            epoch: 0,
            busy_until: 0,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            tx_bytes: 0,
            tx_packets: 0,
        }
    }

    /// Queues `bytes` at `now`; the arrival time at the far end, or None when the link
    /// is down or the queue cannot take them (drop-tail).
    pub fn enqueue(&mut self, now: u64, bytes: u32) -> Option<u64> {
        if !self.up {
            return None;
        }
        while let Some(&(finish, b)) = self.backlog.front() {
            if finish > now {
                break;
            }
            self.backlog.pop_front();
            self.backlog_bytes -= b as u64;
        }
        if self.backlog_bytes + bytes as u64 > self.limit_bytes {
            return None;
        }
        let tx_ns = tx_time_ns(bytes, self.bps);
        let finish = self.busy_until.max(now) + tx_ns;
        self.busy_until = finish;
        self.backlog.push_back((finish, bytes));
        self.backlog_bytes += bytes as u64;
        Some(finish + self.delay_ns)
    }

    /// Bytes waiting or being serialised at `now` (what a probe would queue behind).
    pub fn backlog_bytes(&self) -> u64 {
        self.backlog_bytes
    }

    /// The link is cut: everything queued and in flight is lost.
    pub fn fail(&mut self, now: u64) {
        self.up = false;
        self.epoch += 1;
        self.backlog.clear();
        self.backlog_bytes = 0;
        self.busy_until = now;
    }
}

/// Nanoseconds to serialise `bytes` at `bps`, rounded up. In u64 whenever the product
/// fits (every real packet): a u128 division costs several times more, once per packet.
fn tx_time_ns(bytes: u32, bps: u64) -> u64 {
    match (bytes as u64).checked_mul(8_000_000_000) {
        Some(bits_ns) => bits_ns.div_ceil(bps),
        None => (bytes as u128 * 8_000_000_000).div_ceil(bps as u128) as u64,
    }
}

/// Neighbour slot of a next hop the router named but the node has no link to: such a
/// member takes its share of flows and they are dropped (counted), like a data plane
/// whose neighbour slot is empty.
pub const NOT_A_NEIGHBOR: u32 = u32::MAX;

/// A node's routes: NodeId prefix -> weighted next hops (neighbour node indices),
/// longest prefix first. Routes come in few lengths (/32 hosts, /16 zones, budget
/// aggregates), so one hash table per length present beats a trie here.
#[derive(Debug, Default)]
pub struct Fib {
    /// Sorted by prefix length, longest first.
    tables: Vec<(u32, HashMap<u32, NextHopSet>)>,
}

impl Fib {
    pub fn insert(&mut self, prefix: NodePrefix, set: NextHopSet) {
        let pos = match self.tables.iter().position(|(len, _)| *len <= prefix.len) {
            Some(p) if self.tables[p].0 == prefix.len => p,
            Some(p) => {
                self.tables.insert(p, (prefix.len, HashMap::new()));
                p
            }
            None => {
                self.tables.push((prefix.len, HashMap::new()));
                self.tables.len() - 1
            }
        };
        self.tables[pos].1.insert(prefix.id.0, set);
    }

    pub fn remove(&mut self, prefix: NodePrefix) {
        if let Some((_, t)) = self.tables.iter_mut().find(|(len, _)| *len == prefix.len) {
            t.remove(&prefix.id.0);
        }
    }

    /// Longest-prefix match over NodeIds.
    pub fn lookup(&self, id: u32) -> Option<&NextHopSet> {
        self.tables.iter().find_map(|(len, t)| {
            let mask = if *len == 0 { 0 } else { u32::MAX << (32 - len) };
            t.get(&(id & mask))
        })
    }

    pub fn len(&self) -> usize {
        self.tables.iter().map(|(_, t)| t.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use matrix_routing::NodeId;

    use super::*;

    #[test]
    fn channel_serialises_queues_and_drops_tail() {
        // 8 Mbit/s: 1000 bytes take 1 ms; 5 ms propagation; room for 2 packets.
        let mut c = Channel::new(0, 1, 5_000_000, 8_000_000, 2000);
        assert_eq!(c.enqueue(0, 1000), Some(6_000_000));
        assert_eq!(c.enqueue(0, 1000), Some(7_000_000));
        assert_eq!(c.enqueue(0, 1000), None, "queue full");
        // After the first finished, one slot is free again.
        assert_eq!(c.enqueue(1_000_000, 1000), Some(8_000_000));
        // Idle link: no queueing delay.
        assert_eq!(c.enqueue(100_000_000, 1000), Some(106_000_000));
        c.fail(100_000_000);
        // Serialisation rounds up; sizes too large for u64 arithmetic still come out.
        assert_eq!(tx_time_ns(1, 3), 2_666_666_667);
        assert_eq!(tx_time_ns(u32::MAX, 1_000_000_000), 34_359_738_360);
        assert_eq!((c.up, c.epoch, c.backlog_bytes()), (false, 1, 0));
        assert_eq!(c.enqueue(100_000_000, 10), None);
    }

    #[test]
    fn fib_longest_prefix_and_data_plane_pick() {
        let mut fib = Fib::default();
        let zone7: NodePrefix = "7.0/16".parse().unwrap();
        let host: NodePrefix = "7.3".parse().unwrap();
        fib.insert(zone7, NextHopSet::new(&[(1, 1)]));
        fib.insert(host, NextHopSet::new(&[(2, 1), (3, 3)]));
        fib.insert("0.0/0".parse().unwrap(), NextHopSet::new(&[(9, 1)]));
        assert_eq!(fib.len(), 3);
        assert_eq!(fib.lookup(NodeId::new(7, 9).0).unwrap().pick(0), Some(1));
        let set = fib.lookup(NodeId::new(7, 3).0).unwrap();
        // Weights 1:3 over the 16-bit hash space: the first quarter goes to 2.
        assert_eq!(set.pick(0x3FFF), Some(2));
        assert_eq!(set.pick(0x4000), Some(3));
        assert_eq!(set.pick(0xFFFF), Some(3));
        assert_eq!(fib.lookup(NodeId::new(8, 1).0).unwrap().pick(5), Some(9));
        fib.remove(host);
        assert_eq!(fib.lookup(NodeId::new(7, 3).0).unwrap().pick(0), Some(1));
    }
}
