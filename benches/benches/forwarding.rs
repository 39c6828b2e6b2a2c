//! Forwarding throughput through a src -> relay -> sink namespace chain with the XDP
//! live-frames generator: matrix's XDP relay against Linux IP forwarding and a userspace
//! UDP relay, and matrix end to end (method: `matrix_benches::forwarding`); writes
//! `target/bench/forwarding.json`.
//!
//! `cargo bench -p matrix-benches --bench forwarding [-- --quick]`. Needs root.

use std::path::Path;

use matrix_benches::{
    forwarding::{self, Settings},
    run::{self, Options},
};

fn main() -> anyhow::Result<()> {
    let opts = Options::from_args();
    run::require_root("forwarding")?;
    run::catch_interrupts();
    let relay = Path::new(env!("CARGO_BIN_EXE_udp_relay"));
    let mut json = forwarding::run(&opts.prefix, relay, &Settings::new(opts.quick))?;
    json["kernel"] = run::kernel().into();
    opts.write_json("forwarding", &json)?;
    Ok(())
}
