//! Leaving through an underlay interface.

use aya_ebpf::programs::XdpContext;
use matrix_common::DROP_INTERNAL;

use crate::{maps::EGRESS, outcome::Outcome};

/// `XDP_TX` when the egress interface is the ingress one, else `XDP_REDIRECT` through
/// the `EGRESS` devmap (a host with NICs on two networks relays between them).
#[inline(always)]
pub fn send(ctx: &XdpContext, ifindex: u32, path: u32) -> Outcome {
    if ifindex as usize == ctx.ingress_ifindex() {
        return Outcome::Tx(path);
    }
    match EGRESS.redirect(ifindex, 0) {
        Ok(_) => Outcome::Redirect(path),
        Err(_) => Outcome::Drop(DROP_INTERNAL),
    }
}
