//! Types shared by the matrix XDP data plane (`matrix-ebpf`) and its userspace agent
//! (`matrix-user`): the wire format and every BPF map key, value and slot index.
//!
//! Every type here is `#[repr(C)]`, `Copy` and free of implicit padding, so the kernel and
//! userspace see the same bytes. Wire headers use byte arrays for multi-byte fields: packet
//! memory is not aligned, and byte arrays keep the structs at alignment 1.
#![no_std]

pub mod bench;
pub mod counters;
pub mod flow;
pub mod maps;
pub mod trace;
pub mod wire;

pub use counters::*;
pub use flow::{FlowHash, flow_hash_v4, flow_hash_v6};
pub use maps::*;
pub use trace::*;
pub use wire::*;
