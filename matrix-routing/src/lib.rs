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
//!
//! One module per concern:
//!
//! | module | concern |
//! |---|---|
//! | `router` | the public API, timers, recomputing routes |
//! | `types` | events in, actions out, neighbour and route reports, counters |
//! | `router::events` | one handler per input (hello, advert, summary, ant, Q batch) |
//! | `neighbor` | liveness, RTT (RFC 6298), hello loss, load, link cost |
//! | `lsdb`, `router::flood` | adverts (zone-scoped) and zone summaries (fleet-wide): seq, aging, flooding |
//! | `topology` | shortest paths inside the zone and across the zone backbone (ECMP) |
//! | `antnet`, `demand` | AntNet tables, traffic models, ants; local demand per destination |
//! | `qrouting` | Q-routing tables and estimate batches |
//! | `routes`, `aggregate` | quantise, hysteresis, make-before-break diff; the route budget |
//! | `overlay` | overlay prefix owners |
//! | `message`, `replay` | control messages, their MAC; per-sender epochs and replay windows |
//! | `dest`, `timer`, `rng`, `error` | destination keys, the timer table, the seeded PRNG, errors |
//! | `node`, `params` | NodeIds and the tunable parameters (from `matrix-schema`) |
//!
//! Tiers: a node routes to every host of its zone (`/32`) and to every other zone as a
//! whole (`zone.0/16`) through border nodes. Host adverts stay in their zone; border nodes
//! flood zone summaries (backbone links, zone prefixes) to the fleet, so a node's state
//! grows with its zone and the number of zones, not with the fleet.

mod aggregate;
mod antnet;
mod demand;
mod dest;
pub mod error;
mod lsdb;
pub mod message;
mod neighbor;
mod overlay;
mod qrouting;
pub mod replay;
mod rng;
pub mod router;
mod routes;
mod timer;
mod topology;
mod types;

// NodeIds and the tunable parameters are text forms too (config, CLI, topology files):
// they live in matrix-schema, with every other parser, and are re-exported here.
pub use matrix_schema::{node, params};

pub use error::ProcessError;
pub use message::{Advert, Ant, AntKind, AuthError, Codec, Envelope, Message, ZoneSummary};
pub use node::{NodeId, NodePrefix};
pub use params::{ParamError, Params, StrategyKind};
pub use router::{Router, RouterConfig};
pub use types::{Action, Counters, Event, NeighborInfo, RouteInfo};
