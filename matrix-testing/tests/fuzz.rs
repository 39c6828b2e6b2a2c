//! A short fuzz run (20,000 frames, a fixed seed) through both XDP programs with
//! BPF_PROG_TEST_RUN, every result judged by the oracle and the counters checked in
//! batches; `cargo xtask fuzz` runs a million. The run must also reach every path and
//! every drop reason a frame can cause, or the generator has lost its depth.
//!
//! Needs root (BPF_PROG_LOAD, map creation): without it the test fails, it never skips.

use matrix_common::{DROP_INTERNAL, DROP_NAMES, PATH_ENCAP, PATH_NAMES, VERDICT_ABORTED};
use matrix_testing::{
    fixtures::World,
    fuzz::{self, Options},
};

const SEED: u64 = 0x6D61_7472_6978;
const FRAMES: u64 = 20_000;

fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "tests/fuzz.rs loads XDP programs and needs root (euid is {euid}): \
         run it as root, e.g. `sudo -E cargo test -p matrix-testing --test fuzz`"
    );
}

#[test]
fn fuzz_both_programs() {
    require_root();
    let opts = Options {
        seed: SEED,
        count: FRAMES,
        batch: 1000,
        ..Options::default()
    };
    let report = fuzz::run(&opts).expect("load the data plane and run the frames");
    println!("{}", report.summary());
    assert!(report.ok(), "{}", report.full());
    assert_eq!(report.counted(VERDICT_ABORTED), 0);
    let frames: u64 = report.progs.iter().map(|p| p.frames).sum();
    assert_eq!(frames, FRAMES);
    for (slot, name) in PATH_NAMES {
        let n = report.counted(slot);
        assert!(
            n >= 100,
            "path {name} reached {n} times only:\n{}",
            report.summary()
        );
    }
    // Every drop reason but `internal`, which needs a missing egress port.
    for (slot, name) in DROP_NAMES.into_iter().filter(|(s, _)| *s != DROP_INTERNAL) {
        let n = report.counted(slot);
        assert!(
            n >= 10,
            "drop {name} reached {n} times only:\n{}",
            report.summary()
        );
    }
}

/// The same run judged by an oracle that expects another hop limit from encapsulation:
/// every encapsulated frame must be reported, with what to reproduce it by.
#[test]
fn a_data_plane_that_disagrees_is_reported() {
    require_root();
    let world = World::standard();
    let mut expected = world.clone();
    expected.config.hop_limit += 1;
    let opts = Options {
        seed: SEED,
        count: 2_000,
        oracle_world: Some(expected),
        world,
        ..Options::default()
    };
    let report = fuzz::run(&opts).expect("load the data plane and run the frames");
    let encapsulated = report.counted(PATH_ENCAP);
    assert!(encapsulated > 0);
    assert_eq!(report.violation_count, encapsulated, "{}", report.summary());
    let first = &report.violations[0];
    let text = first.report();
    assert!(text.contains("option hop limit 0x10, not 0x11"), "{text}");
    assert!(text.contains(&format!("--seed {SEED:#x} --frame {}", first.case.index)));
}
