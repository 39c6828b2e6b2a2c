//! Bounds-checked access to packet memory.

use aya_ebpf::programs::XdpContext;

/// Pointer to a `T` at `offset` bytes into the packet, if the packet is long enough.
/// Every wire type has alignment 1, so the pointer may be dereferenced as is.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// Frame length in bytes.
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}
