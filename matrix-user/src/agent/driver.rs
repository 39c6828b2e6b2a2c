//! The agent's event loop: control datagrams, the routing core's timers, data-plane
//! counters, MAC learning and the control socket, all on one task. The routing core is
//! fed events and drained of actions here; it never touches I/O itself.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use anyhow::Context as _;
use ipnet::IpNet;
use log::{info, warn};
use matrix_routing::{Action, Event, NodeId, NodePrefix, Router, RouterConfig};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    signal::unix::{SignalKind, signal},
    time::{Instant, sleep_until},
};

use super::{
    RESOLVE_FAST, RESOLVE_SLOW,
    control::{Channel, ControlStats},
    link::{self, CarrierWatch},
    resolve_neighbors,
    socket::{self, Request, Response},
};
use crate::{config::Config, dataplane::DataPlane, net::Interface};

/// How often data-plane counters are fed to the routing core.
const LOAD_INTERVAL: Duration = Duration::from_millis(100);
/// Bytes of memory one route entry costs (LPM node, agent and core state), for the
/// memory-derived route budget.
const BYTES_PER_ROUTE: u64 = 512;
/// Share of available memory the routing state may use when `max_routes` is unset.
const MEMORY_SHARE: u64 = 64;

/// An underlay interface and the neighbours reached through it.
struct Behind {
    iface: String,
    neighbors: Vec<NodeId>,
}

struct Routing {
    router: Router,
    channel: Channel,
    /// Carrier of the underlay interfaces, and the neighbours behind each; `None` when
    /// rtnetlink could not be watched (hellos alone then detect failures).
    carrier: Option<(CarrierWatch, HashMap<u32, Behind>)>,
}

pub struct Driver<'a> {
    dp: DataPlane,
    config: &'a Config,
    routing: Option<Routing>,
    listener: UnixListener,
    static_dsts: BTreeSet<NodePrefix>,
    fixed_prefixes: BTreeSet<IpNet>,
    map_errors: u64,
}

impl<'a> Driver<'a> {
    pub async fn new(
        dp: DataPlane,
        config: &'a Config,
        underlay: &[Interface],
    ) -> anyhow::Result<Self> {
        let sock = socket::path(&config.name);
        std::fs::create_dir_all(socket::SOCKET_DIR)
            .with_context(|| format!("creating {}", socket::SOCKET_DIR))?;
        let _ = std::fs::remove_file(&sock);
        let listener =
            UnixListener::bind(&sock).with_context(|| format!("binding {}", sock.display()))?;

        let routing = match &config.routing {
            None => None,
            Some(r) => {
                let key = std::fs::read(&r.key_file).with_context(|| {
                    format!("reading cluster key file {}", r.key_file.display())
                })?;
                if key.len() < 16 {
                    anyhow::bail!(
                        "cluster key file {} holds {} bytes; use at least 16 random bytes",
                        r.key_file.display(),
                        key.len()
                    );
                }
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
                    .map(|n| (n.node, n.address))
                    .collect();
                let channel = Channel::bind(config.node, &key, &neighbors)
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
                Some(Routing {
                    router,
                    channel,
                    carrier,
                })
            }
        };
        Ok(Self {
            dp,
            config,
            routing,
            listener,
            static_dsts: config.routes.iter().map(|r| r.dst).collect(),
            fixed_prefixes: config
                .workload
                .iter()
                .flat_map(|w| w.prefixes.clone())
                .chain(config.remote_prefixes.iter().map(|(p, _)| *p))
                .collect(),
            map_errors: 0,
        })
    }

