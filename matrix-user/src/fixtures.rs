//! Packet fixtures for the XDP programs, table-driven in the style of Katran's tests: fluent
//! frame builders, one standard world written into the maps, and one row per behaviour
//! (program, input frame, expected verdict, counters, NEIGH_STATS and bytes out).
//!
//! Expected bytes are derived from the world's definition with these builders (IPv4 header
//! checksums fully recomputed), never captured from a run: the programs are checked against
//! an independent model of what they should write. Used by `tests/xdp.rs` and the benches.

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    maps::{Array, DevMapHash, HashMap, LpmTrie, Map, lpm_trie::Key},
    programs::Xdp,
};
use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, IpHeaders, IpNumber, Ipv4Header, Ipv6Header,
    PacketBuilder, PacketBuilderStep,
};
use matrix_common::{
    Config, DEFAULT_HOP_LIMIT, DROP_EXPIRED, DROP_MALFORMED, DROP_NEIGHBOR_DOWN, DROP_NO_ROUTE,
    DROP_TOO_BIG, DROP_UNKNOWN_NEIGHBOR, DROP_UNKNOWN_OPTION, ENCAP_OVERHEAD, ETH_HDR_LEN,
    ETH_P_IPV4, ETH_P_IPV6, EthHdr, FlowHash, GENEVE_HDR_LEN, GENEVE_OPT_WORDS, GENEVE_PORT,
    GeneveHdr, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_DF, IPV4_HDR_LEN,
    IPV6_HDR_LEN, Ipv4Hdr, MATRIX_OPT_LEN, MatrixOpt, NEIGHBOR_F_RESOLVED, NEIGHBOR_F_VALID,
    Neighbor, NeighborStats, NextHopSet, NodeKey, OUTER_TTL, OuterV4, OverlayOwner, PATH_DECAP,
    PATH_ENCAP, PATH_PASSTHROUGH, PATH_TRANSIT, UDP_HDR_LEN, UdpHdr, csum, flow_hash_v4,
    flow_hash_v6, names, programs, udp_src_port,
};

pub type Mac = [u8; 6];

/// Offset of the Geneve header in an overlay frame.
pub const GENEVE_OFF: usize = ETH_HDR_LEN + IPV4_HDR_LEN + UDP_HDR_LEN;
/// Bytes encapsulation adds in front of the inner packet, Ethernet aside (52).
pub const ENCAP_GROWTH: usize = ENCAP_OVERHEAD - ETH_HDR_LEN;

// ---- Frame builders ------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Addrs {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp(u16, u16),
    Udp(u16, u16),
    /// Echo request (ICMPv4 or ICMPv6 by address family).
    Icmp,
}

/// A workload's IP packet (the overlay's inner packet), serialised by etherparse.
#[derive(Clone, Debug)]
pub struct Inner {
    addrs: Addrs,
    l4: L4,
    payload: usize,
    more_fragments: bool,
}

impl Inner {
    pub fn v4(src: [u8; 4], dst: [u8; 4]) -> Self {
        let addrs = Addrs::V4(src, dst);
        Self {
            addrs,
            l4: L4::Icmp,
            payload: 32,
            more_fragments: false,
        }
    }
    pub fn v6(src: [u8; 16], dst: [u8; 16]) -> Self {
        Self {
            addrs: Addrs::V6(src, dst),
            ..Self::v4([0; 4], [0; 4])
        }
    }
    pub fn tcp(self, src: u16, dst: u16) -> Self {
        Self {
            l4: L4::Tcp(src, dst),
            ..self
        }
    }
    pub fn udp(self, src: u16, dst: u16) -> Self {
        Self {
            l4: L4::Udp(src, dst),
            ..self
        }
    }
    pub fn icmp(self) -> Self {
        Self {
            l4: L4::Icmp,
            ..self
        }
    }
    /// Sizes the payload so that the IP packet is exactly `len` bytes.
    pub fn ip_len(self, len: usize) -> Self {
        let ip = if self.is_v4() {
            IPV4_HDR_LEN
        } else {
            IPV6_HDR_LEN
        };
        let l4 = if let L4::Tcp(..) = self.l4 { 20 } else { 8 };
        let payload = len
            .checked_sub(ip + l4)
            .expect("ip_len shorter than the headers");
        Self { payload, ..self }
    }
    /// IPv4 only: sets More Fragments (the data plane then hashes without ports).
    pub fn more_fragments(self) -> Self {
        Self {
            more_fragments: true,
            ..self
        }
    }
    fn is_v4(&self) -> bool {
        matches!(self.addrs, Addrs::V4(..))
    }
    pub fn ether_type(&self) -> u16 {
        if self.is_v4() { ETH_P_IPV4 } else { ETH_P_IPV6 }
    }
    /// The flow hash the data plane must compute: ports only for unfragmented TCP/UDP.
    pub fn flow_hash(&self) -> FlowHash {
        let icmp = if self.is_v4() {
            IPPROTO_ICMP
        } else {
            IPPROTO_ICMPV6
        };
        let (proto, sp, dp) = match self.l4 {
            L4::Tcp(s, d) => (IPPROTO_TCP, s, d),
            L4::Udp(s, d) => (IPPROTO_UDP, s, d),
            L4::Icmp => (icmp, 0, 0),
        };
        let (sp, dp) = if self.more_fragments {
            (0, 0)
        } else {
            (sp, dp)
        };
        match self.addrs {
            Addrs::V4(s, d) => flow_hash_v4(s, d, proto, sp, dp),
            Addrs::V6(s, d) => flow_hash_v6(s, d, proto, sp, dp),
        }
    }
    fn ip_headers(&self) -> IpHeaders {
        match self.addrs {
            Addrs::V4(s, d) => {
                let mut h = Ipv4Header::new(0, 64, IpNumber::UDP, s, d).expect("ipv4 header");
                h.identification = 0x2a2a;
                h.dont_fragment = !self.more_fragments;
                h.more_fragments = self.more_fragments;
                IpHeaders::Ipv4(h, Default::default())
            }
            Addrs::V6(s, d) => {
                let h = Ipv6Header {
                    hop_limit: 64,
                    source: s,
                    destination: d,
                    ..Default::default()
                };
                IpHeaders::Ipv6(h, Default::default())
            }
        }
    }
    fn write(&self, step: PacketBuilderStep<IpHeaders>) -> Vec<u8> {
        let payload: Vec<u8> = (0..self.payload).map(|i| i as u8).collect();
        let mut out = Vec::new();
        match (self.l4, self.is_v4()) {
            (L4::Tcp(s, d), _) => step.tcp(s, d, 0x0102_0304, 64240).write(&mut out, &payload),
            (L4::Udp(s, d), _) => step.udp(s, d).write(&mut out, &payload),
            (L4::Icmp, true) => step
                .icmpv4_echo_request(0x4d58, 1)
                .write(&mut out, &payload),
            (L4::Icmp, false) => step
                .icmpv6_echo_request(0x4d58, 1)
                .write(&mut out, &payload),
        }
        .expect("etherparse serialises the packet");
        out
    }
    /// The IP packet alone.
    pub fn ip_bytes(&self) -> Vec<u8> {
        self.write(PacketBuilder::ip(self.ip_headers()))
    }
    /// The IP packet in an Ethernet frame.
    pub fn frame(&self, src: Mac, dst: Mac) -> Vec<u8> {
        self.write(PacketBuilder::ethernet2(src, dst).ip(self.ip_headers()))
    }
}

/// A broadcast ARP request.
pub fn arp_request(src: Mac, sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let (hw, op) = (ArpHardwareId::ETHERNET, ArpOperation::REQUEST);
    let arp = ArpPacket::new(hw, EtherType::IPV4, op, &src, &sender, &[0; 6], &target);
    let mut out = Vec::new();
    let step = PacketBuilder::ethernet2(src, [0xff; 6]).arp(arp.expect("arp"));
    step.write(&mut out).expect("arp frame");
    out
}

