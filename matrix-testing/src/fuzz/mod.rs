//! A fuzzer for the XDP programs: random and mutated frames through BPF_PROG_TEST_RUN,
//! each result judged by an oracle, the counters checked in batches.
//!
//! Everything is deterministic from one seed: frame `i` of a run is built from the seed
//! and `i` alone (`Rng::for_frame`), so a violation reproduces from the two numbers on
//! any number of threads, and `cargo xtask fuzz --seed S --frame I` replays it.
//!
//! One file per part: `generate` (the frames: a pool of valid ones, from the fixture
//! table and generated, and the mutations), `oracle` (what a result may be), `tally`
//! (what a batch must have counted), `runner` (threads, batches, counters, the report).
//! The oracle's own tests, which need no root, are in `tests`; the XDP runs are
//! `tests/fuzz.rs` (20,000 frames) and the `matrix-fuzz` binary behind `cargo xtask fuzz`
//! (1,000,000 by default).

mod generate;
mod oracle;
mod runner;
mod tally;

pub use generate::*;
pub use oracle::*;
pub use runner::*;
pub use tally::*;

/// xorshift64* (the generator of the fixtures' garbage), seeded through splitmix64 so
/// that neighbouring seeds and frame indices give unrelated streams.
#[derive(Clone, Debug)]
pub struct Rng(u64);

const fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        // xorshift never leaves 0.
        Self(splitmix64(seed).max(1))
    }

    /// The stream of frame `index` of the run seeded with `seed`.
    pub fn for_frame(seed: u64, index: u64) -> Self {
        Self::new(seed ^ splitmix64(index ^ 0x6672_616D_6573))
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi + 1 - lo)
    }

    /// True `percent` times in 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// One of `items` or, as one more choice, `random(self)`.
    pub fn pick_or<T: Copy>(&mut self, items: &[T], random: impl FnOnce(&mut Self) -> T) -> T {
        match self.below(items.len() + 1) {
            i if i < items.len() => items[i],
            _ => random(self),
        }
    }

    pub fn u8(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    pub fn u16(&mut self) -> u16 {
        (self.next_u64() >> 48) as u16
    }

    pub fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }
}

/// `bytes` as one line of hex, to paste into a test.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`hex`].
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    text.len().is_multiple_of(2).then_some(())?;
    text.chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
