//! The control-socket protocol: every request with the type of its reply, and the
//! errors the agent answers with. The agent builds these types and the CLI prints them,
//! so a new field or command is one change here that the compiler carries to both ends.
//!
//! On the wire, one JSON request per line (`{"op":"set","name":..,"value":..}`) and one
//! JSON [`Answer`] per line back. Field names are also the keys of `matrix ... --json`.

use std::{collections::BTreeMap, fmt, str::FromStr};

use matrix_routing::{NodeId, NodePrefix, ParamError, StrategyKind};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};

use super::ControlStats;

/// What the CLI asks the agent; `op` names the request on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Status,
    Get,
    Set(SetParam),
    Routes,
    Neighbors,
}

/// A request together with the type the agent replies to it with.
pub trait Query {
    type Reply: Serialize + DeserializeOwned;
    fn into_request(self) -> Request;
}

/// `matrix status`.
#[derive(Clone, Copy, Debug)]
pub struct GetStatus;

/// `matrix get`.
#[derive(Clone, Copy, Debug)]
pub struct GetParams;

/// `matrix set NAME VALUE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetParam {
    pub name: String,
    pub value: String,
}

/// `matrix routes`.
#[derive(Clone, Copy, Debug)]
pub struct GetRoutes;

/// `matrix neighbors`.
#[derive(Clone, Copy, Debug)]
pub struct GetNeighbors;

impl Query for GetStatus {
    type Reply = StatusReply;
    fn into_request(self) -> Request {
        Request::Status
    }
}

impl Query for GetParams {
    type Reply = ParamsReply;
    fn into_request(self) -> Request {
        Request::Get
    }
}

impl Query for SetParam {
    type Reply = ();
    fn into_request(self) -> Request {
        Request::Set(self)
    }
}

impl Query for GetRoutes {
    type Reply = Vec<RouteRow>;
    fn into_request(self) -> Request {
        Request::Routes
    }
}

impl Query for GetNeighbors {
    type Reply = Vec<NeighborHealth>;
    fn into_request(self) -> Request {
        Request::Neighbors
    }
}

/// What the agent runs and how its control channel fares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    /// Pin name of the node (also the name of its control socket).
    pub name: String,
    #[serde(with = "as_text")]
    pub node: NodeId,
    /// Whether a routing core runs (`[routing]` configured).
    pub routing: bool,
    /// `None` when no routing core runs: static routes only.
    pub strategy: Option<StrategyKind>,
    pub control: ControlStats,
    /// Route and prefix writes the data plane refused.
    pub map_errors: u64,
    /// `None` when no routing core runs.
    pub carrier_watch: Option<CarrierWatchStatus>,
}

/// Whether link carrier is watched; when it is not, hellos alone detect failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierWatchStatus {
    pub active: bool,
    /// Times the kernel dropped link notifications.
    pub overruns: u64,
}

/// Every routing parameter by name, with its value as `matrix set` takes it.
pub type ParamsReply = BTreeMap<String, String>;

/// A destination as the routing core holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteRow {
    #[serde(with = "as_text")]
    pub dst: NodePrefix,
    /// What is installed in the data plane.
    pub next_hops: Vec<NextHop>,
    pub aggregate: bool,
    /// A configured route: the core's own route to `dst` is not installed.
    #[serde(rename = "static")]
    pub is_static: bool,
    /// Pheromone (AntNet), Q-value in microseconds (Q-routing) or path cost (shortest).
    pub detail: Vec<HopDetail>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextHop {
    #[serde(with = "as_text")]
    pub node: NodeId,
    pub weight: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HopDetail {
    #[serde(with = "as_text")]
    pub node: NodeId,
    #[serde(deserialize_with = "nan_if_null")]
    pub value: f64,
}

/// A neighbour as the routing core sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeighborHealth {
    #[serde(with = "as_text")]
    pub node: NodeId,
    #[serde(flatten)]
    pub link: LinkHealth,
}

/// Liveness and measurements of the link to a neighbour; `matrix neighbors --json` adds
/// these keys to the data plane's row of that neighbour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkHealth {
    pub alive: bool,
    /// Smoothed RTT and its variance, microseconds; `None` before the first reply.
    pub srtt_us: Option<u32>,
    pub rttvar_us: Option<u32>,
    /// Fraction of recent hellos unanswered, 0..=1.
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// Recent transmit rate, bytes per second.
    #[serde(deserialize_with = "nan_if_null")]
    pub load_bps: f64,
    /// Link speed when the host reports it.
    pub capacity_mbps: Option<f64>,
    /// Link cost the strategies use, microseconds.
    pub cost_us: u32,
}