/// Builder of an overlay frame: outer Ethernet / IPv4 / UDP 6081 / Geneve / Matrix option,
/// then the inner packet. Defaults are what encapsulation writes (DF, id 0, TTL 64, UDP
/// checksum 0, C flag); any field can be changed, with [`Encap::with`] for the rare ones.
#[derive(Clone, Debug)]
pub struct Encap {
    pub outer: OuterV4,
    pub inner: Vec<u8>,
    total_len: Option<u16>,
    truncate: Option<usize>,
}

/// Outer headers around `inner`, whose EtherType is `protocol`.
pub fn encapsulated(protocol: u16, inner: &[u8]) -> Encap {
    let outer = OuterV4 {
        eth: EthHdr {
            dst: [0; 6],
            src: [0; 6],
            ether_type: ETH_P_IPV4.to_be_bytes(),
        },
        ip: Ipv4Hdr {
            version_ihl: 0x45,
            tos: 0,
            total_len: [0; 2],
            id: [0; 2],
            frag_off: IPV4_DF.to_be_bytes(),
            ttl: OUTER_TTL,
            protocol: IPPROTO_UDP,
            check: [0; 2],
            src: [0; 4],
            dst: [0; 4],
        },
        udp: UdpHdr {
            src_port: udp_src_port(0).to_be_bytes(),
            dst_port: GENEVE_PORT.to_be_bytes(),
            len: [0; 2],
            check: [0; 2],
        },
        geneve: GeneveHdr::new(protocol, 0),
        opt: MatrixOpt::new(0, 0, DEFAULT_HOP_LIMIT, 0),
    };
    Encap {
        outer,
        inner: inner.to_vec(),
        total_len: None,
        truncate: None,
    }
}

impl Encap {
    /// Outer headers around `inner`, with its protocol and flow hash.
    pub fn of(inner: &Inner) -> Self {
        encapsulated(inner.ether_type(), &inner.ip_bytes()).flow(inner.flow_hash())
    }
    /// Sets any header field, e.g. `.with(|o| o.ip.tos = 0x10)`.
    pub fn with(mut self, set: impl FnOnce(&mut OuterV4)) -> Self {
        set(&mut self.outer);
        self
    }
    pub fn eth(self, src: Mac, dst: Mac) -> Self {
        self.with(|o| (o.eth.src, o.eth.dst) = (src, dst))
    }
    pub fn ip(self, src: [u8; 4], dst: [u8; 4]) -> Self {
        self.with(|o| (o.ip.src, o.ip.dst) = (src, dst))
    }
    pub fn ttl(self, ttl: u8) -> Self {
        self.with(|o| o.ip.ttl = ttl)
    }
    pub fn udp_check(self, check: u16) -> Self {
        self.with(|o| o.udp.check = check.to_be_bytes())
    }
    pub fn vni(self, vni: u32) -> Self {
        self.with(|o| o.geneve.vni_reserved = (vni << 8).to_be_bytes())
    }
    pub fn geneve_version(self, version: u8) -> Self {
        self.with(|o| o.geneve.ver_opt_len = (version << 6) | GENEVE_OPT_WORDS)
    }
    pub fn nodes(self, dst: u32, src: u32) -> Self {
        self.with(|o| (o.opt.dst_node, o.opt.src_node) = (dst.to_be_bytes(), src.to_be_bytes()))
    }
    pub fn hop_limit(self, hop_limit: u8) -> Self {
        self.with(|o| o.opt.hop_limit = hop_limit)
    }
    /// Flow hash in the option and the UDP source port derived from it.
    pub fn flow(self, hash: FlowHash) -> Self {
        self.with(|o| {
            o.opt.flow_hash = hash.to_be_bytes();
            o.udp.src_port = udp_src_port(hash).to_be_bytes();
        })
    }
    /// Overrides the IP total length (default: the real length).
    pub fn total_len(self, len: u16) -> Self {
        Self {
            total_len: Some(len),
            ..self
        }
    }
    /// Cuts the built frame after `len` bytes (header lengths stay as if whole).
    pub fn truncate(self, len: usize) -> Self {
        Self {
            truncate: Some(len),
            ..self
        }
    }
    pub fn build(&self) -> Vec<u8> {
        let mut o = self.outer;
        let udp_len = UDP_HDR_LEN + GENEVE_HDR_LEN + MATRIX_OPT_LEN + self.inner.len();
        o.udp.len = (udp_len as u16).to_be_bytes();
        let total_len = self.total_len.unwrap_or((IPV4_HDR_LEN + udp_len) as u16);
        o.ip.total_len = total_len.to_be_bytes();
        o.ip.check = csum::ipv4_header(&o.ip).to_be_bytes();
        let mut frame = [outer_bytes(&o), self.inner.clone()].concat();
        frame.truncate(self.truncate.unwrap_or(frame.len()));
        frame
    }
}

/// The outer header fields in wire order: one list for serialising and parsing, so the
/// bytes never depend on the structs' memory layout.
fn outer_fields(o: &mut OuterV4) -> [&mut [u8]; 29] {
    use std::slice::from_mut as one;
    let OuterV4 {
        eth,
        ip,
        udp,
        geneve: g,
        opt,
    } = o;
    #[rustfmt::skip]
    let fields: [&mut [u8]; 29] = [
        &mut eth.dst, &mut eth.src, &mut eth.ether_type,
        one(&mut ip.version_ihl), one(&mut ip.tos), &mut ip.total_len, &mut ip.id,
        &mut ip.frag_off, one(&mut ip.ttl), one(&mut ip.protocol), &mut ip.check, &mut ip.src,
        &mut ip.dst,
        &mut udp.src_port, &mut udp.dst_port, &mut udp.len, &mut udp.check,
        one(&mut g.ver_opt_len), one(&mut g.flags), &mut g.protocol, &mut g.vni_reserved,
        &mut opt.class, one(&mut opt.opt_type), one(&mut opt.len), &mut opt.dst_node,
        &mut opt.src_node, one(&mut opt.hop_limit), one(&mut opt.flags), &mut opt.flow_hash,
    ];
    fields
}

/// Serialises the outer headers.
pub fn outer_bytes(o: &OuterV4) -> Vec<u8> {
    let mut o = *o;
    outer_fields(&mut o).concat()
}

/// Parses the outer headers of an overlay frame (the inverse of [`outer_bytes`]).
pub fn parse_outer(frame: &[u8]) -> Option<OuterV4> {
    let mut rest = frame.get(..ENCAP_OVERHEAD)?;
    let mut o = encapsulated(0, &[]).outer;
    for field in outer_fields(&mut o) {
        let (head, tail) = rest.split_at(field.len());
        field.copy_from_slice(head);
        rest = tail;
    }
    Some(o)
}

// ---- The standard world --------------------------------------------------------------------

pub const LOCAL_NODE: u32 = 0x0001_0001;
pub const VNI: u32 = 0x00_4D58;
pub const HOP_LIMIT: u8 = DEFAULT_HOP_LIMIT;
/// The node that originated the overlay traffic we relay or receive.
pub const REMOTE_SOURCE: u32 = 0x0003_0001;
pub const NODE_TX: u32 = 0x0001_0002;
pub const NODE_REDIRECT: u32 = 0x0001_0003;
pub const NODE_SMALL_MTU: u32 = 0x0001_0004;
pub const NODE_DOWN: u32 = 0x0001_0005;
/// Owns an overlay prefix but has no route.
pub const NODE_UNROUTED: u32 = 0x0001_0009;
/// Zone 2 (NodeId prefix /16) is reached by ECMP over the TX and REDIRECT neighbours.
pub const ZONE_ECMP: u32 = 0x0002_0000;
pub const NODE_ECMP: u32 = 0x0002_0007;

pub const SLOT_TX: u32 = 1;
pub const SLOT_REDIRECT: u32 = 2;
pub const SLOT_SMALL_MTU: u32 = 3;
/// Valid but not resolved: unusable as a next hop.
pub const SLOT_DOWN: u32 = 4;

