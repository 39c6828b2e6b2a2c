//! The one facade over the XDP programs and their maps: domain calls
//! (`install_route`, `set_neighbor`, `stats`) instead of raw map handles spread around.
//!
//! [`DataPlane`] works on the pinned maps of one node, so the agent and every CLI
//! client use the same code; [`load`] loads, pins and attaches the programs.

pub mod load;
mod stats;

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use aya::maps::{
    Array, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, lpm_trie::Key,
    xdp::DevMapHash,
};
use ipnet::IpNet;
use matrix_common::{
    COUNTER_SLOTS, Config, MAX_NEIGHBORS, NEIGHBOR_F_RESOLVED, NEIGHBOR_F_VALID, Neighbor,
    NeighborStats, NextHopSet, NodeKey, OverlayOwner, names,
};

pub use stats::{NeighborRow, Stats, mac_string};

use crate::node::{NodeId, NodePrefix};

/// Root of every node's pin directory.
pub const PIN_ROOT: &str = "/sys/fs/bpf/matrix";

/// The compiled `matrix-ebpf` object, embedded at build time by `build.rs`.
pub fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/matrix"))
}

/// Pin directory of the node called `name`.
pub fn pin_dir(name: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(name)
}

#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error("no matrix data plane is pinned at {dir} (is the agent running? see `matrix agent`)")]
    NotPinned { dir: PathBuf },
    #[error("cannot open pinned map {path}")]
    OpenMap {
        path: PathBuf,
        #[source]
        source: Box<MapError>,
    },
    #[error("map {map}: {op} of {key} failed")]
    Map {
        map: &'static str,
        op: &'static str,
        key: String,
        #[source]
        source: Box<MapError>,
    },
    #[error("map EGRESS: cannot add ifindex {ifindex}")]
    Egress {
        ifindex: u32,
        #[source]
        source: Box<aya::maps::xdp::XdpMapError>,
    },
    #[error("neighbour slot {slot} is out of range (max {max})", max = MAX_NEIGHBORS - 1)]
    SlotRange { slot: u32 },
    #[error("loading the XDP object failed")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("program {name}: {op} failed")]
    Program {
        name: &'static str,
        op: String,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("interface {iface}: {reason}")]
    Interface { iface: String, reason: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, DataPlaneError>;

fn map_err(
    map: &'static str,
    op: &'static str,
    key: impl ToString,
) -> impl FnOnce(MapError) -> DataPlaneError {
    move |source| DataPlaneError::Map {
        map,
        op,
        key: key.to_string(),
        source: Box::new(source),
    }
}

fn open<T>(dir: &Path, name: &'static str) -> Result<T>
where
    T: TryFrom<Map, Error = MapError>,
{
    let path = dir.join(name);
    let open_err = |source| DataPlaneError::OpenMap {
        path: path.clone(),
        source: Box::new(source),
    };
    let data = MapData::from_pin(&path).map_err(open_err)?;
    let map = Map::from_map_data(data).map_err(open_err)?;
    T::try_from(map).map_err(open_err)
}

/// Handles on one node's pinned maps.
pub struct DataPlane {
    dir: PathBuf,
    config: Array<MapData, Config>,
    routes: LpmTrie<MapData, NodeKey, NextHopSet>,
    neighbors: Array<MapData, Neighbor>,
    neigh_by_addr: HashMap<MapData, [u8; 4], u32>,
    overlay_v4: LpmTrie<MapData, [u8; 4], OverlayOwner>,
    overlay_v6: LpmTrie<MapData, [u8; 16], OverlayOwner>,
    egress: DevMapHash<MapData>,
    counters: PerCpuArray<MapData, u64>,
    neigh_stats: PerCpuArray<MapData, NeighborStats>,
    demand: PerCpuHashMap<MapData, u32, u64>,
}

/// A route as read back from the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: NodePrefix,
    pub set: NextHopSet,
}

impl DataPlane {
    /// Opens the maps pinned under `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.join(names::CONFIG).exists() {
            return Err(DataPlaneError::NotPinned {
                dir: dir.to_path_buf(),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config: open(dir, names::CONFIG)?,
            routes: open(dir, names::ROUTES)?,
            neighbors: open(dir, names::NEIGHBORS)?,
            neigh_by_addr: open(dir, names::NEIGH_BY_ADDR)?,
            overlay_v4: open(dir, names::OVERLAY_V4)?,
            overlay_v6: open(dir, names::OVERLAY_V6)?,
            egress: open(dir, names::EGRESS)?,
            counters: open(dir, names::COUNTERS)?,
            neigh_stats: open(dir, names::NEIGH_STATS)?,
            demand: open(dir, names::DEMAND)?,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> Result<Config> {
        self.config
            .get(&0, 0)
            .map_err(map_err(names::CONFIG, "read", 0))
    }

    pub fn set_config(&mut self, config: Config) -> Result<()> {
        self.config
            .set(0, config, 0)
            .map_err(map_err(names::CONFIG, "write", 0))
    }

    /// Lets the programs redirect to `ifindex`.
    pub fn add_egress(&mut self, ifindex: u32) -> Result<()> {
        self.egress
            .insert(ifindex, ifindex, None, 0)
            .map_err(|source| DataPlaneError::Egress {
                ifindex,
                source: Box::new(source),
            })
    }

    /// Writes neighbour `slot` and indexes its underlay address, so packets from it are
    /// accepted.
    pub fn set_neighbor(&mut self, slot: u32, neighbor: Neighbor) -> Result<()> {
        if slot >= MAX_NEIGHBORS {
            return Err(DataPlaneError::SlotRange { slot });
        }
        // Index first: a slot is never reachable by address before it is written...
        self.neighbors
            .set(slot, neighbor, 0)
            .map_err(map_err(names::NEIGHBORS, "write", slot))?;
        // ...and the address only maps to a fully written slot.
        self.neigh_by_addr
            .insert(neighbor.remote_ipv4, slot, 0)
            .map_err(map_err(
                names::NEIGH_BY_ADDR,
                "insert",
                Ipv4Addr::from(neighbor.remote_ipv4),
            ))
    }

    /// Forgets neighbour `slot`.
    pub fn clear_neighbor(&mut self, slot: u32) -> Result<()> {
        let old = self.neighbor(slot)?;
        if old.flags & NEIGHBOR_F_VALID != 0 {
            match self.neigh_by_addr.remove(&old.remote_ipv4) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => {
                    return Err(map_err(
                        names::NEIGH_BY_ADDR,
                        "remove",
                        Ipv4Addr::from(old.remote_ipv4),
                    )(e));
                }
            }
        }
        self.neighbors
            .set(slot, Neighbor::default(), 0)
            .map_err(map_err(names::NEIGHBORS, "write", slot))
    }

    pub fn neighbor(&self, slot: u32) -> Result<Neighbor> {
        self.neighbors
            .get(&slot, 0)
            .map_err(map_err(names::NEIGHBORS, "read", slot))
    }

    /// Every configured neighbour with its slot.
    pub fn neighbors(&self) -> Result<Vec<(u32, Neighbor)>> {
        let mut out = Vec::new();
        for slot in 0..MAX_NEIGHBORS {
            let n = self.neighbor(slot)?;
            if n.flags & NEIGHBOR_F_VALID != 0 {
                out.push((slot, n));
            }
        }
        Ok(out)
    }

    /// Marks neighbour `slot` resolved with its underlay MAC.
    pub fn resolve_neighbor(&mut self, slot: u32, mac: [u8; 6]) -> Result<()> {
        let mut n = self.neighbor(slot)?;
        n.remote_mac = mac;
        n.flags |= NEIGHBOR_F_RESOLVED;
        self.set_neighbor(slot, n)
    }

    /// Installs or replaces the next-hop set of `dst` in one map update, so the old set
    /// serves packets until the new one is in place.
    pub fn install_route(&mut self, dst: NodePrefix, set: NextHopSet) -> Result<()> {
        let key = Key::new(dst.len, dst.id.0.to_be_bytes());
        self.routes
            .insert(&key, set, 0)
            .map_err(map_err(names::ROUTES, "insert", dst))
    }

    /// Installs or replaces many routes in order, each as [`DataPlane::install_route`]
    /// does: one map update per route, so every route is whole at every instant. Not one
    /// `BPF_MAP_UPDATE_BATCH` call: the kernel takes it on the LPM trie, but aya 0.14 has
    /// no batch call and this crate forbids unsafe code (the `map_update` bench times
    /// both). Stops at the first failure, with the routes before it installed; returns
    /// how many were written.
    pub fn install_routes(
        &mut self,
        routes: impl IntoIterator<Item = (NodePrefix, NextHopSet)>,
    ) -> Result<usize> {
        let mut written = 0;
        for (dst, set) in routes {
            self.install_route(dst, set)?;
            written += 1;
        }
        Ok(written)
    }

    pub fn remove_route(&mut self, dst: NodePrefix) -> Result<()> {
        let key = Key::new(dst.len, dst.id.0.to_be_bytes());
        self.routes
            .remove(&key)
            .map_err(map_err(names::ROUTES, "remove", dst))
    }

    pub fn routes(&self) -> Result<Vec<RouteEntry>> {
        let mut out = Vec::new();
        for item in self.routes.iter() {
            let (key, set) = item.map_err(map_err(names::ROUTES, "iterate", "-"))?;
            out.push(RouteEntry {
                dst: NodePrefix {
                    id: NodeId(u32::from_be_bytes(key.data())),
                    len: key.prefix_len(),
                },
                set,
            });
        }
        out.sort_by_key(|r| r.dst);
        Ok(out)
    }

    /// Records that overlay prefix `net` is owned by node `owner`.
    pub fn add_overlay_prefix(&mut self, net: IpNet, owner: NodeId) -> Result<()> {
        let value = OverlayOwner {
            node_id: owner.0,
            flags: 0,
        };
        match net {
            IpNet::V4(n) => self
                .overlay_v4
                .insert(
                    &Key::new(n.prefix_len() as u32, n.addr().octets()),
                    value,
                    0,
                )
                .map_err(map_err(names::OVERLAY_V4, "insert", net)),
            IpNet::V6(n) => self
                .overlay_v6
                .insert(
                    &Key::new(n.prefix_len() as u32, n.addr().octets()),
                    value,
                    0,
                )
                .map_err(map_err(names::OVERLAY_V6, "insert", net)),
        }
    }

    /// Every overlay prefix with its owner.
    pub fn overlay_prefixes(&self) -> Result<Vec<(IpNet, NodeId)>> {
        let mut out = Vec::new();
        for item in self.overlay_v4.iter() {
            let (k, v) = item.map_err(map_err(names::OVERLAY_V4, "iterate", "-"))?;
            if let Ok(net) = ipnet::Ipv4Net::new(k.data().into(), k.prefix_len() as u8) {
                out.push((IpNet::V4(net), NodeId(v.node_id)));
            }
        }
        for item in self.overlay_v6.iter() {
            let (k, v) = item.map_err(map_err(names::OVERLAY_V6, "iterate", "-"))?;
            if let Ok(net) = ipnet::Ipv6Net::new(k.data().into(), k.prefix_len() as u8) {
                out.push((IpNet::V6(net), NodeId(v.node_id)));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Packets that entered the overlay here, per destination node, summed over CPUs.
    pub fn demand(&self) -> Result<Vec<(NodeId, u64)>> {
        let mut out = Vec::new();
        for item in self.demand.iter() {
            let (dst, per_cpu) = item.map_err(map_err(names::DEMAND, "iterate", "-"))?;
            out.push((NodeId(dst), per_cpu.iter().sum()));
        }
        out.sort();
        Ok(out)
    }

    /// Removes a route-owner entry for an overlay prefix.
    pub fn remove_overlay_prefix(&mut self, net: IpNet) -> Result<()> {
        let r = match net {
            IpNet::V4(n) => self
                .overlay_v4
                .remove(&Key::new(n.prefix_len() as u32, n.addr().octets())),
            IpNet::V6(n) => self
                .overlay_v6
                .remove(&Key::new(n.prefix_len() as u32, n.addr().octets())),
        };
        match r {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::OVERLAY_V4, "remove", net)(e)),
        }
    }

    /// Counter slots summed over CPUs, indexed by `matrix_common::counters` slot.
    pub fn counters(&self) -> Result<Vec<u64>> {
        (0..COUNTER_SLOTS)
            .map(|slot| {
                self.counters
                    .get(&slot, 0)
                    .map(|v| v.iter().sum())
                    .map_err(map_err(names::COUNTERS, "read", slot))
            })
            .collect()
    }

    /// Traffic with neighbour `slot`, summed over CPUs.
    pub fn neighbor_stats(&self, slot: u32) -> Result<NeighborStats> {
        let per_cpu =
            self.neigh_stats
                .get(&slot, 0)
                .map_err(map_err(names::NEIGH_STATS, "read", slot))?;
        Ok(per_cpu
            .iter()
            .fold(NeighborStats::default(), |a, s| NeighborStats {
                rx_packets: a.rx_packets + s.rx_packets,
                rx_bytes: a.rx_bytes + s.rx_bytes,
                tx_packets: a.tx_packets + s.tx_packets,
                tx_bytes: a.tx_bytes + s.tx_bytes,
            }))
    }
}

/// Every node pinned on this host: `(name, dir)`.
pub fn pinned_nodes() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(PIN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(names::CONFIG).exists())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort();
    out
}
