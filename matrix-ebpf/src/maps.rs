//! Every map of the data plane, in one place. Layouts live in `matrix-common`.

use aya_ebpf::{
    btf_maps::{Array, DevMapHash, HashMap, LpmTrie, PerCpuArray, PerCpuHashMap, RingBuf},
    macros::btf_map,
};
use matrix_common::{
    COUNTER_SLOTS, Config, Counter, MAX_DEMAND, MAX_EGRESS, MAX_NEIGHBORS, MAX_OVERLAY_PREFIXES,
    MAX_ROUTES, Neighbor, NeighborStats, NextHopSet, NodeKey, OverlayOwner, TRACE_RING_BYTES,
    TraceConfig, TraceEvent,
};

/// `CONFIG[0]`: local NodeId, VNI, hop limit.
#[btf_map]
pub static CONFIG: Array<Config, 1> = Array::new();

/// NodeId prefix -> weighted next hops (longest prefix match).
#[btf_map]
pub static ROUTES: LpmTrie<NodeKey, NextHopSet, { MAX_ROUTES as usize }> = LpmTrie::new();

/// Neighbour slot -> underlay addresses, MACs, egress interface.
#[btf_map]
pub static NEIGHBORS: Array<Neighbor, { MAX_NEIGHBORS as usize }> = Array::new();

/// Underlay IPv4 address (network order) -> neighbour slot: who may send us overlay packets.
#[btf_map]
pub static NEIGH_BY_ADDR: HashMap<[u8; 4], u32, { MAX_NEIGHBORS as usize }> = HashMap::new();

/// Overlay IPv4 prefix -> owning node.
#[btf_map]
pub static OVERLAY_V4: LpmTrie<[u8; 4], OverlayOwner, { MAX_OVERLAY_PREFIXES as usize }> =
    LpmTrie::new();

/// Overlay IPv6 prefix -> owning node.
#[btf_map]
pub static OVERLAY_V6: LpmTrie<[u8; 16], OverlayOwner, { MAX_OVERLAY_PREFIXES as usize }> =
    LpmTrie::new();

/// Egress interfaces by ifindex, for `bpf_redirect_map`.
#[btf_map]
pub static EGRESS: DevMapHash<{ MAX_EGRESS as usize }> = DevMapHash::new();

/// Per-CPU packet counts by verdict, path and drop reason (`matrix_common::counters`).
#[btf_map]
pub static COUNTERS: PerCpuArray<Counter, { COUNTER_SLOTS as usize }> = PerCpuArray::new();

/// Per-CPU bytes and packets exchanged with each neighbour slot.
#[btf_map]
pub static NEIGH_STATS: PerCpuArray<NeighborStats, { MAX_NEIGHBORS as usize }> = PerCpuArray::new();

/// Per-CPU packets that entered the overlay here, by destination node: the local traffic
/// the agent's AntNet draws ant destinations from.
#[btf_map]
pub static DEMAND: PerCpuHashMap<u32, u64, { MAX_DEMAND as usize }> = PerCpuHashMap::new();

/// `TRACE_CONFIG[0]`: what `matrix trace` asked for; all zero (nothing) by default.
#[btf_map]
pub static TRACE_CONFIG: Array<TraceConfig, 1> = Array::new();

/// Traced packets for `matrix trace` to read.
#[btf_map]
pub static TRACE: RingBuf<TraceEvent, { TRACE_RING_BYTES as usize }> = RingBuf::new();
