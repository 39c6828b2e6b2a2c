//! A userspace UDP relay, written the way a user who wants throughput writes one: one
//! thread, a socket bound to the listening address with a large receive buffer,
//! `recvmmsg(2)` in batches of 64 datagrams, each batch passed on with `sendmmsg(2)` on a
//! socket connected to the destination. The forwarding bench runs it in the relay
//! namespace as the userspace baseline.
//!
//! `udp_relay --listen ADDR:PORT --to ADDR:PORT [--batch N]`; runs until killed.

use std::{
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
};

use anyhow::{Context as _, bail};

const BUF: usize = 2048;
const SOCKET_BUFFER: libc::c_int = 4 << 20;

fn arg(args: &[String], name: &str) -> Option<String> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

/// Sets a socket buffer size, beyond rmem_max/wmem_max when root (the FORCE option).
fn set_buffer(sock: &UdpSocket, force: libc::c_int, plain: libc::c_int) {
    for opt in [force, plain] {
        // SAFETY: an int option of the right size on an open socket.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&SOCKET_BUFFER as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: udp_relay --listen ADDR:PORT --to ADDR:PORT [--batch N]";
    let listen: SocketAddr = arg(&args, "--listen").context(usage)?.parse()?;
    let to: SocketAddr = arg(&args, "--to").context(usage)?.parse()?;
    let batch: usize = arg(&args, "--batch").map_or(Ok(64), |b| b.parse())?;

    let rx = UdpSocket::bind(listen).with_context(|| format!("bind {listen}"))?;
    set_buffer(&rx, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
    let tx = UdpSocket::bind("0.0.0.0:0")?;
    tx.connect(to).with_context(|| format!("connect {to}"))?;
    set_buffer(&tx, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);

    let mut bufs = vec![[0u8; BUF]; batch];
    // SAFETY: iovec and mmsghdr are plain C structs for which all-zero is valid.
    let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; batch];
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; batch];
    for ((iov, msg), buf) in iovs.iter_mut().zip(&mut msgs).zip(&mut bufs) {
        iov.iov_base = buf.as_mut_ptr().cast();
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
    }
    loop {
        for iov in &mut iovs {
            iov.iov_len = BUF;
        }
        // SAFETY: `batch` headers, each with one iovec over a live buffer of BUF bytes.
        let n = unsafe {
            libc::recvmmsg(
                rx.as_raw_fd(),
                msgs.as_mut_ptr(),
                batch as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            bail!("recvmmsg: {e}");
        }
        let n = n as usize;
        for (iov, msg) in iovs.iter_mut().zip(&msgs).take(n) {
            iov.iov_len = msg.msg_len as usize;
        }
        let mut done = 0;
        while done < n {
            // SAFETY: headers done..n describe the datagrams just received; the socket
            // is connected, so msg_name stays null.
            let s = unsafe {
                libc::sendmmsg(
                    tx.as_raw_fd(),
                    msgs.as_mut_ptr().add(done),
                    (n - done) as libc::c_uint,
                    0,
                )
            };
            if s <= 0 {
                // A full queue downstream: the rest of the batch is lost, as it would be.
                break;
            }
            done += s as usize;
        }
    }
}
