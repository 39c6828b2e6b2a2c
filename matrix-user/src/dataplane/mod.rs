//! The one facade over the XDP programs and their maps.

/// The compiled `matrix-ebpf` object, embedded at build time by `build.rs`.
pub fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/matrix"))
}
