//! The agent's side of the control socket: each connection carries one request and
//! gets one answer.

use std::time::Duration;

use anyhow::Context as _;
use log::info;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};

use super::{
    control::ControlStats,
    driver::Driver,
    socket::{self, Request, Response},
};

/// Binds node `name`'s control socket, replacing one a previous agent left behind.
pub(super) fn listen(name: &str) -> anyhow::Result<UnixListener> {
    let sock = socket::path(name);
    std::fs::create_dir_all(socket::SOCKET_DIR)
        .with_context(|| format!("creating {}", socket::SOCKET_DIR))?;
    let _ = std::fs::remove_file(&sock);
    UnixListener::bind(&sock).with_context(|| format!("binding {}", sock.display()))
}

impl Driver<'_> {
    pub(super) async fn answer(&mut self, stream: UnixStream) {
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
