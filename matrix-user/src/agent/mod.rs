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

// rtnetlink has no safe wrapper in std: raw socket and ioctl calls, each with its SAFETY note.
mod control;
mod driver;
#[allow(unsafe_code)]
mod link;
pub mod socket;

use std::{collections::BTreeSet, io::Write as _, time::Duration};

pub use control::ControlStats;

use anyhow::Context as _;
use log::{info, warn};
use matrix_common::{ENCAP_MTU_OVERHEAD, programs};

use crate::{
    config::Config,
    dataplane::{self, DataPlane, UnderlayLink, load::Loaded},
    net::{self, Interface},
    node::NodePrefix,
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

    let mut loaded = dataplane::load::load(&dir).context("loading the data plane")?;
    let result = async {
        let mut dp = DataPlane::open(&dir)?;
        fill(&mut dp, &config, &underlay)?;
        set_workload_mtus(&config, &underlay, &workload);
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
        let mut driver = driver::Driver::new(dp, &config, &underlay).await?;
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

/// Writes config, egress ports, neighbours, overlay prefixes and routes. Entries left
/// by an earlier agent that the config no longer has are removed after the new ones are
/// in (make before break).
fn fill(dp: &mut DataPlane, config: &Config, underlay: &[Interface]) -> anyhow::Result<()> {
    dp.set_config(matrix_common::Config {
        node_id: config.node.0,
        vni: config.vni,
        hop_limit: config.hop_limit as u32,
        flags: 0,
    })?;
    for u in underlay {
        dp.add_egress(u.ifindex)?;
    }
    let old_neighbors = dp.neighbors()?;
    for n in &config.neighbors {
        let (iface, ucfg) = underlay
            .iter()
            .zip(&config.underlay)
            .find(|(i, _)| i.name == n.iface)
            .expect("config validation ties every neighbour to an underlay interface");
        // A MAC learnt by a previous agent run is kept: forwarding goes on meanwhile.
        dp.set_neighbor(
            n.node,
            UnderlayLink {
                ifindex: iface.ifindex,
                mtu: iface.mtu,
                local_ipv4: ucfg.address,
                remote_ipv4: n.address,
                local_mac: iface.mac,
            },
        )?;
    }
    for (node, _) in old_neighbors {
        if !config.neighbors.iter().any(|n| n.node == node) {
            dp.clear_neighbor(node)?;
        }
    }

    for w in &config.workload {
        for p in &w.prefixes {
            dp.add_overlay_prefix(*p, config.node)?;
        }
    }
    for (p, owner) in &config.remote_prefixes {
        dp.add_overlay_prefix(*p, *owner)?;
    }

    let mut wanted = BTreeSet::new();
    for r in &config.routes {
        dp.install_route(r.dst, &r.via)?;
        wanted.insert(r.dst);
    }
    let stale: Vec<NodePrefix> = dp
        .routes()?
        .into_iter()
        .map(|r| r.dst)
        .filter(|d| !wanted.contains(d))
        .collect();
    for d in stale {
        dp.remove_route(d)?;
    }
    Ok(())
}

/// Workloads must send packets that still fit the underlay once encapsulated.
fn set_workload_mtus(config: &Config, underlay: &[Interface], workload: &[Interface]) {
    let Some(min) = underlay.iter().map(|u| u.mtu).min() else {
        return;
    };
    let want = min.saturating_sub(ENCAP_MTU_OVERHEAD as u32);
    for w in workload {
        if w.mtu > want {
            match net::set_mtu(&w.name, want) {
                Ok(()) => info!(
                    "{}: MTU {} -> {want} (underlay {min} - {ENCAP_MTU_OVERHEAD})",
                    w.name, w.mtu
                ),
                Err(e) => warn!("{e}"),
            }
        }
    }
    let _ = config;
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
