//! The benchmark runners behind `cargo xtask bench` (DESIGN.md section 9). Each bench
//! target in `benches/` is a thin `main` over one module here and writes its figures as
//! JSON under `target/bench/`; `cargo xtask bench` runs them all and writes the table.
//!
//! - `xdp_cost`: per-packet cost of every XDP path through BPF_PROG_TEST_RUN, against
//!   the trivial XDP_TX program;
//! - `route_lookup`: the transit cost with 10, 1k and 100k routes;
//! - `map_update`: route writes through the `DataPlane` facade against raw syscalls;
//! - `forwarding` (`chain`, `generator`, `bin/udp_relay`): throughput through a namespace
//!   chain, matrix against Linux forwarding and a userspace relay;
//! - `agent_idle`: CPU and memory of idle agents on a testbed.
//!
//! Every compared figure is a ratio of two things measured in the same run, and every
//! namespace or pin a runner makes carries the run's prefix and is removed on failure.

pub mod agent_idle;
pub mod chain;
pub mod forwarding;
pub mod generator;
pub mod map_update;
pub mod netns;
pub mod route_lookup;
pub mod run;
pub mod xdp_cost;
