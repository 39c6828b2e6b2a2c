//! Why an input was not acted on. `Router::handle` logs these and carries on (holo style);
//! each also bumps a counter.

use crate::node::NodeId;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProcessError {
    #[error("message from {from}, which is not a configured neighbour")]
    Stranger { from: NodeId },
    #[error("{what} from {from}, which is not alive")]
    NotAlive { from: NodeId, what: &'static str },
    #[error("hello ack {seq} from {from} answers no outstanding hello")]
    UnknownAck { from: NodeId, seq: u32 },
    #[error("host advert of {origin} (zone {}) from {from}: host adverts stay in their zone {}", origin.zone(), here_zone)]
    AdvertOutOfZone {
        from: NodeId,
        origin: NodeId,
        here_zone: u32,
    },
    #[error("ant {id} from {from}: its stack does not end at the sender")]
    AntStack { from: NodeId, id: u32 },
    #[error("ant {id} looped through {at} for longer than it had lived before the loop")]
    AntLoop { id: u32, at: NodeId },
    #[error("ant {id} exceeded {max} hops")]
    AntTooLong { id: u32, max: usize },
    #[error("ant {id} for {dst}: no live neighbour to carry it")]
    AntNoRoute { id: u32, dst: NodeId },
    #[error("backward ant {id} from {from}: this node is not on its stack")]
    AntNotOnStack { from: NodeId, id: u32 },
}