/// BPF_PROG_TEST_RUN delivers frames on the loopback device: a neighbour on ifindex 1 is
/// reached by XDP_TX.
pub const LO_IFINDEX: u32 = 1;
/// A made-up egress ifindex. EGRESS maps it to lo, which always exists, so
/// `bpf_redirect_map` succeeds (XDP_REDIRECT) on any host without creating interfaces.
pub const REDIRECT_IFINDEX: u32 = 7;
pub const UNDERLAY_MTU: u32 = 1500;
pub const SMALL_MTU: u32 = 600;
/// Sends Geneve to us but is no neighbour.
pub const UNKNOWN_PEER: [u8; 4] = [192, 0, 2, 99];
pub const WORKLOAD_MAC: Mac = [0x02, 0, 0, 0, 0xaa, 0x01];
pub const HOST_MAC: Mac = [0x02, 0, 0, 0, 0xaa, 0x02];

/// Overlay networks 10.`net`.0.0/16 and fd00:0:`net`::/48, and their owners.
pub const NET_LOCAL: u8 = 1;
pub const NET_TX: u8 = 2;
pub const NET_REDIRECT: u8 = 3;
pub const NET_SMALL_MTU: u8 = 4;
pub const NET_DOWN: u8 = 5;
pub const NET_UNROUTED: u8 = 9;
pub const NET_ECMP: u8 = 20;
/// No overlay prefix covers this net.
pub const NET_UNOWNED: u8 = 99;
const OWNERS: [(u8, u32); 7] = [
    (NET_LOCAL, LOCAL_NODE),
    (NET_TX, NODE_TX),
    (NET_REDIRECT, NODE_REDIRECT),
    (NET_SMALL_MTU, NODE_SMALL_MTU),
    (NET_DOWN, NODE_DOWN),
    (NET_UNROUTED, NODE_UNROUTED),
    (NET_ECMP, NODE_ECMP),
];

pub const fn ov4(net: u8, host: u8) -> [u8; 4] {
    [10, net, 0, host]
}
pub const fn ov6(net: u8, host: u8) -> [u8; 16] {
    [0xfd, 0, 0, 0, 0, net, 0, 0, 0, 0, 0, 0, 0, 0, 0, host]
}

const USABLE: u32 = NEIGHBOR_F_VALID | NEIGHBOR_F_RESOLVED;

/// Link `net`.0/24: we are .1 with MAC 02::`slot`:01, the neighbour .2 with 02::`slot`:02.
const fn link(
    slot: u8,
    node_id: u32,
    ifindex: u32,
    mtu: u32,
    flags: u32,
    net: [u8; 3],
) -> Neighbor {
    let [a, b, c] = net;
    Neighbor {
        node_id,
        ifindex,
        mtu,
        flags,
        local_ipv4: [a, b, c, 1],
        remote_ipv4: [a, b, c, 2],
        local_mac: [0x02, 0, 0, 0, slot, 0x01],
        remote_mac: [0x02, 0, 0, 0, slot, 0x02],
    }
}

#[rustfmt::skip]
pub const NEIGHBORS: [(u32, Neighbor); 4] = [
    (SLOT_TX, link(1, NODE_TX, LO_IFINDEX, UNDERLAY_MTU, USABLE, [192, 0, 2])),
    (SLOT_REDIRECT, link(2, NODE_REDIRECT, REDIRECT_IFINDEX, UNDERLAY_MTU, USABLE, [198, 51, 100])),
    (SLOT_SMALL_MTU, link(3, NODE_SMALL_MTU, LO_IFINDEX, SMALL_MTU, USABLE, [203, 0, 113])),
    (SLOT_DOWN, link(4, NODE_DOWN, LO_IFINDEX, UNDERLAY_MTU, NEIGHBOR_F_VALID, [100, 64, 4])),
];

/// The neighbour in `slot` of the standard world.
pub fn neighbor(slot: u32) -> Neighbor {
    let found = NEIGHBORS.iter().find(|(s, _)| *s == slot);
    found.map(|(_, n)| *n).expect("no such neighbour slot")
}

/// What the agent would have written into the maps.
#[derive(Clone, Debug)]
pub struct World {
    pub config: Config,
    pub neighbors: Vec<(u32, Neighbor)>,
    pub neigh_by_addr: Vec<([u8; 4], u32)>,
    /// (prefix length, NodeId prefix, next hops).
    pub routes: Vec<(u32, u32, NextHopSet)>,
    pub overlay_v4: Vec<(u32, [u8; 4], OverlayOwner)>,
    pub overlay_v6: Vec<(u32, [u8; 16], OverlayOwner)>,
    /// (EGRESS key, target ifindex).
    pub egress: Vec<(u32, u32)>,
}

/// Longest-prefix match over `(prefix length, prefix, value)` rows.
fn lpm<'a, K: AsRef<[u8]>, V>(table: &'a [(u32, K, V)], addr: &[u8]) -> Option<&'a V> {
    let bit = |b: &[u8], i: usize| b[i / 8] & (0x80 >> (i % 8));
    let matches = |len: u32, p: &[u8]| (0..len as usize).all(|i| bit(addr, i) == bit(p, i));
    let rows = table.iter().filter(|(len, p, _)| matches(*len, p.as_ref()));
    rows.max_by_key(|(len, _, _)| *len).map(|(_, _, v)| v)
}

impl World {
    pub fn standard() -> Self {
        let owner = |node_id| OverlayOwner { node_id, flags: 0 };
        let hops = |members: &[(u32, u32)]| NextHopSet::new(members);
        Self {
            config: Config {
                node_id: LOCAL_NODE,
                vni: VNI,
                hop_limit: HOP_LIMIT as u32,
                flags: 0,
            },
            neighbors: NEIGHBORS.to_vec(),
            neigh_by_addr: NEIGHBORS
                .iter()
                .map(|(slot, n)| (n.remote_ipv4, *slot))
                .collect(),
            routes: vec![
                (32, NODE_TX, hops(&[(SLOT_TX, 1)])),
                (32, NODE_REDIRECT, hops(&[(SLOT_REDIRECT, 1)])),
                (32, NODE_SMALL_MTU, hops(&[(SLOT_SMALL_MTU, 1)])),
                (32, NODE_DOWN, hops(&[(SLOT_DOWN, 1)])),
                (16, ZONE_ECMP, hops(&[(SLOT_TX, 1), (SLOT_REDIRECT, 1)])),
            ],
            overlay_v4: OWNERS
                .iter()
                .map(|&(net, n)| (16, ov4(net, 0), owner(n)))
                .collect(),
            overlay_v6: OWNERS
                .iter()
                .map(|&(net, n)| (48, ov6(net, 0), owner(n)))
                .collect(),
            egress: vec![(REDIRECT_IFINDEX, LO_IFINDEX)],
        }
    }

    /// The neighbour slot that carries flow `hash` to `node`, as the data plane picks it.
    pub fn next_hop(&self, node: u32, hash: FlowHash) -> Option<u32> {
        let routes: Vec<_> = self
            .routes
            .iter()
            .map(|&(l, p, s)| (l, p.to_be_bytes(), s))
            .collect();
        lpm(&routes, &node.to_be_bytes())?.pick(hash)
    }

    /// The node owning the destination of `inner`.
    pub fn owner(&self, inner: &Inner) -> Option<u32> {
        match inner.addrs {
            Addrs::V4(_, d) => lpm(&self.overlay_v4, &d).map(|o| o.node_id),
            Addrs::V6(_, d) => lpm(&self.overlay_v6, &d).map(|o| o.node_id),
        }
    }

