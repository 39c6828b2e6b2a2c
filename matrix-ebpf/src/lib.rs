#![no_std]
// Library target so `cargo metadata` and tooling see the crate; the programs are in main.rs.
