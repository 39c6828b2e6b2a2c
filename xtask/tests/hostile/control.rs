//! Control datagrams of b's to c, captured on the wire and replayed or forged by the
//! outsider, and the control counters that must count them.

use std::{
    thread,
    time::{Duration, Instant},
};

use etherparse::{Ethernet2Header, Ipv4Header, NetSlice, SlicedPacket, TransportSlice, UdpHeader};
use matrix_routing::{Codec, Envelope, Message, NodeId, message::MAC_LEN};
use xtask::testbed::{
    Testbed,
    outsider::{self, RawSocket},
};

use super::{CONTROL_PORT, Counters, Middle, control, middle, rise, wait_for};

/// A control datagram of b's to c, as captured on the bridge port that b's end of the
/// link plugs into.
#[derive(Clone)]
pub struct Datagram {
    /// The frame as it crossed the wire, UDP checksum finished (see [`capture_hello`]).
    pub frame: Vec<u8>,
    pub eth: Ethernet2Header,
    pub ip: Ipv4Header,
    pub src_port: u16,
    /// Version, body, MAC.
    pub payload: Vec<u8>,
    pub env: Envelope,
}

impl Datagram {
    /// This datagram with another payload, lengths and checksums made right.
    pub fn with_payload(&self, payload: &[u8]) -> Vec<u8> {
        let mut ip = self.ip.clone();
        ip.set_payload_len(UdpHeader::LEN + payload.len()).unwrap();
        ip.header_checksum = ip.calc_header_checksum();
        let udp = UdpHeader::with_ipv4_checksum(self.src_port, CONTROL_PORT, &ip, payload).unwrap();
        let mut f = self.eth.to_bytes().to_vec();
        f.extend_from_slice(&ip.to_bytes());
        f.extend_from_slice(&udp.to_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// The datagram with its envelope changed by `change` and the captured MAC kept: what
    /// an outsider without the cluster key can forge. (The body is encoded with the
    /// codec for convenience; the MAC the key makes is thrown away.)
    pub fn forged(&self, codec: &Codec, change: impl FnOnce(&mut Envelope)) -> Vec<u8> {
        let mut env = self.env.clone();
        change(&mut env);
        let mut payload = codec.encode(&env).unwrap();
        let (body, mac) = (payload.len() - MAC_LEN, self.payload.len() - MAC_LEN);
        payload[body..].copy_from_slice(&self.payload[mac..]);
        assert_ne!(payload, self.payload, "the forgery changes nothing");
        self.with_payload(&payload)
    }
}

/// A tap on the bridge port of b's end of the middle link: what b sends, before the
/// bridge forwards it.
pub fn tap_b(m: &Middle) -> RawSocket {
    RawSocket::capture(&m.wire, outsider::PORT_A).unwrap()
}

/// The next hello b sends c, read from `tap`.
///
/// b's kernel leaves the UDP checksum to offload, so the bytes on a veth carry only the
/// pseudo-header sum (a NIC would finish it on the way out); c's stack would drop a
/// replay of them as a bad checksum before the agent saw it. The replayable frame is the
/// captured one with the checksum finished: what a real wire carries.
pub fn capture_hello(tb: &Testbed, tap: &RawSocket, codec: &Codec) -> Datagram {
    let m = middle(tb);
    let b: NodeId = tb.node("b").id.parse().unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let Some(c) = tap.recv(Duration::from_millis(200)).unwrap() else {
            continue;
        };
        let Ok(p) = SlicedPacket::from_ethernet(&c.bytes) else {
            continue;
        };
        let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(udp))) = (&p.net, &p.transport)
        else {
            continue;
        };
        if ip.header().source_addr() != m.b_addr
            || ip.header().destination_addr() != m.c_addr
            || udp.destination_port() != CONTROL_PORT
        {
            continue;
        }
        let payload = udp.payload().to_vec();
        let env = codec.decode(&payload).expect("b's datagram verifies");
        if env.from != b || !matches!(env.msg, Message::Hello { .. }) {
            continue;
        }
        let d = Datagram {
            frame: Vec::new(),
            eth: Ethernet2Header::from_slice(&c.bytes).unwrap().0,
            ip: ip.header().to_header(),
            src_port: udp.source_port(),
            payload,
            env,
        };
        let frame = d.with_payload(&d.payload);
        let udp_check = 14 + 20 + 6;
        assert_eq!(
            frame.len(),
            c.bytes.len(),
            "rebuilt frame has the captured length"
        );
        for (i, (x, y)) in frame.iter().zip(&c.bytes).enumerate() {
            assert!(
                x == y || (udp_check..udp_check + 2).contains(&i),
                "rebuilt frame differs from the captured one at byte {i} (not the UDP checksum)"
            );
        }
        if frame != c.bytes {
            eprintln!(
                "captured {:?} from b: UDP checksum {:02x?} finished as {:02x?}",
                d.env.msg,
                &c.bytes[udp_check..udp_check + 2],
                &frame[udp_check..udp_check + 2]
            );
        }
        return Datagram { frame, ..d };
    }
    panic!("no hello from b to c on the wire in 5 s");
}

pub fn key(tb: &Testbed) -> Codec {
    let key = std::fs::read(tb.dir().join("cluster.key")).expect("cluster key");
    Codec::new(&key)
}

/// Sends `frame` `n` times, `gap` apart.
pub fn send_n(tx: &RawSocket, frame: &[u8], n: u64, gap: Duration) {
    for _ in 0..n {
        tx.send(frame).unwrap();
        thread::sleep(gap);
    }
}

/// Waits until `node`'s control counter `name` has risen by `n` from `before`, then
/// returns what rose in all counters once they have settled.
pub fn control_rise(tb: &Testbed, node: &str, before: &Counters, name: &str, n: u64) -> Counters {
    wait_for(
        &format!("{node} counts {n} more {name}: {:?}", control(tb, node)),
        Duration::from_secs(5),
        || (control(tb, node)[name] >= before[name] + n).then_some(()),
    );
    thread::sleep(Duration::from_millis(200));
    rise(before, &control(tb, node))
}

/// The rejection counters: none of them may rise unless a test makes it.
const REJECTIONS: [&str; 8] = [
    "rx_unknown_source",
    "rx_wrong_sender",
    "rx_bad_version",
    "rx_bad_mac",
    "rx_malformed",
    "rx_replayed",
    "rx_too_old",
    "rx_stale_epoch",
];

pub fn rejections(rose: &Counters) -> Counters {
    rose.iter()
        .filter(|(k, _)| REJECTIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}
