//! Progress of a long run on stderr: how far simulated time got, how fast events go, and
//! the process's memory. Silent for the first [`FIRST_AFTER`] of wall time, so short
//! runs (and tests) print nothing; the CLI turns it off with `--json` or `--quiet`.

use std::time::{Duration, Instant};

/// No line before this much wall time has passed...
pub const FIRST_AFTER: Duration = Duration::from_secs(10);
/// ...and then one line this often.
pub const EVERY: Duration = Duration::from_secs(10);
/// The wall clock is read once per this many events (reading it costs ~20 ns).
pub const CHECK_EVENTS: u64 = 1 << 16;

/// Prints a line now and then during one run.
#[derive(Debug)]
pub struct Progress {
    label: String,
    started: Instant,
    next: Instant,
    /// Events and wall time at the last line, for the rate since then.
    last: (u64, Instant),
}

impl Progress {
    /// `label` names the run in every line (strategy, fleet size).
    pub fn new(label: String) -> Self {
        let started = Instant::now();
        Self {
            label,
            started,
            next: started + FIRST_AFTER,
            last: (0, started),
        }
    }

    /// Called with the simulated time reached and the events so far; prints when due.
    pub fn tick(&mut self, sim_ns: u64, end_ns: u64, events: u64) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        let rate = (events - self.last.0) as f64 / (now - self.last.1).as_secs_f64();
        self.last = (events, now);
        self.next = now + EVERY;
        let mem = match memory() {
            Some((rss, peak)) => format!(", RSS {} MB (peak {} MB)", rss >> 20, peak >> 20),
            None => String::new(),
        };
        eprintln!(
            "{}: {:.2} of {:.2} s simulated, {:.2} M events/s, {} M events, {:.0} s wall{mem}",
            self.label,
            sim_ns as f64 / 1e9,
            end_ns as f64 / 1e9,
            rate / 1e6,
            events / 1_000_000,
            (now - self.started).as_secs_f64(),
        );
    }
}

/// (resident, peak resident) bytes of this process, from /proc (None elsewhere).
pub fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let value = line[key.len()..].trim().trim_end_matches("kB").trim();
        value.parse::<u64>().ok().map(|k| k * 1024)
    };
    Some((kb("VmRSS:")?, kb("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_on_linux() {
        let (rss, peak) = memory().expect("/proc/self/status");
        assert!(rss > 0 && peak >= rss, "{rss} {peak}");
    }
}
