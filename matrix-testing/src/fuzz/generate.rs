//! The frames: pure random bytes, valid frames (every fixture input of the two programs
//! and more built with random parameters), and mutations of the valid ones weighted
//! towards the headers, so that many get deep into the parsers before something is wrong.

use matrix_common::{
    ENCAP_OVERHEAD, ETH_HDR_LEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_IPV6, GENEVE_PORT,
    IPV4_HDR_LEN, IPV6_HDR_LEN, UDP_HDR_LEN, udp_src_port,
};

use super::{Rng, oracle::ipv4_checksum};
use crate::fixtures::{
    self, GENEVE_OFF, HOP_LIMIT, Inner, LOCAL_NODE, NEIGHBORS, NET_DOWN, NET_ECMP, NET_LOCAL,
    NET_REDIRECT, NET_SMALL_MTU, NET_TX, NET_UNOWNED, NET_UNROUTED, NODE_DOWN, NODE_ECMP,
    NODE_REDIRECT, NODE_SMALL_MTU, NODE_TX, NODE_UNROUTED, Prog, REMOTE_SOURCE, UNKNOWN_PEER, VNI,
    ZONE_ECMP, arriving, ov4, ov6, workload_frame,
};

const IP: usize = ETH_HDR_LEN;
const UDP: usize = IP + IPV4_HDR_LEN;
const OPT: usize = GENEVE_OFF + 8;
/// Frames never grow past this: test_run keeps them in one buffer, as a driver without
/// multi-buffer XDP would.
const MAX_FRAME: usize = 2048;
/// Valid frames generated per program, besides the fixtures.
const GENERATED: usize = 384;

/// Lengths where a header ends, and one byte either side.
const BOUNDARIES: [usize; 21] = [
    0, 1, 13, 14, 15, 33, 34, 35, 41, 42, 43, 49, 50, 51, 65, 66, 67, 85, 86, 105, 106,
];
const NETS: [u8; 8] = [
    NET_LOCAL,
    NET_TX,
    NET_REDIRECT,
    NET_SMALL_MTU,
    NET_DOWN,
    NET_UNROUTED,
    NET_ECMP,
    NET_UNOWNED,
];
/// Routed, unrouted, local, down, ECMP, unknown, zero.
const DST_NODES: [u32; 11] = [
    LOCAL_NODE,
    NODE_TX,
    NODE_REDIRECT,
    NODE_SMALL_MTU,
    NODE_DOWN,
    NODE_UNROUTED,
    NODE_ECMP,
    ZONE_ECMP | 0x42,
    REMOTE_SOURCE,
    0,
    u32::MAX,
];

/// Where a frame came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// Random bytes of a random length.
    Random,
    /// A valid frame from the pool, as is.
    Valid,
    /// A valid frame from the pool, mutated.
    Mutated,
}

impl Origin {
    pub const ALL: [Origin; 3] = [Origin::Random, Origin::Valid, Origin::Mutated];

    pub fn name(self) -> &'static str {
        match self {
            Origin::Random => "random",
            Origin::Valid => "valid",
            Origin::Mutated => "mutated",
        }
    }
}

/// One frame of a run and how it was made.
#[derive(Clone, Debug)]
pub struct Case {
    pub index: u64,
    pub prog: Prog,
    pub origin: Origin,
    /// The pool frame it started from (fixture name or "generated #k").
    pub base: Option<String>,
    /// The mutations applied, in order.
    pub steps: Vec<&'static str>,
    pub frame: Vec<u8>,
}

impl Case {
    /// "mutated from underlay/transit_tx_v4_tcp: field, checksum_fix", for reports.
    pub fn describe(&self) -> String {
        let mut s = self.origin.name().to_string();
        if let Some(base) = &self.base {
            s += &format!(" from {base}");
        }
        if !self.steps.is_empty() {
            s += &format!(": {}", self.steps.join(", "));
        }
        s
    }
}

/// A pool of valid frames for one program.
#[derive(Clone, Debug, Default)]
struct Pool {
    frames: Vec<Vec<u8>>,
    names: Vec<String>,
}

impl Pool {
    fn push(&mut self, name: String, frame: Vec<u8>) {
        self.names.push(name);
        self.frames.push(frame);
    }
}

