//! The benchmark programs of `matrix-ebpf` (its `bench` module): program and map names
//! and the slots of their maps, one `pub mod` per program, so the programs and the bench
//! runners (`benches/`) cannot disagree. The agent never loads, pins or reads them.

/// The trivial `XDP_TX` program every per-packet cost is reported against.
pub mod baseline {
    pub const PROGRAM: &str = "matrix_baseline_tx";
}

/// The receiving end of the forwarding benches: counts and drops every frame but ARP.
pub mod sink {
    pub const PROGRAM: &str = "matrix_bench_sink";
    /// Per-CPU `u64` slots of what the sink counted.
    pub const MAP: &str = "BENCH_SINK";
    pub const FRAMES: u32 = 0;
    pub const BYTES: u32 = 1;
    pub const SLOTS: u32 = 2;
}

/// The load generator, run with BPF_PROG_TEST_RUN in XDP live-frames mode.
pub mod generator {
    pub const PROGRAM: &str = "matrix_bench_gen";
    /// One entry: `[u64; SLOTS]`, the schedule (written before a run) and the tallies
    /// (read after it), indexed by the constants below.
    pub const STATE_MAP: &str = "BENCH_GEN";
    /// One entry: the first `RESTORE_WORDS` words of the generated frame.
    pub const FRAME_MAP: &str = "BENCH_GEN_FRAME";

    /// ns between frames (0: as fast as possible).
    pub const INTERVAL: usize = 0;
    /// Run length in ns.
    pub const DURATION: usize = 1;
    /// First invocation (ktime ns).
    pub const START: usize = 2;
    /// Next send time (ktime ns).
    pub const NEXT: usize = 3;
    /// Frames sent.
    pub const SENT: usize = 4;
    pub const INVOCATIONS: usize = 5;
    /// 1 once the run is over.
    pub const DONE: usize = 6;
    pub const SLOTS: usize = 8;

    /// Header words restored before each send (72 bytes): every rewrite downstream
    /// (transit, encap, decap, the kernel's forwarding) stays inside them, and the
    /// smallest generated frame is 78 bytes.
    pub const RESTORE_WORDS: usize = 9;
}