    /// Writes the world into the maps of a loaded object.
    pub fn install(&self, ebpf: &mut Ebpf) -> anyhow::Result<()> {
        let mut config: Array<_, Config> = Array::try_from(map_mut(ebpf, names::CONFIG)?)?;
        config.set(0, self.config, 0)?;
        let mut neighbors: Array<_, Neighbor> = Array::try_from(map_mut(ebpf, names::NEIGHBORS)?)?;
        for (slot, n) in &self.neighbors {
            neighbors.set(*slot, n, 0)?;
        }
        let by_addr = map_mut(ebpf, names::NEIGH_BY_ADDR)?;
        let mut by_addr: HashMap<_, [u8; 4], u32> = HashMap::try_from(by_addr)?;
        for (addr, slot) in &self.neigh_by_addr {
            by_addr.insert(addr, slot, 0)?;
        }
        let routes = map_mut(ebpf, names::ROUTES)?;
        let mut routes: LpmTrie<_, NodeKey, NextHopSet> = LpmTrie::try_from(routes)?;
        for (len, prefix, set) in &self.routes {
            routes.insert(&Key::new(*len, prefix.to_be_bytes()), set, 0)?;
        }
        let v4 = map_mut(ebpf, names::OVERLAY_V4)?;
        let mut v4: LpmTrie<_, [u8; 4], OverlayOwner> = LpmTrie::try_from(v4)?;
        for (len, prefix, owner) in &self.overlay_v4 {
            v4.insert(&Key::new(*len, *prefix), owner, 0)?;
        }
        let v6 = map_mut(ebpf, names::OVERLAY_V6)?;
        let mut v6: LpmTrie<_, [u8; 16], OverlayOwner> = LpmTrie::try_from(v6)?;
        for (len, prefix, owner) in &self.overlay_v6 {
            v6.insert(&Key::new(*len, *prefix), owner, 0)?;
        }
        let mut egress = DevMapHash::try_from(map_mut(ebpf, names::EGRESS)?)?;
        for (key, ifindex) in &self.egress {
            egress
                .insert(*key, *ifindex, None, 0)
                .map_err(|e| anyhow!("EGRESS[{key}]: {e}"))?;
        }
        Ok(())
    }
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut Map> {
    ebpf.map_mut(name)
        .ok_or_else(|| anyhow!("map {name} not in the object"))
}

// ---- Running programs with BPF_PROG_TEST_RUN ----------------------------------------------

/// The trivial XDP_TX program every per-packet cost is reported against.
pub const BASELINE_TX: &str = "matrix_baseline_tx";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prog {
    Underlay,
    Workload,
    BaselineTx,
}

impl Prog {
    pub const fn name(self) -> &'static str {
        match self {
            Prog::Underlay => programs::UNDERLAY,
            Prog::Workload => programs::WORKLOAD,
            Prog::BaselineTx => BASELINE_TX,
        }
    }
}

/// XDP action codes; also the COUNTERS verdict slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Aborted = 0,
    Drop = 1,
    Pass = 2,
    Tx = 3,
    Redirect = 4,
}

impl Action {
    pub fn from_code(code: u32) -> Option<Self> {
        use Action::*;
        [Aborted, Drop, Pass, Tx, Redirect]
            .into_iter()
            .find(|a| *a as u32 == code)
    }
}

/// Loads the data plane object and its XDP programs (BPF_PROG_TEST_RUN needs no attach)
/// and writes `world` into its maps. Maps are not pinned: each instance is independent.
pub fn load(world: &World) -> anyhow::Result<Ebpf> {
    let object = crate::dataplane::object();
    let mut ebpf = aya::EbpfLoader::new()
        .load(object)
        .context("load the object")?;
    for name in [
        programs::UNDERLAY,
        programs::WORKLOAD,
        programs::PASS,
        BASELINE_TX,
    ] {
        let prog = ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("no program {name}"))?;
        let prog: &mut Xdp = prog.try_into()?;
        prog.load().with_context(|| format!("load {name}"))?;
    }
    world
        .install(&mut ebpf)
        .context("write the world into the maps")?;
    Ok(ebpf)
}

pub fn program(ebpf: &Ebpf, prog: Prog) -> anyhow::Result<&Xdp> {
    let p = ebpf
        .program(prog.name())
        .ok_or_else(|| anyhow!("no program {}", prog.name()))?;
    Ok(p.try_into()?)
}

// ---- The fixture table ---------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Baseline,
    Passthrough,
    Transit,
    Encap,
    Decap,
    Drop,
    Garbage,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// This action, counted once under its verdict slot and once under this path or drop
    /// reason slot.
    Counted(Action, u32),
    /// This action and no counter (the baseline program counts nothing).
    Uncounted(Action),
    /// Garbage: PASS or DROP, counted once by verdict and once by path or drop reason.
    PassOrDrop,
}

#[derive(Clone, Debug)]
pub struct Fixture {
    pub name: String,
    pub kind: Kind,
    pub prog: Prog,
    pub input: Vec<u8>,
    pub expect: Expect,
    /// The exact bytes out.
    pub output: Vec<u8>,
    /// NEIGH_STATS deltas; slots not listed must not change.
    pub neigh: Vec<(u32, NeighborStats)>,
}

impl Fixture {
    fn new(
        name: impl Into<String>,
        kind: Kind,
        prog: Prog,
        input: Vec<u8>,
        expect: Expect,
    ) -> Self {
        let (name, output, neigh) = (name.into(), input.clone(), Vec::new());
        Self {
            name,
            kind,
            prog,
            input,
            expect,
            output,
            neigh,
        }
    }
    fn output(self, output: Vec<u8>) -> Self {
        Self { output, ..self }
    }
    fn stats(&mut self, slot: u32) -> &mut NeighborStats {
        if !self.neigh.iter().any(|(s, _)| *s == slot) {
            self.neigh.push((slot, NeighborStats::default()));
        }
        &mut self.neigh.iter_mut().find(|(s, _)| *s == slot).unwrap().1
    }
    /// The underlay program counts the frame received against the sending neighbour.
    fn rx(mut self, slot: u32) -> Self {
        let len = self.input.len() as u64;
        let s = self.stats(slot);
        (s.rx_packets, s.rx_bytes) = (s.rx_packets + 1, s.rx_bytes + len);
        self
    }
    /// Transit and encapsulation count the frame sent against the chosen neighbour.
    fn tx(mut self, slot: u32) -> Self {
        let len = self.output.len() as u64;
        let s = self.stats(slot);
        (s.tx_packets, s.tx_bytes) = (s.tx_packets + 1, s.tx_bytes + len);
        self
    }
    /// The expected NEIGH_STATS delta of `slot`.
    pub fn neigh_delta(&self, slot: u32) -> NeighborStats {
        let found = self.neigh.iter().find(|(s, _)| *s == slot);
        found.map_or_else(NeighborStats::default, |(_, s)| *s)
    }
}

/// Every fixture, in table order.
pub fn all() -> Vec<Fixture> {
    [
        baseline(),
        passthrough(),
        transit(),
        encap(),
        decap(),
        drops(),
        garbage(),
    ]
    .concat()
}

/// The fixture called `name`; panics when there is none (a typo in a test or bench).
pub fn by_name(name: &str) -> Fixture {
    let found = all().into_iter().find(|f| f.name == name);
    found.unwrap_or_else(|| panic!("no fixture {name}"))
}

/// A workload's frame to the host side of its veth.
pub fn workload_frame(inner: &Inner) -> Vec<u8> {
    inner.frame(WORKLOAD_MAC, HOST_MAC)
}

/// An overlay frame as the neighbour in `from` sends it to us, for `dst_node`, with the
/// sender's own TTL, id, TOS and UDP checksum, so a test sees what a relay rewrites.
pub fn arriving(from: u32, inner: &Inner, dst_node: u32) -> Encap {
    let nb = neighbor(from);
    Encap::of(inner)
        .eth(nb.remote_mac, nb.local_mac)
        .ip(nb.remote_ipv4, nb.local_ipv4)
        .ttl(61)
        .with(|o| (o.ip.id, o.ip.tos) = (0x1c46u16.to_be_bytes(), 0x10))
        .udp_check(0xbeef)
        .vni(VNI)
        .nodes(dst_node, REMOTE_SOURCE)
        .hop_limit(HOP_LIMIT)
}

