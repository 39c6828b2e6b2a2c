//! What a run did over time, for `--plot`: per fixed window of the whole run (warm-up
//! and the drain after traffic stops included), data packets offered (by creation time)
//! and delivered (by arrival time), and the mean delay of those delivered.
//!
//! Unlike the report's totals, nothing here is restricted to the measurement window: the
//! point is to see warm-up, a cut and the recovery on one time axis. Memory is one small
//! bin per window, whatever the fleet's size or traffic.

use crate::metrics::RECOVERY_WINDOW_NS;

/// At most this many windows over `--duration`: a few hundred points a line, enough to
/// see a 100 ms dip in a short run without drawing a 10-minute run point by point.
pub const SERIES_POINTS_MAX: u64 = 600;

/// The window for a run of `duration_ns`: the recovery window (100 ms), or a multiple
/// of it that keeps the run within [`SERIES_POINTS_MAX`] windows.
pub fn window_ns(duration_ns: u64) -> u64 {
    let per_point = duration_ns.div_ceil(SERIES_POINTS_MAX);
    RECOVERY_WINDOW_NS * per_point.div_ceil(RECOVERY_WINDOW_NS).max(1)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bin {
    offered: u64,
    offered_bytes: u64,
    delivered: u64,
    delivered_bytes: u64,
    delay_sum_ns: u64,
}

/// The per-window counters a run fills in; [`Recorder::finish`] turns them into rates.
#[derive(Debug)]
pub struct Recorder {
    window_ns: u64,
    bins: Vec<Bin>,
}

impl Recorder {
    pub fn new(duration_ns: u64) -> Self {
        let window_ns = window_ns(duration_ns);
        Self {
            window_ns,
            bins: Vec::with_capacity(duration_ns.div_ceil(window_ns) as usize),
        }
    }

    fn bin(&mut self, t: u64) -> &mut Bin {
        let k = (t / self.window_ns) as usize;
        if self.bins.len() <= k {
            self.bins.resize(k + 1, Bin::default());
        }
        &mut self.bins[k]
    }

    /// A data packet of `bytes` entered the overlay at `t`.
    pub fn offered(&mut self, t: u64, bytes: u32) {
        let b = self.bin(t);
        b.offered += 1;
        b.offered_bytes += u64::from(bytes);
    }

    /// A data packet of `bytes` reached its destination at `t`, `delay_ns` after it
    /// entered.
    pub fn delivered(&mut self, t: u64, delay_ns: u64, bytes: u32) {
        let b = self.bin(t);
        b.delivered += 1;
        b.delivered_bytes += u64::from(bytes);
        b.delay_sum_ns += delay_ns;
    }

    pub fn finish(&self) -> TimeSeries {
        let window_s = self.window_ns as f64 / 1e9;
        let mbps = |bytes: u64| bytes as f64 * 8.0 / window_s / 1e6;
        TimeSeries {
            window_s,
            offered: self.bins.iter().map(|b| b.offered).collect(),
            delivered: self.bins.iter().map(|b| b.delivered).collect(),
            offered_mbps: self.bins.iter().map(|b| mbps(b.offered_bytes)).collect(),
            delivered_mbps: self.bins.iter().map(|b| mbps(b.delivered_bytes)).collect(),
            mean_delay_ms: self
                .bins
                .iter()
                .map(|b| {
                    (b.delivered > 0).then(|| b.delay_sum_ns as f64 / b.delivered as f64 / 1e6)
                })
                .collect(),
        }
    }
}

/// One run over time: window `i` covers `[i * window_s, (i + 1) * window_s)` seconds
/// from the start. Every column has one entry per window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TimeSeries {
    pub window_s: f64,
    /// Data packets created in the window.
    pub offered: Vec<u64>,
    /// Data packets that arrived in the window.
    pub delivered: Vec<u64>,
    pub offered_mbps: Vec<f64>,
    pub delivered_mbps: Vec<f64>,
    /// Mean delay of the packets that arrived in the window; None when none did.
    pub mean_delay_ms: Vec<Option<f64>>,
}

impl TimeSeries {
    /// Start of window `i`, seconds.
    pub fn start_s(&self, i: usize) -> f64 {
        i as f64 * self.window_s
    }

    /// The windows lying wholly inside `[from_s, to_s)`.
    pub fn windows_within(&self, from_s: f64, to_s: f64) -> std::ops::Range<usize> {
        // Window edges are whole multiples of 100 ms: round away float noise.
        let n = self.offered.len();
        let first = ((from_s / self.window_s - 1e-9).ceil().max(0.0) as usize).min(n);
        let end = ((to_s / self.window_s + 1e-9).floor().max(0.0) as usize).min(n);
        first..end.max(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn windows_are_100_ms_until_runs_get_long() {
        assert_eq!(window_ns(30_000 * MS), 100 * MS);
        assert_eq!(window_ns(60_000 * MS), 100 * MS);
        assert_eq!(window_ns(60_001 * MS), 200 * MS);
        assert_eq!(window_ns(600_000 * MS), 1_000 * MS);
        assert_eq!(window_ns(1), 100 * MS);
    }

    #[test]
    fn packets_land_in_their_window() {
        let mut r = Recorder::new(1_000 * MS);
        r.offered(0, 100);
        r.offered(99 * MS, 100);
        r.offered(100 * MS, 100);
        r.delivered(150 * MS, 10 * MS, 100);
        r.delivered(199 * MS, 30 * MS, 100);
        // After the run (the drain): the series grows to hold it.
        r.delivered(1_250 * MS, 5 * MS, 100);
        let s = r.finish();
        assert_eq!(s.window_s, 0.1);
        assert_eq!(s.offered.len(), 13);
        assert_eq!(&s.offered[..3], [2, 1, 0]);
        assert_eq!(&s.delivered[..3], [0, 2, 0]);
        assert_eq!(s.delivered[12], 1);
        // Two 800-bit packets in 0.1 s.
        assert!((s.delivered_mbps[1] - 0.016).abs() < 1e-12);
        assert!((s.offered_mbps[0] - 0.016).abs() < 1e-12);
        assert_eq!(s.mean_delay_ms[0], None);
        assert_eq!(s.mean_delay_ms[1], Some(20.0));
        assert_eq!(s.windows_within(0.1, 0.3), 1..3);
        assert_eq!(s.windows_within(0.15, 0.3), 2..3);
        assert_eq!(s.windows_within(0.0, 99.0), 0..13);
        assert_eq!(s.windows_within(5.0, 9.0), 13..13);
    }
}