/// Makes frame `i` of the run seeded with `seed`, for either program.
#[derive(Clone, Debug)]
pub struct Generator {
    seed: u64,
    underlay: Pool,
    workload: Pool,
}

impl Generator {
    /// The pools: every fixture input of the underlay and workload programs, and valid
    /// frames with random parameters (drawn from `seed`).
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x706F_6F6C);
        let (mut underlay, mut workload) = (Pool::default(), Pool::default());
        for f in fixtures::all() {
            match f.prog {
                Prog::Underlay => underlay.push(f.name, f.input),
                Prog::Workload => workload.push(f.name, f.input),
                Prog::BaselineTx => {}
            }
        }
        for k in 0..GENERATED {
            underlay.push(format!("generated #{k}"), overlay_frame(&mut rng));
            let inner = inner_packet(&mut rng);
            workload.push(format!("generated #{k}"), workload_frame(&inner));
        }
        Self {
            seed,
            underlay,
            workload,
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn pool(&self, prog: Prog) -> &Pool {
        match prog {
            Prog::Underlay => &self.underlay,
            _ => &self.workload,
        }
    }

    /// Frame `index`: 8% random bytes, 14% a valid frame as is, the rest mutated valid
    /// frames; 55% for the underlay program. One frame in ten starts from the other
    /// program's pool (an overlay frame from a workload, a workload's packet on the
    /// underlay).
    pub fn case(&self, index: u64) -> Case {
        let mut rng = Rng::for_frame(self.seed, index);
        let prog = if rng.chance(55) {
            Prog::Underlay
        } else {
            Prog::Workload
        };
        let roll = rng.below(100);
        let mut case = Case {
            index,
            prog,
            origin: Origin::Random,
            base: None,
            steps: Vec::new(),
            frame: Vec::new(),
        };
        if roll < 8 {
            let len = match rng.below(10) {
                0..5 => rng.below(129),
                5..9 => rng.below(1601),
                _ => rng.pick(&BOUNDARIES),
            };
            case.frame = rng.bytes(len);
            return case;
        }
        let from = if rng.chance(10) {
            match prog {
                Prog::Underlay => Prog::Workload,
                _ => Prog::Underlay,
            }
        } else {
            prog
        };
        let pool = self.pool(from);
        let k = rng.below(pool.frames.len());
        case.base = Some(format!(
            "{}{}",
            if from == prog {
                ""
            } else {
                "the other pool's "
            },
            pool.names[k]
        ));
        case.frame = pool.frames[k].clone();
        if roll < 22 {
            case.origin = Origin::Valid;
            return case;
        }
        case.origin = Origin::Mutated;
        let n = match rng.below(100) {
            0..50 => 1,
            50..75 => 2,
            75..90 => 3,
            _ => rng.between(4, 6),
        };
        for _ in 0..n {
            let m = mutation(&mut rng);
            (m.apply)(&mut rng, &mut case.frame, pool);
            case.steps.push(m.name);
        }
        // Fix-ups that make the mutated frame pass the early checks, so that what was
        // mutated further in is what the program meets.
        if rng.chance(35) {
            fix_lengths(&mut rng, &mut case.frame, pool);
            case.steps.push("fix_lengths");
        }
        if rng.chance(55) {
            checksum_fix(&mut rng, &mut case.frame, pool);
            case.steps.push("checksum_fix");
        }
        case.frame.truncate(MAX_FRAME);
        case
    }
}

/// A workload's IP packet with random parameters: IPv4 or IPv6, to any of the world's
/// overlay networks (owned, local, unrouted, down, unowned), TCP, UDP or ICMP, sizes from
/// the smallest to past the MTUs.
fn inner_packet(rng: &mut Rng) -> Inner {
    let (net, host) = (rng.pick(&NETS), rng.u8());
    let v4 = rng.chance(60);
    let inner = if v4 {
        Inner::v4(ov4(NET_LOCAL, rng.u8()), ov4(net, host))
    } else {
        Inner::v6(ov6(NET_LOCAL, rng.u8()), ov6(net, host))
    };
    let (inner, l4) = match rng.below(3) {
        0 => (inner.tcp(rng.u16(), rng.u16()), 20),
        1 => (inner.udp(rng.u16(), rng.u16()), 8),
        _ => (inner.icmp(), 8),
    };
    let min = l4 + if v4 { IPV4_HDR_LEN } else { IPV6_HDR_LEN };
    let len = match rng.below(10) {
        0..5 => rng.between(min, min + 100),
        5..9 => rng.between(min, 700),
        _ => rng.between(min, 1460),
    };
    let inner = inner.ip_len(len);
    if v4 && rng.chance(10) {
        inner.more_fragments()
    } else {
        inner
    }
}

