//! Running a fuzz campaign: worker threads, each with one instance of the data plane per
//! program (so COUNTERS tell the programs apart), frames handed out in batches, every
//! result judged, and the counters read once per batch and checked against what the
//! oracle saw. A batch whose counters disagree is run again frame by frame to find the
//! frames at fault.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use matrix_common::{COUNTER_SLOTS, DROP_NAMES, PATH_NAMES, VERDICT_NAMES};

use super::{
    Case, Generator, Origin, hex,
    oracle::{Faults, Judged, Oracle},
    tally::Tally,
};
use crate::fixtures::{self, Action, Instance, Prog, World, run_frame};

/// The two programs the fuzzer runs, in report order.
pub const PROGS: [Prog; 2] = [Prog::Underlay, Prog::Workload];

#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Frames in all, over both programs.
    pub count: u64,
    /// Worker threads, each with its own instances.
    pub threads: usize,
    /// Frames per counter check.
    pub batch: u64,
    /// Violations kept in full (the rest are only counted).
    pub keep: usize,
    /// Print progress to stderr every few seconds.
    pub progress: bool,
    /// The world built in the data plane.
    pub world: World,
    /// The world the oracle judges by, if not `world`: a different one only shows that
    /// the oracle catches a data plane that disagrees with it.
    pub oracle_world: Option<World>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 0,
            count: 1_000_000,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch: 4096,
            keep: 20,
            progress: false,
            world: World::standard(),
            oracle_world: None,
        }
    }
}

/// One result the oracle (or the counter check) found wrong.
#[derive(Clone, Debug)]
pub struct Violation {
    pub seed: u64,
    pub case: Case,
    pub action: u32,
    pub output: Vec<u8>,
    pub faults: Faults,
}

impl Violation {
    pub fn report(&self) -> String {
        let c = &self.case;
        let action = Action::from_code(self.action)
            .map_or_else(|| format!("code {}", self.action), |a| format!("{a:?}"));
        let mut s = format!(
            "violation at frame {} ({:?} program, {}):\n",
            c.index,
            c.prog,
            c.describe()
        );
        for f in &self.faults {
            let _ = writeln!(s, "  - {f}");
        }
        let _ = writeln!(s, "  action: {action} ({})", self.action);
        let _ = writeln!(s, "  input  ({} bytes): {}", c.frame.len(), hex(&c.frame));
        let _ = writeln!(
            s,
            "  output ({} bytes): {}",
            self.output.len(),
            hex(&self.output)
        );
        let _ = writeln!(
            s,
            "  reproduce: cargo xtask fuzz --seed {:#x} --frame {}",
            self.seed, c.index
        );
        s
    }
}

/// What one program made of its frames.
#[derive(Clone, Debug, Default)]
pub struct ProgStats {
    pub frames: u64,
    pub by_origin: BTreeMap<Origin, u64>,
    /// Frames by origin and what the oracle judged them (violations aside).
    pub judged: BTreeMap<(Origin, &'static str), u64>,
    /// COUNTERS growth over the run, by slot (reruns of a disputed batch not included).
    pub counters: Vec<u64>,
}

impl ProgStats {
    fn merge(&mut self, other: &ProgStats) {
        self.frames += other.frames;
        for (k, v) in &other.by_origin {
            *self.by_origin.entry(*k).or_default() += v;
        }
        for (k, v) in &other.judged {
            *self.judged.entry(*k).or_default() += v;
        }
        add_into(&mut self.counters, &other.counters);
    }

