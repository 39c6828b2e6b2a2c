//! The router's timers: one table, one deadline for the driver (quinn style).

use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Hellos to every neighbour (and Q-routing estimates).
    Hello,
    /// Our periodic advert and, on border nodes, zone summary.
    Advert,
    /// AntNet: launch a forward ant.
    Ant,
    /// A neighbour falls silent for too long (earliest of all).
    Dead,
    /// A link-state entry reaches its age limit (earliest of all).
    Age,
    /// Routes are recomputed after a short hold, batching bursts of changes.
    Recompute,
    /// A stale route or overlay prefix reaches the end of its hold (earliest of all).
    Stale,
}

impl Timer {
    const ALL: [Timer; 7] = [
        Timer::Hello,
        Timer::Advert,
        Timer::Ant,
        Timer::Dead,
        Timer::Age,
        Timer::Recompute,
        Timer::Stale,
    ];
}

#[derive(Clone, Debug, Default)]
pub(crate) struct TimerTable([Option<Instant>; 7]);

impl TimerTable {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }

    /// Sets `t` to `at` unless it is already due earlier.
    pub(crate) fn set_earlier(&mut self, t: Timer, at: Instant) {
        let slot = &mut self.0[t as usize];
        if slot.is_none_or(|cur| at < cur) {
            *slot = Some(at);
        }
    }

    pub(crate) fn set_opt(&mut self, t: Timer, at: Option<Instant>) {
        self.0[t as usize] = at;
    }

    pub(crate) fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }

    pub(crate) fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }

    /// Whether `t` is due at `now`; a due timer is stopped (the handler re-arms it).
    pub(crate) fn take_expired(&mut self, t: Timer, now: Instant) -> bool {
        match self.0[t as usize] {
            Some(at) if at <= now => {
                self.0[t as usize] = None;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn next(&self) -> Option<Instant> {
        Timer::ALL.iter().filter_map(|t| self.get(*t)).min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_deadline() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Hello, t0 + Duration::from_millis(100));
        t.set(Timer::Dead, t0 + Duration::from_millis(50));
        t.set_earlier(Timer::Recompute, t0 + Duration::from_millis(70));
        t.set_earlier(Timer::Recompute, t0 + Duration::from_millis(90));
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(50)));
        assert!(!t.take_expired(Timer::Hello, t0 + Duration::from_millis(60)));
        assert!(t.take_expired(Timer::Dead, t0 + Duration::from_millis(60)));
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(70)));
    }
}
