//! The agent's side of the control socket: each connection carries one request, answered
//! with the reply type [`protocol`](super::protocol) gives that request.

use std::time::Duration;

use anyhow::Context as _;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};
use tracing::info;

use super::{
    ControlStats,
    driver::{Driver, Routing},
    protocol::{
        CarrierWatchStatus, ControlError, GetNeighbors, GetParams, GetRoutes, GetStatus, HopDetail,
        LinkHealth, NeighborHealth, NextHop, ParamsReply, Request, RouteRow, SetParam, StatusReply,
        encode, refuse,
    },
    socket,
};

/// How long a client may take to send its request line.
const READ_TIMEOUT: Duration = Duration::from_millis(500);

/// Binds node `name`'s control socket, replacing one a previous agent left behind.
pub(super) fn listen(name: &str) -> anyhow::Result<UnixListener> {
    let sock = socket::path(name);
    std::fs::create_dir_all(socket::SOCKET_DIR)
        .with_context(|| format!("creating {}", socket::SOCKET_DIR))?;
    let _ = std::fs::remove_file(&sock);
    UnixListener::bind(&sock).with_context(|| format!("binding {}", sock.display()))
}

impl Driver<'_> {
    /// Reads one request from `stream` and writes the answer; a client that sends
    /// nothing in time gets none.
    pub(super) async fn answer(&mut self, stream: UnixStream) {
        let (rd, mut wr) = stream.into_split();
        let mut line = String::new();
        let read =
            tokio::time::timeout(READ_TIMEOUT, BufReader::new(rd).read_line(&mut line)).await;
        let mut out = match read {
            Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
                Ok(req) => self.handle_request(req),
                Err(e) => refuse(ControlError::BadRequest {
                    reason: e.to_string(),
                    line,
                }),
            },
            _ => return,
        };
        out.push('\n');
        let _ = wr.write_all(out.as_bytes()).await;
    }

    /// The answer line to `req`.
    fn handle_request(&mut self, req: Request) -> String {
        match req {
            Request::Status => encode::<GetStatus>(Ok(self.status())),
            Request::Get => encode::<GetParams>(self.params()),
            Request::Set(p) => encode::<SetParam>(self.set_param(p)),
            Request::Routes => encode::<GetRoutes>(self.routes()),
            Request::Neighbors => encode::<GetNeighbors>(self.neighbors()),
        }
    }

    fn routing(&self) -> Result<&Routing, ControlError> {
        self.routing.as_ref().ok_or(ControlError::NotConfigured)
    }

    pub(super) fn status(&self) -> StatusReply {
        StatusReply {
            name: self.config.name.clone(),
            node: self.config.node,
            routing: self.routing.is_some(),
            strategy: self.routing.as_ref().map(|r| r.router.params().strategy),
            control: self
                .routing
                .as_ref()
                .map_or(ControlStats::default(), |r| r.channel.stats.clone()),
            map_errors: self.map_errors,
            carrier_watch: self.routing.as_ref().map(|r| CarrierWatchStatus {
                active: r.carrier.is_some(),
                overruns: r.carrier.as_ref().map_or(0, |(w, _)| w.overruns),
            }),
        }
    }

    fn params(&self) -> Result<ParamsReply, ControlError> {
        Ok(self
            .routing()?
            .router
            .params()
            .get_all()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect())
    }

    fn set_param(&mut self, SetParam { name, value }: SetParam) -> Result<(), ControlError> {
        let r = self.routing.as_mut().ok_or(ControlError::NotConfigured)?;
        r.router
            .set_param(std::time::Instant::now(), &name, &value)?;
        info!("set {name} = {value}");
        Ok(())
    }

    fn routes(&self) -> Result<Vec<RouteRow>, ControlError> {
        Ok(self
            .routing()?
            .router
            .routes()
            .into_iter()
            .map(|ri| RouteRow {
                dst: ri.dst,
                next_hops: ri
                    .next_hops
                    .iter()
                    .map(|&(node, weight)| NextHop { node, weight })
                    .collect(),
                aggregate: ri.aggregate,
                is_static: self.static_dsts.contains(&ri.dst),
                detail: ri
                    .detail
                    .iter()
                    .map(|&(node, value)| HopDetail { node, value })
                    .collect(),
            })
            .collect())
    }

    pub(super) fn neighbors(&self) -> Result<Vec<NeighborHealth>, ControlError> {
        Ok(self
            .routing()?
            .router
            .neighbors()
            .into_iter()
            .map(|n| NeighborHealth {
                node: n.node,
                link: LinkHealth {
                    alive: n.alive,
                    srtt_us: n.srtt_us,
                    rttvar_us: n.rttvar_us,
                    loss: n.loss,
                    load_bps: n.load_bps,
                    capacity_mbps: n.capacity_mbps,
                    cost_us: n.cost_us,
                },
            })
            .collect())
    }
}
