//! Benchmarks only: the programs the bench runners (`benches/`) measure against or drive
//! traffic with. Never attached by the agent; their maps are never pinned. Names and slot
//! indices are in `matrix_common::bench`, shared with the runners.

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, PerCpuArray},
    helpers::generated::bpf_ktime_get_ns,
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use matrix_common::{
    EthHdr,
    bench::{generator as g, sink},
};

use crate::packet;

/// The trivial `XDP_TX` program every per-packet cost is reported against.
#[xdp]
pub fn matrix_baseline_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

/// Per-CPU frames and bytes that `matrix_bench_sink` counted (`sink::FRAMES`, `BYTES`).
#[btf_map]
static BENCH_SINK: PerCpuArray<u64, { sink::SLOTS as usize }> = PerCpuArray::new();

/// EtherType of ARP, which the bench sink leaves to the stack.
const ETH_P_ARP: u16 = 0x0806;

/// The receiving end of the forwarding benches. Counts and drops every frame but ARP, so
/// the sink namespace's stack never limits what is measured; ARP goes to the stack so the
/// sink still answers neighbour resolution.
#[xdp]
pub fn matrix_bench_sink(ctx: XdpContext) -> u32 {
    let len = packet::frame_len(&ctx);
    if let Some(eth) = packet::ptr_at::<EthHdr>(&ctx, 0)
        && unsafe { (*eth).ether_type() } == ETH_P_ARP
    {
        return xdp_action::XDP_PASS;
    }
    if let (Some(frames), Some(bytes)) = (
        BENCH_SINK.get_ptr_mut(sink::FRAMES),
        BENCH_SINK.get_ptr_mut(sink::BYTES),
    ) {
        // Per-CPU slots: no other CPU writes them.
        unsafe {
            *frames += 1;
            *bytes += len as u64;
        }
    }
    xdp_action::XDP_DROP
}

/// The generator's schedule and tallies, one array of u64 slots (`generator::*`),
/// written by the bench before a run and read after it.
#[btf_map]
static BENCH_GEN: Array<[u64; g::SLOTS], 1> = Array::new();

/// The first `8 * RESTORE_WORDS` bytes of the generated frame.
#[btf_map]
static BENCH_GEN_FRAME: Array<[u64; g::RESTORE_WORDS], 1> = Array::new();

/// The load generator, run with BPF_PROG_TEST_RUN in XDP live-frames mode. Sends
/// (XDP_TX) on a schedule of one frame per `INTERVAL` ns for `DURATION` ns and drops the
/// invocations in between. Live frames recycle their pages with whatever the hops
/// downstream wrote into them, so each frame's headers are restored from
/// `BENCH_GEN_FRAME` before it leaves. A late generator (a gap between calls) skips
/// ahead instead of bursting to catch up.
#[xdp]
pub fn matrix_bench_gen(ctx: XdpContext) -> u32 {
    let Some(st) = BENCH_GEN.get_ptr_mut(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // One generator thread on one CPU: nothing else touches the state meanwhile.
    let st = unsafe { &mut *st };
    let now = unsafe { bpf_ktime_get_ns() };
    if st[g::START] == 0 {
        st[g::START] = now;
        st[g::NEXT] = now;
    }
    st[g::INVOCATIONS] += 1;
    if now - st[g::START] >= st[g::DURATION] {
        st[g::DONE] = 1;
        return xdp_action::XDP_DROP;
    }
    if now < st[g::NEXT] {
        return xdp_action::XDP_DROP;
    }
    let interval = st[g::INTERVAL];
    st[g::NEXT] = if now > st[g::NEXT] + interval {
        now + interval
    } else {
        st[g::NEXT] + interval
    };
    let (Some(frame), Some(template)) = (
        packet::ptr_at::<[u64; g::RESTORE_WORDS]>(&ctx, 0),
        BENCH_GEN_FRAME.get(0),
    ) else {
        return xdp_action::XDP_ABORTED;
    };
    // Word stores: the packet start need not be 8-aligned, which x86 does not mind.
    unsafe { *frame = *template };
    st[g::SENT] += 1;
    xdp_action::XDP_TX
}