/// `input` as transit must send it to the neighbour in `to`.
pub fn relayed(input: &Encap, to: u32) -> Encap {
    let nb = neighbor(to);
    let hop_limit = input.outer.opt.hop_limit - 1;
    let out = input
        .clone()
        .eth(nb.local_mac, nb.remote_mac)
        .ip(nb.local_ipv4, nb.remote_ipv4);
    out.ttl(OUTER_TTL).udp_check(0).hop_limit(hop_limit)
}

/// `inner` as encapsulation must send it to `dst_node` through the neighbour in `via`.
pub fn encapsulated_here(inner: &Inner, dst_node: u32, via: u32) -> Encap {
    let nb = neighbor(via);
    let out = Encap::of(inner)
        .eth(nb.local_mac, nb.remote_mac)
        .ip(nb.local_ipv4, nb.remote_ipv4);
    out.vni(VNI)
        .nodes(dst_node, LOCAL_NODE)
        .hop_limit(HOP_LIMIT)
}

/// Decapsulation keeps the outer MACs and puts the inner EtherType after them.
pub fn decapsulated(input: &[u8], inner: &Inner) -> Vec<u8> {
    [
        &input[..12],
        &inner.ether_type().to_be_bytes()[..],
        &inner.ip_bytes(),
    ]
    .concat()
}

fn send_action(slot: u32) -> Action {
    if neighbor(slot).ifindex == LO_IFINDEX {
        Action::Tx
    } else {
        Action::Redirect
    }
}

const PASSED: Expect = Expect::Counted(Action::Pass, PATH_PASSTHROUGH);

fn dropped(reason: u32) -> Expect {
    Expect::Counted(Action::Drop, reason)
}

// Overlay traffic: a local workload talking to one on network `net`.
fn v4(net: u8) -> Inner {
    Inner::v4(ov4(NET_LOCAL, 10), ov4(net, 20))
}
fn v6(net: u8) -> Inner {
    Inner::v6(ov6(NET_LOCAL, 10), ov6(net, 20))
}

fn baseline() -> Vec<Fixture> {
    let frame = arriving(SLOT_REDIRECT, &v4(NET_TX).tcp(40000, 80), NODE_TX).build();
    let expect = Expect::Uncounted(Action::Tx);
    vec![Fixture::new(
        "baseline/tx",
        Kind::Baseline,
        Prog::BaselineTx,
        frame,
        expect,
    )]
}

/// `geneve` with IP options (NOP, NOP, NOP, EOL): matrix never sends options, so such a
/// packet is not overlay traffic.
fn with_ip_options(geneve: &Encap) -> Vec<u8> {
    let o = &geneve.outer;
    let mut ip = Ipv4Header::new(0, o.ip.ttl, IpNumber::UDP, o.ip.src, o.ip.dst).expect("ipv4");
    ip.options = [1, 1, 1, 0].into();
    let step =
        PacketBuilder::ethernet2(o.eth.src, o.eth.dst).ip(IpHeaders::Ipv4(ip, Default::default()));
    let mut out = Vec::new();
    let payload = &geneve.build()[GENEVE_OFF..];
    step.udp(o.udp.src_port(), GENEVE_PORT)
        .write(&mut out, payload)
        .expect("ip options frame");
    out
}

#[rustfmt::skip]
fn passthrough() -> Vec<Fixture> {
    use Prog::{Underlay as U, Workload as W};
    let nb = neighbor(SLOT_TX);
    let host = |i: Inner| i.frame(nb.remote_mac, nb.local_mac);
    let doc = |host| [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, host];
    let geneve = arriving(SLOT_TX, &v4(NET_LOCAL).tcp(40000, 80), LOCAL_NODE);
    let mk = |name: &str, prog, frame| Fixture::new(name, Kind::Passthrough, prog, frame, PASSED);
    vec![
        mk("underlay/pass_arp", U, arp_request(nb.remote_mac, nb.remote_ipv4, nb.local_ipv4)),
        mk("underlay/pass_ipv6_underlay", U, host(Inner::v6(doc(2), doc(1)).udp(50000, GENEVE_PORT))),
        mk("underlay/pass_tcp", U, host(Inner::v4(nb.remote_ipv4, nb.local_ipv4).tcp(50000, 22))),
        mk("underlay/pass_udp_other_port", U, host(Inner::v4(nb.remote_ipv4, nb.local_ipv4).udp(50000, 53))),
        // More Fragments set, DF clear.
        mk("underlay/pass_ip_fragment", U, geneve.clone().with(|o| o.ip.frag_off = [0x20, 0]).build()),
        mk("underlay/pass_ip_options", U, with_ip_options(&geneve)),
        mk("workload/pass_arp", W, arp_request(WORKLOAD_MAC, ov4(NET_LOCAL, 10), ov4(NET_LOCAL, 1))),
        mk("workload/pass_unowned_v4", W, workload_frame(&v4(NET_UNOWNED).tcp(40000, 80))),
        mk("workload/pass_unowned_v6", W, workload_frame(&v6(NET_UNOWNED).tcp(40000, 80))),
        // Traffic between two workloads of this node never enters the overlay.
        mk("workload/pass_local_owner_v4", W, workload_frame(&v4(NET_LOCAL).udp(40000, 53))),
        mk("workload/pass_local_owner_v6", W, workload_frame(&v6(NET_LOCAL).udp(40000, 53))),
    ]
}

/// Transit of `input`, arriving from `from`, to the next hop the world picks.
fn transit_case(name: &str, from: u32, input: Encap) -> Fixture {
    let o = &input.outer.opt;
    let to = World::standard()
        .next_hop(o.dst_node(), o.flow_hash())
        .expect("a route");
    let expect = Expect::Counted(send_action(to), PATH_TRANSIT);
    let out = relayed(&input, to).build();
    Fixture::new(name, Kind::Transit, Prog::Underlay, input.build(), expect)
        .output(out)
        .rx(from)
        .tx(to)
}

#[rustfmt::skip]
fn transit() -> Vec<Fixture> {
    let (tx, rd) = (SLOT_TX, SLOT_REDIRECT);
    let at_mtu = v4(NET_SMALL_MTU).udp(40000, 53).ip_len(SMALL_MTU as usize - ENCAP_GROWTH);
    let ecmp = v4(NET_ECMP).tcp(40000, 80);
    vec![
        transit_case("underlay/transit_tx_v4_tcp", rd, arriving(rd, &v4(NET_TX).tcp(40000, 80), NODE_TX)),
        transit_case("underlay/transit_tx_v6_udp", rd, arriving(rd, &v6(NET_TX).udp(40000, 53), NODE_TX)),
        transit_case("underlay/transit_tx_v4_icmp", rd, arriving(rd, &v4(NET_TX).icmp(), NODE_TX)),
        transit_case("underlay/transit_redirect_v4_udp", tx, arriving(tx, &v4(NET_REDIRECT).udp(40000, 53), NODE_REDIRECT)),
        transit_case("underlay/transit_redirect_v6_tcp", tx, arriving(tx, &v6(NET_REDIRECT).tcp(40000, 443), NODE_REDIRECT)),
        // Outer IP total length == the next hop's MTU: still fits.
        transit_case("underlay/transit_at_mtu", tx, arriving(tx, &at_mtu, NODE_SMALL_MTU)),
        transit_case("underlay/transit_hop_limit_2", tx, arriving(tx, &v4(NET_TX).tcp(1, 2), NODE_TX).hop_limit(2)),
        // The carried flow hash, not the inner packet, picks the ECMP member.
        transit_case("underlay/transit_ecmp_first", tx, arriving(tx, &ecmp, NODE_ECMP).flow(0x0000)),
        transit_case("underlay/transit_ecmp_second", tx, arriving(tx, &ecmp, NODE_ECMP).flow(0xFFFF)),
    ]
}

/// Encapsulation of `inner`, sent by a local workload, towards its owner.
fn encap_case(name: &str, inner: Inner) -> Fixture {
    let world = World::standard();
    let node = world.owner(&inner).expect("an owner");
    let via = world.next_hop(node, inner.flow_hash()).expect("a route");
    let expect = Expect::Counted(send_action(via), PATH_ENCAP);
    let out = encapsulated_here(&inner, node, via).build();
    Fixture::new(
        name,
        Kind::Encap,
        Prog::Workload,
        workload_frame(&inner),
        expect,
    )
    .output(out)
    .tx(via)
}

