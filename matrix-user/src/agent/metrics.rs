//! Prometheus metrics on `GET /metrics` (OpenMetrics text, which Prometheus scrapes):
//! the data plane's counters by verdict, path and drop reason, traffic per neighbour,
//! and with adaptive routing each neighbour's RTT, loss and liveness, control messages by
//! kind and rejected datagrams by reason. Each scrape reads the maps and the routing core
//! once; nothing is kept between scrapes, so a scrape costs nothing between scrapes.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use matrix_routing::Message;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tracing::warn;

use super::driver::Driver;

/// A client that sends no request line in this time gets no answer.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) async fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener on {addr} (`[metrics] address`)"))
}

/// One label: `key="value"`.
type Label = Vec<(&'static str, String)>;

fn label(key: &'static str, value: impl ToString) -> Label {
    vec![(key, value.to_string())]
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Info {
    node: String,
    name: String,
    strategy: String,
}

/// A counter family filled with absolute values read elsewhere.
fn counters<L>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, u64)>,
) where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Counter>::default();
    for (labels, v) in values {
        family.get_or_create(&labels).inc_by(v);
    }
    registry.register(name, help, family);
}

fn gauges<L>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, f64)>,
) where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for (labels, v) in values {
        family.get_or_create(&labels).set(v);
    }
    registry.register(name, help, family);
}

fn labelled<'a>(
    key: &'static str,
    m: impl IntoIterator<Item = (&'a &'static str, &'a u64)>,
) -> Vec<(Label, u64)> {
    m.into_iter().map(|(k, v)| (label(key, k), *v)).collect()
}

impl Driver<'_> {
    /// Answers one scrape: any request gets the metrics (there is one resource). The
    /// metrics are read at once; talking to the client is a task of its own, so a slow
    /// or silent client never holds up the event loop (hellos, routes).
    pub(super) fn serve_metrics(&mut self, mut stream: TcpStream) {
        let rendered = self.render_metrics();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            // The request itself does not matter; reading it first keeps clients that
            // expect their request consumed happy.
            let _ = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf)).await;
            let reply = match rendered {
                Ok(body) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                ),
                Err(e) => {
                    warn!("metrics: {e:#}");
                    "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n".into()
                }
            };
            let _ = tokio::time::timeout(READ_TIMEOUT, stream.write_all(reply.as_bytes())).await;
            let _ = stream.shutdown().await;
        });
    }

    /// The metrics text, from one read of the maps and of the routing core.
    pub(super) fn render_metrics(&self) -> anyhow::Result<String> {
        let mut r = Registry::with_prefix("matrix");
        let stats = self.dp.stats()?;
        counters(
            &mut r,
            "packets_by_verdict",
            "Packets by XDP verdict (pass, drop, tx, redirect, aborted)",
            labelled("verdict", &stats.verdicts),
        );
        counters(
            &mut r,
            "packets_by_path",
            "Packets by what the data plane did (transit, encap, decap, passthrough)",
            labelled("path", &stats.paths),
        );
        counters(
            &mut r,
            "drops",
            "Packets dropped, by reason",
            labelled("reason", &stats.drops),
        );
        let per_neighbor = |f: fn(&crate::dataplane::NeighborRow) -> u64| {
            stats
                .neighbors
                .iter()
                .map(move |n| (label("neighbor", &n.node), f(n)))
                .collect::<Vec<_>>()
        };
        counters(
            &mut r,
            "neighbor_rx_bytes",
            "Overlay bytes received from each neighbour",
            per_neighbor(|n| n.rx_bytes),
        );
        counters(
            &mut r,
            "neighbor_tx_bytes",
            "Overlay bytes sent to each neighbour",
            per_neighbor(|n| n.tx_bytes),
        );
        counters(
            &mut r,
            "neighbor_rx_packets",
            "Overlay packets received from each neighbour",
            per_neighbor(|n| n.rx_packets),
        );
        counters(
            &mut r,
            "neighbor_tx_packets",
            "Overlay packets sent to each neighbour",
            per_neighbor(|n| n.tx_packets),
        );
        let routes = Gauge::<i64>::default();
        routes.set(self.dp.routes()?.len() as i64);
        r.register("routes", "Routes installed in the data plane", routes);
        let map_errors = Counter::<u64>::default();
        map_errors.inc_by(self.map_errors);
        r.register("map_errors", "Map writes the kernel refused", map_errors);
        let status = self.status();
        gauges(
            &mut r,
            "agent_info",
            "This agent: node, pin name and routing strategy",
            [(
                Info {
                    node: status.node.to_string(),
                    name: status.name.clone(),
                    strategy: status
                        .strategy
                        .map_or("static".to_string(), |s| s.to_string()),
                },
                1.0,
            )],
        );
        if let Some(routing) = &self.routing {
            counters(
                &mut r,
                "control_datagrams",
                "Control datagrams: rx_ok, tx, and every rejection reason",
                status
                    .control
                    .by_name()
                    .map(|(k, v)| (label("counter", k), v)),
            );
            let by_kind = |counts: &[u64]| {
                Message::KINDS
                    .iter()
                    .zip(counts)
                    .map(|(k, v)| (label("kind", k), *v))
                    .collect::<Vec<_>>()
            };
            counters(
                &mut r,
                "control_messages_sent",
                "Control messages sent, by kind",
                by_kind(&routing.channel.sent_by_kind),
            );
            counters(
                &mut r,
                "control_messages_received",
                "Control messages accepted, by kind",
                by_kind(&routing.channel.received_by_kind),
            );
            let health = self.neighbors().unwrap_or_default();
            let each = |f: fn(&super::protocol::LinkHealth) -> Option<f64>| {
                health
                    .iter()
                    .filter_map(move |n| f(&n.link).map(|v| (label("neighbor", n.node), v)))
                    .collect::<Vec<_>>()
            };
            gauges(
                &mut r,
                "neighbor_up",
                "1 while the neighbour answers hellos, 0 once it is dead",
                each(|l| Some(if l.alive { 1.0 } else { 0.0 })),
            );
            gauges(
                &mut r,
                "neighbor_rtt_seconds",
                "Smoothed hello round-trip time",
                each(|l| l.srtt_us.map(|us| us as f64 / 1e6)),
            );
            gauges(
                &mut r,
                "neighbor_rtt_variance_seconds",
                "Hello round-trip time variation",
                each(|l| l.rttvar_us.map(|us| us as f64 / 1e6)),
            );
            gauges(
                &mut r,
                "neighbor_loss_ratio",
                "Share of recent hellos lost",
                each(|l| Some(l.loss)),
            );
            gauges(
                &mut r,
                "neighbor_cost_seconds",
                "Link cost the routing core uses (delay plus queueing)",
                each(|l| Some(l.cost_us as f64 / 1e6)),
            );
        }
        let mut out = String::new();
        encode(&mut out, &r).context("encoding metrics")?;
        Ok(out)
    }
}