/// An overlay frame as a neighbour (up or down) sends it, to any kind of destination
/// node, with any hop limit and flow hash.
fn overlay_frame(rng: &mut Rng) -> Vec<u8> {
    let from = rng.pick(&[NODE_TX, NODE_REDIRECT, NODE_SMALL_MTU, NODE_DOWN]);
    let dst = if rng.chance(25) {
        LOCAL_NODE
    } else {
        rng.pick(&DST_NODES)
    };
    let hop = if rng.chance(70) {
        HOP_LIMIT
    } else {
        rng.pick_or(&[0, 1, 2, 3, 255], Rng::u8)
    };
    let mut e = arriving(from, &inner_packet(rng), dst).hop_limit(hop);
    if rng.chance(50) {
        e = e.flow(rng.u16());
    }
    e.build()
}

/// A mutation: its name and what it does to a frame (drawing from the pool if it needs
/// another frame).
#[derive(Clone, Copy)]
struct Mutation {
    name: &'static str,
    weight: usize,
    apply: fn(&mut Rng, &mut Vec<u8>, &Pool),
}

macro_rules! mutations {
    ($($name:ident: $weight:expr),* $(,)?) => {
        [$(Mutation {
            name: stringify!($name),
            weight: $weight,
            // Most take a slice; those that resize the frame take the Vec.
            apply: |rng, frame, pool| $name(rng, frame, pool),
        }),*]
    };
}

/// Every mutation, with its weight: most edit header fields, few the payload.
const MUTATIONS: [Mutation; 28] = mutations!(
    bit_flip: 10,
    byte_set: 8,
    field: 12,
    truncate: 6,
    extend: 5,
    ip_total_len: 5,
    udp_len: 5,
    fix_lengths: 3,
    geneve_flags: 5,
    geneve_ver_opt_len: 4,
    geneve_protocol: 4,
    vni: 4,
    option_header: 5,
    hop_limit: 6,
    dst_node: 7,
    flow_hash: 3,
    vlan_tag: 4,
    ether_type: 4,
    outer_src: 6,
    outer_dst: 2,
    outer_ip_fields: 5,
    udp_ports: 3,
    inner_ip: 7,
    splice: 3,
    random_tail: 3,
    macs: 2,
    checksum_fix: 3,
    checksum_break: 2,
);

/// The names of every mutation, for reports.
pub fn mutation_names() -> Vec<&'static str> {
    MUTATIONS.iter().map(|m| m.name).collect()
}

fn mutation(rng: &mut Rng) -> Mutation {
    let total: usize = MUTATIONS.iter().map(|m| m.weight).sum();
    let mut point = rng.below(total);
    for m in MUTATIONS {
        if point < m.weight {
            return m;
        }
        point -= m.weight;
    }
    unreachable!("the weights add up to the total")
}

