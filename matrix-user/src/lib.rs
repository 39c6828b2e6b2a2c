//! matrix userspace: the data-plane facade over the BPF maps, configuration, the agent
//! and the CLI.
#![deny(unsafe_code)]

pub mod agent;
pub mod cli;
pub use matrix_schema::config;
pub mod dataplane;
pub mod fleet;
pub mod net;
pub use matrix_routing::node;
