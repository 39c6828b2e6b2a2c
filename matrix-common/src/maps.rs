//! BPF map layouts: names, sizes, keys and values. The agent writes these maps; the XDP
//! programs only read them (counters aside).

/// Map names as declared in `matrix-ebpf`; pinned under `/sys/fs/bpf/matrix/<node>/<name>`.
pub mod names {
    pub const CONFIG: &str = "CONFIG";
    pub const ROUTES: &str = "ROUTES";
    pub const NEIGHBORS: &str = "NEIGHBORS";
    pub const NEIGH_BY_ADDR: &str = "NEIGH_BY_ADDR";
    pub const OVERLAY_V4: &str = "OVERLAY_V4";
    pub const OVERLAY_V6: &str = "OVERLAY_V6";
    pub const EGRESS: &str = "EGRESS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const NEIGH_STATS: &str = "NEIGH_STATS";
    pub const DEMAND: &str = "DEMAND";
    pub const TRACE_CONFIG: &str = "TRACE_CONFIG";
    pub const TRACE: &str = "TRACE";
    pub const ALL: [&str; 12] = [
        CONFIG,
        ROUTES,
        NEIGHBORS,
        NEIGH_BY_ADDR,
        OVERLAY_V4,
        OVERLAY_V6,
        EGRESS,
        COUNTERS,
        NEIGH_STATS,
        DEMAND,
        TRACE_CONFIG,
        TRACE,
    ];
}

/// Program names as declared in `matrix-ebpf`.
pub mod programs {
    /// Attached to underlay interfaces: transit, decapsulation, pass-through.
    pub const UNDERLAY: &str = "matrix_underlay";
    /// Attached to workload-facing interfaces: encapsulation.
    pub const WORKLOAD: &str = "matrix_workload";
    /// `XDP_PASS` for the far end of veths that receive redirected frames.
    pub const PASS: &str = "matrix_pass";
}

/// Neighbour slots: a node talks to a bounded set of neighbours, never a full mesh.
pub const MAX_NEIGHBORS: u32 = 256;
/// Next hops per route (DESIGN.md section 4).
pub const MAX_NEXT_HOPS: usize = 4;
/// NodeId prefixes in `ROUTES`.
pub const MAX_ROUTES: u32 = 131_072;
/// Overlay prefixes per address family.
pub const MAX_OVERLAY_PREFIXES: u32 = 65_536;
/// Destination nodes tracked in `DEMAND`.
pub const MAX_DEMAND: u32 = 16_384;
/// Egress interfaces in the devmap.
pub const MAX_EGRESS: u32 = 64;

/// `CONFIG[0]`: this node's identity and data-plane settings.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Local NodeId; 0 means "not configured yet", and the programs pass everything.
    pub node_id: u32,
    /// Geneve VNI of this overlay; packets with another VNI are dropped.
    pub vni: u32,
    /// Hop limit written by encapsulation.
    pub hop_limit: u32,
    pub flags: u32,
    /// [`LAYOUT_VERSION`] of the agent that wrote this entry: a restarted agent adopts
    /// pinned maps only of its own layout.
    pub layout: u32,
}

/// Version of the pinned maps' layout and meaning (keys, values, sizes, slot numbers).
/// Bump it with any change an agent could misread in maps an older agent pinned.
pub const LAYOUT_VERSION: u32 = 4;

/// `NEIGHBORS[slot]`: how to reach one neighbour over the underlay.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Neighbor {
    pub node_id: u32,
    /// Egress interface towards the neighbour.
    pub ifindex: u32,
    /// IP MTU of that interface: encapsulated packets larger than this are dropped.
    pub mtu: u32,
    /// `NEIGHBOR_F_*` bits.
    pub flags: u32,
    /// Our address on the shared link (network byte order).
    pub local_ipv4: [u8; 4],
    /// The neighbour's address on the shared link (network byte order).
    pub remote_ipv4: [u8; 4],
    pub local_mac: [u8; 6],
    pub remote_mac: [u8; 6],
}

/// The slot holds a configured neighbour.
pub const NEIGHBOR_F_VALID: u32 = 1 << 0;
/// The neighbour's MAC has been learnt; without it the slot cannot be used as a next hop.
pub const NEIGHBOR_F_RESOLVED: u32 = 1 << 1;

impl Neighbor {
    #[inline(always)]
    pub const fn usable(&self) -> bool {
        self.flags & (NEIGHBOR_F_VALID | NEIGHBOR_F_RESOLVED)
            == (NEIGHBOR_F_VALID | NEIGHBOR_F_RESOLVED)
    }
}

