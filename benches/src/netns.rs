//! Working inside the bench's network namespaces: code on a thread that joined one,
//! commands through `ip netns exec`, interface facts, threaded NAPI.

use std::{collections::BTreeSet, fs::File, os::fd::AsRawFd as _, process::Command};

use anyhow::{Context as _, anyhow, bail};
use matrix_user::net::parse_mac;

/// Runs `f` on a thread that has joined network namespace `ns` (setns(2) moves only the
/// calling thread), and returns what it returns. Interface names, ifindexes, netlink
/// and BPF_PROG_TEST_RUN's `ingress_ifindex` all resolve in that namespace.
pub fn in_netns<T: Send>(
    ns: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns)?;
            f()
        })
        .join()
        .map_err(|_| anyhow!("the thread in namespace {ns} panicked"))?
    })
}

/// Moves the calling thread into namespace `ns`.
pub fn enter(ns: &str) -> anyhow::Result<()> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).with_context(|| format!("open {path}"))?;
    // SAFETY: a valid namespace fd for the duration of the call.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns {path}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `args` in namespace `ns`; fails with its stderr unless it succeeds.
pub fn exec(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    let out = xtask::cmd::run(&mut c)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `sysctl -w key=value` in namespace `ns`.
pub fn sysctl(ns: &str, key: &str, value: &str) -> anyhow::Result<()> {
    exec(ns, &["sysctl", "-q", "-w", &format!("{key}={value}")]).map(drop)
}

/// An interface's facts.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
}

/// Facts of interface `iface` in namespace `ns`, from `ip -j link`.
pub fn link(ns: &str, iface: &str) -> anyhow::Result<Link> {
    let out = xtask::cmd::ip(["-j", "-n", ns, "link", "show", "dev", iface])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let l = &v[0];
    let missing = || anyhow!("`ip -j -n {ns} link show dev {iface}`: no such link");
    Ok(Link {
        ifindex: l["ifindex"].as_u64().ok_or_else(missing)? as u32,
        mac: l["address"]
            .as_str()
            .and_then(parse_mac)
            .ok_or_else(missing)?,
        mtu: l["mtu"].as_u64().ok_or_else(missing)? as u32,
    })
}

/// Pids of the kernel's NAPI threads (`napi/<dev>-<id>`).
fn napi_threads() -> BTreeSet<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("napi/"))
        })
        .collect()
}

/// Turns threaded NAPI on for `iface` in `ns` (its receive work then runs in a kernel
/// thread the scheduler places, not in the softirq of whichever CPU queued the frame)
/// and returns the pids of the threads that appeared. The interface must have NAPI
/// already: an XDP program attached, or GRO on.
pub fn threaded_napi(ns: &str, iface: &str) -> anyhow::Result<Vec<i32>> {
    let before = napi_threads();
    let path = format!("/sys/class/net/{iface}/threaded");
    // `ip netns exec` mounts the namespace's own /sys.
    exec(ns, &["sh", "-c", &format!("echo 1 > {path}")])
        .with_context(|| format!("threaded NAPI on {iface} in {ns}"))?;
    let new: Vec<i32> = napi_threads().difference(&before).copied().collect();
    if new.is_empty() {
        bail!("threaded NAPI on {iface} in {ns}: no napi/ thread appeared");
    }
    Ok(new)
}

/// Time task `pid` has spent on a CPU, in ns (`/proc/<pid>/schedstat`). Without
/// IRQ_TIME_ACCOUNTING this includes the softirqs the task ran on its way.
pub fn runtime_ns(pid: i32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/schedstat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    text.split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .with_context(|| format!("{path}: no runtime"))
}

/// The pid of `ksoftirqd/<cpu>`, which runs the softirqs deferred on that CPU.
pub fn ksoftirqd(cpu: usize) -> Option<i32> {
    let want = format!("ksoftirqd/{cpu}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == want)
        })
}
