//! matrix data plane: XDP programs for underlay and workload-facing interfaces.
//!
//! Each entry point dispatches to its module and counts the outcome once, at the exit.
//! The benchmarks' programs are apart, in `bench`.
#![no_std]
#![no_main]

mod bench;
mod maps;
mod nexthop;
mod outcome;
mod packet;
mod redirect;
mod trace;
mod underlay;
mod workload;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

/// Underlay interfaces: pass-through, transit, decapsulation.
#[xdp]
pub fn matrix_underlay(ctx: XdpContext) -> u32 {
    underlay::process(&ctx).finish(&ctx, matrix_common::TRACE_PROG_UNDERLAY)
}

/// Workload-facing interfaces: encapsulation.
#[xdp]
pub fn matrix_workload(ctx: XdpContext) -> u32 {
    workload::process(&ctx).finish(&ctx, matrix_common::TRACE_PROG_WORKLOAD)
}

/// `XDP_PASS`, for the far end of a veth that receives redirected frames (a veth drops
/// redirected frames unless its peer runs an XDP program or has GRO on).
#[xdp]
pub fn matrix_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