/// One weighted member of a next-hop set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextHop {
    /// Slot in `NEIGHBORS`.
    pub neighbor: u32,
    pub weight: u32,
}

/// `ROUTES[NodeId prefix]`: up to [`MAX_NEXT_HOPS`] weighted next hops.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextHopSet {
    /// Members in use, from the front of `hops`.
    pub count: u32,
    /// Sum of the members' weights; kept in the map so the hot path need not add them.
    pub total_weight: u32,
    pub hops: [NextHop; MAX_NEXT_HOPS],
}

impl NextHopSet {
    /// Builds a set from `(neighbor slot, weight)` pairs; members past the fourth are
    /// ignored, members of weight 0 are kept (they take no flows).
    pub fn new(members: &[(u32, u32)]) -> Self {
        let mut set = Self::default();
        let mut i = 0;
        while i < members.len() && i < MAX_NEXT_HOPS {
            set.hops[i] = NextHop {
                neighbor: members[i].0,
                weight: members[i].1,
            };
            set.total_weight += members[i].1;
            i += 1;
        }
        set.count = i as u32;
        set
    }

    /// The member that carries flow `flow_hash`: the hash is scaled onto
    /// `[0, total_weight)` and walks the cumulative weights, so a weight change moves
    /// only the flows whose point crosses a boundary.
    #[inline(always)]
    pub fn pick(&self, flow_hash: u16) -> Option<u32> {
        if self.total_weight == 0 {
            return None;
        }
        let point = ((flow_hash as u64 * self.total_weight as u64) >> 16) as u32;
        let mut acc = 0u32;
        let mut i = 0;
        while i < MAX_NEXT_HOPS {
            if i as u32 >= self.count {
                break;
            }
            acc += self.hops[i].weight;
            if point < acc {
                return Some(self.hops[i].neighbor);
            }
            i += 1;
        }
        None
    }
}

/// `OVERLAY_V4` / `OVERLAY_V6` value: the node that owns an overlay prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverlayOwner {
    pub node_id: u32,
    pub flags: u32,
}

/// `NEIGH_STATS[slot]` (per CPU): traffic exchanged with one neighbour.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NeighborStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// `COUNTERS[slot]` (per CPU): one packet count.
pub type Counter = u64;

/// Data part of the `ROUTES` LPM key: a NodeId in network byte order, so that the
/// trie's most-significant-bit-first matching walks zone bits before host bits.
pub type NodeKey = [u8; 4];

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for Neighbor {}
    unsafe impl aya::Pod for NextHop {}
    unsafe impl aya::Pod for NextHopSet {}
    unsafe impl aya::Pod for OverlayOwner {}
    unsafe impl aya::Pod for NeighborStats {}
}

const _: () = assert!(size_of::<Config>() == 20);
const _: () = assert!(size_of::<Neighbor>() == 36);
const _: () = assert!(size_of::<NextHopSet>() == 40);
const _: () = assert!(size_of::<OverlayOwner>() == 8);
const _: () = assert!(size_of::<NeighborStats>() == 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_follows_weights() {
        let set = NextHopSet::new(&[(7, 1), (9, 3)]);
        let mut hits = [0u32; 2];
        for h in 0..=u16::MAX {
            match set.pick(h) {
                Some(7) => hits[0] += 1,
                Some(9) => hits[1] += 1,
                other => panic!("unexpected pick {other:?}"),
            }
        }
        assert_eq!(hits, [16384, 49152]);
    }

    #[test]
    fn pick_on_empty_or_zero_weight_is_none() {
        assert_eq!(NextHopSet::default().pick(5), None);
        assert_eq!(NextHopSet::new(&[(1, 0)]).pick(5), None);
    }

    #[test]
    fn reweighting_moves_only_crossing_flows() {
        let before = NextHopSet::new(&[(1, 1), (2, 1)]);
        let after = NextHopSet::new(&[(1, 1), (2, 1), (3, 1)]);
        let moved = (0..=u16::MAX)
            .filter(|h| before.pick(*h) != after.pick(*h))
            .count();
        // Adding a third equal member must move about a third of the flows, not all.
        assert!(moved < 65536 / 2, "moved {moved}");
    }

    #[test]
    fn new_keeps_at_most_four() {
        let set = NextHopSet::new(&[(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]);
        assert_eq!(set.count, 4);
        assert_eq!(set.total_weight, 4);
    }
}
