//! Inputs the loop feeds to the routing core besides datagrams and timers: carrier
//! changes, link speeds and the data plane's counters.

use matrix_routing::{Event, NodeId, Router};
use tracing::{info, warn};

use super::{
    driver::Driver,
    link::{self, LinkChange},
};

impl Driver<'_> {
    /// Points the data plane at the MAC a neighbour's authenticated datagram gives for
    /// its end of the link. Under adaptive routing this is the only source of neighbour
    /// MACs: an ARP reply from anyone on the segment cannot redirect overlay traffic.
    pub(super) fn learn_mac(&mut self, from: NodeId, mac: [u8; 6]) {
        if self.macs.get(&from) == Some(&mac) {
            return;
        }
        // A zero or group address cannot be a neighbour's interface.
        if mac == [0; 6] || mac[0] & 1 != 0 {
            warn!(
                "neighbour {from} gives link MAC {}: not a unicast address, ignored",
                crate::dataplane::mac_string(mac)
            );
            return;
        }
        if !self.dp.has_neighbor(from) {
            return;
        }
        match self.dp.resolve_neighbor(from, mac) {
            Ok(()) => {
                info!(
                    "neighbour {from} is at {} (from its authenticated datagrams)",
                    crate::dataplane::mac_string(mac)
                );
                self.macs.insert(from, mac);
                if let Some(n) = self.config.neighbors.iter().find(|n| n.node == from)
                    && let Err(e) = crate::net::pin_neighbor(n.address, mac, &n.iface)
                {
                    warn!("neighbour {from}: pinning its ARP entry: {e}");
                }
            }
            Err(e) => {
                self.map_errors += 1;
                warn!("neighbour {from}: writing its MAC: {e}");
            }
        }
    }

    /// Tells the core which neighbours lost or regained carrier.
    pub(super) fn on_carrier(&mut self, changes: std::io::Result<Vec<LinkChange>>) {
        let Some(r) = &mut self.routing else { return };
        let Some((_, behind)) = &r.carrier else {
            return;
        };
        match changes {
            Ok(changes) => {
                let now = std::time::Instant::now();
                for c in changes {
                    let Some(b) = behind.get(&c.ifindex) else {
                        continue;
                    };
                    for &neighbor in &b.neighbors {
                        info!(
                            "carrier {} towards neighbour {neighbor} (ifindex {})",
                            if c.carrier { "up" } else { "down" },
                            c.ifindex
                        );
                        if c.carrier {
                            // A link that comes back may have renegotiated its speed.
                            feed_speed(&mut r.router, &b.iface, neighbor);
                        }
                        r.router.handle(
                            now,
                            Event::LinkState {
                                neighbor,
                                up: c.carrier,
                            },
                        );
                    }
                }
            }
            Err(e) => {
                warn!("carrier watch failed ({e}); hellos alone detect failures from now on");
                r.carrier = None;
            }
        }
    }

    /// Feeds per-neighbour transmit counters and per-destination demand to the core.
    pub(super) fn feed_counters(&mut self) {
        let Some(r) = &mut self.routing else { return };
        let now = std::time::Instant::now();
        for n in &self.config.neighbors {
            if let Ok(s) = self.dp.neighbor_stats(n.node) {
                r.router.handle(
                    now,
                    Event::LinkLoad {
                        neighbor: n.node,
                        tx_bytes: s.tx_bytes,
                        tx_packets: s.tx_packets,
                    },
                );
            }
        }
        if let Ok(demand) = self.dp.demand() {
            for (dst, packets) in demand {
                r.router.handle(now, Event::Demand { dst, packets });
            }
        }
    }
}

/// Tells the core the speed of the link to `neighbor` (interface `iface`), or that it is
/// unknown.
pub(super) fn feed_speed(router: &mut Router, iface: &str, neighbor: NodeId) {
    let mbps = link::speed_mbps(iface);
    match mbps {
        Some(m) => info!("{iface}: {m} Mbit/s towards neighbour {neighbor}"),
        None => info!(
            "{iface}: speed unknown; link_capacity_mbps prices the load towards neighbour {neighbor}"
        ),
    }
    router.handle(
        std::time::Instant::now(),
        Event::LinkCapacity {
            neighbor,
            mbps: mbps.map(f64::from),
        },
    );
}
