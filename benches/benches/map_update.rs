//! Routes written per second through the DataPlane facade against raw
//! BPF_MAP_UPDATE_ELEM on the same map (method: `matrix_benches::map_update`); writes
//! `target/bench/map_update.json`.
//!
//! `cargo bench -p matrix-benches --bench map_update [-- --quick]`. Needs root.

use matrix_benches::{
    map_update,
    run::{self, Options},
};

const ROUTES: usize = 100_000;

fn main() -> anyhow::Result<()> {
    let opts = Options::from_args();
    run::require_root("map_update")?;
    run::catch_interrupts();
    run::pin_to_cpu(0, run::current_cpu())?;
    let rounds = if opts.quick { 3 } else { 7 };
    let mut json = map_update::run(&opts.prefix, ROUTES, rounds)?;
    json["kernel"] = run::kernel().into();
    opts.write_json("map_update", &json)?;
    Ok(())
}
