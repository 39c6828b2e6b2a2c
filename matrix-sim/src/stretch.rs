//! Path stretch (DESIGN.md section 7): for a delivered packet, the propagation delay of
//! the links it actually crossed over the least propagation delay any path between its
//! two ends has (Dijkstra over the topology's link delays). 1 is a shortest path; zones
//! and borders trade some of it for smaller tables.
//!
//! Bounded cost at any fleet size: only packets from at most [`SAMPLED_SOURCES`] sources
//! (evenly spread over the node list, so over every zone) are measured, at most
//! [`MAX_SAMPLES`] of them are kept (reservoir sampling, seeded), and after the run one
//! Dijkstra per sampled source that has samples gives the shortest delays, one source at
//! a time (memory: one distance per node, once).

use std::{cmp::Reverse, collections::BinaryHeap};

use serde::Serialize;

use crate::{rng::Rng, topology::Topology};

/// Sources whose packets are measured; every node in fleets up to this size.
pub const SAMPLED_SOURCES: usize = 256;
/// Measured packets kept (16 bytes each); beyond, a uniform sample of them.
pub const MAX_SAMPLES: usize = 200_000;

/// Stretch over the measured packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Stretch {
    /// Delivered packets measured (sampled sources, measurement window).
    pub packets: u64,
    pub mean: Option<f64>,
    /// Nearest-rank 99th percentile.
    pub p99: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Collects (source, destination, path delay) of delivered packets during a run.
#[derive(Debug)]
pub struct StretchSampler {
    /// Per node: are its packets measured.
    sampled: Vec<bool>,
    samples: Vec<(u32, u32, u64)>,
    seen: u64,
    rng: Rng,
}

impl StretchSampler {
    pub fn new(nodes: usize, seed: u64) -> Self {
        let mut sampled = vec![false; nodes];
        let sources = nodes.min(SAMPLED_SOURCES);
        for i in 0..sources {
            sampled[i * nodes / sources] = true;
        }
        Self {
            sampled,
            samples: Vec::new(),
            seen: 0,
            rng: Rng::new(seed),
        }
    }

    /// Whether packets from node `src` are measured.
    pub fn wants(&self, src: u32) -> bool {
        self.sampled.get(src as usize).copied().unwrap_or(false)
    }

    /// A measured packet from `src` reached `dst` over links of `path_ns` total delay.
    pub fn record(&mut self, src: u32, dst: u32, path_ns: u64) {
        if !self.wants(src) {
            return;
        }
        self.seen += 1;
        let sample = (src, dst, path_ns);
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(sample);
        } else {
            // Reservoir: the n-th sample replaces a kept one with probability cap / n.
            let k = (self.rng.next_u64() % self.seen) as usize;
            if k < MAX_SAMPLES {
                self.samples[k] = sample;
            }
        }
    }

    /// Stretch of every kept sample against the shortest delays over `topo`.
    pub fn finish(mut self, topo: &Topology) -> Stretch {
        if self.samples.is_empty() {
            return Stretch::default();
        }
        self.samples.sort_unstable();
        let adj = topo.adjacency();
        let mut dist = Vec::new();
        let mut ratios = Vec::with_capacity(self.samples.len());
        let mut current = None;
        for &(src, dst, path_ns) in &self.samples {
            if current != Some(src) {
                delays_from(topo, &adj, src as usize, &mut dist);
                current = Some(src);
            }
            let best = dist[dst as usize];
            if best > 0 && best != u64::MAX {
                ratios.push(path_ns as f64 / best as f64);
            }
        }
        summarise(self.seen, &mut ratios)
    }
}

fn summarise(packets: u64, ratios: &mut [f64]) -> Stretch {
    let n = ratios.len();
    if n == 0 {
        return Stretch {
            packets,
            ..Stretch::default()
        };
    }
    ratios.sort_unstable_by(f64::total_cmp);
    let rank = ((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1;
    Stretch {
        packets,
        mean: Some(ratios.iter().sum::<f64>() / n as f64),
        p99: Some(ratios[rank]),
        min: Some(ratios[0]),
        max: Some(ratios[n - 1]),
    }
}

/// Least total link delay from `src` to every node (u64::MAX where unreachable).
fn delays_from(topo: &Topology, adj: &[Vec<(usize, usize)>], src: usize, dist: &mut Vec<u64>) {
    dist.clear();
    dist.resize(topo.nodes.len(), u64::MAX);
    dist[src] = 0;
    let mut heap = BinaryHeap::from([Reverse((0u64, src))]);
    while let Some(Reverse((d, u))) = heap.pop() {
        if d > dist[u] {
            continue;
        }
        for &(v, link) in &adj[u] {
            let nd = d + topo.links[link].delay_ns;
            if nd < dist[v] {
                dist[v] = nd;
                heap.push(Reverse((nd, v)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// a-b 1 ms, b-c 1 ms, a-c 5 ms: the shortest a-c path goes through b (2 ms).
    fn triangle() -> Topology {
        Topology::parse(
            "[[node]]\nname = \"a\"\nid = \"0.1\"\n[[node]]\nname = \"b\"\nid = \"0.2\"\n\
             [[node]]\nname = \"c\"\nid = \"0.3\"\n\
             [[link]]\na = \"a\"\nb = \"b\"\ndelay_ms = 1.0\n\
             [[link]]\na = \"b\"\nb = \"c\"\ndelay_ms = 1.0\n\
             [[link]]\na = \"a\"\nb = \"c\"\ndelay_ms = 5.0\n",
            "triangle",
        )
        .unwrap()
    }

    #[test]
    fn stretch_is_taken_against_the_least_delay_path() {
        let t = triangle();
        let mut s = StretchSampler::new(3, 1);
        // a -> c straight over the 5 ms link: 2.5; a -> c via b, and c -> b: 1.
        s.record(0, 2, 5_000_000);
        s.record(0, 2, 2_000_000);
        s.record(2, 1, 1_000_000);
        let st = s.finish(&t);
        assert_eq!(st.packets, 3);
        assert_eq!(st.min, Some(1.0));
        assert_eq!(st.max, Some(2.5));
        assert_eq!(st.p99, Some(2.5));
        assert_eq!(st.mean, Some(4.5 / 3.0));
        assert_eq!(StretchSampler::new(3, 1).finish(&t), Stretch::default());
    }

    #[test]
    fn sources_are_sampled_evenly_and_samples_capped() {
        let s = StretchSampler::new(1000, 1);
        let sampled: Vec<u32> = (0..1000).filter(|&i| s.wants(i)).collect();
        assert_eq!(sampled.len(), SAMPLED_SOURCES);
        assert_eq!((sampled[0], sampled[1]), (0, 3));
        assert!(StretchSampler::new(10, 1).wants(9));
        let mut s = StretchSampler::new(3, 1);
        for i in 0..MAX_SAMPLES as u64 + 1000 {
            s.record(0, 1, 1_000_000 + i % 2);
        }
        assert_eq!(
            (s.seen, s.samples.len()),
            (MAX_SAMPLES as u64 + 1000, MAX_SAMPLES)
        );
    }
}
