//! Frames an outsider sends, built field by field with exact bytes: overlay frames (a
//! valid one and one hostile kind per field a relay must check) and spoofed ARP replies.

use std::net::Ipv4Addr;

use etherparse::{
    ArpEthIpv4Packet, ArpOperation, EtherType, Ethernet2Header, IpNumber, Ipv4Header,
    PacketBuilder, SingleVlanHeader, UdpHeader, VlanId, VlanPcp,
};
use xtask::testbed::{Testbed, outsider::Outsider};

use super::{GENEVE_PORT, Middle};

/// An overlay frame over IPv4 as matrix sends it (README "Wire format"), with each field
/// a hostile frame might get wrong spelled out.
#[derive(Clone, Debug)]
pub struct Overlay {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    /// A tag (TPID, VLAN id) between the MACs and the EtherType.
    pub tag: Option<(EtherType, u16)>,
    pub ip_src: Ipv4Addr,
    pub ip_dst: Ipv4Addr,
    /// XORed into the correct IPv4 header checksum.
    pub ip_check_xor: u16,
    /// Added to the IPv4 total length and the UDP length beyond the frame's real size
    /// (the header checksum still right): a truncated frame.
    pub missing: u16,
    /// Added to the UDP length only.
    pub udp_len_extra: i16,
    /// Bytes after the IP packet.
    pub trailer: usize,
    pub geneve_version: u8,
    pub geneve_flags: u8,
    pub vni: u32,
    /// The byte after the VNI.
    pub vni_reserved: u8,
    pub opt_class: u16,
    pub dst_node: u32,
    pub src_node: u32,
    pub hop_limit: u8,
    pub flow_hash: u16,
    pub inner: Vec<u8>,
}

