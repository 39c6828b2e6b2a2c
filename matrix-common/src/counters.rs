//! Slot indices of the per-CPU `COUNTERS` array, shared so both sides agree.
//!
//! Three groups: the final XDP verdict (slot = XDP action code), what the program did
//! with the packet (path), and why a packet was dropped (drop reason).

pub const VERDICT_ABORTED: u32 = 0;
pub const VERDICT_DROP: u32 = 1;
pub const VERDICT_PASS: u32 = 2;
pub const VERDICT_TX: u32 = 3;
pub const VERDICT_REDIRECT: u32 = 4;

/// Relayed to another node without decapsulation.
pub const PATH_TRANSIT: u32 = 5;
/// Entered the overlay from a workload and was encapsulated.
pub const PATH_ENCAP: u32 = 6;
/// Reached its destination node and was decapsulated.
pub const PATH_DECAP: u32 = 7;
/// Not overlay traffic: handed to the kernel stack untouched.
pub const PATH_PASSTHROUGH: u32 = 8;

/// Truncated or inconsistent headers.
pub const DROP_MALFORMED: u32 = 9;
/// Unknown Geneve version, wrong VNI, or options other than the Matrix option.
pub const DROP_UNKNOWN_OPTION: u32 = 10;
/// Outer source address is not a configured neighbour.
pub const DROP_UNKNOWN_NEIGHBOR: u32 = 11;
/// Hop limit ran out.
pub const DROP_EXPIRED: u32 = 12;
/// No route to the destination node. (A workload packet whose destination has no owner
/// is not overlay traffic: it is passed to the stack, not dropped.)
pub const DROP_NO_ROUTE: u32 = 13;
/// The encapsulated packet would not fit the egress underlay MTU.
pub const DROP_TOO_BIG: u32 = 14;
/// The route names a neighbour whose underlay MAC is not known yet.
pub const DROP_NEIGHBOR_DOWN: u32 = 15;
/// A helper (`bpf_xdp_adjust_head`, redirect) failed.
pub const DROP_INTERNAL: u32 = 16;
/// The outer IPv4 header checksum is wrong: the Linux stack would not forward it either.
pub const DROP_BAD_CHECKSUM: u32 = 17;
/// Geneve flags matrix never sets: the O (OAM) bit or reserved bits, or no C bit although
/// the Matrix option is critical.
pub const DROP_BAD_FLAGS: u32 = 18;
/// Overlay traffic inside an 802.1Q/802.1ad tag: matrix neighbours never send it tagged.
pub const DROP_VLAN: u32 = 19;
/// From a neighbour, but not addressed to this node's own MAC and IPv4 address on the
/// link: the stack would not take it (broadcast, another host's, a forged destination).
pub const DROP_MISADDRESSED: u32 = 20;

pub const COUNTER_SLOTS: u32 = 21;

pub const VERDICT_NAMES: [(u32, &str); 5] = [
    (VERDICT_ABORTED, "aborted"),
    (VERDICT_DROP, "drop"),
    (VERDICT_PASS, "pass"),
    (VERDICT_TX, "tx"),
    (VERDICT_REDIRECT, "redirect"),
];

pub const PATH_NAMES: [(u32, &str); 4] = [
    (PATH_TRANSIT, "transit"),
    (PATH_ENCAP, "encap"),
    (PATH_DECAP, "decap"),
    (PATH_PASSTHROUGH, "passthrough"),
];

pub const DROP_NAMES: [(u32, &str); 12] = [
    (DROP_MALFORMED, "malformed"),
    (DROP_UNKNOWN_OPTION, "unknown_option"),
    (DROP_UNKNOWN_NEIGHBOR, "unknown_neighbor"),
    (DROP_EXPIRED, "expired"),
    (DROP_NO_ROUTE, "no_route"),
    (DROP_TOO_BIG, "too_big"),
    (DROP_NEIGHBOR_DOWN, "neighbor_down"),
    (DROP_INTERNAL, "internal"),
    (DROP_BAD_CHECKSUM, "bad_checksum"),
    (DROP_BAD_FLAGS, "bad_flags"),
    (DROP_VLAN, "vlan"),
    (DROP_MISADDRESSED, "misaddressed"),
];