/// Why the agent refused a request. The CLI matches on the variant; the text is what the
/// user sees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlError {
    #[error(
        "adaptive routing is not configured on this node (add a [routing] table to its config)"
    )]
    NotConfigured,
    #[error("unknown parameter `{name}` (see `matrix get`)")]
    UnknownParam { name: String },
    #[error("parameter `{name}` = `{value}`: {reason}")]
    BadParam {
        name: String,
        value: String,
        reason: String,
    },
    /// The line read was no request this agent knows.
    #[error("bad request {line:?}: {reason}")]
    BadRequest { line: String, reason: String },
    #[error("the agent could not encode its answer: {reason}")]
    Unencodable { reason: String },
}

impl From<ParamError> for ControlError {
    fn from(e: ParamError) -> Self {
        match e {
            ParamError::Unknown(name) => Self::UnknownParam { name },
            ParamError::Value {
                name,
                value,
                reason,
            } => Self::BadParam {
                name,
                value,
                reason,
            },
        }
    }
}

/// The agent's answer to one request: its reply, or why there is none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer<R> {
    Ok(R),
    Error(ControlError),
}

impl<R> From<Result<R, ControlError>> for Answer<R> {
    fn from(r: Result<R, ControlError>) -> Self {
        match r {
            Ok(r) => Self::Ok(r),
            Err(e) => Self::Error(e),
        }
    }
}

impl<R> From<Answer<R>> for Result<R, ControlError> {
    fn from(a: Answer<R>) -> Self {
        match a {
            Answer::Ok(r) => Ok(r),
            Answer::Error(e) => Err(e),
        }
    }
}

/// The answer line to a request of type `Q`: naming `Q` ties the reply to its request,
/// so the agent cannot answer a request with another request's reply.
pub fn encode<Q: Query>(reply: Result<Q::Reply, ControlError>) -> String {
    line(&Answer::from(reply))
}

/// The answer line to a request that could not be read.
pub fn refuse(e: ControlError) -> String {
    line(&Answer::<()>::Error(e))
}

fn line<R: Serialize>(answer: &Answer<R>) -> String {
    // An error answer holds only strings, so the fallback always encodes.
    serde_json::to_string(answer).unwrap_or_else(|e| {
        refuse(ControlError::Unencodable {
            reason: e.to_string(),
        })
    })
}

/// NodeIds and prefixes travel as the text the CLI prints (`0.1`, `0.4/32`).
mod as_text {
    use super::*;

