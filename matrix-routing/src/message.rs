//! Control messages between agents (UDP 6082 over the underlay): versioned, serialized
//! with postcard, authenticated with a BLAKE3 keyed MAC from the cluster key.
//!
//! Datagram: `version u8 | postcard(Envelope) | MAC 16 bytes (BLAKE3 keyed, truncated)`.
//! The MAC covers the version byte and the body, so the sender's epoch and sequence
//! number in the envelope are authenticated too: [`crate::replay`] turns them into
//! freshness.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::node::NodeId;

/// Protocol version; a datagram with another version is rejected before decoding.
/// Version 2 added the epoch, the sequence number and the link MAC to the envelope.
pub const VERSION: u8 = 2;
/// Bytes of the truncated BLAKE3 MAC.
pub const MAC_LEN: usize = 16;
/// Largest datagram an agent sends or accepts.
pub const MAX_DATAGRAM: usize = 8192;

/// Sender identity, freshness and payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: NodeId,
    /// Fixed for the life of the sending agent, larger after it restarts.
    pub epoch: u64,
    /// One more per datagram the sender sends in this epoch, from 1.
    pub seq: u64,
    /// The sender's MAC on the link this datagram crosses: the data plane addresses the
    /// sender's overlay frames to it. Authenticated with the rest, so a forged ARP reply
    /// cannot redirect overlay traffic.
    pub link_mac: [u8; 6],
    pub msg: Message,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Liveness probe; `sent_us` is the sender's clock, echoed back in `HelloAck`.
    Hello { seq: u32, sent_us: u64 },
    /// Immediate answer to a hello: the sender gets the RTT as `now - sent_us`.
    HelloAck { seq: u32, sent_us: u64 },
    /// Link-state advertisement, flooded: who `origin` is, its live links with their
    /// costs, the overlay prefixes it owns.
    Advert(Advert),
    /// AntNet forward or backward ant.
    Ant(Ant),
    /// Q-routing: the sender's current best estimates of delivery time from itself to
    /// each destination, in microseconds (Boyan & Littman's `min_z Q_y(d, z)`), batched.
    /// A destination in another zone than the receiver's stands for that whole zone and
    /// is written `zone.0`.
    QEstimates(Vec<(NodeId, u32)>),
    /// Zone reachability from a border node, flooded to every zone (host adverts stay
    /// inside their zone).
    ZoneSummary(ZoneSummary),
}

impl Message {
    /// Every kind, as [`Message::kind`] names them.
    pub const KINDS: [&'static str; 6] = [
        "hello",
        "hello-ack",
        "advert",
        "ant",
        "q-estimates",
        "zone-summary",
    ];

    /// The kind of message, for counters and logs.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// Position of [`Message::kind`] in [`Message::KINDS`]: an index for counters.
    pub fn kind_index(&self) -> usize {
        match self {
            Message::Hello { .. } => 0,
            Message::HelloAck { .. } => 1,
            Message::Advert(_) => 2,
            Message::Ant(_) => 3,
            Message::QEstimates(_) => 4,
            Message::ZoneSummary(_) => 5,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Advert {
    pub origin: NodeId,
    /// Higher sequence numbers replace lower ones.
    pub seq: u64,
    /// Live neighbours and the measured one-way cost to each, in microseconds.
    pub links: Vec<(NodeId, u32)>,
    pub prefixes: Vec<IpNet>,
    /// Remaining lifetime in milliseconds; a node that stops advertising ages out.
    pub max_age_ms: u32,
}

/// What a border node tells the whole fleet about its zone. Every node builds from these
/// a backbone graph (border nodes, their inter-zone links, and the cost of crossing each
/// zone between its borders) and routes to each remote zone with one prefix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZoneSummary {
    pub origin: NodeId,
    /// One sequence number per origination, shared by all its parts.
    pub seq: u64,
    /// A big zone's prefix list spans several datagrams: this is part `part` of `parts`.
    /// Only part 0 carries `links`.
    pub part: u16,
    pub parts: u16,
    /// Backbone links: to the other border nodes of the origin's zone (intra-zone path
    /// cost) and to the origin's live neighbours in other zones (link cost), microseconds.
    pub links: Vec<(NodeId, u32)>,
    /// Overlay prefixes owned in the origin's zone, with their owners.
    pub prefixes: Vec<(IpNet, NodeId)>,
    /// Remaining lifetime in milliseconds; a summary with no links and no prefixes
    /// withdraws an earlier one (the origin stopped being a border node).
    pub max_age_ms: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AntKind {
    Forward,
    Backward,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ant {
    pub kind: AntKind,
    /// Identifies the ant at its source (loop detection, logs).
    pub id: u32,
    pub src: NodeId,
    /// A host of the source's zone, or `zone.0` for another zone: such an ant arrives at
    /// the first node of that zone it reaches.
    pub dst: NodeId,
    /// Nodes visited so far and the time spent on each hop in microseconds, source first.
    /// A backward ant carries the forward ant's stack and walks it back.
    ///
    /// Entry `(k, t)` is pushed by node `k` as it forwards the ant: `t` is `k`'s own
    /// estimate of the delay to the next hop (srtt/2 + queueing; agents' clocks are not
    /// synchronised). The node where the ant arrives pushes itself with 0.
    pub stack: Vec<(NodeId, u32)>,
    /// Hops taken so far, cycles cut from `stack` included: the ant's age, which bounds
    /// its life even when it keeps cutting cycles.
    pub hops: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("datagram of {len} bytes is too short (need at least {min})")]
    TooShort { len: usize, min: usize },
    #[error("datagram of {len} bytes exceeds the maximum {max}")]
    TooLong { len: usize, max: usize },
    #[error("protocol version {got}, this agent speaks {VERSION}")]
    Version { got: u8 },
    #[error("MAC does not verify (wrong cluster key or tampered datagram)")]
    BadMac,
    #[error("body does not decode: {0}")]
    Decode(String),
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// Encodes and decodes authenticated datagrams with one cluster key.
#[derive(Clone)]
pub struct Codec {
    key: [u8; 32],
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Codec { key: <redacted> }")
    }
}

impl Codec {
    /// `key` is the cluster key; any length is accepted and stretched with BLAKE3's
    /// key derivation, so a key file may hold a passphrase or 32 random bytes.
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: blake3::derive_key("matrix control channel v1", key),
        }
    }

    fn mac(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        let full = blake3::keyed_hash(&self.key, bytes);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full.as_bytes()[..MAC_LEN]);
        out
    }

