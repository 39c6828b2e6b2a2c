//! The routing core's actions carried out: messages to neighbours, routes and overlay
//! prefixes written to the data plane. Configured routes and prefixes are never
//! overwritten; a refused map write is logged and counted (`matrix status`).

use matrix_routing::{Action, NodeId};
use tracing::{info, warn};

use super::driver::Driver;

impl Driver<'_> {
    /// The grace for an earlier agent's learnt state is over: whatever the core has not
    /// installed again is no longer true of the fleet, and goes.
    pub(super) fn forget_adopted(&mut self) {
        let routes = std::mem::take(&mut self.adopted.routes);
        let overlay = std::mem::take(&mut self.adopted.overlay);
        for dst in &routes {
            if let Err(e) = self.dp.remove_route(*dst) {
                warn!("{e:#}");
                self.map_errors += 1;
            }
        }
        for prefix in &overlay {
            if let Err(e) = self.dp.remove_overlay_prefix(*prefix) {
                warn!("{e:#}");
                self.map_errors += 1;
            }
        }
        info!(
            "adopted state reconciled: {} routes and {} overlay prefixes the routing core did not learn again removed",
            routes.len(),
            overlay.len()
        );
    }

    /// Carries out every pending action of the core: messages out, map writes in.
    pub(super) async fn apply(&mut self) {
        let Some(r) = &mut self.routing else { return };
        while let Some(action) = r.router.poll_action() {
            match action {
                Action::Send { to, msg } => r.channel.send(to, msg).await,
                Action::Install { dst, next_hops, .. } => {
                    self.adopted.routes.remove(&dst);
                    if self.static_dsts.contains(&dst) {
                        continue;
                    }
                    let members: Vec<(NodeId, u32)> = next_hops
                        .into_iter()
                        .filter(|(n, _)| self.dp.has_neighbor(*n))
                        .collect();
                    if members.is_empty() {
                        continue;
                    }
                    if let Err(e) = self.dp.install_route(dst, &members) {
                        warn!("{e:#}");
                        self.map_errors += 1;
                    }
                }
                Action::Withdraw { dst } => {
                    self.adopted.routes.remove(&dst);
                    if !self.static_dsts.contains(&dst) && self.dp.remove_route(dst).is_err() {
                        // Already absent: nothing to undo.
                    }
                }
                Action::Overlay { prefix, owner } => {
                    self.adopted.overlay.remove(&prefix);
                    if !self.fixed_prefixes.contains(&prefix)
                        && let Err(e) = self.dp.add_overlay_prefix(prefix, owner)
                    {
                        warn!("{e:#}");
                        self.map_errors += 1;
                    }
                }
                Action::OverlayWithdraw { prefix } => {
                    self.adopted.overlay.remove(&prefix);
                    if !self.fixed_prefixes.contains(&prefix)
                        && let Err(e) = self.dp.remove_overlay_prefix(prefix)
                    {
                        warn!("{e:#}");
                        self.map_errors += 1;
                    }
                }
                Action::Neighbor { neighbor, alive } => {
                    info!(
                        "neighbour {neighbor} is {}",
                        if alive { "alive" } else { "dead" }
                    );
                }
            }
        }
    }
}
