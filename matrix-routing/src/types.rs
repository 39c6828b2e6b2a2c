//! The routing core's vocabulary: what goes in (`Event`), what comes out (`Action`) and
//! what it reports (neighbours, routes, counters). It lives apart from `router` so the
//! tables below the router (neighbours, routes, overlay owners) speak it without
//! importing the router that drives them.

use ipnet::IpNet;

use crate::{
    message::Message,
    node::{NodeId, NodePrefix},
};

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
    /// The underlay link to `neighbor` runs at `mbps` (the interface's speed), or its speed
    /// is unknown: its load is priced against this instead of `link_capacity_mbps`.
    LinkCapacity { neighbor: NodeId, mbps: Option<f64> },
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
    /// The link's capacity when the host reported it ([`Event::LinkCapacity`]).
    pub capacity_mbps: Option<f64>,
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

/// What the router has counted (`matrix status`, the simulator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages from nodes that are not configured neighbours, dropped.
    pub from_strangers: u64,
    /// Messages dropped for any other reason (a `ProcessError`, logged at debug level).
    pub rejected: u64,
    /// Control messages sent.
    pub sent: u64,
    pub adverts_originated: u64,
    pub summaries_originated: u64,
    pub ants_launched: u64,
    /// Backward ants that made it home.
    pub ants_returned: u64,
    /// Ants destroyed on the way (loops, no route, too long, dead next hop).
    pub ants_dropped: u64,
}