    fn slots(&self, names: &[(u32, &str)]) -> String {
        let parts = names.iter().map(|(slot, name)| {
            let n = self.counters.get(*slot as usize).copied().unwrap_or(0);
            format!("{name} {n}")
        });
        parts.collect::<Vec<_>>().join(", ")
    }
}

fn add_into(sum: &mut Vec<u64>, delta: &[u64]) {
    if sum.len() < delta.len() {
        sum.resize(delta.len(), 0);
    }
    for (s, d) in sum.iter_mut().zip(delta) {
        *s += d;
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub frames: u64,
    pub threads: usize,
    pub elapsed: Duration,
    /// By program, in [`PROGS`] order.
    pub progs: [ProgStats; 2],
    /// The first violations (by frame index), in full.
    pub violations: Vec<Violation>,
    /// Every violation, counted.
    pub violation_count: u64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violation_count == 0
    }

    pub fn frames_per_second(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Counts by verdict, path and drop reason per program, the rate, the violations.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "fuzz: seed {:#x}, {} frames in {:.1} s ({:.0} frames/s, {} threads)\n",
            self.seed,
            self.frames,
            self.elapsed.as_secs_f64(),
            self.frames_per_second(),
            self.threads
        );
        for (prog, st) in PROGS.iter().zip(&self.progs) {
            let _ = writeln!(s, "{prog:?} program: {} frames", st.frames);
            let _ = writeln!(s, "  verdicts: {}", st.slots(&VERDICT_NAMES));
            let _ = writeln!(s, "  paths:    {}", st.slots(&PATH_NAMES));
            let _ = writeln!(s, "  drops:    {}", st.slots(&DROP_NAMES));
            // What the oracle found the frames of each origin got.
            for origin in Origin::ALL {
                let n = st.by_origin.get(&origin).copied().unwrap_or(0);
                let judged = (st.judged.iter())
                    .filter(|((o, _), _)| *o == origin)
                    .map(|((_, j), v)| format!("{j} {v}"));
                let _ = writeln!(
                    s,
                    "  {:<8} {n:>8}: {}",
                    origin.name(),
                    judged.collect::<Vec<_>>().join(", ")
                );
            }
        }
        let _ = write!(s, "violations: {}", self.violation_count);
        if self.violation_count > self.violations.len() as u64 {
            let _ = write!(s, " (the first {} below)", self.violations.len());
        }
        s
    }

    /// The summary, then every violation kept.
    pub fn full(&self) -> String {
        let mut s = self.summary();
        for v in &self.violations {
            s += "\n\n";
            s += &v.report();
        }
        s
    }

    /// How many times COUNTERS slot `slot` moved, over both programs.
    pub fn counted(&self, slot: u32) -> u64 {
        let at = |st: &ProgStats| st.counters.get(slot as usize).copied().unwrap_or(0);
        self.progs.iter().map(at).sum()
    }
}

/// What one worker found.
#[derive(Default)]
struct Found {
    progs: [ProgStats; 2],
    violations: Vec<Violation>,
    count: u64,
}

impl Found {
    fn violation(&mut self, keep: usize, v: Violation) {
        self.count += 1;
        self.violations.push(v);
        // Keep the lowest frame indices, so the report does not depend on the threads.
        if self.violations.len() > keep {
            self.violations.sort_by_key(|v| v.case.index);
            self.violations.truncate(keep);
        }
    }
}

/// Loads an instance of the data plane with the standard world, failing loudly.
pub fn load_instance(world: &World) -> anyhow::Result<Instance> {
    fixtures::load(world).context(
        "load the data plane for BPF_PROG_TEST_RUN (BPF_PROG_LOAD and map creation need root)",
    )
}

