//! matrix's text forms, each parsed in exactly one place that every tool calls: the
//! agent (`matrix-user`), the simulator (`matrix-sim`) and the project's tooling
//! (`xtask`).
//!
//! | module | what it parses and writes |
//! |---|---|
//! | [`node`] | NodeIds `zone.host` and NodeId prefixes `zone.host/len` |
//! | [`topology`] | the topology file of the testbed and the simulator (one format) |
//! | [`config`] | the agent's configuration file (`matrix agent --config`) |
//! | [`fleet`] | the fleet file of `matrix config gen`: every host, written out as their agent configs |
//! | [`params`] | the routing parameters of `[routing]`, `matrix get/set` and `--param` |
//!
//! std, serde and toml only: no aya, so xtask can use it before the eBPF toolchain exists.

pub mod config;
pub mod fleet;
pub mod node;
pub mod params;
pub mod topology;

pub use node::{NodeId, NodeIdError, NodePrefix};

/// Where each node's programs and maps are pinned: `PIN_ROOT/<node name>/<map>`.
pub const PIN_ROOT: &str = "/sys/fs/bpf/matrix";
