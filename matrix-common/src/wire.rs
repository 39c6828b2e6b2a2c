//! The overlay wire format (DESIGN.md section 3):
//!
//! ```text
//! outer Ethernet | outer IPv4 | UDP dst 6081, src = flow entropy
//! | Geneve base (8 B) | Matrix option (16 B) | inner IP packet
//! ```

/// Geneve's IANA-assigned UDP port (RFC 8926).
pub const GENEVE_PORT: u16 = 6081;
/// Agent-to-agent control messages travel on this UDP port over the underlay.
pub const CONTROL_PORT: u16 = 6082;

pub const ETH_HDR_LEN: usize = 14;
pub const IPV4_HDR_LEN: usize = 20;
pub const IPV6_HDR_LEN: usize = 40;
pub const UDP_HDR_LEN: usize = 8;
pub const GENEVE_HDR_LEN: usize = 8;
/// Matrix option: 4-byte option header plus 12 bytes of data.
pub const MATRIX_OPT_LEN: usize = 16;

/// Bytes pushed in front of the inner IP packet by encapsulation over an IPv4 underlay,
/// outer Ethernet included: 14 + 20 + 8 + 8 + 16 = 66.
pub const ENCAP_OVERHEAD: usize =
    ETH_HDR_LEN + IPV4_HDR_LEN + UDP_HDR_LEN + GENEVE_HDR_LEN + MATRIX_OPT_LEN;
/// Bytes the IP MTU of a workload must leave free under the underlay's IP MTU:
/// the outer Ethernet header is not counted against an MTU.
pub const ENCAP_MTU_OVERHEAD: usize = ENCAP_OVERHEAD - ETH_HDR_LEN;
/// Bytes that `bpf_xdp_adjust_head` adds in front of the original frame: the original
/// Ethernet header is reused as part of the outer headers.
pub const ENCAP_HEADROOM: usize = ENCAP_OVERHEAD - ETH_HDR_LEN;

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_ICMPV6: u8 = 58;

/// Geneve version this data plane speaks (RFC 8926: 0).
pub const GENEVE_VERSION: u8 = 0;
/// Option class for the Matrix option, inside the experimental range 0xFFF0-0xFFFF.
pub const MATRIX_OPT_CLASS: u16 = 0xFFF0;
/// Option type for the Matrix option. The high bit is Geneve's "critical" bit: a tunnel
/// endpoint that does not know the option must drop the packet rather than decapsulate it
/// without the routing header.
pub const MATRIX_OPT_TYPE: u8 = GENEVE_OPT_CRITICAL | 0x01;
/// The critical bit of a Geneve option type.
pub const GENEVE_OPT_CRITICAL: u8 = 0x80;
/// Option data length in 4-byte words (the 4-byte option header is not counted).
pub const MATRIX_OPT_DATA_WORDS: u8 = 3;
/// Geneve `Opt Len` field: total option bytes / 4.
pub const GENEVE_OPT_WORDS: u8 = (MATRIX_OPT_LEN / 4) as u8;
/// Geneve flag byte with the C (critical options present) bit set.
pub const GENEVE_FLAG_CRITICAL: u8 = 0x40;
/// Geneve's O bit: an OAM (control) packet, never sent by matrix.
pub const GENEVE_FLAG_OAM: u8 = 0x80;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;
/// An 802.1Q/802.1ad tag: TCI and the encapsulated EtherType.
pub const VLAN_HDR_LEN: usize = 4;

/// Outer IPv4 TTL. The overlay hop limit, not this TTL, bounds a packet's life in the
/// overlay: each relay writes a fresh outer header for its own link.
pub const OUTER_TTL: u8 = 64;
/// Default overlay hop limit (DESIGN.md section 3).
pub const DEFAULT_HOP_LIMIT: u8 = 16;
/// Outer UDP source ports are drawn from the ephemeral range (RFC 8926 section 3.3),
/// low bits from the flow hash so that ECMP in the underlay keeps flows together.
pub const UDP_SRC_PORT_BASE: u16 = 0xC000;
pub const UDP_SRC_PORT_MASK: u16 = 0x3FFF;

