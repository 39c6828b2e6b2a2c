//! An XDP program that passes every frame, for the bridge ports of a tapped link.
//!
//! A veth whose peer's XDP program sends a frame back out (`XDP_TX`) queues it on its
//! own receive ring, but the kernel (`veth_xdp_flush`) only wakes that ring's NAPI when
//! the veth runs an XDP program: with GRO alone, the frame waits until other traffic
//! comes by and flushes it (a relay bouncing a packet back to its sender across a tapped
//! link held it indefinitely). Redirected frames are flushed either way. With this
//! program on the port, `XDP_TX` frames are delivered at once.
//!
//! Two instructions, loaded straight through the bpf syscall (no object file, no
//! loader crate), pinned for as long as `ip link set ... xdpdrv pinned` takes to attach
//! it; the attachment keeps it alive with the port.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

/// bpf(2) commands and constants, from `linux/bpf.h`.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_PASS: i32 = 2;
/// `r0 = imm` (BPF_ALU64 | BPF_MOV | BPF_K) and `exit` (BPF_JMP | BPF_EXIT).
const MOV64_IMM_R0: u8 = 0xb7;
const EXIT: u8 = 0x95;
const PROG_NAME: &[u8] = b"testbed_pass";

#[repr(C)]
struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

/// The head of `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`; the
/// kernel reads the fields after it as zero.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_OBJ_PIN.
#[repr(C)]
struct ObjPinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised #[repr(C)] value of the layout the
    // kernel expects for `cmd`, and its size is passed with it; every pointer inside
    // it (instructions, licence, path) points at memory the caller keeps alive.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads the program and pins it at `path` (on a bpffs).
pub fn load_and_pin(path: &Path) -> io::Result<()> {
    let insns = [
        Insn {
            code: MOV64_IMM_R0,
            regs: 0,
            off: 0,
            imm: XDP_PASS,
        },
        Insn {
            code: EXIT,
            regs: 0,
            off: 0,
            imm: 0,
        },
    ];
    let license = c"GPL";
    let mut prog_name = [0u8; 16];
    prog_name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    let load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type: BPF_XDP,
    };
    let fd = bpf(BPF_PROG_LOAD, &load)?;
    // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let pin = ObjPinAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: prog.as_raw_fd() as u32,
        file_flags: 0,
    };
    bpf(BPF_OBJ_PIN, &pin).map(drop)
}