    /// Runs until SIGINT or SIGTERM.
    pub async fn serve(&mut self) -> anyhow::Result<()> {
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut resolve_at = Instant::now();
        let mut load_at = Instant::now() + LOAD_INTERVAL;
        let far = Instant::now() + Duration::from_secs(3600);
        loop {
            let router_at = self
                .routing
                .as_ref()
                .and_then(|r| r.router.poll_timeout())
                .map_or(far, Instant::from_std);
            let routing = self.routing.is_some();
            let carrier = self.routing.as_ref().is_some_and(|r| r.carrier.is_some());
            let Self {
                routing: r,
                listener,
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
                _ = sleep_until(resolve_at) => {
                    let all = resolve_neighbors(&mut self.dp, self.config)?;
                    resolve_at = Instant::now() + if all { RESOLVE_SLOW } else { RESOLVE_FAST };
                }
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
                (from, msg) = async { channel.expect("guarded").recv().await }, if routing => {
                    if let Some(r) = &mut self.routing {
                        r.router.handle(std::time::Instant::now(), Event::Received { from, msg });
                    }
                    self.apply().await;
                }
                changes = async { watch.expect("guarded").next().await }, if carrier => {
                    self.on_carrier(changes);
                    self.apply().await;
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

    /// Tells the core which neighbours lost or regained carrier.
    fn on_carrier(&mut self, changes: std::io::Result<Vec<super::link::LinkChange>>) {
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
    fn feed_counters(&mut self) {
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

    /// Carries out every pending action of the core: messages out, map writes in.
    async fn apply(&mut self) {
        let Some(r) = &mut self.routing else { return };
        while let Some(action) = r.router.poll_action() {
            match action {
                Action::Send { to, msg } => r.channel.send(to, msg).await,
                Action::Install { dst, next_hops, .. } => {
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
                    if !self.static_dsts.contains(&dst) && self.dp.remove_route(dst).is_err() {
                        // Already absent: nothing to undo.
                    }
                }
                Action::Overlay { prefix, owner } => {
                    if !self.fixed_prefixes.contains(&prefix)
                        && let Err(e) = self.dp.add_overlay_prefix(prefix, owner)
                    {
                        warn!("{e:#}");
                        self.map_errors += 1;
                    }
                }
                Action::OverlayWithdraw { prefix } => {
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

    async fn answer(&mut self, stream: UnixStream) {
        let (rd, mut wr) = stream.into_split();
        let mut line = String::new();
        let read = tokio::time::timeout(
            Duration::from_millis(500),
            BufReader::new(rd).read_line(&mut line),
        )
        .await;
        let resp = match read {
            Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
                Ok(req) => self.handle_request(req),
                Err(e) => Response::err(format!("bad request {line:?}: {e}")),
            },
            _ => return,
        };
        let mut out = serde_json::to_string(&resp).unwrap_or_else(|_| "{\"ok\":false}".into());
        out.push('\n');
        let _ = wr.write_all(out.as_bytes()).await;
    }

    fn handle_request(&mut self, req: Request) -> Response {
        let no_routing = || {
            Response::err(
                "adaptive routing is not configured on this node (add a [routing] table to its config)",
            )
        };
        match req {
            Request::Status => Response::ok(json!({
                "name": self.config.name,
                "node": self.config.node.to_string(),
                "routing": self.routing.is_some(),
                "strategy": self.routing.as_ref().map(|r| r.router.params().strategy.to_string()),
                "control": self.routing.as_ref().map_or(ControlStats::default(), |r| r.channel.stats.clone()),
                "map_errors": self.map_errors,
                "carrier_watch": self.routing.as_ref().map(|r| json!({
                    "active": r.carrier.is_some(),
                    "overruns": r.carrier.as_ref().map_or(0, |(w, _)| w.overruns),
                })),
            })),
            Request::Get => match &self.routing {
                None => no_routing(),
                Some(r) => Response::ok(Value::Object(
                    r.router
                        .params()
                        .get_all()
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), Value::String(v)))
                        .collect(),
                )),
            },
            Request::Set { name, value } => match &mut self.routing {
                None => no_routing(),
                Some(r) => match r.router.set_param(std::time::Instant::now(), &name, &value) {
                    Ok(()) => {
                        info!("set {name} = {value}");
                        Response::ok(Value::Null)
                    }
                    Err(e) => Response::err(e),
                },
            },
            Request::Routes => match &self.routing {
                None => no_routing(),
                Some(r) => Response::ok(Value::Array(
                    r.router
                        .routes()
                        .into_iter()
                        .map(|ri| {
                            json!({
                                "dst": ri.dst.to_string(),
                                "next_hops": ri.next_hops.iter().map(|(n, w)| json!({"node": n.to_string(), "weight": w})).collect::<Vec<_>>(),
                                "aggregate": ri.aggregate,
                                "static": self.static_dsts.contains(&ri.dst),
                                "detail": ri.detail.iter().map(|(n, v)| json!({"node": n.to_string(), "value": v})).collect::<Vec<_>>(),
                            })
                        })
                        .collect(),
                )),
            },
            Request::Neighbors => match &self.routing {
                None => no_routing(),
                Some(r) => Response::ok(Value::Array(
                    r.router
                        .neighbors()
                        .into_iter()
                        .map(|n| {
                            json!({
                                "node": n.node.to_string(),
                                "alive": n.alive,
                                "srtt_us": n.srtt_us,
                                "rttvar_us": n.rttvar_us,
                                "loss": n.loss,
                                "load_bps": n.load_bps,
                                "capacity_mbps": n.capacity_mbps,
                                "cost_us": n.cost_us,
                            })
                        })
                        .collect(),
                )),
            },
        }
    }
}

/// Tells the core the speed of the link to `neighbor` (interface `iface`), or that it is
/// unknown.
fn feed_speed(router: &mut Router, iface: &str, neighbor: NodeId) {
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