#[rustfmt::skip]
fn encap() -> Vec<Fixture> {
    vec![
        encap_case("workload/encap_v4_tcp", v4(NET_TX).tcp(40000, 80)),
        encap_case("workload/encap_v4_udp", v4(NET_REDIRECT).udp(40000, 53)),
        encap_case("workload/encap_v4_icmp", v4(NET_TX).icmp()),
        encap_case("workload/encap_v6_tcp", v6(NET_TX).tcp(40000, 443)),
        encap_case("workload/encap_v6_udp", v6(NET_REDIRECT).udp(40000, 53)),
        encap_case("workload/encap_v6_icmp", v6(NET_TX).icmp()),
        encap_case("workload/encap_v4_fragment", v4(NET_TX).udp(40000, 53).more_fragments()),
        // Inner length + 52 == the next hop's MTU: still fits.
        encap_case("workload/encap_at_mtu", v4(NET_SMALL_MTU).tcp(40000, 80).ip_len(SMALL_MTU as usize - ENCAP_GROWTH)),
        encap_case("workload/encap_ecmp_v4", v4(NET_ECMP).tcp(40001, 80)),
        encap_case("workload/encap_ecmp_v6", v6(NET_ECMP).tcp(40001, 80)),
    ]
}

#[rustfmt::skip]
fn decap() -> Vec<Fixture> {
    let cases = [
        ("underlay/decap_v4_tcp", v4(NET_LOCAL).tcp(40000, 80), HOP_LIMIT),
        ("underlay/decap_v4_icmp", v4(NET_LOCAL).icmp(), HOP_LIMIT),
        ("underlay/decap_v6_udp", v6(NET_LOCAL).udp(40000, 53), HOP_LIMIT),
        ("underlay/decap_v6_icmp", v6(NET_LOCAL).icmp(), HOP_LIMIT),
        // The hop limit bounds relaying only: the last hop delivers whatever is left.
        ("underlay/decap_v4_hop_limit_0", v4(NET_LOCAL).udp(1, 2), 0),
    ];
    let expect = Expect::Counted(Action::Pass, PATH_DECAP);
    cases.into_iter().map(|(name, inner, hop)| {
        let input = arriving(SLOT_TX, &inner, LOCAL_NODE).hop_limit(hop).build();
        let out = decapsulated(&input, &inner);
        Fixture::new(name, Kind::Decap, Prog::Underlay, input, expect).output(out).rx(SLOT_TX)
    }).collect()
}

#[rustfmt::skip]
fn drops() -> Vec<Fixture> {
    use Prog::{Underlay as U, Workload as W};
    let rd = SLOT_REDIRECT;
    let to_tx = arriving(rd, &v4(NET_TX).tcp(40000, 80), NODE_TX);
    let ip_len = (to_tx.build().len() - ETH_HDR_LEN) as u16;
    let headers = (GENEVE_OFF - ETH_HDR_LEN) as u16; // outer IP + UDP
    let big_v4 = v4(NET_SMALL_MTU).udp(40000, 53).ip_len(SMALL_MTU as usize - ENCAP_GROWTH + 1);
    let big_v6 = v6(NET_SMALL_MTU).tcp(1, 2).ip_len(SMALL_MTU as usize - ENCAP_GROWTH + 1);
    let arp = arp_request(WORKLOAD_MAC, ov4(NET_LOCAL, 10), ov4(NET_TX, 20))[ETH_HDR_LEN..].to_vec();
    let inner_arp = Encap { outer: to_tx.outer, ..encapsulated(0x0806, &arp) }.with(|o| o.geneve.protocol = [0x08, 0x06]);
    let mut bad_v4 = workload_frame(&v4(NET_TX).tcp(40000, 80));
    bad_v4[ETH_HDR_LEN] = 0x55; // version 5 behind the IPv4 EtherType
    let mut bad_v6 = workload_frame(&v6(NET_TX).tcp(40000, 80));
    bad_v6[ETH_HDR_LEN] = 0x40; // version 4 behind the IPv6 EtherType
    let mk = |name: &str, prog, frame: Vec<u8>, reason| Fixture::new(name, Kind::Drop, prog, frame, dropped(reason));
    let u = |name: &str, frame: Encap, reason| mk(name, U, frame.build(), reason);
    vec![
        // The IP total length claims only what the frame holds, and that ends in the Geneve header / option.
        u("underlay/drop_malformed_truncated_geneve", to_tx.clone().total_len(headers + 4).truncate(GENEVE_OFF + 4), DROP_MALFORMED),
        u("underlay/drop_malformed_truncated_option", to_tx.clone().total_len(headers + 16).truncate(GENEVE_OFF + 16), DROP_MALFORMED),
        u("underlay/drop_malformed_total_len_over_frame", to_tx.clone().total_len(ip_len + 1), DROP_MALFORMED),
        // Geneve and option complete, but no inner IP header behind them.
        u("underlay/drop_malformed_no_inner_packet", to_tx.clone().total_len(headers + 24).truncate(GENEVE_OFF + 24), DROP_MALFORMED),
        u("underlay/drop_unknown_option_version", to_tx.clone().geneve_version(1), DROP_UNKNOWN_OPTION),
        u("underlay/drop_unknown_option_opt_len", to_tx.clone().with(|o| o.geneve.ver_opt_len = 5), DROP_UNKNOWN_OPTION),
        u("underlay/drop_unknown_option_vni", to_tx.clone().vni(VNI + 1), DROP_UNKNOWN_OPTION),
        u("underlay/drop_unknown_option_class", to_tx.clone().with(|o| o.opt.class = [0x01, 0x01]), DROP_UNKNOWN_OPTION),
        u("underlay/drop_unknown_option_type", to_tx.clone().with(|o| o.opt.opt_type = 0x01), DROP_UNKNOWN_OPTION),
        u("underlay/drop_unknown_option_inner_arp", inner_arp, DROP_UNKNOWN_OPTION),
        u("underlay/drop_unknown_neighbor", to_tx.clone().ip(UNKNOWN_PEER, to_tx.outer.ip.dst), DROP_UNKNOWN_NEIGHBOR),
        // From here on the frame was accepted from a neighbour: counted as received.
        u("underlay/drop_expired", to_tx.clone().hop_limit(1), DROP_EXPIRED).rx(rd),
        u("underlay/drop_expired_hop_limit_0", to_tx.clone().hop_limit(0), DROP_EXPIRED).rx(rd),
        u("underlay/drop_no_route", to_tx.clone().nodes(NODE_UNROUTED, REMOTE_SOURCE), DROP_NO_ROUTE).rx(rd),
        u("underlay/drop_too_big", arriving(SLOT_TX, &big_v4, NODE_SMALL_MTU), DROP_TOO_BIG).rx(SLOT_TX),
        u("underlay/drop_neighbor_down", to_tx.clone().nodes(NODE_DOWN, REMOTE_SOURCE), DROP_NEIGHBOR_DOWN).rx(rd),
        mk("workload/drop_no_route_v4", W, workload_frame(&v4(NET_UNROUTED).tcp(40000, 80)), DROP_NO_ROUTE),
        mk("workload/drop_no_route_v6", W, workload_frame(&v6(NET_UNROUTED).tcp(40000, 80)), DROP_NO_ROUTE),
        mk("workload/drop_too_big_v4", W, workload_frame(&big_v4), DROP_TOO_BIG),
        mk("workload/drop_too_big_v6", W, workload_frame(&big_v6), DROP_TOO_BIG),
        mk("workload/drop_neighbor_down_v4", W, workload_frame(&v4(NET_DOWN).tcp(40000, 80)), DROP_NEIGHBOR_DOWN),
        mk("workload/drop_neighbor_down_v6", W, workload_frame(&v6(NET_DOWN).icmp()), DROP_NEIGHBOR_DOWN),
        mk("workload/drop_malformed_ipv4_version", W, bad_v4, DROP_MALFORMED),
        mk("workload/drop_malformed_ipv6_version", W, bad_v6, DROP_MALFORMED),
    ]
}

