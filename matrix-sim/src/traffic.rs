//! Offered load, after the AntNet paper's traffic models (Di Caro & Dorigo 1998, 5.2):
//! sessions arrive at each source as a Poisson process; a session goes to one
//! destination, sends a geometrically distributed number of packets with exponential
//! gaps, and carries one flow (one flow hash, so one path while the weights stand).
//!
//! - `uniform` (the paper's UP): every node is a source, destinations uniform.
//! - `hotspot` (UP-HS): UP plus a few hot-spot nodes that every other node sends extra
//!   sessions to.
//! - a traffic-matrix file: `[[flow]]` tables `{ src, dst, rate_pps }`, each an
//!   aggregate of sessions averaging `rate_pps` packets per second.
//!
//! Built-in loads scale with the network: the session rate is chosen so the offered bits
//! times the mean hop count fill [`TARGET_UTILISATION`] of the total link capacity
//! (times `--rate`); moderate load, with the busiest links well above average.

use std::{path::Path, sync::Arc};

use matrix_common::flow::flow_hash_v4;
use matrix_routing::NodeId;
use serde::Deserialize;

use crate::{
    rng::{Rng, derive},
    topology::Topology,
};

/// Packets per session (geometric mean).
pub const SESSION_PACKETS_MEAN: f64 = 50.0;
/// Mean gap between a session's packets: 50 packets/s, ~1 s sessions.
pub const SESSION_PACKET_GAP_S: f64 = 0.02;
/// Average link utilisation the built-in loads aim at when `--rate` is 1.
pub const TARGET_UTILISATION: f64 = 0.3;
/// Hot spots of the `hotspot` load: at most this many nodes...
pub const HOTSPOTS_MAX: usize = 4;
/// ...receiving this much extra load, relative to the uniform part.
pub const HOTSPOT_EXTRA: f64 = 0.5;
/// Sources sampled to estimate the mean hop count (BFS each).
const HOP_SAMPLES: usize = 32;
const UDP: u8 = 17;
/// Destination ports of the simulated flows.
const SERVICE_PORTS: [u16; 4] = [53, 443, 4433, 8080];