    pub fn serialize<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr<Err: fmt::Display>,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// JSON has no NaN: serde_json writes it (and infinities) as `null`. Read that back as
/// NaN rather than refuse the whole answer.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn round_trip<Q: Query>(reply: Q::Reply) -> Q::Reply {
        let line = encode::<Q>(Ok(reply));
        let answer: Answer<Q::Reply> = serde_json::from_str(&line).unwrap();
        Result::from(answer).unwrap()
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn requests_keep_their_wire_form() {
        let set = SetParam {
            name: "strategy".into(),
            value: "antnet".into(),
        };
        assert_eq!(
            serde_json::to_value(set.clone().into_request()).unwrap(),
            json!({"op": "set", "name": "strategy", "value": "antnet"})
        );
        assert_eq!(
            serde_json::to_value(GetStatus.into_request()).unwrap(),
            json!({"op": "status"})
        );
        for (q, op) in [
            (GetParams.into_request(), "get"),
            (GetRoutes.into_request(), "routes"),
            (GetNeighbors.into_request(), "neighbors"),
            (set.into_request(), "set"),
        ] {
            let text = serde_json::to_string(&q).unwrap();
            assert!(text.contains(&format!("\"op\":\"{op}\"")), "{text}");
            assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), q);
        }
    }

    #[test]
    fn status_keys_are_the_cli_json_keys() {
        let s = StatusReply {
            name: "a".into(),
            node: "0.1".parse().unwrap(),
            routing: true,
            strategy: Some(StrategyKind::QRouting),
            control: ControlStats::default(),
            map_errors: 2,
            carrier_watch: Some(CarrierWatchStatus {
                active: true,
                overruns: 0,
            }),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            keys(&v),
            [
                "carrier_watch",
                "control",
                "map_errors",
                "name",
                "node",
                "routing",
                "strategy"
            ]
        );
        assert_eq!(v["node"], "0.1");
        assert_eq!(v["strategy"], "q-routing");
        assert_eq!(v["carrier_watch"], json!({"active": true, "overruns": 0}));
        assert_eq!(v["control"]["rx_ok"], 0);
        assert_eq!(round_trip::<GetStatus>(s.clone()), s);

        let idle = StatusReply {
            strategy: None,
            carrier_watch: None,
            routing: false,
            ..s
        };
        let v = serde_json::to_value(&idle).unwrap();
        assert!(
            v["strategy"].is_null() && v["carrier_watch"].is_null(),
            "{v}"
        );
    }

    #[test]
    fn routes_and_neighbors_keep_their_keys() {
        let route = RouteRow {
            dst: "0.0/16".parse().unwrap(),
            next_hops: vec![NextHop {
                node: "0.2".parse().unwrap(),
                weight: 3,
            }],
            aggregate: true,
            is_static: false,
            detail: vec![HopDetail {
                node: "0.2".parse().unwrap(),
                value: 0.5,
            }],
        };
        let v = serde_json::to_value(&route).unwrap();
        assert_eq!(
            keys(&v),
            ["aggregate", "detail", "dst", "next_hops", "static"]
        );
        assert_eq!(v["dst"], "0.0/16");
        assert_eq!(v["next_hops"], json!([{"node": "0.2", "weight": 3}]));
        assert_eq!(v["detail"], json!([{"node": "0.2", "value": 0.5}]));
        assert_eq!(round_trip::<GetRoutes>(vec![route.clone()]), [route]);

        let n = NeighborHealth {
            node: "0.3".parse().unwrap(),
            link: LinkHealth {
                alive: true,
                srtt_us: Some(120),
                rttvar_us: None,
                loss: 0.25,
                load_bps: 1e6,
                capacity_mbps: Some(10_000.0),
                cost_us: 140,
            },
        };
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(
            keys(&v),
            [
                "alive",
                "capacity_mbps",
                "cost_us",
                "load_bps",
                "loss",
                "node",
                "rttvar_us",
                "srtt_us"
            ]
        );
        assert_eq!(v["capacity_mbps"], 10_000.0);
        assert!(v["rttvar_us"].is_null());
        assert_eq!(round_trip::<GetNeighbors>(vec![n.clone()]), [n]);
    }

    #[test]
    fn nan_travels_as_null_and_comes_back() {
        let hop = HopDetail {
            node: "0.2".parse().unwrap(),
            value: f64::INFINITY,
        };
        let text = serde_json::to_string(&hop).unwrap();
        assert_eq!(text, r#"{"node":"0.2","value":null}"#);
        let back: HopDetail = serde_json::from_str(&text).unwrap();
        assert!(back.value.is_nan());
    }

    #[test]
    fn errors_travel_as_variants_with_the_old_text() {
        let errors = [
            ControlError::NotConfigured,
            ParamError::Unknown("speed".into()).into(),
            ParamError::Value {
                name: "exploration".into(),
                value: "7".into(),
                reason: "expected 0..=1".into(),
            }
            .into(),
        ];
        assert_eq!(
            errors[0].to_string(),
            "adaptive routing is not configured on this node (add a [routing] table to its config)"
        );
        assert_eq!(
            errors[1].to_string(),
            ParamError::Unknown("speed".into()).to_string()
        );
        assert_eq!(
            errors[2].to_string(),
            "parameter `exploration` = `7`: expected 0..=1"
        );
        for e in errors {
            let line = encode::<GetRoutes>(Err(e.clone()));
            let answer: Answer<Vec<RouteRow>> = serde_json::from_str(&line).unwrap();
            assert_eq!(Result::from(answer), Err(e));
        }
        assert_eq!(
            serde_json::to_value(Answer::<()>::Error(ControlError::NotConfigured)).unwrap(),
            json!({"error": {"kind": "not_configured"}})
        );
        assert_eq!(round_trip::<SetParam>(()), ());
    }

    #[test]
    fn control_counters_are_listed_under_their_json_names() {
        let stats = ControlStats {
            rx_ok: 1,
            tx: 2,
            tx_errors: 3,
            rx_unknown_source: 4,
            rx_wrong_sender: 5,
            rx_bad_version: 6,
            rx_bad_mac: 7,
            rx_malformed: 8,
            rx_replayed: 9,
            rx_too_old: 10,
            rx_stale_epoch: 11,
            peer_restarts: 12,
        };
        let v = serde_json::to_value(&stats).unwrap();
        let listed = stats.by_name();
        assert_eq!(listed.map(|(k, _)| k).to_vec(), keys(&v));
        for (k, n) in listed {
            assert_eq!(v[k], n, "{k}");
        }
    }

    #[test]
    fn params_are_printed_by_name() {
        let p = ParamsReply::from([
            ("strategy".to_string(), "antnet".to_string()),
            ("dead_count".to_string(), "3".to_string()),
        ]);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(keys(&v), ["dead_count", "strategy"]);
        assert_eq!(round_trip::<GetParams>(p.clone()), p);
    }
}
