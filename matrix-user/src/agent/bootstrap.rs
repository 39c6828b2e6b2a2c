//! Start-up: the data plane's maps filled from the configuration, workload MTUs, and
//! the routing core with its control channel and carrier watch.

use std::collections::{BTreeSet, HashMap};

use ipnet::IpNet;

use anyhow::Context as _;
use matrix_common::ENCAP_MTU_OVERHEAD;
use matrix_routing::{Router, RouterConfig};
use tracing::{info, warn};

use super::{
    control::{Channel, Peer},
    driver::{Behind, Routing},
    events::feed_speed,
    link::CarrierWatch,
};
use crate::{
    config::Config,
    dataplane::{DataPlane, UnderlayLink},
    net::{self, Interface},
    node::NodePrefix,
};

/// Bytes of memory one route entry costs (LPM node, agent and core state), for the
/// memory-derived route budget.
const BYTES_PER_ROUTE: u64 = 512;
/// Share of available memory the routing state may use when `max_routes` is unset.
const MEMORY_SHARE: u64 = 64;
/// Writes config, egress ports, neighbours, overlay prefixes and routes. Entries left
/// by an earlier agent that the config no longer has are removed after the new ones are
/// in (make before break). Under adaptive routing, the routes and overlay prefixes an
/// earlier agent learnt stay until the routing core has had time to learn them again:
/// they are returned, for [`Adopted`] to reconcile.
pub(super) fn fill(
    dp: &mut DataPlane,
    config: &Config,
    underlay: &[Interface],
) -> anyhow::Result<Adopted> {
    dp.set_config(matrix_common::Config {
        node_id: config.node.0,
        vni: config.vni,
        hop_limit: config.hop_limit as u32,
        flags: 0,
        layout: matrix_common::LAYOUT_VERSION,
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
    if config.routing.is_some() {
        let fixed: BTreeSet<IpNet> = config
            .workload
            .iter()
            .flat_map(|w| w.prefixes.iter().copied())
            .chain(config.remote_prefixes.iter().map(|(p, _)| *p))
            .collect();
        let overlay = dp
            .overlay_prefixes()?
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| !fixed.contains(p))
            .collect();
        return Ok(Adopted {
            routes: stale.into_iter().collect(),
            overlay,
        });
    }
    for d in stale {
        dp.remove_route(d)?;
    }
    Ok(Adopted::default())
}

/// Routes and overlay prefixes an earlier agent learnt, found in the adopted maps. They
/// keep forwarding while the new routing core learns the fleet again; whatever it has not
/// installed again after [`ADOPT_GRACE`] is removed.
#[derive(Debug, Default)]
pub(super) struct Adopted {
    pub(super) routes: BTreeSet<NodePrefix>,
    pub(super) overlay: BTreeSet<IpNet>,
}

/// How long learnt state of an earlier agent is kept: longer than a neighbour's dead
/// interval and the first adverts and SPF hold at default parameters, so the new core has
/// heard every live neighbour before anything it did not learn again is removed.
pub(super) const ADOPT_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Keeps VLAN tags in the frames the underlay interfaces receive: a tag the NIC strips
/// into metadata (rx VLAN offload) is invisible to XDP, and a relay would forward the
/// tagged overlay frame it must drop. Best effort: an interface that cannot turn the
/// offload off is logged.
pub(super) fn keep_vlan_tags_in_frame(underlay: &[Interface]) {
    for u in underlay {
        if let Err(e) = net::disable_rx_vlan_offload(&u.name) {
            warn!(
                "{}: cannot turn rx VLAN offload off ({e}); tags it strips are not seen by XDP",
                u.name
            );
        }
    }
}

/// Workloads must send packets that still fit the underlay once encapsulated.
pub(super) fn set_workload_mtus(config: &Config, underlay: &[Interface], workload: &[Interface]) {
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

/// The routing core, its control channel and the carrier watch, when `[routing]` is
/// configured.
pub(super) async fn routing(
    config: &Config,
    underlay: &[Interface],
    key: Option<&[u8]>,
) -> anyhow::Result<Option<Routing>> {
    let (Some(r), Some(key)) = (&config.routing, key) else {
        return Ok(None);
    };
    let mut params = r.params.clone();
    if params.max_routes.is_none() {
        params.max_routes = Some(memory_budget());
        info!(
            "route budget {} (from available memory)",
            params.max_routes.unwrap_or(0)
        );
    }
    let neighbors: Vec<_> = config
        .neighbors
        .iter()
        .map(|n| Peer {
            node: n.node,
            address: n.address,
            local_mac: underlay
                .iter()
                .find(|u| u.name == n.iface)
                .expect("config validation ties every neighbour to an underlay interface")
                .mac,
        })
        .collect();
    let channel = Channel::bind(config.node, key, &neighbors)
        .await
        .context("binding the control channel (UDP 6082)")?;
    let router = Router::new(
        RouterConfig {
            node: config.node,
            neighbors: config.neighbors.iter().map(|n| n.node).collect(),
            prefixes: config
                .workload
                .iter()
                .flat_map(|w| w.prefixes.clone())
                .collect(),
            params,
            seed: u64::from(config.node.0),
        },
        std::time::Instant::now(),
    );
    let mut router = router;
    let mut behind: HashMap<u32, Behind> = HashMap::new();
    for n in &config.neighbors {
        if let Some(i) = underlay.iter().find(|i| i.name == n.iface) {
            behind
                .entry(i.ifindex)
                .or_insert_with(|| Behind {
                    iface: i.name.clone(),
                    neighbors: vec![],
                })
                .neighbors
                .push(n.node);
            feed_speed(&mut router, &i.name, n.node);
        }
    }
    let carrier = match CarrierWatch::open(behind.keys().copied()) {
        Ok(w) => Some((w, behind)),
        Err(e) => {
            warn!("cannot watch link carrier ({e}); hellos alone detect failures");
            None
        }
    };
    Ok(Some(Routing {
        router,
        channel,
        carrier,
    }))
}

/// Route budget from available memory: a 1/64 share at [`BYTES_PER_ROUTE`] per entry,
/// capped by the data plane's map size.
fn memory_budget() -> usize {
    let avail_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(1 << 20);
    let budget = avail_kib * 1024 / MEMORY_SHARE / BYTES_PER_ROUTE;
    budget.clamp(64, u64::from(matrix_common::MAX_ROUTES)) as usize
}