/// xorshift64*: deterministic garbage, so that a failure reproduces.
fn random_bytes(state: &mut u64, len: usize) -> Vec<u8> {
    let mut next = || {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
    };
    (0..len).map(|_| next()).collect()
}

fn garbage() -> Vec<Fixture> {
    let mut out = Vec::new();
    let mut seed = 0x6d61_7472_6978_2121;
    let ipv4 = workload_frame(&v4(NET_TX).tcp(40000, 80));
    let ipv6 = workload_frame(&v6(NET_TX).tcp(40000, 80));
    for (prog, tag) in [(Prog::Underlay, "underlay"), (Prog::Workload, "workload")] {
        let mk =
            |name: String, frame, expect| Fixture::new(name, Kind::Garbage, prog, frame, expect);
        // Prefixes of an IPv4 frame. The 13-byte one ends in 0x08: were the run's padding
        // byte (0) visible, it would read as IPv4 and the workload program would drop it.
        for len in [0, 1, 13] {
            out.push(mk(
                format!("{tag}/garbage_{len}_bytes"),
                ipv4[..len].to_vec(),
                PASSED,
            ));
        }
        // Ethernet says IP, 6 bytes of IP follow: not overlay traffic for the underlay; a
        // broken packet from a workload.
        let short_ip = if prog == Prog::Underlay {
            PASSED
        } else {
            dropped(DROP_MALFORMED)
        };
        out.push(mk(
            format!("{tag}/garbage_20_bytes_ipv4"),
            ipv4[..20].to_vec(),
            short_ip,
        ));
        out.push(mk(
            format!("{tag}/garbage_20_bytes_ipv6"),
            ipv6[..20].to_vec(),
            short_ip,
        ));
        for i in 0..8 {
            let len = 14 + random_bytes(&mut seed, 1)[0] as usize;
            out.push(mk(
                format!("{tag}/garbage_random_{i}"),
                random_bytes(&mut seed, len),
                Expect::PassOrDrop,
            ));
        }
    }
    // Valid outer headers from a known neighbour, then random Geneve header, option, inner.
    let header = arriving(SLOT_TX, &v4(NET_LOCAL).tcp(40000, 80), LOCAL_NODE).build();
    for i in 0..8 {
        let tail = random_bytes(&mut seed, header.len() - GENEVE_OFF);
        let frame = [&header[..GENEVE_OFF], &tail].concat();
        let name = format!("underlay/garbage_geneve_{i}");
        out.push(Fixture::new(
            name,
            Kind::Garbage,
            Prog::Underlay,
            frame,
            Expect::PassOrDrop,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use etherparse::{Ipv4HeaderSlice, LinkHeader, NetHeaders, PacketHeaders, TransportHeader};
    use matrix_common::{DROP_INTERNAL, DROP_NAMES, GENEVE_FLAG_CRITICAL, MATRIX_OPT_TYPE};

    use super::*;

    fn ipv4_of(frame: &[u8]) -> Ipv4Header {
        Ipv4HeaderSlice::from_slice(&frame[ETH_HDR_LEN..])
            .expect("an IPv4 header")
            .to_header()
    }

    fn headers(frame: &[u8]) -> PacketHeaders<'_> {
        PacketHeaders::from_ethernet_slice(frame).expect("parses")
    }

    #[test]
    fn inner_frames_parse_back() {
        let frame = workload_frame(&v4(NET_TX).tcp(40000, 80).ip_len(50));
        let p = headers(&frame);
        let Some(LinkHeader::Ethernet2(eth)) = p.link else {
            panic!("no ethernet")
        };
        assert_eq!((eth.source, eth.destination), (WORKLOAD_MAC, HOST_MAC));
        assert_eq!(eth.ether_type, EtherType::IPV4);
        let Some(NetHeaders::Ipv4(ip, _)) = p.net else {
            panic!("no ipv4")
        };
        assert_eq!(
            (ip.source, ip.destination, ip.total_len),
            (ov4(NET_LOCAL, 10), ov4(NET_TX, 20), 50)
        );
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        let Some(TransportHeader::Tcp(tcp)) = p.transport else {
            panic!("no tcp")
        };
        assert_eq!((tcp.source_port, tcp.destination_port), (40000, 80));
        assert_eq!(
            tcp.checksum,
            tcp.calc_checksum_ipv4(&ip, p.payload.slice()).unwrap()
        );

        let udp = Inner::v6(ov6(1, 1), ov6(2, 2))
            .udp(5, 6)
            .ip_len(100)
            .ip_bytes();
        let p = PacketHeaders::from_ip_slice(&udp).unwrap();
        let Some(NetHeaders::Ipv6(ip, _)) = p.net else {
            panic!("no ipv6")
        };
        assert_eq!(
            (ip.source, ip.destination, ip.payload_length),
            (ov6(1, 1), ov6(2, 2), 60)
        );
        assert!(matches!(p.transport, Some(TransportHeader::Udp(u)) if u.destination_port == 6));
        let icmp = Inner::v6(ov6(1, 1), ov6(2, 2)).icmp().ip_bytes();
        let p = PacketHeaders::from_ip_slice(&icmp).unwrap();
        assert!(matches!(p.transport, Some(TransportHeader::Icmpv6(_))));

        let frag = v4(NET_TX).udp(40000, 53).more_fragments();
        let ip = ipv4_of(&workload_frame(&frag));
        assert!(ip.more_fragments && !ip.dont_fragment);
        let unported = flow_hash_v4(ov4(NET_LOCAL, 10), ov4(NET_TX, 20), IPPROTO_UDP, 0, 0);
        assert_eq!(frag.flow_hash(), unported);
    }

    #[test]
    fn encapsulated_frame_parses_back() {
        let inner = v4(NET_TX).tcp(40000, 80);
        let e = encapsulated_here(&inner, NODE_TX, SLOT_TX).build();
        let nb = neighbor(SLOT_TX);
        assert_eq!(e.len(), ETH_HDR_LEN + ENCAP_GROWTH + inner.ip_bytes().len());
        let p = headers(&e);
        let Some(LinkHeader::Ethernet2(eth)) = p.link else {
            panic!("no ethernet")
        };
        assert_eq!((eth.source, eth.destination), (nb.local_mac, nb.remote_mac));
        let Some(NetHeaders::Ipv4(ip, _)) = p.net else {
            panic!("no ipv4")
        };
        assert_eq!((ip.source, ip.destination), (nb.local_ipv4, nb.remote_ipv4));
        assert_eq!(
            (ip.time_to_live, ip.identification, ip.dont_fragment),
            (OUTER_TTL, 0, true)
        );
        assert_eq!(ip.total_len as usize, e.len() - ETH_HDR_LEN);
        assert_eq!(
            ip.header_checksum,
            ip.calc_header_checksum(),
            "IPv4 header checksum"
        );
        let Some(TransportHeader::Udp(udp)) = p.transport else {
            panic!("no udp")
        };
        assert_eq!((udp.destination_port, udp.checksum), (GENEVE_PORT, 0));
        assert_eq!(udp.source_port, udp_src_port(inner.flow_hash()));
        assert!(udp.source_port >= 0xC000);
        assert_eq!(udp.length as usize, e.len() - ETH_HDR_LEN - IPV4_HDR_LEN);
        let o = parse_outer(&e).unwrap();
        let g = o.geneve;
        assert_eq!(
            (g.version(), g.opt_len(), g.flags),
            (0, MATRIX_OPT_LEN, GENEVE_FLAG_CRITICAL)
        );
        assert_eq!((g.protocol(), g.vni()), (ETH_P_IPV4, VNI));
        assert!(o.opt.is_matrix() && o.opt.opt_type == MATRIX_OPT_TYPE);
        assert_eq!((o.opt.dst_node(), o.opt.src_node()), (NODE_TX, LOCAL_NODE));
        assert_eq!(
            (o.opt.hop_limit, o.opt.flags, o.opt.flow_hash()),
            (HOP_LIMIT, 0, inner.flow_hash())
        );
        let inner_bytes = &p.payload.slice()[GENEVE_HDR_LEN + MATRIX_OPT_LEN..];
        assert_eq!(inner_bytes, &inner.ip_bytes()[..]);
        let inner_p = PacketHeaders::from_ip_slice(inner_bytes).unwrap();
        assert!(
            matches!(inner_p.transport, Some(TransportHeader::Tcp(t)) if t.destination_port == 80)
        );
    }

    #[test]
    fn outer_bytes_round_trip_and_checksum_agrees_with_etherparse() {
        let e = arriving(SLOT_REDIRECT, &v6(NET_TX).udp(1, 2), NODE_TX)
            .flow(0x1234)
            .build();
        let o = parse_outer(&e).unwrap();
        assert_eq!(outer_bytes(&o), e[..ENCAP_OVERHEAD]);
        let ip = ipv4_of(&e);
        assert_eq!(
            (ip.time_to_live, ip.identification, ip.dscp.value() << 2),
            (61, 0x1c46, 0x10)
        );
        assert_eq!(u16::from_be_bytes(o.ip.check), ip.calc_header_checksum());
        assert_eq!(u16::from_be_bytes(o.ip.check), csum::ipv4_header(&o.ip));
        assert_eq!(o.geneve.protocol(), ETH_P_IPV6);
        assert_eq!(
            (o.opt.flow_hash(), o.udp.src_port()),
            (0x1234, 0xC000 | 0x1234)
        );
    }

    #[test]
    fn relayed_frame_changes_only_what_transit_rewrites() {
        let input = arriving(SLOT_REDIRECT, &v4(NET_TX).tcp(40000, 80), NODE_TX);
        let (a, b) = (input.build(), relayed(&input, SLOT_TX).build());
        let (oa, ob) = (parse_outer(&a).unwrap(), parse_outer(&b).unwrap());
        let nb = neighbor(SLOT_TX);
        assert_eq!((ob.eth.src, ob.eth.dst), (nb.local_mac, nb.remote_mac));
        assert_eq!((ob.ip.src, ob.ip.dst), (nb.local_ipv4, nb.remote_ipv4));
        assert_eq!(
            (ob.ip.ttl, ob.udp.check, ob.opt.hop_limit),
            (OUTER_TTL, [0, 0], HOP_LIMIT - 1)
        );
        assert_eq!(
            (ob.ip.id, ob.ip.tos, ob.ip.total_len),
            (oa.ip.id, oa.ip.tos, oa.ip.total_len)
        );
        assert_eq!(
            ipv4_of(&b).calc_header_checksum(),
            u16::from_be_bytes(ob.ip.check)
        );
        assert_eq!((oa.geneve, oa.udp.src_port), (ob.geneve, ob.udp.src_port));
        assert_eq!(
            MatrixOpt {
                hop_limit: HOP_LIMIT,
                ..ob.opt
            },
            oa.opt
        );
        assert_eq!(a[ENCAP_OVERHEAD..], b[ENCAP_OVERHEAD..]);
    }

    #[test]
    fn broken_frames_are_broken_the_intended_way() {
        let f = by_name("underlay/drop_malformed_truncated_geneve").input;
        assert_eq!(f.len(), GENEVE_OFF + 4);
        assert_eq!(ipv4_of(&f).total_len as usize, f.len() - ETH_HDR_LEN);
        let f = by_name("underlay/drop_malformed_total_len_over_frame").input;
        assert!(
            PacketHeaders::from_ethernet_slice(&f).is_err(),
            "total length past the frame"
        );
        let outer = |name| parse_outer(&by_name(name).input).unwrap();
        assert_eq!(
            outer("underlay/drop_unknown_option_version")
                .geneve
                .version(),
            1
        );
        assert_eq!(
            outer("underlay/drop_unknown_option_opt_len")
                .geneve
                .opt_len(),
            20
        );
        assert_eq!(
            outer("underlay/drop_unknown_option_inner_arp")
                .geneve
                .protocol(),
            0x0806
        );
        assert_eq!(
            outer("underlay/drop_unknown_option_vni").geneve.vni(),
            VNI + 1
        );
        assert!(!outer("underlay/drop_unknown_option_class").opt.is_matrix());
        let ip_len = |name| by_name(name).input.len() - ETH_HDR_LEN;
        assert_eq!(
            ip_len("workload/drop_too_big_v4") + ENCAP_GROWTH,
            SMALL_MTU as usize + 1
        );
        assert_eq!(
            ip_len("workload/encap_at_mtu") + ENCAP_GROWTH,
            SMALL_MTU as usize
        );
        assert_eq!(ip_len("underlay/transit_at_mtu"), SMALL_MTU as usize);
        assert_eq!(ip_len("underlay/drop_too_big"), SMALL_MTU as usize + 1);
        assert_eq!(
            ipv4_of(&by_name("underlay/pass_ip_options").input)
                .options
                .len(),
            4
        );
    }

    #[test]
    fn decapsulated_frame_is_the_inner_packet_behind_the_outer_macs() {
        let f = by_name("underlay/decap_v6_udp");
        let Some(LinkHeader::Ethernet2(eth)) = headers(&f.output).link else {
            panic!()
        };
        let nb = neighbor(SLOT_TX);
        assert_eq!((eth.destination, eth.source), (nb.local_mac, nb.remote_mac));
        assert_eq!(eth.ether_type, EtherType::IPV6);
        assert_eq!(f.input.len() - f.output.len(), ENCAP_GROWTH);
    }

    #[test]
    fn world_lookups() {
        let w = World::standard();
        assert_eq!(
            (w.next_hop(NODE_TX, 7), w.next_hop(NODE_UNROUTED, 7)),
            (Some(SLOT_TX), None)
        );
        assert_eq!(w.next_hop(NODE_ECMP, 0), Some(SLOT_TX));
        assert_eq!(w.next_hop(NODE_ECMP, 0xFFFF), Some(SLOT_REDIRECT));
        assert_eq!(w.owner(&v4(NET_LOCAL)), Some(LOCAL_NODE));
        assert_eq!(
            (w.owner(&v6(NET_REDIRECT)), w.owner(&v4(NET_UNOWNED))),
            (Some(NODE_REDIRECT), None)
        );
        assert!(!neighbor(SLOT_DOWN).usable() && neighbor(SLOT_TX).usable());
    }

    #[test]
    fn table_is_complete_and_consistent() {
        let all = all();
        let names: HashSet<_> = all.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names.len(), all.len(), "duplicate fixture names");
        let reasons: HashSet<u32> = all
            .iter()
            .filter_map(|f| match f.expect {
                Expect::Counted(Action::Drop, r) => Some(r),
                _ => None,
            })
            .collect();
        for (slot, name) in DROP_NAMES {
            assert!(
                slot == DROP_INTERNAL || reasons.contains(&slot),
                "no fixture drops for {name}"
            );
        }
        use Kind::*;
        for kind in [Baseline, Passthrough, Transit, Encap, Decap, Drop, Garbage] {
            assert!(all.iter().any(|f| f.kind == kind), "no {kind:?} fixture");
        }
        for f in &all {
            let grows = match f.kind {
                Encap => ENCAP_GROWTH as isize,
                Decap => -(ENCAP_GROWTH as isize),
                _ => 0,
            };
            assert_eq!(
                f.output.len() as isize,
                f.input.len() as isize + grows,
                "{}",
                f.name
            );
            // Every well-formed IPv4 header out (outer, or inner after decap) has a valid checksum.
            let o = &f.output;
            if f.kind != Garbage && o.len() >= 34 && o[12..14] == [0x08, 0] && o[14] == 0x45 {
                let ip = ipv4_of(o);
                assert_eq!(
                    ip.header_checksum,
                    ip.calc_header_checksum(),
                    "{}: checksum",
                    f.name
                );
            }
        }
    }
}
