//! A small seeded PRNG (SplitMix64): every random choice of the core (ant destinations,
//! next hops, exploration) comes from here, so a run is reproducible from its seed and
//! the crate needs no `rand`.

#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Mixes the node id in, so a simulator that hands every router the same seed still
    /// gets independent streams.
    pub(crate) fn new(seed: u64, node: u32) -> Self {
        Self(seed ^ (u64::from(node) << 32 | u64::from(node)).wrapping_mul(0xA076_1D64_78BD_642F))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform index below `n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// Picks an item with probability proportional to its weight; uniformly when every
    /// weight is zero. `None` only for an empty slice.
    pub(crate) fn weighted<T: Copy>(&mut self, items: &[(T, f64)]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        let total: f64 = items.iter().map(|(_, w)| w.max(0.0)).sum();
        if total <= 0.0 || !total.is_finite() {
            return Some(items[self.below(items.len())].0);
        }
        let mut point = self.unit() * total;
        for (item, w) in items {
            point -= w.max(0.0);
            if point < 0.0 {
                return Some(*item);
            }
        }
        items.last().map(|(item, _)| *item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_and_spread() {
        let mut a = Rng::new(7, 1);
        let mut b = Rng::new(7, 1);
        let mut c = Rng::new(7, 2);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(xs, (0..8).map(|_| c.next_u64()).collect::<Vec<_>>());
        let mut hits = [0u32; 2];
        for _ in 0..10_000 {
            hits[a.weighted(&[(0usize, 1.0), (1, 3.0)]).unwrap()] += 1;
        }
        assert!((7_000..8_000).contains(&hits[1]), "{hits:?}");
        assert!((0..1000).all(|_| a.unit() < 1.0));
    }
}
