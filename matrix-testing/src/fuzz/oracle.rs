//! The oracle: judges one BPF_PROG_TEST_RUN result (program, frame in, action, frame out)
//! against the world the programs run in, from the rules of DESIGN.md sections 3-4, never
//! from what a program did before. It knows which frames are the host's own traffic and
//! which claim to be overlay traffic, what a relay may accept, and what each path must
//! write; it does not predict drop reasons (the counters are checked in batches, see
//! [`Tally`]).

use std::net::IpAddr;

use matrix_common::{
    ENCAP_OVERHEAD, ETH_HDR_LEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, FlowHash,
    GENEVE_FLAG_CRITICAL, GENEVE_PORT, IPPROTO_TCP, IPPROTO_UDP, IPV4_DF, IPV4_HDR_LEN,
    IPV6_HDR_LEN, MATRIX_OPT_CLASS, MATRIX_OPT_DATA_WORDS, MATRIX_OPT_TYPE, Neighbor, OUTER_TTL,
    OuterV4, UDP_HDR_LEN, VLAN_HDR_LEN, flow_hash_v4, flow_hash_v6, udp_src_port,
};

use crate::fixtures::{Action, ENCAP_GROWTH, LO_IFINDEX, Prog, World, parse_outer};

const IP_OFF: usize = ETH_HDR_LEN;
const UDP_OFF: usize = IP_OFF + IPV4_HDR_LEN;

/// What the oracle found a frame went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Judged {
    Drop,
    /// Handed to the stack untouched.
    Pass,
    /// Underlay: addressed to this node, handed to the stack without its outer headers.
    Decap,
    /// Underlay: relayed to neighbour `to` (a NodeId).
    Transit {
        to: u32,
    },
    /// Workload: encapsulated towards neighbour `to`.
    Encap {
        to: u32,
    },
}

impl Judged {
    pub fn name(self) -> &'static str {
        match self {
            Judged::Drop => "drop",
            Judged::Pass => "pass",
            Judged::Decap => "decap",
            Judged::Transit { .. } => "transit",
            Judged::Encap { .. } => "encap",
        }
    }
}

/// What the underlay program must make of a frame before looking at it closely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    /// Not IPv4 (options-free, unfragmented) / UDP / 6081: the host's own traffic, which
    /// the program never touches.
    Host,
    /// Claims to be overlay traffic: decapsulated, relayed or dropped, never passed as is.
    Overlay,
    /// Overlay traffic inside an 802.1Q/802.1ad tag: dropped.
    TaggedOverlay,
}

/// The faults found in one result; empty means the result is right.
pub type Faults = Vec<String>;

/// Judges results in one world. The world must be the one the programs run in.
#[derive(Clone, Debug)]
pub struct Oracle {
    world: World,
    /// The interface test_run delivers frames on: a next hop behind it is reached by
    /// XDP_TX, any other by XDP_REDIRECT.
    ingress_ifindex: u32,
}

