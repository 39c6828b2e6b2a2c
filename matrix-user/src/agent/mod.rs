//! `matrix agent`: load and attach the data plane, fill its maps from the configuration,
//! learn neighbour MACs, run the routing core (when `[routing]` is configured) and write
//! its routes, and on SIGINT/SIGTERM detach and unpin.
//!
//! ```text
//!   UDP 6082 ──decode+verify──▶ ┐
//!   timers (poll_timeout)  ───▶ │ Driver ──▶ Router (sans-IO) ──actions──▶ map writer
//!   NEIGH_STATS / DEMAND   ───▶ │                                      └─▶ UDP 6082
//!   carrier (rtnetlink)    ───▶ │
//!   control socket (CLI)   ◀──▶ ┘
//! ```
//!
//! `bootstrap` fills the maps and starts the routing core; `driver` is the loop;
//! `events` feeds the core its inputs, `apply` carries out its actions, `handler`
//! answers the control socket in the types of [`protocol`].

mod apply;
mod bootstrap;
mod control;
mod driver;
mod events;
mod handler;
// rtnetlink has no safe wrapper in std: raw socket and ioctl calls, each with its SAFETY note.
#[allow(unsafe_code)]
mod link;
mod preflight;
pub mod protocol;
pub mod socket;

use std::{io::Write as _, time::Duration};

pub use control::ControlStats;

use anyhow::Context as _;
use log::{info, warn};
use matrix_common::programs;

use crate::{
    config::Config,
    dataplane::{self, DataPlane, load::Loaded},
    net::{self, Interface},
};

/// How often unresolved neighbours are probed, and resolved ones re-checked.
pub(crate) const RESOLVE_FAST: Duration = Duration::from_millis(100);
pub(crate) const RESOLVE_SLOW: Duration = Duration::from_secs(1);

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let dir = dataplane::pin_dir(&config.name);
    let underlay: Vec<Interface> = config
        .underlay
        .iter()
        .map(|u| net::interface(&u.iface))
        .collect::<Result<_, _>>()
        .context("underlay interface")?;
    let workload: Vec<Interface> = config
        .workload
        .iter()
        .map(|w| net::interface(&w.iface))
        .collect::<Result<_, _>>()
        .context("workload interface")?;

    // Everything that can be refused is checked before anything is loaded or attached.
    let key = preflight::check(&config)?;

    let mut loaded = dataplane::load::load(&dir).context("loading the data plane")?;
    let result = async {
        let mut dp = DataPlane::open(&dir)?;
        bootstrap::fill(&mut dp, &config, &underlay)?;
        bootstrap::set_workload_mtus(&config, &underlay, &workload);
        // Sockets bound and the routing core started before the programs go on, so a
        // port in use stops the agent before it touches traffic.
        let mut driver = driver::Driver::new(dp, &config, &underlay, key.as_deref()).await?;
        // Maps first, programs second: the first packet already sees every route.
        for u in &underlay {
            loaded.attach(programs::UNDERLAY, &u.name)?;
        }
        for w in &workload {
            loaded.attach(programs::WORKLOAD, &w.name)?;
        }
        println!(
            "matrix agent {} (node {}) ready: {} underlay, {} workload interfaces, {} neighbours, {} routes; maps at {}",
            config.name,
            config.node,
            underlay.len(),
            workload.len(),
            config.neighbors.len(),
            config.routes.len(),
            dir.display()
        );
        let _ = std::io::stdout().flush();
        driver.serve().await
    }
    .await;
    teardown(loaded);
    result
}

fn teardown(loaded: Loaded) {
    let dir = loaded.dir().to_path_buf();
    match loaded.teardown() {
        Ok(()) => info!("detached and unpinned {}", dir.display()),
        Err(e) => warn!("teardown of {}: {e:#}", dir.display()),
    }
}

/// One pass of MAC learning: probe unresolved neighbours, copy MACs the kernel has
/// resolved (or that changed) into the map. Returns whether all are resolved.
pub(crate) fn resolve_neighbors(dp: &mut DataPlane, config: &Config) -> anyhow::Result<bool> {
    let mut all = true;
    for n in &config.neighbors {
        let cur = dp.neighbor(n.node)?;
        match net::arp_lookup(n.address, &n.iface) {
            Some(mac) if !cur.usable() || cur.remote_mac != mac => {
                info!(
                    "neighbour {} at {} is {}",
                    n.node,
                    n.address,
                    dataplane::mac_string(mac)
                );
                dp.resolve_neighbor(n.node, mac)?;
            }
            Some(_) => {}
            None => {
                all = false;
                net::probe(n.address);
            }
        }
    }
    Ok(all)
}
