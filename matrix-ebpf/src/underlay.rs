//! Ingress on underlay interfaces: pass-through, decapsulation, transit.

use aya_ebpf::{helpers::generated::bpf_xdp_adjust_head, programs::XdpContext};
use matrix_common::{
    DROP_BAD_CHECKSUM, DROP_BAD_FLAGS, DROP_EXPIRED, DROP_INTERNAL, DROP_MALFORMED,
    DROP_MISADDRESSED, DROP_TOO_BIG, DROP_UNKNOWN_NEIGHBOR, DROP_UNKNOWN_OPTION, DROP_VLAN,
    ENCAP_HEADROOM, ETH_HDR_LEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, EthHdr,
    GENEVE_HDR_LEN, GENEVE_OPT_CRITICAL, GENEVE_PORT, GENEVE_VERSION, GeneveHdr, IPPROTO_UDP,
    IPV4_HDR_LEN, IPV6_HDR_LEN, Ipv4Hdr, MATRIX_OPT_LEN, MatrixOpt, OUTER_TTL, PATH_DECAP,
    PATH_PASSTHROUGH, PATH_TRANSIT, UDP_HDR_LEN, UdpHdr, VLAN_HDR_LEN, csum,
};

use crate::{
    maps::{CONFIG, NEIGH_BY_ADDR, NEIGHBORS},
    nexthop::next_hop,
    outcome::{Outcome, count_rx, count_tx},
    packet::{frame_len, ptr_at},
    redirect::send,
};

const IP_OFF: usize = ETH_HDR_LEN;
const UDP_OFF: usize = IP_OFF + IPV4_HDR_LEN;
const GENEVE_OFF: usize = UDP_OFF + UDP_HDR_LEN;
const OPT_OFF: usize = GENEVE_OFF + GENEVE_HDR_LEN;
const INNER_OFF: usize = OPT_OFF + MATRIX_OPT_LEN;

const PASS: Outcome = Outcome::Pass(PATH_PASSTHROUGH);

#[inline(always)]
pub fn process(ctx: &XdpContext) -> Outcome {
    // Steps 1-2 of DESIGN.md section 4: anything that is not IPv4/UDP/6081 is the host's
    // own traffic and goes to the stack untouched.
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return PASS;
    };
    let ether_type = unsafe { (*eth).ether_type() };
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        return tagged(ctx);
    }
    if ether_type != ETH_P_IPV4 {
        return PASS;
    }
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, IP_OFF) else {
        return PASS;
    };
    let ip_hdr = unsafe { *ip };
    // IP options or fragments are never produced by matrix: not ours.
    if ip_hdr.protocol != IPPROTO_UDP || ip_hdr.version_ihl != 0x45 || ip_hdr.is_fragment() {
        return PASS;
    }
    let Some(udp) = ptr_at::<UdpHdr>(ctx, UDP_OFF) else {
        return PASS;
    };
    if unsafe { (*udp).dst_port() } != GENEVE_PORT {
        return PASS;
    }
    let Some(cfg) = CONFIG.get(0) else {
        return PASS;
    };
    if cfg.node_id == 0 {
        // Not configured yet: behave as if matrix were not attached.
        return PASS;
    }

    // From here on the packet claims to be overlay traffic.
    let Some(&src_slot) = (unsafe { NEIGH_BY_ADDR.get(ip_hdr.src) }) else {
        return Outcome::Drop(DROP_UNKNOWN_NEIGHBOR);
    };
    // Addressed to this node on the link to that neighbour, as the stack would insist.
    match NEIGHBORS.get(src_slot) {
        Some(nb) if nb.local_ipv4 == ip_hdr.dst && nb.local_mac == unsafe { (*eth).dst } => {}
        _ => return Outcome::Drop(DROP_MISADDRESSED),
    }
    // What the stack would check before forwarding: the header checksum, and lengths
    // that agree with each other and with the frame. An overlay frame is never short
    // enough to carry Ethernet padding, so the IP packet ends where the frame does.
    if !csum::ipv4_header_ok(&ip_hdr) {
        return Outcome::Drop(DROP_BAD_CHECKSUM);
    }
    let len = frame_len(ctx);
    let ip_len = ip_hdr.total_len() as usize;
    if ip_len < INNER_OFF - IP_OFF
        || IP_OFF + ip_len != len
        || unsafe { (*udp).total_len() } as usize != ip_len - IPV4_HDR_LEN
    {
        return Outcome::Drop(DROP_MALFORMED);
    }
    let (Some(geneve), Some(opt)) = (
        ptr_at::<GeneveHdr>(ctx, GENEVE_OFF),
        ptr_at::<MatrixOpt>(ctx, OPT_OFF),
    ) else {
        return Outcome::Drop(DROP_MALFORMED);
    };
    let geneve = unsafe { *geneve };
    if !geneve.flags_are_matrix() {
        return Outcome::Drop(DROP_BAD_FLAGS);
    }
    if geneve.version() != GENEVE_VERSION
        || geneve.opt_len() < MATRIX_OPT_LEN
        || geneve.vni() != cfg.vni
        || !unsafe { (*opt).is_matrix() }
    {
        return Outcome::Drop(DROP_UNKNOWN_OPTION);
    }
    // Options another implementation added after the Matrix option: ignored when
    // non-critical, as RFC 8926 section 3.5 asks; relays carry them on untouched.
    let extra = geneve.opt_len() - MATRIX_OPT_LEN;
    if extra > 0
        && let Err(reason) = check_extra_options(ctx, extra)
    {
        return Outcome::Drop(reason);
    }
    let proto = geneve.protocol();
    let min_inner = match proto {
        ETH_P_IPV4 => IPV4_HDR_LEN,
        ETH_P_IPV6 => IPV6_HDR_LEN,
        _ => return Outcome::Drop(DROP_UNKNOWN_OPTION),
    };
    // An overlay packet must carry at least an inner IP header.
    if ip_len < INNER_OFF - IP_OFF + extra + min_inner {
        return Outcome::Drop(DROP_MALFORMED);
    }
    count_rx(src_slot, len);

    let dst_node = unsafe { (*opt).dst_node() };
    if dst_node == cfg.node_id {
        return decapsulate(ctx, proto, extra);
    }
    transit(ctx, ip, opt, ip_len)
}