#[inline(always)]
pub const fn udp_src_port(flow_hash: u16) -> u16 {
    UDP_SRC_PORT_BASE | (flow_hash & UDP_SRC_PORT_MASK)
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ether_type: [u8; 2],
}

impl EthHdr {
    #[inline(always)]
    pub const fn ether_type(&self) -> u16 {
        u16::from_be_bytes(self.ether_type)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    pub tos: u8,
    pub total_len: [u8; 2],
    pub id: [u8; 2],
    pub frag_off: [u8; 2],
    pub ttl: u8,
    pub protocol: u8,
    pub check: [u8; 2],
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

/// IPv4 "don't fragment" in the flags/fragment-offset field.
pub const IPV4_DF: u16 = 0x4000;
/// More-fragments flag and fragment offset: any of these set means a fragment.
pub const IPV4_FRAG_MASK: u16 = 0x3FFF;

impl Ipv4Hdr {
    #[inline(always)]
    pub const fn total_len(&self) -> u16 {
        u16::from_be_bytes(self.total_len)
    }
    #[inline(always)]
    pub const fn ihl_bytes(&self) -> usize {
        ((self.version_ihl & 0x0F) as usize) * 4
    }
    #[inline(always)]
    pub const fn version(&self) -> u8 {
        self.version_ihl >> 4
    }
    #[inline(always)]
    pub const fn is_fragment(&self) -> bool {
        u16::from_be_bytes(self.frag_off) & IPV4_FRAG_MASK != 0
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Hdr {
    pub version_tc_flow: [u8; 4],
    pub payload_len: [u8; 2],
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

impl Ipv6Hdr {
    #[inline(always)]
    pub const fn payload_len(&self) -> u16 {
        u16::from_be_bytes(self.payload_len)
    }
    #[inline(always)]
    pub const fn version(&self) -> u8 {
        self.version_tc_flow[0] >> 4
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpHdr {
    pub src_port: [u8; 2],
    pub dst_port: [u8; 2],
    pub len: [u8; 2],
    pub check: [u8; 2],
}

impl UdpHdr {
    #[inline(always)]
    pub const fn src_port(&self) -> u16 {
        u16::from_be_bytes(self.src_port)
    }
    #[inline(always)]
    pub const fn dst_port(&self) -> u16 {
        u16::from_be_bytes(self.dst_port)
    }
    /// The UDP length field: header and payload, in bytes.
    #[inline(always)]
    pub const fn total_len(&self) -> u16 {
        u16::from_be_bytes(self.len)
    }
}

/// First 4 bytes of a TCP or UDP header: the ports, all the flow hash needs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub src: [u8; 2],
    pub dst: [u8; 2],
}

/// Geneve base header (RFC 8926 section 3.4).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneveHdr {
    /// Version (2 bits) and option length in 4-byte words (6 bits).
    pub ver_opt_len: u8,
    /// O (control) bit, C (critical options) bit, reserved.
    pub flags: u8,
    /// EtherType of the inner packet.
    pub protocol: [u8; 2],
    /// Virtual network identifier (24 bits) and a reserved byte.
    pub vni_reserved: [u8; 4],
}

impl GeneveHdr {
    #[inline(always)]
    pub const fn new(protocol: u16, vni: u32) -> Self {
        let v = (vni << 8).to_be_bytes();
        Self {
            ver_opt_len: (GENEVE_VERSION << 6) | GENEVE_OPT_WORDS,
            flags: GENEVE_FLAG_CRITICAL,
            protocol: protocol.to_be_bytes(),
            vni_reserved: v,
        }
    }
    #[inline(always)]
    pub const fn version(&self) -> u8 {
        self.ver_opt_len >> 6
    }
    /// Length of all options in bytes.
    #[inline(always)]
    pub const fn opt_len(&self) -> usize {
        ((self.ver_opt_len & 0x3F) as usize) * 4
    }
    #[inline(always)]
    pub const fn protocol(&self) -> u16 {
        u16::from_be_bytes(self.protocol)
    }
    #[inline(always)]
    pub const fn vni(&self) -> u32 {
        u32::from_be_bytes(self.vni_reserved) >> 8
    }
    /// Flags and reserved bits exactly as matrix sends them: C set (the Matrix option is
    /// critical), O and every reserved bit clear. RFC 8926 lets a receiver ignore the
    /// reserved bits; matrix speaks only to matrix nodes, so a frame with any of them
    /// set is corrupt or forged, and a relay must not pass it on.
    #[inline(always)]
    pub const fn flags_are_matrix(&self) -> bool {
        self.flags == GENEVE_FLAG_CRITICAL && self.vni_reserved[3] == 0
    }
}

/// The Matrix option TLV: Geneve option header and the routing fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixOpt {
    pub class: [u8; 2],
    pub opt_type: u8,
    /// Reserved (3 bits) and data length in 4-byte words (5 bits).
    pub len: u8,
    pub dst_node: [u8; 4],
    pub src_node: [u8; 4],
    pub hop_limit: u8,
    pub flags: u8,
    pub flow_hash: [u8; 2],
}

impl MatrixOpt {
    #[inline(always)]
    pub const fn new(dst_node: u32, src_node: u32, hop_limit: u8, flow_hash: u16) -> Self {
        Self {
            class: MATRIX_OPT_CLASS.to_be_bytes(),
            opt_type: MATRIX_OPT_TYPE,
            len: MATRIX_OPT_DATA_WORDS,
            dst_node: dst_node.to_be_bytes(),
            src_node: src_node.to_be_bytes(),
            hop_limit,
            flags: 0,
            flow_hash: flow_hash.to_be_bytes(),
        }
    }
    /// True when the option header names the Matrix option with its fixed length.
    #[inline(always)]
    pub const fn is_matrix(&self) -> bool {
        u16::from_be_bytes(self.class) == MATRIX_OPT_CLASS
            && self.opt_type == MATRIX_OPT_TYPE
            && (self.len & 0x1F) == MATRIX_OPT_DATA_WORDS
    }
    #[inline(always)]
    pub const fn dst_node(&self) -> u32 {
        u32::from_be_bytes(self.dst_node)
    }
    #[inline(always)]
    pub const fn src_node(&self) -> u32 {
        u32::from_be_bytes(self.src_node)
    }
    #[inline(always)]
    pub const fn flow_hash(&self) -> u16 {
        u16::from_be_bytes(self.flow_hash)
    }
}

/// The outer headers of an encapsulated packet over an IPv4 underlay, as one block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OuterV4 {
    pub eth: EthHdr,
    pub ip: Ipv4Hdr,
    pub udp: UdpHdr,
    pub geneve: GeneveHdr,
    pub opt: MatrixOpt,
}

const _: () = assert!(size_of::<EthHdr>() == ETH_HDR_LEN);
const _: () = assert!(size_of::<Ipv4Hdr>() == IPV4_HDR_LEN);
const _: () = assert!(size_of::<Ipv6Hdr>() == IPV6_HDR_LEN);
const _: () = assert!(size_of::<UdpHdr>() == UDP_HDR_LEN);
const _: () = assert!(size_of::<GeneveHdr>() == GENEVE_HDR_LEN);
const _: () = assert!(size_of::<MatrixOpt>() == MATRIX_OPT_LEN);
const _: () = assert!(size_of::<OuterV4>() == ENCAP_OVERHEAD);
const _: () = assert!(ENCAP_OVERHEAD == 66);

/// One's-complement sum helpers for the IPv4 header checksum (RFC 1071, RFC 1624).
pub mod csum {
    /// Folds a 32-bit one's-complement accumulator to 16 bits.
    #[inline(always)]
    pub const fn fold(mut sum: u32) -> u16 {
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum as u16
    }

    /// True when a 20-byte IPv4 header (no options) carries a correct checksum: the
    /// one's-complement sum of all its words, the checksum included, is all ones.
    #[inline(always)]
    pub fn ipv4_header_ok(hdr: &super::Ipv4Hdr) -> bool {
        let b: &[u8; 20] = unsafe { &*(hdr as *const super::Ipv4Hdr).cast::<[u8; 20]>() };
        let mut sum = 0u32;
        let mut i = 0;
        while i < 20 {
            sum += u16::from_be_bytes([b[i], b[i + 1]]) as u32;
            i += 2;
        }
        fold(sum) == 0xFFFF
    }

    /// Checksum of a 20-byte IPv4 header (no options) whose checksum field is ignored.
    #[inline(always)]
    pub fn ipv4_header(hdr: &super::Ipv4Hdr) -> u16 {
        let b: &[u8; 20] = unsafe { &*(hdr as *const super::Ipv4Hdr).cast::<[u8; 20]>() };
        let mut sum = 0u32;
        let mut i = 0;
        while i < 20 {
            if i != 10 {
                sum += u16::from_be_bytes([b[i], b[i + 1]]) as u32;
            }
            i += 2;
        }
        !fold(sum)
    }

    /// RFC 1624 eqn. 3: the checksum after a 16-bit word changed from `old` to `new`.
    #[inline(always)]
    pub const fn update16(check: u16, old: u16, new: u16) -> u16 {
        let sum = (!check as u32 & 0xFFFF) + (!old as u32 & 0xFFFF) + new as u32;
        !fold(sum)
    }

    /// The checksum after a 32-bit field (an address) changed from `old` to `new`.
    #[inline(always)]
    pub const fn update32(check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
        let c = update16(
            check,
            u16::from_be_bytes([old[0], old[1]]),
            u16::from_be_bytes([new[0], new[1]]),
        );
        update16(
            c,
            u16::from_be_bytes([old[2], old[3]]),
            u16::from_be_bytes([new[2], new[3]]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Ipv4Hdr {
        let mut h = Ipv4Hdr {
            version_ihl: 0x45,
            tos: 0,
            total_len: 100u16.to_be_bytes(),
            id: [0, 0],
            frag_off: IPV4_DF.to_be_bytes(),
            ttl: OUTER_TTL,
            protocol: IPPROTO_UDP,
            check: [0, 0],
            src: [10, 200, 0, 1],
            dst: [10, 200, 0, 2],
        };
        h.check = csum::ipv4_header(&h).to_be_bytes();
        h
    }

    #[test]
    fn header_checksum_verifies_and_catches_any_flipped_bit() {
        let h = header();
        assert!(csum::ipv4_header_ok(&h));
        // After an incremental update the header still verifies.
        let mut moved = h;
        moved.check =
            csum::update32(u16::from_be_bytes(h.check), h.dst, [192, 0, 2, 7]).to_be_bytes();
        moved.dst = [192, 0, 2, 7];
        assert!(csum::ipv4_header_ok(&moved));
        let bytes: [u8; 20] = unsafe { core::mem::transmute(h) };
        for bit in 0..160 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            let bad: Ipv4Hdr = unsafe { core::mem::transmute(b) };
            assert!(
                !csum::ipv4_header_ok(&bad),
                "bit {bit} flipped still verifies"
            );
        }
    }

    #[test]
    fn geneve_flags_as_matrix_sends_them() {
        let g = GeneveHdr::new(ETH_P_IPV4, 7);
        assert!(g.flags_are_matrix());
        for flags in [
            0,
            GENEVE_FLAG_OAM | GENEVE_FLAG_CRITICAL,
            GENEVE_FLAG_CRITICAL | 1,
        ] {
            assert!(!GeneveHdr { flags, ..g }.flags_are_matrix(), "{flags:#x}");
        }
        let mut reserved = g;
        reserved.vni_reserved[3] = 1;
        assert!(!reserved.flags_are_matrix());
    }
}
