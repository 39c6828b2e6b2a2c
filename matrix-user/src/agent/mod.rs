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
pub mod lock;
mod metrics;
mod preflight;
pub mod protocol;
pub mod socket;

use std::{io::Write as _, time::Duration};

pub use control::ControlStats;

use anyhow::Context as _;
use matrix_common::programs;
use tracing::{info, warn};

use crate::{
    config::Config,
    dataplane::{
        self, DataPlane,
        load::{Attached, Loaded},
    },
    net::{self, Interface},
};

/// How often unresolved neighbours are probed, and resolved ones re-checked.
pub(crate) const RESOLVE_FAST: Duration = Duration::from_millis(100);
pub(crate) const RESOLVE_SLOW: Duration = Duration::from_secs(1);

/// How the agent ends.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// On SIGINT/SIGTERM leave the programs attached and the maps pinned, for a restart
    /// or an upgrade that must not drop a packet; by default a clean stop detaches and
    /// unpins everything.
    pub keep: bool,
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(config: Config, opts: RunOptions) -> anyhow::Result<()> {
    // One agent per node: a second one would fight the first over the same maps.
    let _lock = lock::acquire(&config.name)?;
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
    if loaded.adopted() {
        info!(
            "found the data plane of an earlier agent pinned at {}: adopting it",
            dir.display()
        );
    }
    let result = async {
        let mut dp = DataPlane::open(&dir)?;
        let adopted = bootstrap::fill(&mut dp, &config, &underlay)?;
        bootstrap::set_workload_mtus(&config, &underlay, &workload);
        bootstrap::keep_vlan_tags_in_frame(&underlay);
        // Sockets bound and the routing core started before the programs go on, so a
        // port in use stops the agent before it touches traffic.
        let mut driver =
            driver::Driver::new(dp, &config, &underlay, key.as_deref(), adopted).await?;
        // Maps first, programs second: the first packet already sees every route.
        let mut replaced = 0;
        for (program, iface) in underlay
            .iter()
            .map(|u| (programs::UNDERLAY, &u.name))
            .chain(workload.iter().map(|w| (programs::WORKLOAD, &w.name)))
        {
            if loaded.attach(program, iface)? == Attached::Replaced {
                replaced += 1;
            }
        }
        for pin in loaded.prune_links()? {
            info!("{}: not configured any more, detached", pin.display());
        }
        if loaded.adopted() {
            info!(
                "adopted the pinned data plane at {}: {replaced} programs replaced on their pinned links without a gap",
                dir.display()
            );
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
    // An adopted data plane that this agent failed to take over is left as it was found,
    // forwarding on the earlier agent's state; so is any data plane on `--keep`.
    let keep = match &result {
        Ok(()) => opts.keep,
        Err(_) => loaded.adopted(),
    };
    if !keep && config.routing.is_some() {
        // The kernel's neighbour entries this agent pinned go back to ARP.
        for n in &config.neighbors {
            let _ = net::unpin_neighbor(n.address, &n.iface);
        }
    }
    if keep {
        let dir = loaded.dir().to_path_buf();
        loaded.keep();
        info!(
            "left attached and pinned at {}: forwarding goes on; a restarted agent adopts it",
            dir.display()
        );
    } else {
        teardown(loaded);
    }
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
