//! The agent's event loop: control datagrams, the routing core's timers, data-plane
//! counters, MAC learning and the control socket, all on one task. The routing core is
//! fed events ([`events`](super::events)) and drained of actions
//! ([`apply`](super::apply)); it never touches I/O itself.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use ipnet::IpNet;
use matrix_routing::{Event, NodeId, NodePrefix, Router};
use tokio::{
    net::{TcpListener, UnixListener},
    signal::unix::{SignalKind, signal},
    time::{Instant, sleep_until},
};
use tracing::info;

use super::{
    RESOLVE_FAST, RESOLVE_SLOW, bootstrap,
    bootstrap::{ADOPT_GRACE, Adopted},
    control::Channel,
    handler,
    link::CarrierWatch,
    metrics, resolve_neighbors, socket,
};
use crate::{config::Config, dataplane::DataPlane, net::Interface};

/// How often data-plane counters are fed to the routing core.
const LOAD_INTERVAL: Duration = Duration::from_millis(100);

/// An underlay interface and the neighbours reached through it.
pub(super) struct Behind {
    pub(super) iface: String,
    pub(super) neighbors: Vec<NodeId>,
}

pub(super) struct Routing {
    pub(super) router: Router,
    pub(super) channel: Channel,
    /// Carrier of the underlay interfaces, and the neighbours behind each; `None` when
    /// rtnetlink could not be watched (hellos alone then detect failures).
    pub(super) carrier: Option<(CarrierWatch, HashMap<u32, Behind>)>,
}

pub struct Driver<'a> {
    pub(super) dp: DataPlane,
    pub(super) config: &'a Config,
    pub(super) routing: Option<Routing>,
    listener: UnixListener,
    /// `[metrics]`: Prometheus scrapes.
    metrics: Option<TcpListener>,
    /// Neighbour MACs written to the data plane from authenticated datagrams.
    pub(super) macs: HashMap<NodeId, [u8; 6]>,
    pub(super) static_dsts: BTreeSet<NodePrefix>,
    pub(super) fixed_prefixes: BTreeSet<IpNet>,
    pub(super) map_errors: u64,
    /// What an earlier agent learnt and the core has not installed again yet.
    pub(super) adopted: Adopted,
}

impl<'a> Driver<'a> {
    pub async fn new(
        dp: DataPlane,
        config: &'a Config,
        underlay: &[Interface],
        key: Option<&[u8]>,
        adopted: Adopted,
    ) -> anyhow::Result<Self> {
        let listener = handler::listen(&config.name)?;
        let routing = bootstrap::routing(config, underlay, key).await?;
        let metrics = match config.metrics {
            Some(addr) => Some(metrics::listen(addr).await?),
            None => None,
        };
        Ok(Self {
            dp,
            config,
            routing,
            listener,
            metrics,
            macs: HashMap::new(),
            static_dsts: config.routes.iter().map(|r| r.dst).collect(),
            fixed_prefixes: config
                .workload
                .iter()
                .flat_map(|w| w.prefixes.clone())
                .chain(config.remote_prefixes.iter().map(|(p, _)| *p))
                .collect(),
            map_errors: 0,
            adopted,
        })
    }

    /// Runs until SIGINT or SIGTERM.
    pub async fn serve(&mut self) -> anyhow::Result<()> {
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut resolve_at = Instant::now();
        let mut load_at = Instant::now() + LOAD_INTERVAL;
        let far = Instant::now() + Duration::from_secs(3600);
        let adopt_until = Instant::now() + ADOPT_GRACE;
        loop {
            let router_at = self
                .routing
                .as_ref()
                .and_then(|r| r.router.poll_timeout())
                .map_or(far, Instant::from_std);
            let routing = self.routing.is_some();
            let adopting = !self.adopted.routes.is_empty() || !self.adopted.overlay.is_empty();
            let carrier = self.routing.as_ref().is_some_and(|r| r.carrier.is_some());
            let serving_metrics = self.metrics.is_some();
            let Self {
                routing: r,
                listener,
                metrics,
                ..
            } = self;
            let (channel, watch) = match r {
                Some(Routing {
                    channel, carrier, ..
                }) => (Some(channel), carrier.as_mut().map(|(w, _)| w)),
                None => (None, None),
            };
            tokio::select! {
                _ = sigint.recv() => { info!("SIGINT: stopping"); break; }
                _ = sigterm.recv() => { info!("SIGTERM: stopping"); break; }
                // With adaptive routing the neighbours' MACs come from their authenticated
                // datagrams; without it, from the kernel's ARP table.
                _ = sleep_until(resolve_at), if !routing => {
                    let all = resolve_neighbors(&mut self.dp, self.config)?;
                    resolve_at = Instant::now() + if all { RESOLVE_SLOW } else { RESOLVE_FAST };
                }
                _ = sleep_until(adopt_until), if adopting => self.forget_adopted(),
                _ = sleep_until(router_at), if routing => {
                    if let Some(r) = &mut self.routing {
                        r.router.handle_timeout(std::time::Instant::now());
                    }
                    self.apply().await;
                }
                _ = sleep_until(load_at), if routing => {
                    load_at = Instant::now() + LOAD_INTERVAL;
                    self.feed_counters();
                    self.apply().await;
                }
                rx = async { channel.expect("guarded").recv().await }, if routing => {
                    self.learn_mac(rx.from, rx.link_mac);
                    if let Some(r) = &mut self.routing {
                        let (from, msg) = (rx.from, rx.msg);
                        r.router.handle(std::time::Instant::now(), Event::Received { from, msg });
                    }
                    self.apply().await;
                }
                changes = async { watch.expect("guarded").next().await }, if carrier => {
                    self.on_carrier(changes);
                    self.apply().await;
                }
                scrape = async { metrics.as_ref().expect("guarded").accept().await }, if serving_metrics => {
                    if let Ok((stream, _)) = scrape {
                        self.serve_metrics(stream);
                    }
                }
                conn = listener.accept() => {
                    if let Ok((stream, _)) = conn {
                        self.answer(stream).await;
                        self.apply().await;
                    }
                }
            }
        }
        let _ = std::fs::remove_file(socket::path(&self.config.name));
        Ok(())
    }
}
