//! CPU and memory of idle agents on a small testbed (method:
//! `matrix_benches::agent_idle`); writes `target/bench/agent_idle.json`.
//!
//! `cargo bench -p matrix-benches --bench agent_idle [-- --quick]`. Needs root and a
//! built `matrix` binary (`$MATRIX_BIN`, else target/release/matrix, else the debug one).

use std::time::Duration;

use matrix_benches::{
    agent_idle,
    run::{self, Options},
};

fn main() -> anyhow::Result<()> {
    let opts = Options::from_args();
    run::require_root("agent_idle")?;
    run::catch_interrupts();
    let bin = agent_idle::matrix_bin();
    // The window the issue asks for is ~10 s; --quick halves it.
    let (settle, window) = if opts.quick {
        (Duration::from_secs(2), Duration::from_secs(5))
    } else {
        (Duration::from_secs(3), Duration::from_secs(10))
    };
    let mut json = agent_idle::run(&opts.prefix, &bin, settle, window)?;
    json["kernel"] = run::kernel().into();
    opts.write_json("agent_idle", &json)?;
    Ok(())
}
