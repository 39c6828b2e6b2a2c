//! Packet tracing (`matrix trace`): the XDP programs copy the head of chosen packets into
//! the `TRACE` ring buffer as they finish with them. Off unless `TRACE_CONFIG` says
//! otherwise, and then sampled; with tracing off a packet costs one array lookup.

/// Bytes of each traced packet copied: outer Ethernet, IPv4, UDP, Geneve and the Matrix
/// option (66) and the inner IPv6 header and transport ports (44) fit.
pub const TRACE_SNAP_LEN: usize = 128;
/// Size of the `TRACE` ring buffer in bytes (a power of two and a multiple of the page
/// size): room for about 1,500 events before a slow reader loses any.
pub const TRACE_RING_BYTES: u32 = 256 * 1024;

/// `TRACE_CONFIG.flags`: trace drops.
pub const TRACE_F_DROPS: u32 = 1;
/// `TRACE_CONFIG.flags`: trace every other verdict too (pass, tx, redirect).
pub const TRACE_F_FORWARDED: u32 = 2;

/// Which program traced a packet.
pub const TRACE_PROG_UNDERLAY: u32 = 0;
pub const TRACE_PROG_WORKLOAD: u32 = 1;

/// `TRACE_CONFIG[0]`: what to trace. All zero (the default): nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceConfig {
    /// `TRACE_F_*` bits.
    pub flags: u32,
    /// Trace about one packet in `sample` that qualifies (0 and 1: every one).
    pub sample: u32,
    /// Only drops with this reason slot (`counters::DROP_*`); 0: any reason.
    pub reason: u32,
    pub _pad: u32,
}

/// One traced packet, as the ring buffer carries it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when the program finished with the packet.
    pub ktime_ns: u64,
    /// The interface the packet arrived on.
    pub ifindex: u32,
    /// `TRACE_PROG_*`.
    pub program: u32,
    /// `counters::VERDICT_*`.
    pub verdict: u32,
    /// The drop reason for a drop, else the path (`counters` slots).
    pub slot: u32,
    /// The packet's length as the program left it.
    pub frame_len: u32,
    /// How many bytes of `data` hold the packet: `min(frame_len, TRACE_SNAP_LEN)`.
    pub cap_len: u32,
    /// The first bytes of the packet as the program left it (headers rewritten for a
    /// relayed packet, unchanged for a dropped one).
    pub data: [u8; TRACE_SNAP_LEN],
}

const _: () = assert!(size_of::<TraceConfig>() == 16);
const _: () = assert!(size_of::<TraceEvent>() == 32 + TRACE_SNAP_LEN);
// The programs bound the copy length with a mask.
const _: () = assert!(TRACE_SNAP_LEN.is_power_of_two());

#[cfg(feature = "user")]
unsafe impl aya::Pod for TraceConfig {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for TraceEvent {}
