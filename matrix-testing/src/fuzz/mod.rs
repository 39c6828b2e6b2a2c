//! A fuzzer for the XDP programs. This far: the oracle (`oracle`), which judges one
//! BPF_PROG_TEST_RUN result of either program, and the tally that checks the counters of
//! a batch of results. Its own tests, which need no root, are in `tests`.

mod oracle;

pub use oracle::*;

#[cfg(test)]
mod tests;
