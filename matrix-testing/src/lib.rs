//! Test support for matrix, never published: the packet fixtures of the XDP programs
//! (`fixtures`), used by this crate's XDP tests (`tests/xdp.rs`, root only) and by the
//! benches.
#![forbid(unsafe_code)]

pub mod fixtures;
