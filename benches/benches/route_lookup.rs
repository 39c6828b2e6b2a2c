//! Per-packet transit cost with 10, 1k and 100k routes (method:
//! `matrix_benches::route_lookup`); writes `target/bench/route_lookup.json`.
//!
//! `cargo bench -p matrix-benches --bench route_lookup [-- --quick]`. Needs root.

use matrix_benches::{
    route_lookup,
    run::{self, Options},
    xdp_cost::Settings,
};

fn main() -> anyhow::Result<()> {
    let opts = Options::from_args();
    run::require_root("route_lookup")?;
    run::catch_interrupts();
    run::pin_to_cpu(0, run::current_cpu())?;
    let (report, mut json) = route_lookup::run(&Settings::new(opts.quick))?;
    report.print_table();
    println!(
        "\ntransit cost with 100k routes / with 10: {:.2}",
        json["lookup_100k_vs_10"].as_f64().unwrap_or(f64::NAN)
    );
    json["kernel"] = run::kernel().into();
    opts.write_json("route_lookup", &json)?;
    Ok(())
}