/// Runs `opts.count` frames from `opts.seed` through both programs.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let world = &opts.world;
    let generator = Generator::new(opts.seed);
    let oracle = Oracle::new(opts.oracle_world.clone().unwrap_or_else(|| world.clone()));
    let started = Instant::now();
    let next_batch = AtomicU64::new(0);
    let (done, finished) = (AtomicU64::new(0), AtomicBool::new(false));
    let found = Mutex::new(Vec::new());
    let threads = opts.threads.max(1);
    let errors: Vec<anyhow::Error> = std::thread::scope(|s| {
        if opts.progress {
            s.spawn(|| progress(opts, &done, &finished, started));
        }
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let w = Worker {
                        opts,
                        world,
                        generator: &generator,
                        oracle: &oracle,
                    };
                    let r = w.run(&next_batch, &done);
                    match r {
                        Ok(f) => {
                            found.lock().expect("not poisoned").push(f);
                            None
                        }
                        Err(e) => Some(e),
                    }
                })
            })
            .collect();
        let errors = workers
            .into_iter()
            .filter_map(|w| w.join().expect("a fuzz worker panicked"))
            .collect();
        finished.store(true, Ordering::Relaxed);
        errors
    });
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let mut report = Report {
        seed: opts.seed,
        frames: opts.count,
        threads,
        elapsed: started.elapsed(),
        progs: Default::default(),
        violations: Vec::new(),
        violation_count: 0,
    };
    for f in found.into_inner().expect("not poisoned") {
        for (sum, st) in report.progs.iter_mut().zip(&f.progs) {
            sum.merge(st);
        }
        report.violations.extend(f.violations);
        report.violation_count += f.count;
    }
    report.violations.sort_by_key(|v| v.case.index);
    report.violations.truncate(opts.keep);
    Ok(report)
}

fn progress(opts: &Options, done: &AtomicU64, finished: &AtomicBool, started: Instant) {
    let mut last = Instant::now();
    while !finished.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() >= Duration::from_secs(5) {
            last = Instant::now();
            let n = done.load(Ordering::Relaxed);
            let rate = n as f64 / started.elapsed().as_secs_f64();
            eprintln!(
                "fuzz: {n}/{} frames ({:.0}%), {rate:.0} frames/s",
                opts.count,
                100.0 * n as f64 / opts.count.max(1) as f64
            );
        }
    }
}

struct Worker<'a> {
    opts: &'a Options,
    world: &'a World,
    generator: &'a Generator,
    oracle: &'a Oracle,
}

impl Worker<'_> {
    fn run(&self, next_batch: &AtomicU64, done: &AtomicU64) -> anyhow::Result<Found> {
        let insts = [load_instance(self.world)?, load_instance(self.world)?];
        let mut before = [insts[0].dp.counters()?, insts[1].dp.counters()?];
        let mut found = Found::default();
        let batch = self.opts.batch.max(1);
        loop {
            let first = next_batch.fetch_add(1, Ordering::Relaxed) * batch;
            if first >= self.opts.count {
                return Ok(found);
            }
            let last = (first + batch).min(self.opts.count);
            let mut tallies = [Tally::default(), Tally::default()];
            for index in first..last {
                let case = self.generator.case(index);
                let k = prog_index(case.prog);
                let r = run_frame(&insts[k].ebpf, case.prog, &case.frame)?;
                tallies[k].add(case.prog, &case.frame, r.action, &r.output);
                let st = &mut found.progs[k];
                st.frames += 1;
                *st.by_origin.entry(case.origin).or_default() += 1;
                match self
                    .oracle
                    .judge(case.prog, &case.frame, r.action, &r.output)
                {
                    Ok(j) => {
                        let key = (case.origin, judged_name(j, r.action));
                        *st.judged.entry(key).or_default() += 1;
                    }
                    Err(faults) => found.violation(
                        self.opts.keep,
                        Violation {
                            seed: self.opts.seed,
                            case,
                            action: r.action,
                            output: r.output,
                            faults,
                        },
                    ),
                }
            }
            for k in 0..2 {
                let after = insts[k].dp.counters()?;
                let delta: Vec<u64> = after.iter().zip(&before[k]).map(|(a, b)| a - b).collect();
                add_into(&mut found.progs[k].counters, &delta);
                before[k] = after;
                if !tallies[k].check(&delta).is_empty() {
                    self.localise(&insts[k], PROGS[k], first..last, &mut found)?;
                    before[k] = insts[k].dp.counters()?;
                }
            }
            done.fetch_add(last - first, Ordering::Relaxed);
        }
    }

    /// Runs the frames of `prog` in `range` again, one counter check per frame, and
    /// records every frame whose counting is wrong.
    fn localise(
        &self,
        inst: &Instance,
        prog: Prog,
        range: std::ops::Range<u64>,
        found: &mut Found,
    ) -> anyhow::Result<()> {
        let mut blamed = false;
        for index in range.clone() {
            let case = self.generator.case(index);
            if case.prog != prog {
                continue;
            }
            let before = inst.dp.counters()?;
            let r = run_frame(&inst.ebpf, prog, &case.frame)?;
            let after = inst.dp.counters()?;
            let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
            let mut tally = Tally::default();
            tally.add(prog, &case.frame, r.action, &r.output);
            let faults = tally.check(&delta);
            if !faults.is_empty() {
                blamed = true;
                let faults = faults.into_iter().map(|f| format!("counting: {f}"));
                found.violation(
                    self.opts.keep,
                    Violation {
                        seed: self.opts.seed,
                        case,
                        action: r.action,
                        output: r.output,
                        faults: faults.collect(),
                    },
                );
            }
        }
        if !blamed {
            // The batch's counters disagreed, but no frame does on its own.
            let case = self.generator.case(range.start);
            let fault = format!(
                "counting: COUNTERS of the {prog:?} frames {}..{} disagree with their \
                 results, but every frame run again on its own counts right",
                range.start, range.end
            );
            found.violation(
                self.opts.keep,
                Violation {
                    seed: self.opts.seed,
                    case,
                    action: u32::MAX,
                    output: Vec::new(),
                    faults: vec![fault],
                },
            );
        }
        Ok(())
    }
}

