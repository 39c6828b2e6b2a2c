//! The project's own load generator: BPF_PROG_TEST_RUN in XDP live-frames mode on
//! `matrix_bench_gen`, a program that returns XDP_TX on a schedule.
//!
//! With `BPF_F_TEST_XDP_LIVE_FRAMES` the kernel builds real xdp_frames from `data_in`
//! and, for XDP_TX, transmits each repetition out of the device named by
//! `ingress_ifindex` in the context: every frame leaves the source veth and arrives at
//! its peer in the next namespace, with no socket or skb on the sending side. The
//! ifindex resolves in the calling thread's namespace, so [`Generator::run`] must run on
//! a thread that joined the sender's namespace (`netns::in_netns`).
//!
//! Two kernel facts shape it:
//! - the frames' pages are recycled with whatever the hops downstream wrote into them
//!   (a relay rewrites MACs and addresses in place), so the program restores the first
//!   72 header bytes from a template before each XDP_TX;
//! - every call with repeat > 1 swaps the XDP dispatcher to the program and back, an RCU
//!   grace period (~20 ms here), so the generator cannot pace itself with small calls.
//!   The program paces instead: it sends one frame per interval (by `bpf_ktime_get_ns`)
//!   for the run's duration and drops the invocations in between; userspace makes as
//!   few, long calls as it can (usually two: a short one that measures the invocation
//!   rate, then one sized for the rest). During the gap between calls nothing is sent,
//!   and the schedule skips ahead rather than bursting; the offered rate reported is
//!   what was sent over the run's duration.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp},
};
pub use matrix_common::bench::generator::PROGRAM;
use matrix_common::bench::generator::{
    DONE, DURATION, FRAME_MAP, INTERVAL, INVOCATIONS, RESTORE_WORDS, SENT, SLOTS, STATE_MAP,
};

use crate::run;

/// Frames per kernel batch (the kernel's maximum is 256; 64 is NAPI's budget).
pub const BATCH: u32 = 64;

/// The first call of a run lasts about this long (at a conservative rate guess), to
/// measure how fast the program is invoked.
const PROBE_CALL: Duration = Duration::from_millis(100);
const GUESS_INVOCATIONS_PER_S: f64 = 3e6;

/// What one run sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sent {
    pub frames: u64,
    /// The sending window: the run's duration, from the first invocation on.
    pub window: Duration,
    pub invocations: u64,
    pub calls: u32,
}

/// The generator's maps, taken out of the object that holds its program.
pub struct Generator {
    state: Array<MapData, [u64; SLOTS]>,
    template: Array<MapData, [u64; RESTORE_WORDS]>,
}

impl Generator {
    /// Takes the generator's maps from `ebpf` (whose `matrix_bench_gen` is loaded).
    pub fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .with_context(|| format!("no map {name}"))
        };
        Ok(Generator {
            state: Array::try_from(take(STATE_MAP)?)?,
            template: Array::try_from(take(FRAME_MAP)?)?,
        })
    }

    /// Sends `frame` out of interface `ifindex` of the calling thread's namespace for
    /// `duration`, at `rate` frames per second or, with `None`, as fast as the calling
    /// CPU can.
    pub fn run(
        &mut self,
        prog: &Xdp,
        frame: &[u8],
        ifindex: u32,
        duration: Duration,
        rate: Option<f64>,
    ) -> anyhow::Result<Sent> {
        if frame.len() < RESTORE_WORDS * 8 {
            bail!("frames must be at least {} bytes", RESTORE_WORDS * 8);
        }
        let mut words = [0u64; RESTORE_WORDS];
        for (w, b) in words.iter_mut().zip(frame.chunks_exact(8)) {
            *w = u64::from_ne_bytes(b.try_into().expect("8 bytes"));
        }
        self.template.set(0, words, 0)?;
        let mut st = [0u64; SLOTS];
        st[INTERVAL] = rate.map_or(0, |r| (1e9 / r).round() as u64);
        st[DURATION] = duration.as_nanos() as u64;
        self.state.set(0, st, 0)?;

        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());

        let start = Instant::now();
        let mut calls = 0;
        let mut repeat = (GUESS_INVOCATIONS_PER_S * PROBE_CALL.as_secs_f64()) as u32;
        loop {
            run::interrupted()?;
            let r = prog
                .test_run(TestRunOptions {
                    data_in: Some(frame),
                    ctx_in: Some(&ctx),
                    repeat,
                    attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                    ..TestRunOptions::new()
                })
                .context("BPF_PROG_TEST_RUN with XDP live frames")?;
            calls += 1;
            let st = self.state.get(&0, 0)?;
            if st[DONE] == 1 {
                return Ok(Sent {
                    frames: st[SENT],
                    window: duration,
                    invocations: st[INVOCATIONS],
                    calls,
                });
            }
            let elapsed = start.elapsed();
            if elapsed > 3 * duration + Duration::from_secs(2) {
                bail!("the generator has not finished after {elapsed:?}");
            }
            // Size the next call for what is left, from the kernel's mean time per
            // invocation in this one, with a margin: invocations past the end only drop.
            let per_s = 1e9 / r.duration.as_nanos().max(1) as f64;
            let left = duration.saturating_sub(elapsed).as_secs_f64() + 0.02;
            repeat = (per_s * left * 1.1).clamp(1e5, u32::MAX as f64) as u32;
        }
    }
}
