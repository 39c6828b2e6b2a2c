//! matrix's routing core, sans-IO: plain state machines fed with events and an explicit
//! `now`, returning actions. No sockets, timers, threads or BPF maps in here: the agent
//! (`matrix-user`) does the I/O, and the simulator drives the very same code.
//!
//! ```text
//!  agent / simulator                      Router
//!  ─────────────────                      ──────
//!  control message in  ── Event::Received ──▶ neighbour table (hello, RTT, loss)
//!  data-plane counters ── Event::LinkLoad ──▶ link-state database (adverts, flooding)
//!  traffic per dst     ── Event::Demand   ──▶ strategy (shortest | antnet | q-routing | direct)
//!  timer fired         ── handle_timeout  ──▶ route set (quantise, hysteresis, diff)
//!  poll_action()       ◀── Send / Install / Withdraw / Overlay / NeighborUp|Down
//!  poll_timeout()      ◀── next deadline
//! ```

pub mod message;
pub mod node;
pub mod params;
pub mod router;

pub use message::{AuthError, Codec, Message};
pub use node::{NodeId, NodePrefix};
pub use params::{ParamError, Params, StrategyKind};
pub use router::{Action, Event, NeighborInfo, RouteInfo, Router, RouterConfig};
