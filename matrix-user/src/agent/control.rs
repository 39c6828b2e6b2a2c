//! The control channel: authenticated datagrams on UDP 6082, only to and from
//! configured neighbours. Anything else is dropped and counted, never a panic.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
};

use matrix_common::CONTROL_PORT;
use matrix_routing::{
    AuthError, Codec, Message, NodeId,
    message::{Envelope, MAX_DATAGRAM},
    replay::{Fresh, Replay, ReplayGuard, SendSequence},
};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

/// Datagrams received and sent, and why rejected ones were rejected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlStats {
    pub rx_ok: u64,
    pub tx: u64,
    pub tx_errors: u64,
    /// Source address is not a configured neighbour.
    pub rx_unknown_source: u64,
    /// Authenticated sender NodeId does not match the neighbour at that address.
    pub rx_wrong_sender: u64,
    pub rx_bad_version: u64,
    pub rx_bad_mac: u64,
    pub rx_malformed: u64,
    /// Authentic, but a sequence number already accepted (a replay or a duplicate).
    pub rx_replayed: u64,
    /// Authentic, but too far behind the sender's newest sequence number to tell.
    pub rx_too_old: u64,
    /// Authentic, but from an epoch the sender has left (captured before it restarted).
    pub rx_stale_epoch: u64,
    /// Neighbours heard with a new epoch: they restarted.
    pub peer_restarts: u64,
}

impl ControlStats {
    /// Every counter with its name, in name order (`matrix status`).
    pub fn by_name(&self) -> [(&'static str, u64); 12] {
        // Destructured so that a new counter does not compile until it is listed here.
        let Self {
            rx_ok,
            tx,
            tx_errors,
            rx_unknown_source,
            rx_wrong_sender,
            rx_bad_version,
            rx_bad_mac,
            rx_malformed,
            rx_replayed,
            rx_too_old,
            rx_stale_epoch,
            peer_restarts,
        } = *self;
        [
            ("peer_restarts", peer_restarts),
            ("rx_bad_mac", rx_bad_mac),
            ("rx_bad_version", rx_bad_version),
            ("rx_malformed", rx_malformed),
            ("rx_ok", rx_ok),
            ("rx_replayed", rx_replayed),
            ("rx_stale_epoch", rx_stale_epoch),
            ("rx_too_old", rx_too_old),
            ("rx_unknown_source", rx_unknown_source),
            ("rx_wrong_sender", rx_wrong_sender),
            ("tx", tx),
            ("tx_errors", tx_errors),
        ]
    }
}

/// A configured neighbour as the channel needs it.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub node: NodeId,
    pub address: Ipv4Addr,
    /// This node's MAC on the interface that reaches `address`.
    pub local_mac: [u8; 6],
}

/// An authentic, fresh datagram from a neighbour.
#[derive(Debug)]
pub struct Received {
    pub from: NodeId,
    /// The neighbour's MAC on the link, as it says in the datagram.
    pub link_mac: [u8; 6],
    pub msg: Message,
}

pub struct Channel {
    socket: UdpSocket,
    codec: Codec,
    me: NodeId,
    by_addr: HashMap<Ipv4Addr, NodeId>,
    /// Each neighbour's address, and this node's MAC on the link to it.
    by_node: HashMap<NodeId, (Ipv4Addr, [u8; 6])>,
    sequence: SendSequence,
    replay: ReplayGuard,
    pub stats: ControlStats,
    /// Messages sent and accepted, by kind (`Message::KINDS` order).
    pub sent_by_kind: [u64; Message::KINDS.len()],
    pub received_by_kind: [u64; Message::KINDS.len()],
    buf: Vec<u8>,
}

impl Channel {
    pub async fn bind(me: NodeId, key: &[u8], neighbors: &[Peer]) -> std::io::Result<Self> {
        let socket =
            UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CONTROL_PORT)).await?;
        Ok(Self {
            socket,
            codec: Codec::new(key),
            me,
            by_addr: neighbors.iter().map(|p| (p.address, p.node)).collect(),
            by_node: neighbors
                .iter()
                .map(|p| (p.node, (p.address, p.local_mac)))
                .collect(),
            sequence: SendSequence::new(start_epoch()),
            replay: ReplayGuard::new(),
            stats: ControlStats::default(),
            sent_by_kind: [0; Message::KINDS.len()],
            received_by_kind: [0; Message::KINDS.len()],
            buf: vec![0; MAX_DATAGRAM + 1],
        })
    }

    pub async fn send(&mut self, to: NodeId, msg: Message) {
        let Some(&(addr, link_mac)) = self.by_node.get(&to) else {
            self.stats.tx_errors += 1;
            return;
        };
        let kind = msg.kind_index();
        let env = Envelope {
            from: self.me,
            epoch: self.sequence.epoch(),
            seq: self.sequence.next_seq(),
            link_mac,
            msg,
        };
        let sent = match self.codec.encode(&env) {
            Ok(bytes) => self
                .socket
                .send_to(&bytes, SocketAddrV4::new(addr, CONTROL_PORT))
                .await
                .is_ok(),
            Err(e) => {
                tracing::warn!("control message to {to} not encoded: {e}");
                false
            }
        };
        if sent {
            self.stats.tx += 1;
            self.sent_by_kind[kind] += 1;
        } else {
            self.stats.tx_errors += 1;
        }
    }

    /// Waits for the next datagram that passes every check.
    pub async fn recv(&mut self) -> Received {
        loop {
            let Ok((len, from)) = self.socket.recv_from(&mut self.buf).await else {
                continue;
            };
            if let Some(ok) = self.check(len, from) {
                return ok;
            }
        }
    }

    fn check(&mut self, len: usize, from: SocketAddr) -> Option<Received> {
        let SocketAddr::V4(from) = from else {
            self.stats.rx_unknown_source += 1;
            return None;
        };
        let Some(&node) = self.by_addr.get(from.ip()) else {
            self.stats.rx_unknown_source += 1;
            return None;
        };
        match self.codec.decode(&self.buf[..len]) {
            // Only an authentic datagram from the neighbour at that address may move
            // its replay window.
            Ok(env) if env.from == node => match self.replay.check(node, env.epoch, env.seq) {
                Ok(fresh) => {
                    if let Fresh::Restarted { .. } = fresh {
                        self.stats.peer_restarts += 1;
                    }
                    self.stats.rx_ok += 1;
                    self.received_by_kind[env.msg.kind_index()] += 1;
                    Some(Received {
                        from: node,
                        link_mac: env.link_mac,
                        msg: env.msg,
                    })
                }
                Err(Replay::Duplicate { .. }) => {
                    self.stats.rx_replayed += 1;
                    None
                }
                Err(Replay::TooOld { .. }) => {
                    self.stats.rx_too_old += 1;
                    None
                }
                Err(Replay::StaleEpoch { .. }) => {
                    self.stats.rx_stale_epoch += 1;
                    None
                }
            },
            Ok(_) => {
                self.stats.rx_wrong_sender += 1;
                None
            }
            Err(AuthError::Version { .. }) => {
                self.stats.rx_bad_version += 1;
                None
            }
            Err(AuthError::BadMac) => {
                self.stats.rx_bad_mac += 1;
                None
            }
            Err(_) => {
                self.stats.rx_malformed += 1;
                None
            }
        }
    }
}

/// This agent's epoch: its start time in microseconds since 1970, larger after every
/// restart while the clock does not step back.
fn start_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
}