/// The address of a workload behind node `n`: 10.zone.host-ish, unique per node, only
/// there to feed the flow hash.
fn workload_addr(n: u32, ids: &[NodeId]) -> [u8; 4] {
    (ids[n as usize].0 ^ 0x0A00_0000).to_be_bytes()
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read load file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("load file {path}: {source}")]
    Toml {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("load file {path}: flow {index}: {what} `{value}`: {reason}")]
    Invalid {
        path: String,
        index: usize,
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// A flow of a traffic-matrix file, resolved to node indices.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixFlow {
    pub src: usize,
    pub dst: usize,
    pub rate_pps: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LoadSpec {
    Uniform,
    Hotspot,
    Matrix(Vec<MatrixFlow>),
}

#[derive(Deserialize)]
struct RawMatrix {
    #[serde(default)]
    flow: Vec<RawFlow>,
}

#[derive(Deserialize)]
struct RawFlow {
    src: String,
    dst: String,
    rate_pps: f64,
}

impl LoadSpec {
    /// `uniform`, `hotspot`, or a traffic-matrix file whose nodes must be in `topo`.
    pub fn resolve(value: &str, topo: &Topology) -> Result<Self, LoadError> {
        match value {
            "uniform" => Ok(Self::Uniform),
            "hotspot" => Ok(Self::Hotspot),
            path => {
                let text =
                    std::fs::read_to_string(Path::new(path)).map_err(|source| LoadError::Read {
                        path: path.into(),
                        source,
                    })?;
                Self::parse_matrix(&text, path, topo)
            }
        }
    }

    pub fn parse_matrix(text: &str, path: &str, topo: &Topology) -> Result<Self, LoadError> {
        let raw: RawMatrix = toml::from_str(text).map_err(|source| LoadError::Toml {
            path: path.into(),
            source,
        })?;
        let mut flows = Vec::with_capacity(raw.flow.len());
        for (index, f) in raw.flow.iter().enumerate() {
            let invalid = |what, value: &str, reason| LoadError::Invalid {
                path: path.into(),
                index,
                what,
                value: value.into(),
                reason,
            };
            let node = |what, key: &str| {
                topo.find(key)
                    .ok_or_else(|| invalid(what, key, "no node has this name or id"))
            };
            let (src, dst) = (node("src", &f.src)?, node("dst", &f.dst)?);
            if src == dst {
                return Err(invalid("dst", &f.dst, "same node as src"));
            }
            if !(f.rate_pps >= 0.0 && f.rate_pps.is_finite()) {
                let v = f.rate_pps.to_string();
                return Err(invalid("rate_pps", &v, "must be a finite number >= 0"));
            }
            flows.push(MatrixFlow {
                src,
                dst,
                rate_pps: f.rate_pps,
            });
        }
        Ok(Self::Matrix(flows))
    }
}

#[derive(Clone, Debug)]
pub enum DstChoice {
    /// Any node but the source, uniformly.
    Uniform,
    /// One of these, uniformly (skipping the source).
    Among(Vec<u32>),
    Fixed(u32),
}

/// A Poisson stream of sessions from one node.
#[derive(Clone, Debug)]
pub struct Source {
    pub src: u32,
    pub dst: DstChoice,
    pub sessions_per_s: f64,
    /// NodeIds by node index, for the flows' addresses.
    ids: Arc<[NodeId]>,
    rng: Rng,
}

/// One flow: `remaining` packets from `src` to `dst`, all with `flow_hash`.
#[derive(Clone, Debug)]
pub struct Session {
    pub src: u32,
    pub dst: u32,
    pub remaining: u32,
    pub flow_hash: u16,
    rng: Rng,
}

impl Source {
    /// Seconds until the next session starts.
    pub fn next_gap(&mut self) -> f64 {
        self.rng.exp(1.0 / self.sessions_per_s)
    }

    /// A new session; None when the destination choice leaves nothing but the source.
    pub fn start_session(&mut self) -> Option<Session> {
        let (src, nodes) = (self.src, self.ids.len());
        let dst = match &self.dst {
            DstChoice::Fixed(d) => *d,
            DstChoice::Uniform => {
                let d = self.rng.below(nodes - 1) as u32;
                if d >= src { d + 1 } else { d }
            }
            DstChoice::Among(set) => {
                let others = set.iter().filter(|&&d| d != src).count();
                if others == 0 {
                    return None;
                }
                *set.iter()
                    .filter(|&&d| d != src)
                    .nth(self.rng.below(others))?
            }
        };
        let remaining = self.rng.geometric(SESSION_PACKETS_MEAN);
        // A UDP flow between workloads of the two nodes, hashed as the data plane
        // hashes an inner 5-tuple: an ephemeral source port, a service port.
        let src_port = 32768 + self.rng.below(28232) as u16;
        let dst_port = SERVICE_PORTS[self.rng.below(SERVICE_PORTS.len())];
        let flow_hash = flow_hash_v4(
            workload_addr(src, &self.ids),
            workload_addr(dst, &self.ids),
            UDP,
            src_port,
            dst_port,
        );
        let rng = Rng::new(self.rng.next_u64());
        Some(Session {
            src,
            dst,
            remaining,
            flow_hash,
            rng,
        })
    }
}

impl Session {
    /// Seconds until this session's next packet.
    pub fn next_gap(&mut self) -> f64 {
        self.rng.exp(SESSION_PACKET_GAP_S)
    }
}

/// The sources of a run, identical for every strategy of one invocation.
#[derive(Clone, Debug)]
pub struct TrafficPlan {
    pub sources: Vec<Source>,
    pub hotspots: Vec<usize>,
    /// Mean offered packets per second, over all sources.
    pub offered_pps: f64,
}

/// Mean shortest-path hop count between distinct nodes, from sampled sources.
pub fn mean_hops(topo: &Topology, seed: u64) -> f64 {
    let adj = topo.adjacency();
    let n = topo.nodes.len();
    let mut rng = Rng::new(derive(seed, 0x4095));
    let (mut sum, mut pairs) = (0usize, 0usize);
    for k in 0..HOP_SAMPLES.min(n) {
        let src = if n <= HOP_SAMPLES { k } else { rng.below(n) };
        for d in topo.hops_from(&adj, src) {
            if d != 0 && d != usize::MAX {
                sum += d;
                pairs += 1;
            }
        }
    }
    if pairs == 0 {
        1.0
    } else {
        sum as f64 / pairs as f64
    }
}

pub fn plan(
    load: &LoadSpec,
    topo: &Topology,
    packet_bytes: u32,
    rate: f64,
    seed: u64,
) -> TrafficPlan {
    let n = topo.nodes.len();
    let ids: Arc<[NodeId]> = topo.nodes.iter().map(|n| n.id).collect();
    let source = |k: u64, src: usize, dst, pps: f64| Source {
        src: src as u32,
        dst,
        sessions_per_s: pps / SESSION_PACKETS_MEAN,
        ids: ids.clone(),
        rng: Rng::new(derive(seed, 0x7AFF_0000 + k)),
    };
    // Both directions of every link carry traffic.
    let capacity: f64 = topo.links.iter().map(|l| 2.0 * l.capacity_bps as f64).sum();
    let uniform_pps = TARGET_UTILISATION * rate * capacity
        / (n as f64 * mean_hops(topo, seed) * packet_bytes as f64 * 8.0);
    let mut sources = Vec::new();
    let mut hotspots = Vec::new();
    match load {
        LoadSpec::Uniform | LoadSpec::Hotspot => {
            for src in 0..n {
                sources.push(source(src as u64, src, DstChoice::Uniform, uniform_pps));
            }
        }
        LoadSpec::Matrix(flows) => {
            for (k, f) in flows.iter().enumerate() {
                sources.push(source(
                    k as u64,
                    f.src,
                    DstChoice::Fixed(f.dst as u32),
                    f.rate_pps * rate,
                ));
            }
        }
    }
    if *load == LoadSpec::Hotspot {
        let mut rng = Rng::new(derive(seed, 0x4075));
        let count = HOTSPOTS_MAX.min(n / 3).max(1);
        while hotspots.len() < count {
            let h = rng.below(n);
            if !hotspots.contains(&h) {
                hotspots.push(h);
            }
        }
        hotspots.sort_unstable();
        let set: Vec<u32> = hotspots.iter().map(|&h| h as u32).collect();
        for src in 0..n {
            let k = (n + src) as u64;
            sources.push(source(
                k,
                src,
                DstChoice::Among(set.clone()),
                uniform_pps * HOTSPOT_EXTRA,
            ));
        }
    }
    sources.retain(|s| s.sessions_per_s > 0.0);
    let offered_pps = sources
        .iter()
        .map(|s| s.sessions_per_s * SESSION_PACKETS_MEAN)
        .sum();
    TrafficPlan {
        sources,
        hotspots,
        offered_pps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nsfnet() -> Topology {
        Topology::from_spec("nsfnet", 1).unwrap()
    }

    #[test]
    fn uniform_load_fills_the_target_share_of_capacity() {
        let t = nsfnet();
        let p = plan(&LoadSpec::Uniform, &t, 512, 1.0, 1);
        assert_eq!(p.sources.len(), 14);
        let bits = p.offered_pps * 512.0 * 8.0 * mean_hops(&t, 1);
        let capacity = 42.0 * 1.5e6;
        assert!((bits / capacity - TARGET_UTILISATION).abs() < 1e-9);
        let double = plan(&LoadSpec::Uniform, &t, 512, 2.0, 1);
        assert!((double.offered_pps / p.offered_pps - 2.0).abs() < 1e-9);
    }

    #[test]
    fn hotspot_adds_sources_towards_a_few_nodes() {
        let t = nsfnet();
        let p = plan(&LoadSpec::Hotspot, &t, 512, 1.0, 3);
        assert_eq!(p.hotspots.len(), 4);
        assert_eq!(p.sources.len(), 28);
        let mut s = p.sources[20].clone();
        for _ in 0..100 {
            let session = s.start_session().unwrap();
            assert!(p.hotspots.contains(&(session.dst as usize)));
            assert_ne!(session.dst, session.src);
        }
    }

    #[test]
    fn sessions_hash_their_5_tuple_like_the_data_plane() {
        let t = nsfnet();
        let mut p = plan(&LoadSpec::Uniform, &t, 512, 1.0, 1);
        let hashes: std::collections::HashSet<u16> = (0..200)
            .map(|_| p.sources[0].start_session().unwrap().flow_hash)
            .collect();
        // 200 flows over 65536 hash values: nearly all distinct.
        assert!(hashes.len() > 190, "{}", hashes.len());
        let a = workload_addr(0, &p.sources[0].ids);
        assert_eq!(a, [10, 0, 0, 1]);
    }

    #[test]
    fn uniform_sessions_never_target_their_source() {
        let t = nsfnet();
        let mut p = plan(&LoadSpec::Uniform, &t, 512, 1.0, 1);
        let s = &mut p.sources[5];
        let mut seen = [false; 14];
        for _ in 0..2000 {
            let session = s.start_session().unwrap();
            seen[session.dst as usize] = true;
        }
        assert!(!seen[5]);
        assert_eq!(seen.iter().filter(|&&x| x).count(), 13);
    }

    #[test]
    fn matrix_files_resolve_and_errors_name_the_value() {
        let t = nsfnet();
        let ok = "[[flow]]\nsrc = \"0.1\"\ndst = \"0.14\"\nrate_pps = 100.0\n";
        let spec = LoadSpec::parse_matrix(ok, "m.toml", &t).unwrap();
        assert_eq!(
            spec,
            LoadSpec::Matrix(vec![MatrixFlow {
                src: 0,
                dst: 13,
                rate_pps: 100.0
            }])
        );
        let p = plan(&spec, &t, 512, 0.5, 1);
        assert!((p.offered_pps - 50.0).abs() < 1e-9);
        let bad = "[[flow]]\nsrc = \"0.1\"\ndst = \"9.9\"\nrate_pps = 1.0\n";
        let e = LoadSpec::parse_matrix(bad, "m.toml", &t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dst `9.9`") && e.contains("m.toml"), "{e}");
        let bad = "[[flow]]\nsrc = \"0.1\"\ndst = \"0.2\"\nrate_pps = -1.0\n";
        let e = LoadSpec::parse_matrix(bad, "m.toml", &t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rate_pps `-1`"), "{e}");
        let e = LoadSpec::resolve("/nonexistent/m.toml", &t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/m.toml"), "{e}");
    }
}
