//! What the program decided, and counting it: every exit goes through [`Outcome::finish`],
//! so each packet is counted exactly once by verdict and once by path or drop reason.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use matrix_common::{NeighborStats, VERDICT_DROP, VERDICT_PASS, VERDICT_REDIRECT, VERDICT_TX};

use crate::maps::{COUNTERS, DEMAND, NEIGH_STATS};

#[derive(Clone, Copy)]
pub enum Outcome {
    /// Hand to the kernel stack; the slot says which path (pass-through or decap).
    Pass(u32),
    /// Drop; the slot is the reason.
    Drop(u32),
    /// Send back out of the ingress interface; the slot is the path.
    Tx(u32),
    /// `bpf_redirect_map` succeeded; the slot is the path.
    Redirect(u32),
}

impl Outcome {
    /// Counts the verdict and the path or reason, traces the packet if `matrix trace`
    /// asks for it, and returns the XDP action. `program` is a `TRACE_PROG_*`.
    #[inline(always)]
    pub fn finish(self, ctx: &XdpContext, program: u32) -> u32 {
        let (action, verdict, slot) = match self {
            Outcome::Pass(p) => (xdp_action::XDP_PASS, VERDICT_PASS, p),
            Outcome::Drop(r) => (xdp_action::XDP_DROP, VERDICT_DROP, r),
            Outcome::Tx(p) => (xdp_action::XDP_TX, VERDICT_TX, p),
            Outcome::Redirect(p) => (xdp_action::XDP_REDIRECT, VERDICT_REDIRECT, p),
        };
        bump(verdict);
        bump(slot);
        crate::trace::trace(ctx, program, verdict, slot);
        action
    }
}

#[inline(always)]
fn bump(slot: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(slot) {
        // Per-CPU slot: no other CPU writes it, no atomic needed.
        unsafe { *c += 1 };
    }
}

#[inline(always)]
pub fn count_rx(slot: u32, bytes: usize) {
    if let Some(s) = NEIGH_STATS.get_ptr_mut(slot) {
        let s: &mut NeighborStats = unsafe { &mut *s };
        s.rx_packets += 1;
        s.rx_bytes += bytes as u64;
    }
}

#[inline(always)]
pub fn count_tx(slot: u32, bytes: usize) {
    if let Some(s) = NEIGH_STATS.get_ptr_mut(slot) {
        let s: &mut NeighborStats = unsafe { &mut *s };
        s.tx_packets += 1;
        s.tx_bytes += bytes as u64;
    }
}

/// Counts one packet entering the overlay for `dst_node`. A full table only loses demand
/// samples, never packets.
#[inline(always)]
pub fn count_demand(dst_node: u32) {
    match DEMAND.get_ptr_mut(dst_node) {
        Some(c) => unsafe { *c += 1 },
        None => {
            let _ = DEMAND.insert(dst_node, 1u64, 0);
        }
    }
}
