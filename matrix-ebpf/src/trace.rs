//! `matrix trace`: the head of chosen packets into the `TRACE` ring buffer, as the program
//! finishes with them. With tracing off (the default) this is one array lookup.

use aya_ebpf::{
    helpers::generated::{bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use matrix_common::{TRACE_F_DROPS, TRACE_F_FORWARDED, TRACE_SNAP_LEN, VERDICT_DROP};

use crate::{
    maps::{TRACE, TRACE_CONFIG},
    packet::frame_len,
};

/// Traces the packet if `TRACE_CONFIG` asks for this verdict and reason, sampled.
#[inline(always)]
pub fn trace(ctx: &XdpContext, program: u32, verdict: u32, slot: u32) {
    let Some(cfg) = TRACE_CONFIG.get(0) else {
        return;
    };
    if cfg.flags == 0 {
        return;
    }
    let wanted = if verdict == VERDICT_DROP {
        cfg.flags & TRACE_F_DROPS != 0 && (cfg.reason == 0 || cfg.reason == slot)
    } else {
        cfg.flags & TRACE_F_FORWARDED != 0
    };
    if !wanted || (cfg.sample > 1 && unsafe { bpf_get_prandom_u32() } % cfg.sample != 0) {
        return;
    }
    emit(ctx, program, verdict, slot);
}

/// One event; a full ring buffer (no reader keeping up) loses the event, not the packet.
#[inline(never)]
fn emit(ctx: &XdpContext, program: u32, verdict: u32, slot: u32) {
    let Some(mut entry) = TRACE.reserve(0) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    let len = frame_len(ctx);
    let cap = if len < TRACE_SNAP_LEN {
        len
    } else {
        TRACE_SNAP_LEN
    };
    unsafe {
        (*ev).ktime_ns = bpf_ktime_get_ns();
        (*ev).ifindex = (*ctx.ctx).ingress_ifindex;
        (*ev).program = program;
        (*ev).verdict = verdict;
        (*ev).slot = slot;
        (*ev).frame_len = len as u32;
        // The verifier wants the length provably in 1..=TRACE_SNAP_LEN: `cap - 1` masked
        // to 0..=127, plus one. An empty frame asks for 128 bytes, which the helper
        // refuses at run time; the event then says no bytes were captured.
        let n = ((cap as u32).wrapping_sub(1) & (TRACE_SNAP_LEN as u32 - 1)) + 1;
        (*ev).cap_len = 0;
        if bpf_xdp_load_bytes(ctx.ctx, 0, (*ev).data.as_mut_ptr().cast(), n) == 0 {
            (*ev).cap_len = n;
        }
    }
    entry.submit(0);
}
