//! Per-packet cost of each XDP path through BPF_PROG_TEST_RUN, as a ratio to the trivial
//! XDP_TX program measured in the same round (method: `matrix_benches::xdp_cost`).
//!
//! `cargo bench -p matrix-benches --bench xdp_cost [-- --quick]` prints the table and
//! writes `target/bench/xdp_cost.json`. Needs root; fails loudly without it.

use anyhow::Context as _;
use matrix_benches::{
    run::{self, Options},
    xdp_cost::{self, Settings},
};
use matrix_testing::fixtures::{self, World};

fn main() -> anyhow::Result<()> {
    let opts = Options::from_args();
    run::require_root("xdp_cost")?;
    run::catch_interrupts();
    // One CPU for every call: the per-CPU maps and caches stay warm, migrations add noise.
    run::pin_to_cpu(0, run::current_cpu())?;
    let inst = fixtures::load(&World::standard()).context("load the data plane")?;
    let settings = Settings::new(opts.quick);
    let report = xdp_cost::measure(&[&inst.ebpf], xdp_cost::standard_cases(), &settings)?;
    report.print_table();
    let mut json = report.to_json();
    json["bench"] = "xdp_cost".into();
    json["kernel"] = run::kernel().into();
    opts.write_json("xdp_cost", &json)?;
    Ok(())
}