impl Overlay {
    /// A frame that b would send c for d: relayed by c.
    pub fn valid(from: [u8; 6], m: &Middle, inner: Vec<u8>) -> Overlay {
        Overlay {
            eth_dst: m.c_mac,
            eth_src: from,
            tag: None,
            ip_src: m.b_addr,
            ip_dst: m.c_addr,
            ip_check_xor: 0,
            missing: 0,
            udp_len_extra: 0,
            trailer: 0,
            geneve_version: 0,
            geneve_flags: 0x40, // C: the Matrix option is critical
            vni: 1,
            vni_reserved: 0,
            opt_class: 0xFFF0,
            dst_node: 4, // 0.4: d
            src_node: 1, // 0.1: a
            hop_limit: 15,
            flow_hash: 0x1234,
            inner,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut geneve = vec![
            (self.geneve_version << 6) | 4, // 4 words of options
            self.geneve_flags,
            0x08,
            0x00, // inner IPv4
        ];
        geneve.extend_from_slice(&self.vni.to_be_bytes()[1..]);
        geneve.push(self.vni_reserved);
        geneve.extend_from_slice(&self.opt_class.to_be_bytes());
        geneve.extend_from_slice(&[0x81, 3]); // type 1, critical; 3 words of data
        geneve.extend_from_slice(&self.dst_node.to_be_bytes());
        geneve.extend_from_slice(&self.src_node.to_be_bytes());
        geneve.extend_from_slice(&[self.hop_limit, 0]);
        geneve.extend_from_slice(&self.flow_hash.to_be_bytes());
        geneve.extend_from_slice(&self.inner);

        let udp_len = (UdpHeader::LEN + geneve.len()) as u16 + self.missing;
        let mut ip = Ipv4Header::new(
            udp_len,
            64,
            IpNumber::UDP,
            self.ip_src.octets(),
            self.ip_dst.octets(),
        )
        .unwrap();
        ip.header_checksum = ip.calc_header_checksum() ^ self.ip_check_xor;
        let udp = UdpHeader {
            source_port: 0xC000 | (self.flow_hash & 0x3FFF),
            destination_port: GENEVE_PORT,
            length: udp_len.wrapping_add_signed(self.udp_len_extra),
            checksum: 0,
        };
        let mut eth = Ethernet2Header {
            source: self.eth_src,
            destination: self.eth_dst,
            ether_type: EtherType::IPV4,
        };
        let mut frame = Vec::new();
        if let Some((tpid, id)) = self.tag {
            eth.ether_type = tpid;
            frame.extend_from_slice(&eth.to_bytes());
            let tag = SingleVlanHeader {
                pcp: VlanPcp::ZERO,
                drop_eligible_indicator: false,
                vlan_id: VlanId::try_new(id).unwrap(),
                ether_type: EtherType::IPV4,
            };
            frame.extend_from_slice(&tag.to_bytes());
        } else {
            frame.extend_from_slice(&eth.to_bytes());
        }
        frame.extend_from_slice(&ip.to_bytes());
        frame.extend_from_slice(&udp.to_bytes());
        frame.extend_from_slice(&geneve);
        frame.resize(frame.len() + self.trailer, 0);
        frame
    }
}

/// The inner packet: UDP from a's workload to the discard port of d's.
pub fn inner(tb: &Testbed) -> Vec<u8> {
    let (a, d) = (&tb.node("a").workloads[0], &tb.node("d").workloads[0]);
    let mut out = Vec::new();
    PacketBuilder::ipv4(a.addr.octets(), d.addr.octets(), 64)
        .udp(40_000, 9)
        .write(&mut out, b"hostile")
        .unwrap();
    out
}

/// The hostile kinds: what each changes in a valid frame, and the drop reason it must be
/// counted under.
pub fn hostile_kinds(base: &Overlay) -> Vec<(&'static str, &'static str, Overlay)> {
    let with = |f: &dyn Fn(&mut Overlay)| {
        let mut o = base.clone();
        f(&mut o);
        o
    };
    vec![
        (
            "outer source not a neighbour",
            "unknown_neighbor",
            with(&|o| o.ip_src = Ipv4Addr::new(10, 200, 1, 99)),
        ),
        (
            "outer IPv4 header checksum wrong",
            "bad_checksum",
            with(&|o| o.ip_check_xor = 0x0100),
        ),
        (
            "UDP length 4 more than the IP packet holds",
            "malformed",
            with(&|o| o.udp_len_extra = 4),
        ),
        (
            "UDP length 4 short of the IP packet",
            "malformed",
            with(&|o| o.udp_len_extra = -4),
        ),
        (
            "4 bytes after the IP packet",
            "malformed",
            with(&|o| o.trailer = 4),
        ),
        (
            "truncated: IP and UDP lengths claim 8 more bytes",
            "malformed",
            with(&|o| o.missing = 8),
        ),
        (
            "Geneve O (control) bit",
            "bad_flags",
            with(&|o| o.geneve_flags = 0xC0),
        ),
        (
            "Geneve reserved flag bit",
            "bad_flags",
            with(&|o| o.geneve_flags = 0x41),
        ),
        (
            "Geneve C bit clear",
            "bad_flags",
            with(&|o| o.geneve_flags = 0x00),
        ),
        (
            "Geneve reserved byte after the VNI",
            "bad_flags",
            with(&|o| o.vni_reserved = 1),
        ),
        (
            "Geneve version 1",
            "unknown_option",
            with(&|o| o.geneve_version = 1),
        ),
        (
            "unknown critical option class 0xFFF1",
            "unknown_option",
            with(&|o| o.opt_class = 0xFFF1),
        ),
        ("wrong VNI 2", "unknown_option", with(&|o| o.vni = 2)),
        (
            "802.1Q tag",
            "vlan",
            with(&|o| o.tag = Some((EtherType::VLAN_TAGGED_FRAME, 100))),
        ),
        (
            "802.1ad tag",
            "vlan",
            with(&|o| o.tag = Some((EtherType::PROVIDER_BRIDGING, 100))),
        ),
        ("hop limit 1", "expired", with(&|o| o.hop_limit = 1)),
    ]
}

/// Unsolicited ARP replies from the outsider saying b's underlay address is at the
/// outsider's MAC: gratuitous (broadcast, target = sender) and sent straight to c.
pub fn arp_spoof(out: &Outsider, m: &Middle) -> [Vec<u8>; 2] {
    let arp = |eth_dst: [u8; 6], target_mac: [u8; 6], target_ip: Ipv4Addr| {
        let mut f = Ethernet2Header {
            source: out.mac,
            destination: eth_dst,
            ether_type: EtherType::ARP,
        }
        .to_bytes()
        .to_vec();
        let reply = ArpEthIpv4Packet {
            operation: ArpOperation::REPLY,
            sender_mac: out.mac,
            sender_ipv4: m.b_addr.octets(),
            target_mac,
            target_ipv4: target_ip.octets(),
        };
        f.extend_from_slice(&reply.to_bytes());
        f
    };
    [
        arp([0xff; 6], [0xff; 6], m.b_addr),
        arp(m.c_mac, m.c_mac, m.c_addr),
    ]
}

#[test]
fn overlay_frames_are_built_to_the_byte() {
    let m = Middle {
        wire: String::new(),
        b_addr: Ipv4Addr::new(10, 200, 1, 1),
        c_addr: Ipv4Addr::new(10, 200, 1, 2),
        b_mac: [2, 0, 0, 0, 0, 0xb],
        c_mac: [2, 0, 0, 0, 0, 0xc],
        c_iface: String::new(),
    };
    let base = Overlay::valid([2, 0, 0, 0, 0, 0xee], &m, vec![0x45, 0, 0, 20]);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let want = [
        // Ethernet: to c, from the outsider, IPv4.
        "02000000000c0200000000ee0800",
        // IPv4: 56 bytes, DF, TTL 64, UDP, checksum 0x2323, 10.200.1.1 -> 10.200.1.2.
        "4500003800004000401123230ac801010ac80102",
        // UDP: 0xC000 | flow hash 0x1234 -> 6081, 36 bytes, no checksum.
        "d23417c100240000",
        // Geneve: version 0, 4 words of options, C, inner IPv4, VNI 1, reserved 0.
        "0440080000000100",
        // Matrix option: class 0xFFF0, type 0x81, 3 words; to 0.4, from 0.1, hop
        // limit 15, flags 0, flow hash 0x1234.
        "fff0810300000004000000010f001234",
        // The inner packet as given.
        "45000014",
    ];
    assert_eq!(hex(&base.bytes()), want.concat());
    let tagged = Overlay {
        tag: Some((EtherType::VLAN_TAGGED_FRAME, 100)),
        ..base.clone()
    };
    assert_eq!(hex(&tagged.bytes()[12..18]), "810000640800");
    for (what, _, o) in hostile_kinds(&base) {
        assert_ne!(o.bytes(), base.bytes(), "{what} changes nothing");
    }
}
