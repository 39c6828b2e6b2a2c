//! Ingress on workload-facing interfaces: find the node that owns the inner destination,
//! hash the flow, push the outer headers, send towards the next hop.

use aya_ebpf::{
    btf_maps::lpm_trie::Key, helpers::generated::bpf_xdp_adjust_head, programs::XdpContext,
};
use matrix_common::{
    DROP_INTERNAL, DROP_MALFORMED, DROP_TOO_BIG, ENCAP_HEADROOM, ENCAP_MTU_OVERHEAD, ETH_HDR_LEN,
    ETH_P_IPV4, ETH_P_IPV6, EthHdr, GENEVE_HDR_LEN, GENEVE_PORT, GeneveHdr, IPPROTO_TCP,
    IPPROTO_UDP, IPV4_DF, IPV4_HDR_LEN, IPV6_HDR_LEN, Ipv4Hdr, Ipv6Hdr, MATRIX_OPT_LEN, MatrixOpt,
    OUTER_TTL, OuterV4, PATH_ENCAP, PATH_PASSTHROUGH, Ports, UDP_HDR_LEN, UdpHdr, csum,
    flow_hash_v4, flow_hash_v6, udp_src_port,
};

use crate::{
    maps::{CONFIG, OVERLAY_V4, OVERLAY_V6},
    nexthop::next_hop,
    outcome::{Outcome, count_demand, count_tx},
    packet::{frame_len, ptr_at},
    redirect::send,
};

const IP_OFF: usize = ETH_HDR_LEN;
const PASS: Outcome = Outcome::Pass(PATH_PASSTHROUGH);

/// The inner packet, as far as encapsulation needs it.
struct Inner {
    proto: u16,
    dst_node: u32,
    flow_hash: u16,
}

#[inline(always)]
pub fn process(ctx: &XdpContext) -> Outcome {
    let Some(cfg) = CONFIG.get(0) else {
        return PASS;
    };
    if cfg.node_id == 0 {
        return PASS;
    }
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return PASS;
    };
    let inner = match unsafe { (*eth).ether_type() } {
        ETH_P_IPV4 => classify_v4(ctx),
        ETH_P_IPV6 => classify_v6(ctx),
        // ARP, LLDP, ...: link-local business of the host.
        _ => return PASS,
    };
    let inner = match inner {
        Ok(Some(inner)) => inner,
        // Not an overlay destination (e.g. the host's own address on this link).
        Ok(None) => return PASS,
        Err(reason) => return Outcome::Drop(reason),
    };
    // Traffic between two workloads of this node never enters the overlay.
    if inner.dst_node == cfg.node_id {
        return PASS;
    }
    let hop = match next_hop(inner.dst_node, inner.flow_hash) {
        Ok(hop) => hop,
        Err(reason) => return Outcome::Drop(reason),
    };
    let nb = &hop.neighbor;
    let inner_len = frame_len(ctx) - ETH_HDR_LEN;
    if inner_len + ENCAP_MTU_OVERHEAD > nb.mtu as usize {
        return Outcome::Drop(DROP_TOO_BIG);
    }

    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(ENCAP_HEADROOM as i32)) } != 0 {
        return Outcome::Drop(DROP_INTERNAL);
    }
    let Some(outer) = ptr_at::<OuterV4>(ctx, 0) else {
        return Outcome::Drop(DROP_INTERNAL);
    };
    let ip_len = (inner_len + ENCAP_MTU_OVERHEAD) as u16;
    let udp_len = (inner_len + UDP_HDR_LEN + GENEVE_HDR_LEN + MATRIX_OPT_LEN) as u16;
    let mut ip = Ipv4Hdr {
        version_ihl: 0x45,
        tos: 0,
        total_len: ip_len.to_be_bytes(),
        id: [0, 0],
        frag_off: IPV4_DF.to_be_bytes(),
        ttl: OUTER_TTL,
        protocol: IPPROTO_UDP,
        check: [0, 0],
        src: nb.local_ipv4,
        dst: nb.remote_ipv4,
    };
    ip.check = csum::ipv4_header(&ip).to_be_bytes();
    unsafe {
        *outer = OuterV4 {
            eth: EthHdr {
                dst: nb.remote_mac,
                src: nb.local_mac,
                ether_type: ETH_P_IPV4.to_be_bytes(),
            },
            ip,
            udp: UdpHdr {
                src_port: udp_src_port(inner.flow_hash).to_be_bytes(),
                dst_port: GENEVE_PORT.to_be_bytes(),
                len: udp_len.to_be_bytes(),
                check: [0, 0],
            },
            geneve: GeneveHdr::new(inner.proto, cfg.vni),
            opt: MatrixOpt::new(
                inner.dst_node,
                cfg.node_id,
                cfg.hop_limit as u8,
                inner.flow_hash,
            ),
        };
    }
    let out = send(ctx, nb.ifindex, PATH_ENCAP);
    // Only what actually leaves counts as load and demand.
    if !matches!(out, Outcome::Drop(_)) {
        count_tx(hop.slot, frame_len(ctx));
        count_demand(inner.dst_node);
    }
    out
}

#[inline(always)]
fn classify_v4(ctx: &XdpContext) -> Result<Option<Inner>, u32> {
    let ip = ptr_at::<Ipv4Hdr>(ctx, IP_OFF).ok_or(DROP_MALFORMED)?;
    let ip = unsafe { *ip };
    if ip.version() != 4 || ip.ihl_bytes() < IPV4_HDR_LEN {
        return Err(DROP_MALFORMED);
    }
    let Some(owner) = OVERLAY_V4.get(&Key::new(32, ip.dst)) else {
        return Ok(None);
    };
    // Ports only from first fragments without options: enough for a stable hash, and
    // every fragment of a datagram hashes the same when ports are left out.
    let (sp, dp) = if (ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP)
        && ip.version_ihl == 0x45
        && !ip.is_fragment()
    {
        ports(ctx, IP_OFF + IPV4_HDR_LEN)
    } else {
        (0, 0)
    };
    Ok(Some(Inner {
        proto: ETH_P_IPV4,
        dst_node: owner.node_id,
        flow_hash: flow_hash_v4(ip.src, ip.dst, ip.protocol, sp, dp),
    }))
}

#[inline(always)]
fn classify_v6(ctx: &XdpContext) -> Result<Option<Inner>, u32> {
    let ip = ptr_at::<Ipv6Hdr>(ctx, IP_OFF).ok_or(DROP_MALFORMED)?;
    let ip = unsafe { *ip };
    if ip.version() != 6 {
        return Err(DROP_MALFORMED);
    }
    let Some(owner) = OVERLAY_V6.get(&Key::new(128, ip.dst)) else {
        return Ok(None);
    };
    let (sp, dp) = if ip.next_header == IPPROTO_TCP || ip.next_header == IPPROTO_UDP {
        ports(ctx, IP_OFF + IPV6_HDR_LEN)
    } else {
        (0, 0)
    };
    Ok(Some(Inner {
        proto: ETH_P_IPV6,
        dst_node: owner.node_id,
        flow_hash: flow_hash_v6(ip.src, ip.dst, ip.next_header, sp, dp),
    }))
}

#[inline(always)]
fn ports(ctx: &XdpContext, offset: usize) -> (u16, u16) {
    match ptr_at::<Ports>(ctx, offset) {
        Some(p) => unsafe { (u16::from_be_bytes((*p).src), u16::from_be_bytes((*p).dst)) },
        None => (0, 0),
    }
}
