//! matrix's own tooling: set-up helpers, the namespace testbed, and what `cargo xtask`
//! needs to find the workspace's outputs.

pub mod bench;
pub mod cargo;
pub mod cmd;
pub mod routes;
pub mod testbed;
pub mod testkit;
pub mod topology;