/// Writes `bytes` at `at` if the frame holds them; returns whether it did.
fn put(frame: &mut [u8], at: usize, bytes: &[u8]) -> bool {
    match frame.get_mut(at..at + bytes.len()) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

fn put16(frame: &mut [u8], at: usize, v: u16) -> bool {
    put(frame, at, &v.to_be_bytes())
}

/// An offset in the frame, three times in four among the first 106 bytes (Ethernet,
/// outer headers, the start of an inner packet).
fn header_offset(rng: &mut Rng, len: usize) -> Option<usize> {
    (len > 0).then(|| {
        if rng.chance(75) {
            rng.below(len.min(ENCAP_OVERHEAD + IPV6_HDR_LEN))
        } else {
            rng.below(len)
        }
    })
}

fn bit_flip(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    if let Some(at) = header_offset(rng, f.len()) {
        f[at] ^= 1 << rng.below(8);
    }
}

fn byte_set(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    if let Some(at) = header_offset(rng, f.len()) {
        f[at] = rng.pick_or(&[0, 0xFF, 1, 0x7F, 0x80, 0x40], Rng::u8);
    }
}

/// The outer header fields as (offset, length), Ethernet to the Matrix option.
#[rustfmt::skip]
const FIELDS: [(usize, usize); 30] = [
    (0, 6), (6, 6), (12, 2),
    (14, 1), (15, 1), (16, 2), (18, 2), (20, 2), (22, 1), (23, 1), (24, 2), (26, 4), (30, 4),
    (34, 2), (36, 2), (38, 2), (40, 2),
    (42, 1), (43, 1), (44, 2), (46, 3), (49, 1),
    (50, 2), (52, 1), (53, 1), (54, 4), (58, 4), (62, 1), (63, 1), (64, 2),
];

/// One outer field set to zeros, ones, random bytes, or its value plus or minus one.
fn field(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    let (at, len) = rng.pick(&FIELDS);
    let Some(bytes) = f.get_mut(at..at + len) else {
        return;
    };
    match rng.below(4) {
        0 => bytes.fill(0),
        1 => bytes.fill(0xFF),
        2 => bytes.iter_mut().for_each(|b| *b = rng.u8()),
        _ => {
            let mut v = bytes.iter().fold(0u64, |v, b| v << 8 | u64::from(*b));
            v = if rng.chance(50) {
                v.wrapping_add(1)
            } else {
                v.wrapping_sub(1)
            };
            let be = v.to_be_bytes();
            bytes.copy_from_slice(&be[8 - len..]);
        }
    }
}

fn truncate(rng: &mut Rng, f: &mut Vec<u8>, _: &Pool) {
    let len = if rng.chance(50) {
        rng.pick(&BOUNDARIES)
    } else {
        rng.below(f.len() + 1)
    };
    f.truncate(len);
}

fn extend(rng: &mut Rng, f: &mut Vec<u8>, _: &Pool) {
    let n = if rng.chance(90) {
        rng.between(1, 64)
    } else {
        rng.between(1, 1500)
    };
    if rng.chance(30) {
        f.resize(f.len() + n, 0);
    } else {
        f.extend(rng.bytes(n));
    }
}

/// The outer IP total length edited, the header checksum fixed half the time.
fn ip_total_len(rng: &mut Rng, f: &mut [u8], pool: &Pool) {
    let real = f.len().saturating_sub(IP) as u16;
    let v = rng.pick_or(
        &[
            real,
            real.wrapping_add(1),
            real.wrapping_sub(1),
            real.wrapping_add(4),
            0,
            19,
            20,
            (ENCAP_OVERHEAD - IP) as u16,
            0xFFFF,
        ],
        Rng::u16,
    );
    if put16(f, IP + 2, v) && rng.chance(50) {
        checksum_fix(rng, f, pool);
    }
}

fn udp_len(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    let real = f.len().saturating_sub(UDP) as u16;
    let v = rng.pick_or(
        &[
            real,
            real.wrapping_add(1),
            real.wrapping_sub(1),
            0,
            8,
            0xFFFF,
        ],
        Rng::u16,
    );
    put16(f, UDP + 4, v);
}

/// IP total length and UDP length made to agree with the frame, then the checksum.
fn fix_lengths(rng: &mut Rng, f: &mut [u8], pool: &Pool) {
    if f.len() >= UDP + UDP_HDR_LEN {
        let len = f.len();
        put16(f, IP + 2, (len - IP) as u16);
        put16(f, UDP + 4, (len - UDP) as u16);
        checksum_fix(rng, f, pool);
    }
}

fn geneve_flags(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    let v = rng.pick_or(
        &[0, 0x40, 0x80, 0xC0, 0x41, 0x42, 0x60, 0x20, 0x01],
        Rng::u8,
    );
    put(f, GENEVE_OFF + 1, &[v]);
}

fn geneve_ver_opt_len(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    let v = rng.pick_or(
        &[0x04, 0x44, 0x84, 0xC4, 0x00, 0x03, 0x05, 0x08, 0x3F],
        Rng::u8,
    );
    put(f, GENEVE_OFF, &[v]);
}

fn geneve_protocol(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    let v = rng.pick_or(
        &[ETH_P_IPV4, ETH_P_IPV6, 0x0806, 0x8100, 0x6558, 0x0000],
        Rng::u16,
    );
    put16(f, GENEVE_OFF + 2, v);
}

fn vni(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    let v = rng.pick_or(&[VNI, VNI + 1, VNI - 1, 0, 0xFF_FFFF], |r| {
        r.u32() & 0xFF_FFFF
    });
    put(f, GENEVE_OFF + 4, &v.to_be_bytes()[1..]);
    if rng.chance(30) {
        put(f, GENEVE_OFF + 7, &[rng.u8() | 1]);
    }
}

/// The option's class, type, length (with or without its reserved bits) or flags.
fn option_header(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    match rng.below(4) {
        0 => put16(f, OPT, rng.pick_or(&[0xFFF0, 0xFFF1, 0x0101, 0], Rng::u16)),
        1 => put(
            f,
            OPT + 2,
            &[rng.pick_or(&[0x81, 0x01, 0x80, 0x82], Rng::u8)],
        ),
        2 => put(
            f,
            OPT + 3,
            &[rng.pick_or(&[3, 0x23, 0x43, 0x83, 0xE3, 2, 4, 0], Rng::u8)],
        ),
        _ => put(f, OPT + 13, &[rng.u8()]),
    };
}

fn hop_limit(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    put(f, OPT + 12, &[rng.pick_or(&[0, 1, 2, 255], Rng::u8)]);
}

fn dst_node(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    let node = if rng.chance(85) {
        rng.pick(&DST_NODES)
    } else {
        rng.u32()
    };
    put(f, OPT + 4, &node.to_be_bytes());
}

/// A new flow hash, the UDP source port following it half the time.
fn flow_hash(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    let hash = rng.u16();
    put16(f, OPT + 14, hash);
    if rng.chance(50) {
        put16(f, UDP, udp_src_port(hash));
    }
}

/// One 802.1Q or 802.1ad tag after the MAC addresses, sometimes two.
fn vlan_tag(rng: &mut Rng, f: &mut Vec<u8>, _: &Pool) {
    if f.len() < 12 {
        return;
    }
    for _ in 0..if rng.chance(20) { 2 } else { 1 } {
        let tpid = rng.pick(&[ETH_P_8021Q, ETH_P_8021AD]);
        let tci = rng.u16() & 0x0FFF;
        let tag = [tpid.to_be_bytes(), tci.to_be_bytes()].concat();
        f.splice(12..12, tag);
    }
}

fn ether_type(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    let v = rng.pick_or(
        &[
            ETH_P_IPV4,
            ETH_P_IPV6,
            0x0806,
            ETH_P_8021Q,
            ETH_P_8021AD,
            0x88CC,
            0,
        ],
        Rng::u16,
    );
    put16(f, 12, v);
}

/// An underlay address: a neighbour's, one of ours, an outsider's, or odd ones.
fn underlay_addr(rng: &mut Rng) -> [u8; 4] {
    let nb = rng.pick(&NEIGHBORS);
    match rng.below(8) {
        0..4 => nb.remote_ipv4,
        4 => nb.local_ipv4,
        5 => UNKNOWN_PEER,
        6 => rng.pick(&[[0; 4], [255; 4], [127, 0, 0, 1]]),
        _ => rng.u32().to_be_bytes(),
    }
}

/// The outer source swapped, the checksum fixed four times in five.
fn outer_src(rng: &mut Rng, f: &mut [u8], pool: &Pool) {
    let addr = underlay_addr(rng);
    if put(f, IP + 12, &addr) && rng.chance(80) {
        checksum_fix(rng, f, pool);
    }
}

fn outer_dst(rng: &mut Rng, f: &mut [u8], pool: &Pool) {
    let addr = underlay_addr(rng);
    if put(f, IP + 16, &addr) && rng.chance(80) {
        checksum_fix(rng, f, pool);
    }
}

/// Version/IHL, fragment bits, protocol, TTL, TOS or identification; the checksum fixed
/// seven times in ten.
fn outer_ip_fields(rng: &mut Rng, f: &mut [u8], pool: &Pool) {
    let done = match rng.below(6) {
        0 => put(
            f,
            IP,
            &[rng.pick(&[0x45, 0x46, 0x44, 0x4F, 0x55, 0x65, 0x40])],
        ),
        1 => put16(
            f,
            IP + 6,
            rng.pick(&[0, 0x4000, 0x2000, 0x0001, 0x6000, 0x1FFF, 0x3FFF]),
        ),
        2 => put(f, IP + 9, &[rng.pick(&[17, 6, 1, 0, 255])]),
        3 => put(f, IP + 8, &[rng.pick(&[0, 1, 64, 255])]),
        4 => put(f, IP + 1, &[rng.u8()]),
        _ => put16(f, IP + 4, rng.u16()),
    };
    if done && rng.chance(70) {
        checksum_fix(rng, f, pool);
    }
}

fn udp_ports(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    if rng.chance(70) {
        let port = rng.pick_or(&[GENEVE_PORT, 6080, 6082, 0, 0xFFFF], Rng::u16);
        put16(f, UDP + 2, port);
    } else {
        put16(f, UDP, rng.u16());
    }
}

/// Where the IP packet a program may classify starts: behind the outer headers of an
/// overlay frame, else behind Ethernet.
fn inner_offset(f: &[u8]) -> usize {
    let overlay = f.len() >= ENCAP_OVERHEAD
        && u16::from_be_bytes([f[12], f[13]]) == ETH_P_IPV4
        && u16::from_be_bytes([f[UDP + 2], f[UDP + 3]]) == GENEVE_PORT;
    if overlay { ENCAP_OVERHEAD } else { IP }
}

/// The inner (or workload's) IP header: version, IHL, destination (to any overlay net),
/// protocol, fragment bits.
fn inner_ip(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    let o = inner_offset(f);
    let Some(&first) = f.get(o) else {
        return;
    };
    let v4 = first >> 4 == 4;
    let (net, host) = (rng.pick(&NETS), rng.u8());
    match rng.below(5) {
        0 => put(f, o, &[rng.pick(&[4, 6, 5, 0, 15]) << 4 | (first & 0xF)]),
        1 => put(f, o, &[(first & 0xF0) | rng.pick(&[5, 4, 6, 15, 0])]),
        2 if v4 => put(f, o + 16, &ov4(net, host)),
        2 => put(f, o + 24, &ov6(net, host)),
        3 => put(
            f,
            o + if v4 { 9 } else { 6 },
            &[rng.pick(&[6, 17, 1, 58, 0, 44])],
        ),
        _ => put16(f, o + 6, rng.pick(&[0, 0x4000, 0x2000, 0x0001, 0x3FFF])),
    };
}

/// The tail of another frame of the pool from a random point on.
fn splice(rng: &mut Rng, f: &mut Vec<u8>, pool: &Pool) {
    let other = &pool.frames[rng.below(pool.frames.len())];
    let cut = rng.below(f.len().min(other.len()) + 1);
    f.truncate(cut);
    f.extend_from_slice(&other[cut..]);
}

/// A valid prefix (to a header boundary or anywhere), then random bytes.
fn random_tail(rng: &mut Rng, f: &mut Vec<u8>, _: &Pool) {
    let keep = if rng.chance(50) {
        rng.pick(&BOUNDARIES).min(f.len())
    } else {
        rng.below(f.len() + 1)
    };
    f.truncate(keep);
    let n = rng.below(200);
    f.extend(rng.bytes(n));
}

fn macs(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    let nb = rng.pick(&NEIGHBORS);
    let mac = rng.pick(&[nb.remote_mac, nb.local_mac, [0xFF; 6], [0; 6]]);
    put(f, if rng.chance(50) { 0 } else { 6 }, &mac);
}

/// The outer IPv4 header checksum made right.
fn checksum_fix(_: &mut Rng, f: &mut [u8], _: &Pool) {
    if f.len() >= UDP {
        let check = ipv4_checksum(&f[IP..UDP]);
        put16(f, IP + 10, check);
    }
}

fn checksum_break(rng: &mut Rng, f: &mut [u8], _: &Pool) {
    if let Some(b) = f.get_mut(IP + 10 + rng.below(2)) {
        *b ^= 1 << rng.below(8);
    }
}
