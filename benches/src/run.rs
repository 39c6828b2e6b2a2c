//! What every bench runner shares: its command line, where results go, root, CPU
//! pinning, Ctrl-C, a pinned data plane that is removed on drop, and the statistics over
//! rounds.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, bail};

/// A runner's command line: `[--quick] [--out DIR] [--prefix NAME]`. Anything else
/// (cargo bench adds `--bench`) is ignored.
#[derive(Clone, Debug)]
pub struct Options {
    /// Fewer repetitions, same table.
    pub quick: bool,
    /// Where the JSON goes: `<target>/bench` unless told.
    pub out_dir: PathBuf,
    /// Prefix of every namespace and pin directory the runner makes; `cargo xtask bench`
    /// passes one and removes whatever carries it once the runner has ended.
    pub prefix: String,
}

impl Options {
    pub fn from_args() -> Self {
        let mut opts = Options {
            quick: false,
            out_dir: target_dir().join("bench"),
            prefix: format!("mxb{}", std::process::id()),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => opts.quick = true,
                "--out" => opts.out_dir = args.next().map(PathBuf::from).unwrap_or(opts.out_dir),
                "--prefix" => opts.prefix = args.next().unwrap_or(opts.prefix),
                _ => {}
            }
        }
        opts
    }

    /// Writes `value` as `<out>/<name>.json`.
    pub fn write_json(&self, name: &str, value: &serde_json::Value) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(&self.out_dir)
            .with_context(|| format!("create {}", self.out_dir.display()))?;
        let path = self.out_dir.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(value)? + "\n")
            .with_context(|| format!("write {}", path.display()))?;
        println!("written to {}", path.display());
        Ok(path)
    }
}

/// The workspace's target directory: `$CARGO_TARGET_DIR`, else three levels above this
/// executable (`<target>/release/deps/<bench>-<hash>`).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

/// Fails with `what` when not root: the data-plane benches load XDP programs.
pub fn require_root(what: &str) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        bail!(
            "{what} needs root (euid {euid}): run `sudo -E cargo xtask bench` or \
             `sudo -E cargo bench -p matrix-benches`"
        );
    }
    Ok(())
}

/// Pins the calling thread (`tid` 0) or thread/process `tid` to `cpu`.
pub fn pin_to_cpu(tid: i32, cpu: usize) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t owned by this frame, passed with its size.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        bail!(
            "sched_setaffinity(tid {tid}, cpu {cpu}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// The CPU the calling thread runs on.
pub fn current_cpu() -> usize {
    // SAFETY: no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    cpu.max(0) as usize
}

/// Online CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT and SIGTERM into a flag that long loops check with [`interrupted`], so
/// that a Ctrl-C unwinds through the guards that remove namespaces and pins.
pub fn catch_interrupts() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
}

/// Fails once SIGINT or SIGTERM has arrived.
pub fn interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Spread (max - min) of per-round figures.
pub fn spread(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max) - v.iter().copied().fold(f64::MAX, f64::min)
}

/// `a[r] / b[r]` per round.
pub fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| a / b).collect()
}

/// The running kernel's release.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A data plane loaded and pinned under `dir` as the agent does it; detached and
/// unpinned when dropped, also when the bench fails half-way.
pub struct PinnedPlane {
    loaded: Option<matrix_user::dataplane::load::Loaded>,
    dir: PathBuf,
}

impl PinnedPlane {
    pub fn load(dir: &std::path::Path) -> anyhow::Result<Self> {
        let loaded = matrix_user::dataplane::load::load(dir)
            .with_context(|| format!("load a pinned data plane at {}", dir.display()))?;
        Ok(Self {
            loaded: Some(loaded),
            dir: dir.to_path_buf(),
        })
    }

    pub fn loaded(&mut self) -> &mut matrix_user::dataplane::load::Loaded {
        self.loaded.as_mut().expect("only taken on drop")
    }
}

impl Drop for PinnedPlane {
    fn drop(&mut self) {
        let result = match self.loaded.take() {
            Some(l) => l.teardown(),
            None => matrix_user::dataplane::load::unpin(&self.dir),
        };
        if let Err(e) = result {
            eprintln!("warning: removing {}: {e}", self.dir.display());
        }
    }
}
