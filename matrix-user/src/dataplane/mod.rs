//! The one facade over the XDP programs and their maps: domain calls
//! (`install_route`, `set_neighbor`, `stats`) instead of raw map handles spread around.
//!
//! [`DataPlane`] works on the maps of one node, pinned or of a loaded object, so the
//! agent, every CLI client and the tests use the same code; [`load`] loads, pins and
//! attaches the programs.
//! Callers name neighbours by [`NodeId`]: which `NEIGHBORS` slot holds which neighbour
//! is the facade's business (`neighbors.rs`), rebuilt from the map whenever it opens one.

pub mod load;
mod neighbors;
mod routes;
mod stats;
pub mod trace;

use std::{
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    maps::{
        Array, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, lpm_trie::Key,
        xdp::DevMapHash,
    },
    sys::SyscallError,
};
use ipnet::IpNet;
use matrix_common::{
    COUNTER_SLOTS, Config, MAX_NEIGHBORS, MAX_NEXT_HOPS, Neighbor, NeighborStats, NextHopSet,
    NodeKey, OverlayOwner, TraceConfig, names,
};

pub use neighbors::UnderlayLink;
pub use routes::{RouteEntry, RouteHop};
pub use stats::{NeighborRow, Stats, mac_string};

use crate::node::{NodeId, NodePrefix};

/// Root of every node's pin directory.
pub use matrix_schema::PIN_ROOT;

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
    #[error("map {name} is not in the loaded object")]
    MissingMap { name: &'static str },
    #[error("cannot open map {name} of the loaded object")]
    OpenLoaded {
        name: &'static str,
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
    #[error("no neighbour {node} in the data plane")]
    UnknownNeighbor { node: NodeId },
    #[error("no free neighbour slot for {node}: all {MAX_NEIGHBORS} are taken")]
    NoFreeSlot { node: NodeId },
    #[error("route {dst}: next hop {node} is not a neighbour in the data plane")]
    UnknownNextHop { dst: NodePrefix, node: NodeId },
    #[error("route {dst}: {count} next hops, at most {MAX_NEXT_HOPS} fit")]
    TooManyNextHops { dst: NodePrefix, count: usize },
    #[error(
        "the data plane pinned at {dir} has another layout: map {map} has {found}, this agent needs {expected}; \
         stop the agent that runs it, or if none runs remove {dir} (`matrix` cleans it on a clean stop), then start again"
    )]
    Layout {
        dir: PathBuf,
        map: &'static str,
        found: String,
        expected: String,
    },
    #[error("pinned link {pin}: {reason}")]
    Link { pin: PathBuf, reason: String },
    #[error("loading the XDP object failed")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("program {name}: {op} failed")]
    Program {
        name: String,
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

/// The kernel map behind a map of a loaded object, for the map types the data plane has.
fn map_data(map: &Map) -> Option<&MapData> {
    match map {
        Map::Array(d)
        | Map::HashMap(d)
        | Map::LpmTrie(d)
        | Map::DevMapHash(d)
        | Map::PerCpuArray(d)
        | Map::PerCpuHashMap(d)
        | Map::RingBuf(d) => Some(d),
        _ => None,
    }
}

/// A second handle (a duplicated fd) on map `name` of a loaded object, which keeps its own.
fn open_loaded<T>(ebpf: &Ebpf, name: &'static str) -> Result<T>
where
    T: TryFrom<Map, Error = MapError>,
{
    let open_err = |source| DataPlaneError::OpenLoaded {
        name,
        source: Box::new(source),
    };
    let data = ebpf
        .map(name)
        .and_then(map_data)
        .ok_or(DataPlaneError::MissingMap { name })?;
    let fd = data.fd().as_fd().try_clone_to_owned().map_err(|io_error| {
        open_err(MapError::from(SyscallError {
            call: "dup",
            io_error,
        }))
    })?;
    let data = MapData::from_fd(fd).map_err(open_err)?;
    let map = Map::from_map_data(data).map_err(open_err)?;
    T::try_from(map).map_err(open_err)
}

/// Where the maps come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Pinned(&'a Path),
    Loaded(&'a Ebpf),
}

impl Source<'_> {
    fn open<T>(self, name: &'static str) -> Result<T>
    where
        T: TryFrom<Map, Error = MapError>,
    {
        match self {
            Source::Pinned(dir) => open(dir, name),
            Source::Loaded(ebpf) => open_loaded(ebpf, name),
        }
    }
}

/// Handles on one node's maps, and which neighbour holds which slot.
pub struct DataPlane {
    /// `None` for the maps of a loaded, unpinned object.
    dir: Option<PathBuf>,
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
    trace_config: Array<MapData, TraceConfig>,
    slots: neighbors::Slots,
}

impl DataPlane {
    /// Opens the maps pinned under `dir` (a running or an earlier agent's), and learns
    /// which neighbour holds which slot from them.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.join(names::CONFIG).exists() {
            return Err(DataPlaneError::NotPinned {
                dir: dir.to_path_buf(),
            });
        }
        Self::from_source(Some(dir.to_path_buf()), Source::Pinned(dir))
    }

    /// The facade over the maps of an object loaded by [`load::load_unattached`], through
    /// second handles: the object keeps its own, and its programs run on the same maps.
    pub fn of_loaded(ebpf: &Ebpf) -> Result<Self> {
        Self::from_source(None, Source::Loaded(ebpf))
    }

    fn from_source(dir: Option<PathBuf>, src: Source<'_>) -> Result<Self> {
        let mut dp = Self {
            dir,
            config: src.open(names::CONFIG)?,
            routes: src.open(names::ROUTES)?,
            neighbors: src.open(names::NEIGHBORS)?,
            neigh_by_addr: src.open(names::NEIGH_BY_ADDR)?,
            overlay_v4: src.open(names::OVERLAY_V4)?,
            overlay_v6: src.open(names::OVERLAY_V6)?,
            egress: src.open(names::EGRESS)?,
            counters: src.open(names::COUNTERS)?,
            neigh_stats: src.open(names::NEIGH_STATS)?,
            demand: src.open(names::DEMAND)?,
            trace_config: src.open(names::TRACE_CONFIG)?,
            slots: neighbors::Slots::default(),
        };
        dp.slots = dp.adopt_slots()?;
        Ok(dp)
    }

    /// The pin directory; `None` for a loaded, unpinned object.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
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
        self.add_egress_alias(ifindex, ifindex)
    }

    /// Lets the programs redirect to `ifindex`, delivering out of interface `target`.
    /// The agent maps each interface to itself ([`DataPlane::add_egress`]); the packet
    /// fixtures alias a made-up ifindex to lo, so a redirect succeeds on any host.
    pub fn add_egress_alias(&mut self, ifindex: u32, target: u32) -> Result<()> {
        self.egress
            .insert(ifindex, target, None, 0)
            .map_err(|source| DataPlaneError::Egress {
                ifindex,
                source: Box::new(source),
            })
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
