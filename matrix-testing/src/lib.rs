//! Test support for matrix, never published: the packet fixtures of the XDP programs
//! (`fixtures`), used by this crate's XDP tests (`tests/xdp.rs`, root only) and by the
//! benches, and a fuzzer with its oracle (`fuzz`), run by `tests/fuzz.rs` and by the
//! `matrix-fuzz` binary behind `cargo xtask fuzz`. Their world is built through
//! matrix-user's `DataPlane` facade, with the calls the agent makes, so every fixture run
//! also tests the facade.
#![forbid(unsafe_code)]

pub mod fixtures;
pub mod fuzz;
