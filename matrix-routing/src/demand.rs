//! Local traffic per destination (from the data plane's per-destination counters): what
//! AntNet draws ant destinations from.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::{
    dest,
    node::{NodeId, NodePrefix},
};

/// Time constant of the demand average.
const DEMAND_TAU: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Default)]
struct Meter {
    last: Option<(Instant, u64)>,
    packets_per_s: f64,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Demand {
    by_dst: BTreeMap<NodeId, Meter>,
}

impl Demand {
    /// Records the cumulative packet count towards `dst`.
    pub(crate) fn observe(&mut self, now: Instant, dst: NodeId, packets: u64) {
        let m = self.by_dst.entry(dst).or_default();
        if let Some((at, p0)) = m.last
            && now > at
            && packets >= p0
        {
            let dt = (now - at).as_secs_f64();
            let alpha = 1.0 - (-dt / DEMAND_TAU.as_secs_f64()).exp();
            m.packets_per_s += alpha * ((packets - p0) as f64 / dt - m.packets_per_s);
        }
        m.last = Some((now, packets));
    }

    /// Packets per second per destination, as a node of `here_zone` sees destinations
    /// (all hosts of another zone count for that zone).
    pub(crate) fn rates(&self, here_zone: u32) -> BTreeMap<NodePrefix, f64> {
        let mut out: BTreeMap<NodePrefix, f64> = BTreeMap::new();
        for (id, m) in self.by_dst.iter().filter(|(_, m)| m.packets_per_s > 0.0) {
            *out.entry(dest::from_wire(*id, here_zone)).or_default() += m.packets_per_s;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_per_host_and_zone() {
        let t0 = Instant::now();
        let mut d = Demand::default();
        let (a, x, y) = (NodeId::new(1, 2), NodeId::new(2, 1), NodeId::new(2, 2));
        for i in 0..50u64 {
            let now = t0 + Duration::from_millis(200 * i);
            d.observe(now, a, 100 * i);
            d.observe(now, x, 20 * i);
            d.observe(now, y, 20 * i);
        }
        let r = d.rates(1);
        assert!((r[&NodePrefix::host(a)] - 500.0).abs() < 5.0);
        assert!((r[&NodePrefix::of_zone(2)] - 200.0).abs() < 2.0);
        assert_eq!(r.len(), 2);
    }
}
