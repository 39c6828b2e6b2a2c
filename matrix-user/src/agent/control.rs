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
}

impl ControlStats {
    /// Every counter with its name, in name order (`matrix status`).
    pub fn by_name(&self) -> [(&'static str, u64); 8] {
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
        } = *self;
        [
            ("rx_bad_mac", rx_bad_mac),
            ("rx_bad_version", rx_bad_version),
            ("rx_malformed", rx_malformed),
            ("rx_ok", rx_ok),
            ("rx_unknown_source", rx_unknown_source),
            ("rx_wrong_sender", rx_wrong_sender),
            ("tx", tx),
            ("tx_errors", tx_errors),
        ]
    }
}

pub struct Channel {
    socket: UdpSocket,
    codec: Codec,
    me: NodeId,
    by_addr: HashMap<Ipv4Addr, NodeId>,
    by_node: HashMap<NodeId, Ipv4Addr>,
    pub stats: ControlStats,
    buf: Vec<u8>,
}

impl Channel {
    pub async fn bind(
        me: NodeId,
        key: &[u8],
        neighbors: &[(NodeId, Ipv4Addr)],
    ) -> std::io::Result<Self> {
        let socket =
            UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CONTROL_PORT)).await?;
        Ok(Self {
            socket,
            codec: Codec::new(key),
            me,
            by_addr: neighbors.iter().map(|(n, a)| (*a, *n)).collect(),
            by_node: neighbors.iter().copied().collect(),
            stats: ControlStats::default(),
            buf: vec![0; MAX_DATAGRAM + 1],
        })
    }

    pub async fn send(&mut self, to: NodeId, msg: Message) {
        let Some(addr) = self.by_node.get(&to) else {
            self.stats.tx_errors += 1;
            return;
        };
        let env = Envelope { from: self.me, msg };
        let sent = match self.codec.encode(&env) {
            Ok(bytes) => self
                .socket
                .send_to(&bytes, SocketAddrV4::new(*addr, CONTROL_PORT))
                .await
                .is_ok(),
            Err(e) => {
                log::warn!("control message to {to} not encoded: {e}");
                false
            }
        };
        if sent {
            self.stats.tx += 1;
        } else {
            self.stats.tx_errors += 1;
        }
    }

    /// Waits for the next datagram that passes every check.
    pub async fn recv(&mut self) -> (NodeId, Message) {
        loop {
            let Ok((len, from)) = self.socket.recv_from(&mut self.buf).await else {
                continue;
            };
            if let Some(ok) = self.check(len, from) {
                return ok;
            }
        }
    }

    fn check(&mut self, len: usize, from: SocketAddr) -> Option<(NodeId, Message)> {
        let SocketAddr::V4(from) = from else {
            self.stats.rx_unknown_source += 1;
            return None;
        };
        let Some(&node) = self.by_addr.get(from.ip()) else {
            self.stats.rx_unknown_source += 1;
            return None;
        };
        match self.codec.decode(&self.buf[..len]) {
            Ok(env) if env.from == node => {
                self.stats.rx_ok += 1;
                Some((node, env.msg))
            }
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
