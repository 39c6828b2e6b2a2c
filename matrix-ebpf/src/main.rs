//! matrix data plane: XDP programs for underlay and workload-facing interfaces.
//!
//! Each entry point dispatches to its module and counts the outcome once, at the exit.
#![no_std]
#![no_main]

mod maps;
mod nexthop;
mod outcome;
mod packet;
mod redirect;
mod underlay;
mod workload;

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, PerCpuArray},
    helpers::generated::bpf_ktime_get_ns,
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use matrix_common::EthHdr;

/// Underlay interfaces: pass-through, transit, decapsulation.
#[xdp]
pub fn matrix_underlay(ctx: XdpContext) -> u32 {
    underlay::process(&ctx).finish()
}

/// Workload-facing interfaces: encapsulation.
#[xdp]
pub fn matrix_workload(ctx: XdpContext) -> u32 {
    workload::process(&ctx).finish()
}

/// `XDP_PASS`, for the far end of a veth that receives redirected frames (a veth drops
/// redirected frames unless its peer runs an XDP program or has GRO on).
#[xdp]
pub fn matrix_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The trivial `XDP_TX` program every per-packet cost is reported against.
#[xdp]
pub fn matrix_baseline_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

/// Benchmarks only: per-CPU frames (slot 0) and bytes (slot 1) that
/// `matrix_bench_sink` counted. Never pinned, never read by the agent.
#[btf_map]
static BENCH_SINK: PerCpuArray<u64, 2> = PerCpuArray::new();

/// EtherType of ARP, which the bench sink leaves to the stack.
const ETH_P_ARP: u16 = 0x0806;

/// Benchmarks only: the receiving end of the forwarding benches. Counts and drops every
/// frame but ARP, so the sink namespace's stack never limits what is measured; ARP goes
/// to the stack so the sink still answers neighbour resolution.
#[xdp]
pub fn matrix_bench_sink(ctx: XdpContext) -> u32 {
    let len = packet::frame_len(&ctx);
    if let Some(eth) = packet::ptr_at::<EthHdr>(&ctx, 0)
        && unsafe { (*eth).ether_type() } == ETH_P_ARP
    {
        return xdp_action::XDP_PASS;
    }
    if let (Some(frames), Some(bytes)) = (BENCH_SINK.get_ptr_mut(0), BENCH_SINK.get_ptr_mut(1)) {
        // Per-CPU slots: no other CPU writes them.
        unsafe {
            *frames += 1;
            *bytes += len as u64;
        }
    }
    xdp_action::XDP_DROP
}

/// Benchmarks only: the generator's schedule and tallies, one array of u64 slots
/// (`GEN_*`), written by the bench before a run and read after it.
#[btf_map]
static BENCH_GEN: Array<[u64; GEN_SLOTS], 1> = Array::new();

/// Benchmarks only: the first `8 * GEN_RESTORE_WORDS` bytes of the generated frame.
#[btf_map]
static BENCH_GEN_FRAME: Array<[u64; GEN_RESTORE_WORDS], 1> = Array::new();

/// `BENCH_GEN` slots: ns between frames (0: as fast as possible), run length in ns,
/// first invocation (ktime ns), next send time, frames sent, invocations, run over (1).
const GEN_INTERVAL: usize = 0;
const GEN_DURATION: usize = 1;
const GEN_START: usize = 2;
const GEN_NEXT: usize = 3;
const GEN_SENT: usize = 4;
const GEN_INVOCATIONS: usize = 5;
const GEN_DONE: usize = 6;
const GEN_SLOTS: usize = 8;
/// Header bytes the generator restores, in words: every rewrite downstream (transit,
/// encap, decap, the kernel's forwarding) stays inside the first 72 bytes.
const GEN_RESTORE_WORDS: usize = 9;

/// Benchmarks only: the load generator, run with BPF_PROG_TEST_RUN in XDP live-frames
/// mode. Sends (XDP_TX) on a schedule of one frame per `GEN_INTERVAL` ns for
/// `GEN_DURATION` ns and drops the invocations in between. Live frames recycle their
/// pages with whatever the hops downstream wrote into them, so each frame's headers are
/// restored from `BENCH_GEN_FRAME` before it leaves. A late generator (a gap between
/// calls) skips ahead instead of bursting to catch up.
#[xdp]
pub fn matrix_bench_gen(ctx: XdpContext) -> u32 {
    let Some(st) = BENCH_GEN.get_ptr_mut(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // One generator thread on one CPU: nothing else touches the state meanwhile.
    let st = unsafe { &mut *st };
    let now = unsafe { bpf_ktime_get_ns() };
    if st[GEN_START] == 0 {
        st[GEN_START] = now;
        st[GEN_NEXT] = now;
    }
    st[GEN_INVOCATIONS] += 1;
    if now - st[GEN_START] >= st[GEN_DURATION] {
        st[GEN_DONE] = 1;
        return xdp_action::XDP_DROP;
    }
    if now < st[GEN_NEXT] {
        return xdp_action::XDP_DROP;
    }
    let interval = st[GEN_INTERVAL];
    st[GEN_NEXT] = if now > st[GEN_NEXT] + interval {
        now + interval
    } else {
        st[GEN_NEXT] + interval
    };
    let (Some(frame), Some(template)) = (
        packet::ptr_at::<[u64; GEN_RESTORE_WORDS]>(&ctx, 0),
        BENCH_GEN_FRAME.get(0),
    ) else {
        return xdp_action::XDP_ABORTED;
    };
    // Word stores: the packet start need not be 8-aligned, which x86 does not mind.
    unsafe { *frame = *template };
    st[GEN_SENT] += 1;
    xdp_action::XDP_TX
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