    pub fn encode(&self, env: &Envelope) -> Result<Vec<u8>, AuthError> {
        let mut buf = vec![VERSION];
        let body = postcard::to_stdvec(env).map_err(|e| AuthError::Encode(e.to_string()))?;
        buf.extend_from_slice(&body);
        let mac = self.mac(&buf);
        buf.extend_from_slice(&mac);
        if buf.len() > MAX_DATAGRAM {
            return Err(AuthError::TooLong {
                len: buf.len(),
                max: MAX_DATAGRAM,
            });
        }
        Ok(buf)
    }

    pub fn decode(&self, datagram: &[u8]) -> Result<Envelope, AuthError> {
        let min = 1 + MAC_LEN + 1;
        if datagram.len() < min {
            return Err(AuthError::TooShort {
                len: datagram.len(),
                min,
            });
        }
        if datagram.len() > MAX_DATAGRAM {
            return Err(AuthError::TooLong {
                len: datagram.len(),
                max: MAX_DATAGRAM,
            });
        }
        if datagram[0] != VERSION {
            return Err(AuthError::Version { got: datagram[0] });
        }
        let (signed, mac) = datagram.split_at(datagram.len() - MAC_LEN);
        // Constant-time comparison: blake3's Hash equality is constant time.
        let want = blake3::keyed_hash(&self.key, signed);
        let mut got = [0u8; 32];
        got[..MAC_LEN].copy_from_slice(mac);
        got[MAC_LEN..].copy_from_slice(&want.as_bytes()[MAC_LEN..]);
        if blake3::Hash::from(got) != want {
            return Err(AuthError::BadMac);
        }
        postcard::from_bytes(&signed[1..]).map_err(|e| AuthError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Envelope {
        Envelope {
            from: NodeId::new(0, 1),
            epoch: 1_700_000_000_000_000,
            seq: 3,
            link_mac: [2, 0, 0, 0, 0, 1],
            msg: Message::Hello {
                seq: 7,
                sent_us: 123_456,
            },
        }
    }

    #[test]
    fn round_trip() {
        let c = Codec::new(b"cluster secret");
        let d = c.encode(&env()).unwrap();
        assert_eq!(c.decode(&d).unwrap(), env());
    }

    #[test]
    fn rejects_wrong_key_tamper_version_and_garbage() {
        let c = Codec::new(b"cluster secret");
        let d = c.encode(&env()).unwrap();
        assert_eq!(Codec::new(b"other").decode(&d), Err(AuthError::BadMac));
        let mut t = d.clone();
        t[2] ^= 1;
        assert_eq!(c.decode(&t), Err(AuthError::BadMac));
        let mut v = d.clone();
        v[0] = 9;
        assert_eq!(c.decode(&v), Err(AuthError::Version { got: 9 }));
        assert!(matches!(c.decode(&[1, 2]), Err(AuthError::TooShort { .. })));
        // Garbage that happens to carry a valid MAC still fails cleanly, not with a panic.
        let mut g = vec![VERSION, 0xff, 0xff, 0xff, 0xff, 0xff];
        let mac = c.mac(&g);
        g.extend_from_slice(&mac);
        assert!(matches!(c.decode(&g), Err(AuthError::Decode(_))));
    }
}