impl Oracle {
    /// An oracle for programs run by BPF_PROG_TEST_RUN (frames arrive on lo).
    pub fn new(world: World) -> Self {
        Self {
            world,
            ingress_ifindex: LO_IFINDEX,
        }
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// Judges `prog` having returned `action` and left `output` for `input`.
    pub fn judge(
        &self,
        prog: Prog,
        input: &[u8],
        action: u32,
        output: &[u8],
    ) -> Result<Judged, Faults> {
        let Some(action) = Action::from_code(action) else {
            return Err(vec![format!("unknown XDP action code {action}")]);
        };
        match (prog, action) {
            (_, Action::Aborted) => Err(vec!["XDP_ABORTED".into()]),
            (Prog::Underlay, _) => self.underlay(input, action, output),
            (Prog::Workload, _) => self.workload(input, action, output),
            (Prog::BaselineTx, _) => Err(vec!["the oracle judges matrix's programs only".into()]),
        }
    }

    fn underlay(&self, input: &[u8], action: Action, output: &[u8]) -> Result<Judged, Faults> {
        let claim = self.claim(input);
        match action {
            Action::Drop if claim == Claim::Host => Err(vec![
                "dropped the host's own traffic (not IPv4/UDP/6081): it must pass untouched".into(),
            ]),
            Action::Drop => Ok(Judged::Drop),
            Action::Pass if output == input => match claim {
                Claim::Host => Ok(Judged::Pass),
                Claim::Overlay | Claim::TaggedOverlay => Err(vec![
                    "passed a frame claiming to be overlay traffic (IPv4/UDP/6081) untouched: \
                     it must be decapsulated, relayed or dropped"
                        .into(),
                ]),
            },
            Action::Pass => self.decap(input, output).map(|()| Judged::Decap),
            Action::Tx | Action::Redirect => self
                .transit(input, action, output)
                .map(|to| Judged::Transit { to }),
            Action::Aborted => unreachable!("judged before"),
        }
    }

    fn workload(&self, input: &[u8], action: Action, output: &[u8]) -> Result<Judged, Faults> {
        let packet = InnerIp::parse(input);
        let remote_owner = (packet.as_ref())
            .and_then(|p| self.owner(p.dst))
            .filter(|&n| n != self.world.config.node_id);
        match action {
            Action::Drop if !matches!(ether_type(input), Some(ETH_P_IPV4 | ETH_P_IPV6)) => {
                Err(vec![
                    "dropped a workload's non-IP frame: it must pass untouched".into(),
                ])
            }
            // A broken IP header, or a packet for a remote node that cannot go (no
            // route, next hop down, too big).
            Action::Drop => match packet {
                Some(p) if remote_owner.is_none() => Err(vec![format!(
                    "dropped a workload's packet to {}, which is no remote node's: it is not \
                     overlay traffic and must pass untouched",
                    p.dst
                )]),
                _ => Ok(Judged::Drop),
            },
            Action::Pass if output != input => Err(vec![format!(
                "passed a workload's frame changed: {}",
                first_difference(input, output)
            )]),
            Action::Pass => match (packet, remote_owner) {
                (Some(p), Some(node)) => Err(vec![format!(
                    "passed a workload's packet to {} (owned by node {node:#x}) untouched: it \
                     must be encapsulated or dropped",
                    p.dst
                )]),
                _ => Ok(Judged::Pass),
            },
            Action::Tx | Action::Redirect => self
                .encap(input, action, output)
                .map(|to| Judged::Encap { to }),
            Action::Aborted => unreachable!("judged before"),
        }
    }

    /// How the underlay program must classify `frame` (DESIGN.md section 4, step 1).
    fn claim(&self, frame: &[u8]) -> Claim {
        if self.world.config.node_id == 0 {
            // Not configured: the programs behave as if matrix were not attached.
            return Claim::Host;
        }
        match ether_type(frame) {
            Some(ETH_P_8021Q | ETH_P_8021AD) => {
                // One tag, or two (QinQ: a second tag right behind the first).
                let second = frame.len() >= IP_OFF + 4
                    && matches!(be16(frame, IP_OFF + 2), ETH_P_8021Q | ETH_P_8021AD);
                let tags = if second { 2 } else { 1 } * VLAN_HDR_LEN;
                let ip = IP_OFF + tags;
                let tagged_overlay = frame.len() >= ip + IPV4_HDR_LEN + UDP_HDR_LEN
                    && be16(frame, ip - 2) == ETH_P_IPV4
                    && frame[ip] == 0x45
                    && frame[ip + 9] == IPPROTO_UDP
                    && be16(frame, ip + IPV4_HDR_LEN + 2) == GENEVE_PORT;
                if tagged_overlay {
                    Claim::TaggedOverlay
                } else {
                    Claim::Host
                }
            }
            Some(ETH_P_IPV4) => {
                // IP options and fragments are never produced by matrix: not overlay traffic.
                let overlay = frame.len() >= UDP_OFF + UDP_HDR_LEN
                    && frame[IP_OFF] == 0x45
                    && frame[IP_OFF + 9] == IPPROTO_UDP
                    && be16(frame, IP_OFF + 6) & 0x3FFF == 0
                    && be16(frame, UDP_OFF + 2) == GENEVE_PORT;
                if overlay { Claim::Overlay } else { Claim::Host }
            }
            _ => Claim::Host,
        }
    }

    /// Checks that `frame` is an overlay frame as matrix writes it and the Linux stack
    /// would accept it, whoever sent it; returns its outer headers.
    pub fn well_formed(&self, frame: &[u8]) -> Result<OuterV4, Faults> {
        let Some(o) = parse_outer(frame) else {
            return Err(vec![format!(
                "{} bytes: shorter than the {ENCAP_OVERHEAD} bytes of outer headers",
                frame.len()
            )]);
        };
        let mut f = Vec::new();
        let mut want = |ok: bool, what: String| {
            if !ok {
                f.push(what);
            }
        };
        let ether_type = o.eth.ether_type();
        want(
            ether_type == ETH_P_IPV4,
            format!("EtherType {ether_type:#06x}, not IPv4"),
        );
        let ip = &o.ip;
        want(
            ip.version_ihl == 0x45,
            format!("IP version/IHL {:#04x}, not 0x45", ip.version_ihl),
        );
        want(
            ip.protocol == IPPROTO_UDP,
            format!("IP protocol {}, not UDP", ip.protocol),
        );
        want(!ip.is_fragment(), "an IP fragment".into());
        let header = &frame[IP_OFF..UDP_OFF];
        want(
            ipv4_checksum_ok(header),
            format!(
                "IPv4 header checksum {:#06x} wrong (should be {:#06x})",
                u16::from_be_bytes(ip.check),
                ipv4_checksum(header)
            ),
        );
        let ip_len = ip.total_len() as usize;
        want(
            ip_len == frame.len() - ETH_HDR_LEN,
            format!(
                "IP total length {ip_len}, frame holds {} bytes of IP",
                frame.len() - ETH_HDR_LEN
            ),
        );
        let udp_len = o.udp.total_len() as usize;
        want(
            udp_len + IPV4_HDR_LEN == ip_len,
            format!("UDP length {udp_len} with IP total length {ip_len}"),
        );
        let dst_port = o.udp.dst_port();
        want(
            dst_port == GENEVE_PORT,
            format!("UDP destination port {dst_port}, not {GENEVE_PORT}"),
        );
        let g = &o.geneve;
        want(
            g.flags == GENEVE_FLAG_CRITICAL,
            format!(
                "Geneve flags {:#04x}, not C alone ({GENEVE_FLAG_CRITICAL:#04x})",
                g.flags
            ),
        );
        want(
            g.vni_reserved[3] == 0,
            format!(
                "Geneve reserved byte after the VNI {:#04x}",
                g.vni_reserved[3]
            ),
        );
        want(g.version() == 0, format!("Geneve version {}", g.version()));
        // The Matrix option, then up to 8 non-critical options of other implementations
        // that fill the rest exactly (RFC 8926 section 3.5).
        let extra = g.opt_len().saturating_sub(16);
        want(
            g.opt_len() >= 16,
            format!(
                "Geneve options {} bytes, shorter than the Matrix option's 16",
                g.opt_len()
            ),
        );
        if extra > 0
            && let Err(why) = extra_options(frame.get(ENCAP_OVERHEAD..).unwrap_or(&[]), extra)
        {
            want(false, why);
        }
        want(
            g.vni() == self.world.config.vni,
            format!("VNI {:#x}, not {:#x}", g.vni(), self.world.config.vni),
        );
        let opt = &o.opt;
        want(
            u16::from_be_bytes(opt.class) == MATRIX_OPT_CLASS
                && opt.opt_type == MATRIX_OPT_TYPE
                && opt.len & 0x1F == MATRIX_OPT_DATA_WORDS,
            format!(
                "option class/type/len {:02x?}/{:#04x}/{:#04x}, not the Matrix option",
                opt.class, opt.opt_type, opt.len
            ),
        );
        let inner = frame.len().saturating_sub(ENCAP_OVERHEAD + extra);
        match g.protocol() {
            ETH_P_IPV4 => want(
                inner >= IPV4_HDR_LEN,
                format!("{inner} bytes of inner IPv4 packet"),
            ),
            ETH_P_IPV6 => want(
                inner >= IPV6_HDR_LEN,
                format!("{inner} bytes of inner IPv6 packet"),
            ),
            p => want(
                false,
                format!("inner protocol {p:#06x}, neither IPv4 nor IPv6"),
            ),
        }
        if f.is_empty() { Ok(o) } else { Err(f) }
    }

    /// A frame this node may accept from the underlay: well formed and sent by a
    /// configured neighbour.
    fn accepted(&self, frame: &[u8]) -> Result<OuterV4, Faults> {
        let mut f = self.well_formed(frame).err().unwrap_or_default();
        let outer = parse_outer(frame);
        if let Some(o) = outer {
            match self
                .world
                .neighbors
                .iter()
                .find(|n| n.remote_ipv4 == o.ip.src)
            {
                None => f.push(format!(
                    "outer source {} is no configured neighbour",
                    IpAddr::from(o.ip.src)
                )),
                // Addressed to this node's own MAC and address on that link.
                Some(n) if n.local_ipv4 != o.ip.dst || n.local_mac != o.eth.dst => f.push(format!(
                    "addressed to {} at {:02x?}, not this node ({} at {:02x?})",
                    IpAddr::from(o.ip.dst),
                    o.eth.dst,
                    IpAddr::from(n.local_ipv4),
                    n.local_mac
                )),
                Some(_) => {}
            }
        }
        match outer {
            Some(o) if f.is_empty() => Ok(o),
            _ => Err(f),
        }
    }

    /// Decapsulation: the input was for this node, the output is the inner packet behind
    /// the input's MAC addresses and the inner EtherType.
    fn decap(&self, input: &[u8], output: &[u8]) -> Result<(), Faults> {
        let i = self
            .accepted(input)
            .map_err(|f| prefixed("decapsulated", f))?;
        let mut f = Vec::new();
        let dst = i.opt.dst_node();
        if dst != self.world.config.node_id {
            f.push(format!(
                "decapsulated a packet for node {dst:#x}, not this node"
            ));
        }
        let protocol = i.geneve.protocol().to_be_bytes();
        let extra = i.geneve.opt_len() - 16;
        let expected = [
            &input[..12],
            &protocol[..],
            &input[ENCAP_OVERHEAD + extra..],
        ]
        .concat();
        if output != expected {
            f.push(format!(
                "decapsulated frame is not the input minus {} bytes of outer headers and \
                 options with EtherType {:#06x}: {}",
                ENCAP_GROWTH + extra,
                i.geneve.protocol(),
                first_difference(&expected, output)
            ));
        }
        if f.is_empty() { Ok(()) } else { Err(f) }
    }

    /// Transit: the input was acceptable and not for us, the output is the same overlay
    /// packet one hop on, to the neighbour the route picks for its flow hash.
    fn transit(&self, input: &[u8], action: Action, output: &[u8]) -> Result<u32, Faults> {
        let i = self.accepted(input).map_err(|f| prefixed("relayed", f))?;
        let (dst, hop_limit, hash) = (i.opt.dst_node(), i.opt.hop_limit, i.opt.flow_hash());
        let mut f = Vec::new();
        if dst == self.world.config.node_id {
            f.push("relayed a packet addressed to this node".into());
        }
        if hop_limit < 2 {
            f.push(format!(
                "relayed a packet that arrived with hop limit {hop_limit}"
            ));
        }
        let (to, nb) = match self.next_hop(dst, hash) {
            Ok(hop) => hop,
            Err(e) => {
                f.push(format!("relayed: {e}"));
                return Err(f);
            }
        };
        let ip_len = i.ip.total_len() as usize;
        if ip_len > nb.mtu as usize {
            f.push(format!(
                "relayed {ip_len} bytes of IP over an MTU of {} to node {to:#x}",
                nb.mtu
            ));
        }
        self.check_action(action, &nb, &mut f);
        let o = match self.well_formed(output) {
            Ok(o) => o,
            Err(e) => {
                f.extend(prefixed("relayed frame", e));
                return Err(f);
            }
        };
        check_link(&o, &nb, to, &mut f);
        if output.len() != input.len() {
            f.push(format!(
                "relayed frame {} bytes, arrived with {}",
                output.len(),
                input.len()
            ));
        }
        let mut same = |what: &str, ok: bool| {
            if !ok {
                f.push(format!("relayed frame changed the {what}"));
            }
        };
        same("IP TOS", o.ip.tos == i.ip.tos);
        same("IP identification", o.ip.id == i.ip.id);
        same("IP flags/fragment offset", o.ip.frag_off == i.ip.frag_off);
        same("UDP source port", o.udp.src_port == i.udp.src_port);
        same("Geneve header", o.geneve == i.geneve);
        let mut opt = o.opt;
        opt.hop_limit = i.opt.hop_limit;
        same("Matrix option (hop limit aside)", opt == i.opt);
        same(
            "inner packet",
            output.get(ENCAP_OVERHEAD..) == input.get(ENCAP_OVERHEAD..),
        );
        if o.ip.ttl != OUTER_TTL {
            f.push(format!(
                "relayed with outer TTL {}, not {OUTER_TTL}",
                o.ip.ttl
            ));
        }
        if o.udp.check != [0, 0] {
            f.push("relayed with a UDP checksum: the option changed, it must be 0".into());
        }
        if o.opt.hop_limit != hop_limit.wrapping_sub(1) || o.opt.hop_limit == 0 {
            f.push(format!(
                "relayed with hop limit {}, arrived with {hop_limit}",
                o.opt.hop_limit
            ));
        }
        if f.is_empty() { Ok(to) } else { Err(f) }
    }

    /// Encapsulation: the input was a workload's packet to a remote node, the output is
    /// that packet in a well-formed overlay frame to the next hop towards its owner.
    fn encap(&self, input: &[u8], action: Action, output: &[u8]) -> Result<u32, Faults> {
        let Some(p) = InnerIp::parse(input) else {
            return Err(vec![format!(
                "encapsulated a frame that is no IPv4 or IPv6 packet (EtherType {:x?})",
                ether_type(input)
            )]);
        };
        let mut f = Vec::new();
        let local = self.world.config.node_id;
        let Some(owner) = self.owner(p.dst) else {
            return Err(vec![format!(
                "encapsulated a packet to {}, which no node owns",
                p.dst
            )]);
        };
        if owner == local {
            f.push(format!(
                "encapsulated a packet to {}, owned by this node",
                p.dst
            ));
        }
        let (to, nb) = match self.next_hop(owner, p.flow_hash) {
            Ok(hop) => hop,
            Err(e) => {
                f.push(format!("encapsulated: {e}"));
                return Err(f);
            }
        };
        let inner_len = input.len() - ETH_HDR_LEN;
        if inner_len + ENCAP_GROWTH > nb.mtu as usize {
            f.push(format!(
                "encapsulated {inner_len} bytes of IP, too big for the MTU of {} to node {to:#x}",
                nb.mtu
            ));
        }
        self.check_action(action, &nb, &mut f);
        let o = match self.well_formed(output) {
            Ok(o) => o,
            Err(e) => {
                f.extend(prefixed("encapsulated frame", e));
                return Err(f);
            }
        };
        check_link(&o, &nb, to, &mut f);
        if output.len() != input.len() + ENCAP_GROWTH || output[ENCAP_OVERHEAD..] != input[IP_OFF..]
        {
            f.push(format!(
                "encapsulated packet is not the input's IP packet: {}",
                first_difference(
                    &input[IP_OFF..],
                    output.get(ENCAP_OVERHEAD..).unwrap_or(&[])
                )
            ));
        }
        let ip = &o.ip;
        let fields = [
            ("IP TOS", ip.tos as u32, 0),
            ("IP identification", u16::from_be_bytes(ip.id) as u32, 0),
            (
                "IP flags/fragment offset",
                u16::from_be_bytes(ip.frag_off) as u32,
                IPV4_DF as u32,
            ),
            ("IP TTL", ip.ttl as u32, OUTER_TTL as u32),
            ("UDP checksum", u16::from_be_bytes(o.udp.check) as u32, 0),
            (
                "UDP source port",
                o.udp.src_port() as u32,
                udp_src_port(o.opt.flow_hash()) as u32,
            ),
            (
                "Geneve protocol",
                o.geneve.protocol() as u32,
                p.ether_type as u32,
            ),
            ("option destination node", o.opt.dst_node(), owner),
            ("option source node", o.opt.src_node(), local),
            (
                "option hop limit",
                o.opt.hop_limit as u32,
                self.world.config.hop_limit & 0xFF,
            ),
            ("option flags", o.opt.flags as u32, 0),
            ("flow hash", o.opt.flow_hash() as u32, p.flow_hash as u32),
        ];
        for (what, got, want) in fields {
            if got != want {
                f.push(format!("encapsulated with {what} {got:#x}, not {want:#x}"));
            }
        }
        if f.is_empty() { Ok(to) } else { Err(f) }
    }

    /// The neighbour the world's routes pick for `node` and `hash`, if usable.
    fn next_hop(&self, node: u32, hash: FlowHash) -> Result<(u32, Neighbor), String> {
        let to = (self.world.next_hop(node, hash))
            .ok_or_else(|| format!("no route to node {node:#x}"))?;
        let nb = (self.world.neighbors.iter().find(|n| n.node_id == to))
            .ok_or_else(|| format!("the route to {node:#x} names {to:#x}, no neighbour"))?;
        if !nb.usable() {
            return Err(format!(
                "the next hop to {node:#x}, {to:#x}, is down (MAC unresolved)"
            ));
        }
        Ok((to, *nb))
    }

    fn check_action(&self, action: Action, nb: &Neighbor, f: &mut Faults) {
        let want = if nb.ifindex == self.ingress_ifindex {
            Action::Tx
        } else {
            Action::Redirect
        };
        if action != want {
            f.push(format!(
                "{action:?} to node {:#x} on ifindex {}: expected {want:?}",
                nb.node_id, nb.ifindex
            ));
        }
    }

    /// The owner of `addr` by the longest overlay prefix.
    fn owner(&self, addr: IpAddr) -> Option<u32> {
        let owners = self
            .world
            .overlay
            .iter()
            .filter(|(net, _)| net.contains(&addr));
        owners
            .max_by_key(|(net, _)| net.prefix_len())
            .map(|(_, n)| n.0)
    }
}

/// The outer link of a frame sent to neighbour `nb`: its MACs and addresses.
fn check_link(o: &OuterV4, nb: &Neighbor, to: u32, f: &mut Faults) {
    let link = [
        ("Ethernet destination", &o.eth.dst[..], &nb.remote_mac[..]),
        ("Ethernet source", &o.eth.src[..], &nb.local_mac[..]),
        ("outer IP source", &o.ip.src[..], &nb.local_ipv4[..]),
        ("outer IP destination", &o.ip.dst[..], &nb.remote_ipv4[..]),
    ];
    for (what, got, want) in link {
        if got != want {
            f.push(format!(
                "{what} {got:02x?}, not {want:02x?} of the link to node {to:#x}"
            ));
        }
    }
}

/// A workload's IP packet, as far as encapsulation reads it.
#[derive(Clone, Copy, Debug)]
struct InnerIp {
    ether_type: u16,
    dst: IpAddr,
    flow_hash: FlowHash,
}

impl InnerIp {
    /// The packet behind the Ethernet header, if its header is whole and its version
    /// matches the EtherType (what encapsulation requires).
    fn parse(frame: &[u8]) -> Option<Self> {
        let ip = frame.get(IP_OFF..)?;
        let ports = |at: usize, proto: u8| match ip.get(at..at + 4) {
            Some(p) if proto == IPPROTO_TCP || proto == IPPROTO_UDP => (be16(p, 0), be16(p, 2)),
            _ => (0, 0),
        };
        match ether_type(frame)? {
            ETH_P_IPV4 if ip.len() >= IPV4_HDR_LEN && ip[0] >> 4 == 4 && ip[0] & 0xF >= 5 => {
                let (src, dst) = (addr4(&ip[12..16]), addr4(&ip[16..20]));
                // Ports only from unfragmented packets without options (DESIGN.md
                // section 3: every fragment of a datagram must hash the same).
                let whole = ip[0] == 0x45 && be16(ip, 6) & 0x3FFF == 0;
                let (sp, dp) = if whole {
                    ports(IPV4_HDR_LEN, ip[9])
                } else {
                    (0, 0)
                };
                Some(Self {
                    ether_type: ETH_P_IPV4,
                    dst: IpAddr::from(dst),
                    flow_hash: flow_hash_v4(src, dst, ip[9], sp, dp),
                })
            }
            ETH_P_IPV6 if ip.len() >= IPV6_HDR_LEN && ip[0] >> 4 == 6 => {
                let (src, dst) = (addr6(&ip[8..24]), addr6(&ip[24..40]));
                let (sp, dp) = ports(IPV6_HDR_LEN, ip[6]);
                Some(Self {
                    ether_type: ETH_P_IPV6,
                    dst: IpAddr::from(dst),
                    flow_hash: flow_hash_v6(src, dst, ip[6], sp, dp),
                })
            }
            _ => None,
        }
    }
}

fn addr4(b: &[u8]) -> [u8; 4] {
    b.try_into().expect("4 bytes")
}

fn addr6(b: &[u8]) -> [u8; 16] {
    b.try_into().expect("16 bytes")
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn ether_type(frame: &[u8]) -> Option<u16> {
    (frame.len() >= ETH_HDR_LEN).then(|| be16(frame, 12))
}

fn prefixed(what: &str, faults: Faults) -> Faults {
    faults
        .into_iter()
        .map(|f| format!("{what} a frame it must not accept: {f}"))
        .collect()
}

/// Where `got` first differs from `expected`, for messages.
pub fn first_difference(expected: &[u8], got: &[u8]) -> String {
    let at = expected.iter().zip(got).position(|(a, b)| a != b);
    let at = at.unwrap_or(expected.len().min(got.len()));
    let window = |f: &[u8]| format!("{:02x?}", &f[at.min(f.len())..f.len().min(at + 8)]);
    format!(
        "{} bytes against {} expected, first difference at byte {at}: {} where {} was expected",
        got.len(),
        expected.len(),
        window(got),
        window(expected)
    )
}

/// RFC 1071 sum over a 20-byte IPv4 header, written apart from `matrix_common::csum` so the
/// oracle does not share the data plane's code: the stored checksum verifies when the sum
/// of every word, the checksum included, is all ones.
fn ones_complement_sum(header: &[u8], skip_checksum: bool) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .enumerate()
        .filter(|(i, _)| !(skip_checksum && *i == 5))
        .map(|(_, w)| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// Whether a 20-byte IPv4 header carries a correct checksum.
pub fn ipv4_checksum_ok(header: &[u8]) -> bool {
    ones_complement_sum(header, false) == 0xFFFF
}

/// The checksum a 20-byte IPv4 header should carry.
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    !ones_complement_sum(header, true)
}

/// The options after the Matrix option (`extra` bytes at the start of `after`): at most
/// eight, each non-critical, together exactly `extra` bytes long.
fn extra_options(after: &[u8], extra: usize) -> Result<(), String> {
    let mut off = 0;
    for _ in 0..8 {
        if off >= extra {
            break;
        }
        let Some(hdr) = after.get(off..off + 4) else {
            return Err(format!("option header at {off} past the frame"));
        };
        if hdr[2] & 0x80 != 0 {
            return Err(format!(
                "critical option type {:#04x} after the Matrix option",
                hdr[2]
            ));
        }
        off += 4 + (hdr[3] & 0x1F) as usize * 4;
    }
    if off == extra {
        Ok(())
    } else {
        Err(format!(
            "options after the Matrix option take {off} bytes, not {extra}"
        ))
    }
}