/// Most options accepted after the Matrix option (a bounded loop for the verifier).
const MAX_EXTRA_OPTIONS: usize = 8;

/// Walks the `extra` bytes of options after the Matrix option: each must be
/// non-critical (an endpoint must drop a critical option it does not know) and together
/// they must fill `extra` exactly.
#[inline(always)]
fn check_extra_options(ctx: &XdpContext, extra: usize) -> Result<(), u32> {
    let mut off = 0;
    for _ in 0..MAX_EXTRA_OPTIONS {
        if off >= extra {
            break;
        }
        // Option header: class (2 bytes), type (critical bit first), reserved 3 bits and
        // the data length in 4-byte words.
        let Some(hdr) = ptr_at::<[u8; 4]>(ctx, INNER_OFF + off) else {
            return Err(DROP_MALFORMED);
        };
        let hdr = unsafe { *hdr };
        if hdr[2] & GENEVE_OPT_CRITICAL != 0 {
            return Err(DROP_UNKNOWN_OPTION);
        }
        off += 4 + (hdr[3] & 0x1F) as usize * 4;
    }
    match off {
        o if o == extra => Ok(()),
        o if o > extra => Err(DROP_MALFORMED),
        // More options than the walk takes.
        _ => Err(DROP_UNKNOWN_OPTION),
    }
}

/// A VLAN-tagged frame: the host's own tagged traffic passes untouched, but overlay
/// traffic inside a tag is dropped and counted: matrix neighbours never tag it, and a
/// relay must not forward what it cannot account for.
#[inline(always)]
fn tagged(ctx: &XdpContext) -> Outcome {
    // One tag (802.1Q or 802.1ad), or two (802.1ad outside 802.1Q, "QinQ").
    let Some(first) = ptr_at::<[u8; 2]>(ctx, ETH_HDR_LEN + 2) else {
        return PASS;
    };
    let first = u16::from_be_bytes(unsafe { *first });
    if first == ETH_P_8021Q || first == ETH_P_8021AD {
        tagged_overlay(ctx, 2 * VLAN_HDR_LEN)
    } else {
        tagged_overlay(ctx, VLAN_HDR_LEN)
    }
}