fn prog_index(prog: Prog) -> usize {
    PROGS
        .iter()
        .position(|p| *p == prog)
        .expect("a fuzzed program")
}

/// "transit tx", "encap redirect", "drop", ...
fn judged_name(j: Judged, action: u32) -> &'static str {
    match (j, Action::from_code(action)) {
        (Judged::Transit { .. }, Some(Action::Tx)) => "transit tx",
        (Judged::Transit { .. }, _) => "transit redirect",
        (Judged::Encap { .. }, Some(Action::Tx)) => "encap tx",
        (Judged::Encap { .. }, _) => "encap redirect",
        (j, _) => j.name(),
    }
}

/// Frame `index` of the run seeded with `seed`, run alone on a fresh instance: how it was
/// made, the bytes in and out, the counters it moved, and the oracle's judgement.
/// Returns the text and whether the oracle found it right.
pub fn replay(seed: u64, index: u64) -> anyhow::Result<(String, bool)> {
    let world = World::standard();
    let case = Generator::new(seed).case(index);
    let inst = load_instance(&world)?;
    let before = inst.dp.counters()?;
    let r = run_frame(&inst.ebpf, case.prog, &case.frame)?;
    let after = inst.dp.counters()?;
    let moved: Vec<&str> = (0..COUNTER_SLOTS as usize)
        .filter(|s| after[*s] != before[*s])
        .map(|s| {
            let names = VERDICT_NAMES.iter().chain(&PATH_NAMES).chain(&DROP_NAMES);
            names
                .clone()
                .find(|(slot, _)| *slot as usize == s)
                .map_or("?", |(_, n)| n)
        })
        .collect();
    let judged = Oracle::new(world).judge(case.prog, &case.frame, r.action, &r.output);
    let mut s = format!(
        "frame {index} of seed {seed:#x}: {:?} program, {}\n",
        case.prog,
        case.describe()
    );
    let _ = writeln!(
        s,
        "input  ({} bytes): {}",
        case.frame.len(),
        hex(&case.frame)
    );
    let action = Action::from_code(r.action).map_or("?".into(), |a| format!("{a:?}"));
    let _ = writeln!(s, "action: {action} ({})", r.action);
    let _ = writeln!(s, "output ({} bytes): {}", r.output.len(), hex(&r.output));
    let _ = writeln!(s, "counters moved: {}", moved.join(", "));
    let ok = judged.is_ok();
    match judged {
        Ok(j) => {
            let _ = write!(s, "oracle: right ({})", judged_name(j, r.action));
        }
        Err(faults) => {
            let _ = write!(s, "oracle: wrong\n  - {}", faults.join("\n  - "));
        }
    }
    Ok((s, ok))
}
