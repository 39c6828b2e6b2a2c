//! The routing core's one entry point. The driver (agent or simulator) feeds events with
//! the current time, calls `handle_timeout` when `poll_timeout` says so, and drains
//! `poll_action`.
//!
//! API CONTRACT (the agent and the simulator are written against it; keep it stable):
//! `Router::new`, `handle`, `handle_timeout`, `poll_timeout`, `poll_action`,
//! `set_param`, `params`, `neighbors`, `routes`, and the `Event`/`Action` enums.

use std::time::Instant;

use ipnet::IpNet;

use crate::{
    message::Message,
    node::{NodeId, NodePrefix},
    params::{ParamError, Params},
};

/// What a router is told at start-up.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    pub node: NodeId,
    /// Configured neighbours: the only nodes this router exchanges messages with.
    pub neighbors: Vec<NodeId>,
    /// Overlay prefixes this node owns; advertised to the fleet.
    pub prefixes: Vec<IpNet>,
    pub params: Params,
    /// Seed of the router's random choices (ant destinations, exploration): runs are
    /// reproducible.
    pub seed: u64,
}

/// An input to the router.
#[derive(Clone, Debug)]
pub enum Event {
    /// A control message from a neighbour, already authenticated and decoded.
    Received { from: NodeId, msg: Message },
    /// Cumulative bytes and packets this node has sent to `neighbor` in the data plane
    /// (the link's load, from the per-neighbour counters).
    LinkLoad {
        neighbor: NodeId,
        tx_bytes: u64,
        tx_packets: u64,
    },
    /// Cumulative data packets that entered the overlay here bound for `dst` (local
    /// traffic, which AntNet draws ant destinations from).
    Demand { dst: NodeId, packets: u64 },
    /// The underlay link to `neighbor` went down or up (carrier), known before hellos tell.
    LinkState { neighbor: NodeId, up: bool },
}

/// An output of the router.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send `msg` to neighbour `to` over the control channel.
    Send { to: NodeId, msg: Message },
    /// Install or replace the weighted next-hop set of `dst` (at most 4 members, weights
    /// are small integers). Emitted before any `Withdraw` that it replaces (make before
    /// break). `aggregate` marks entries that stand for a coarser prefix than the
    /// destinations behind them (zone routes, budget aggregation).
    Install {
        dst: NodePrefix,
        next_hops: Vec<(NodeId, u32)>,
        aggregate: bool,
    },
    /// Remove the route of `dst`.
    Withdraw { dst: NodePrefix },
    /// Overlay prefix `prefix` is owned by `owner` (learnt from adverts).
    Overlay { prefix: IpNet, owner: NodeId },
    /// Overlay prefix `prefix` no longer has an owner.
    OverlayWithdraw { prefix: IpNet },
    /// A neighbour came alive or was declared dead.
    Neighbor { neighbor: NodeId, alive: bool },
}

/// A neighbour as the router sees it (`matrix neighbors`).
#[derive(Clone, Debug, PartialEq)]
pub struct NeighborInfo {
    pub node: NodeId,
    pub alive: bool,
    /// Smoothed RTT and its variance (RFC 6298 style), microseconds.
    pub srtt_us: Option<u32>,
    pub rttvar_us: Option<u32>,
    /// Fraction of the last hellos that went unanswered, 0..=1.
    pub loss: f64,
    /// Recent transmit rate to this neighbour, bytes per second.
    pub load_bps: f64,
    /// Link cost the strategies use, microseconds.
    pub cost_us: u32,
}

/// A destination's routing state (`matrix routes --detail`).
#[derive(Clone, Debug, PartialEq)]
pub struct RouteInfo {
    pub dst: NodePrefix,
    /// What is installed in the data plane.
    pub next_hops: Vec<(NodeId, u32)>,
    pub aggregate: bool,
    /// Strategy detail per neighbour: pheromone (AntNet), Q-value in microseconds
    /// (Q-routing), path cost (shortest).
    pub detail: Vec<(NodeId, f64)>,
}

/// The routing core of one node.
pub struct Router {
    _private: (),
}

impl Router {
    pub fn new(config: RouterConfig, now: Instant) -> Self {
        let _ = (config, now);
        todo!("routing core")
    }

    pub fn node(&self) -> NodeId {
        todo!()
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        let _ = (now, event);
        todo!()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// The next instant `handle_timeout` must be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        todo!()
    }

    pub fn params(&self) -> &Params {
        todo!()
    }

    /// Changes a parameter at run time; changing `strategy` switches strategy and
    /// re-derives every route (make before break).
    pub fn set_param(&mut self, now: Instant, name: &str, value: &str) -> Result<(), ParamError> {
        let _ = (now, name, value);
        todo!()
    }

    pub fn neighbors(&self) -> Vec<NeighborInfo> {
        todo!()
    }

    pub fn routes(&self) -> Vec<RouteInfo> {
        todo!()
    }

    /// Entries of routing state this node holds (routes, pheromone/Q rows, LSDB entries):
    /// the simulator's `state_entries_per_node`.
    pub fn state_entries(&self) -> usize {
        todo!()
    }
}