/// Whether the frame, behind `tags` bytes of VLAN tags, is overlay traffic: dropped and
/// counted if so, passed untouched if not.
#[inline(always)]
fn tagged_overlay(ctx: &XdpContext, tags: usize) -> Outcome {
    let ip_off = IP_OFF + tags;
    let (Some(inner_type), Some(ip), Some(udp)) = (
        ptr_at::<[u8; 2]>(ctx, ip_off - 2),
        ptr_at::<Ipv4Hdr>(ctx, ip_off),
        ptr_at::<UdpHdr>(ctx, ip_off + IPV4_HDR_LEN),
    ) else {
        return PASS;
    };
    let overlay = unsafe {
        u16::from_be_bytes(*inner_type) == ETH_P_IPV4
            && (*ip).version_ihl == 0x45
            && (*ip).protocol == IPPROTO_UDP
            && (*udp).dst_port() == GENEVE_PORT
    };
    if overlay {
        Outcome::Drop(DROP_VLAN)
    } else {
        PASS
    }
}

/// Strips the outer headers and hands the inner packet to the stack, which routes it to
/// the workload. The outer Ethernet addresses are kept: the destination is this
/// interface's own MAC, so the stack accepts the frame as addressed to the host.
#[inline(always)]
fn decapsulate(ctx: &XdpContext, proto: u16, extra_options: usize) -> Outcome {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Outcome::Drop(DROP_MALFORMED);
    };
    let mut new_eth = unsafe { *eth };
    new_eth.ether_type = proto.to_be_bytes();
    let strip = (ENCAP_HEADROOM + extra_options) as i32;
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, strip) } != 0 {
        return Outcome::Drop(DROP_INTERNAL);
    }
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Outcome::Drop(DROP_INTERNAL);
    };
    unsafe { *eth = new_eth };
    Outcome::Pass(PATH_DECAP)
}

/// Relays the packet one hop closer to `dst_node` without touching the inner packet.
#[inline(always)]
fn transit(ctx: &XdpContext, ip: *mut Ipv4Hdr, opt: *mut MatrixOpt, ip_len: usize) -> Outcome {
    let (dst_node, hop_limit, flow_hash) =
        unsafe { ((*opt).dst_node(), (*opt).hop_limit, (*opt).flow_hash()) };
    // A packet arriving with hop limit 1 would leave with 0: it has used up its hops.
    if hop_limit <= 1 {
        return Outcome::Drop(DROP_EXPIRED);
    }
    let hop = match next_hop(dst_node, flow_hash) {
        Ok(hop) => hop,
        Err(reason) => return Outcome::Drop(reason),
    };
    let nb = &hop.neighbor;
    if ip_len > nb.mtu as usize {
        return Outcome::Drop(DROP_TOO_BIG);
    }
    let (Some(eth), Some(udp)) = (ptr_at::<EthHdr>(ctx, 0), ptr_at::<UdpHdr>(ctx, UDP_OFF)) else {
        return Outcome::Drop(DROP_MALFORMED);
    };
    unsafe {
        (*eth).dst = nb.remote_mac;
        (*eth).src = nb.local_mac;
        let old = *ip;
        let mut check = u16::from_be_bytes(old.check);
        check = csum::update32(check, old.src, nb.local_ipv4);
        check = csum::update32(check, old.dst, nb.remote_ipv4);
        check = csum::update16(
            check,
            u16::from_be_bytes([old.ttl, old.protocol]),
            u16::from_be_bytes([OUTER_TTL, old.protocol]),
        );
        (*ip).src = nb.local_ipv4;
        (*ip).dst = nb.remote_ipv4;
        (*ip).ttl = OUTER_TTL;
        (*ip).check = check.to_be_bytes();
        // A zero UDP checksum is valid over IPv4 (RFC 8926 section 3.3); the Geneve
        // payload changed (hop limit), so any sender checksum would now be wrong.
        (*udp).check = [0, 0];
        (*opt).hop_limit = hop_limit - 1;
    }
    let out = send(ctx, nb.ifindex, PATH_TRANSIT);
    if !matches!(out, Outcome::Drop(_)) {
        count_tx(hop.slot, frame_len(ctx));
    }
    out
}
