//! The agent's TOML configuration: [`ConfigFile`] is the file as written (the testbed
//! writes it, the agent reads it), [`Config`] the validated, typed form. Every error names
//! the field and the value that is wrong.

use std::{collections::HashSet, net::Ipv4Addr, path::Path};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{
    node::{NodeId, NodeIdError, NodePrefix},
    params::Params,
};

/// Default VNI of the overlay.
pub const DEFAULT_VNI: u32 = 1;
const MAX_VNI: u32 = (1 << 24) - 1;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Toml {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("`{field}` = \"{value}\": {source}")]
    NodeId {
        field: String,
        value: String,
        #[source]
        source: NodeIdError,
    },
    #[error("`{field}` = {value}: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
    #[error("cannot read the cluster key file {path} (`routing.key_file`)")]
    KeyRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the cluster key file {path} holds {len} bytes; use at least {MIN_KEY_LEN} random bytes"
    )]
    KeyShort { path: String, len: usize },
}

/// Shortest cluster key accepted: 128 bits if the bytes are random.
pub const MIN_KEY_LEN: usize = 16;

fn invalid(
    field: impl Into<String>,
    value: impl ToString,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The configuration file as written: strings where the validated [`Config`] has types.
/// Fields serialize in this order, optional ones only when set, lists only when not
/// empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vni: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub underlay: Vec<UnderlayFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workload: Vec<WorkloadFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbor: Vec<NeighborFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_prefix: Vec<RemotePrefixFile>,
    /// Prometheus metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsFile>,
    /// Adaptive routing: `key_file` and any parameter of [`Params`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<toml::Table>,
}

/// `[[underlay]]`: an interface towards other nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnderlayFile {
    pub iface: String,
    pub address: String,
}

/// `[[workload]]`: an interface towards local workloads and the prefixes behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    pub iface: String,
    #[serde(default)]
    pub prefixes: Vec<String>,
}

/// `[[neighbor]]`: a node reachable directly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborFile {
    pub node: String,
    pub address: String,
    pub iface: String,
}

/// `[[route]]`: a static route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub dst: String,
    pub via: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<u32>>,
}

/// `[metrics]`: where the agent serves Prometheus metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    /// `IP:port` to listen on, e.g. `127.0.0.1:9469` or `[::]:9469`.
    pub address: String,
}

/// `[[remote_prefix]]`: an overlay prefix owned by another node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemotePrefixFile {
    pub prefix: String,
    pub node: String,
}

impl ConfigFile {
    /// The file's text, as the agent reads it back.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

/// A validated agent configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub node: NodeId,
    /// Name of the pin directory `/sys/fs/bpf/matrix/<name>`.
    pub name: String,
    pub vni: u32,
    pub hop_limit: u8,
    pub underlay: Vec<Underlay>,
    pub workload: Vec<Workload>,
    pub neighbors: Vec<NeighborConfig>,
    pub routes: Vec<RouteConfig>,
    pub remote_prefixes: Vec<(IpNet, NodeId)>,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None`: not served.
    pub metrics: Option<std::net::SocketAddr>,
    /// Adaptive routing; `None` runs the static routes only.
    pub routing: Option<RoutingConfig>,
}

/// The `[routing]` table: the cluster key and the routing core's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutingConfig {
    /// File holding the cluster key that authenticates control messages.
    pub key_file: std::path::PathBuf,
    pub params: Params,
}

impl RoutingConfig {
    /// The cluster key, read and checked; the agent calls this before it attaches
    /// anything, so a bad key file stops it with nothing to undo.
    pub fn read_key(&self) -> Result<Vec<u8>, ConfigError> {
        let path = self.key_file.display().to_string();
        let key = std::fs::read(&self.key_file).map_err(|source| ConfigError::KeyRead {
            path: path.clone(),
            source,
        })?;
        if key.len() < MIN_KEY_LEN {
            return Err(ConfigError::KeyShort {
                path,
                len: key.len(),
            });
        }
        Ok(key)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Underlay {
    pub iface: String,
    pub address: Ipv4Addr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub iface: String,
    pub prefixes: Vec<IpNet>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborConfig {
    pub node: NodeId,
    pub address: Ipv4Addr,
    pub iface: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    pub dst: NodePrefix,
    /// `(neighbour node, weight)`.
    pub via: Vec<(NodeId, u32)>,
}

fn node_id(field: String, value: &str) -> Result<NodeId, ConfigError> {
    value.parse().map_err(|source| ConfigError::NodeId {
        field,
        value: value.to_string(),
        source,
    })
}

fn ipv4(field: String, value: &str) -> Result<Ipv4Addr, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(field, format!("\"{value}\""), "not an IPv4 address"))
}

fn iface_name(field: String, value: &str) -> Result<String, ConfigError> {
    // IFNAMSIZ is 16 including the NUL.
    if value.is_empty() || value.len() > 15 || value.contains(['/', ' ']) {
        return Err(invalid(
            field,
            format!("\"{value}\""),
            "not a valid interface name",
        ));
    }
    Ok(value.to_string())
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Toml { source, .. } => ConfigError::Toml {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: ConfigFile = toml::from_str(text).map_err(|source| ConfigError::Toml {
            path: "<config>".into(),
            source,
        })?;
        let node = node_id("node".into(), &raw.node)?;
        let name = match raw.name {
            Some(n) => {
                if n.is_empty() || n.contains(['/', ' ', '.']) && n != node.to_string() {
                    return Err(invalid(
                        "name",
                        format!("\"{n}\""),
                        "must be a plain directory name",
                    ));
                }
                n
            }
            None => node.to_string(),
        };
        let vni = raw.vni.unwrap_or(DEFAULT_VNI);
        if vni > MAX_VNI {
            return Err(invalid(
                "vni",
                vni,
                format!("VNI is 24 bits (max {MAX_VNI})"),
            ));
        }
        let hop_limit = raw
            .hop_limit
            .unwrap_or(matrix_common::DEFAULT_HOP_LIMIT as u32);
        if !(2..=255).contains(&hop_limit) {
            return Err(invalid("hop_limit", hop_limit, "must be in 2..=255"));
        }

        let mut underlay = Vec::new();
        let mut ifaces = HashSet::new();
        for (i, u) in raw.underlay.iter().enumerate() {
            let iface = iface_name(format!("underlay[{i}].iface"), &u.iface)?;
            if !ifaces.insert(iface.clone()) {
                return Err(invalid(
                    format!("underlay[{i}].iface"),
                    format!("\"{iface}\""),
                    "listed twice",
                ));
            }
            let address = ipv4(format!("underlay[{i}].address"), &u.address)?;
            underlay.push(Underlay { iface, address });
        }
        if underlay.is_empty() && !raw.neighbor.is_empty() {
            return Err(invalid(
                "underlay",
                "[]",
                "neighbours are configured but no underlay interface",
            ));
        }

        let mut workload = Vec::new();
        let mut local_prefixes = Vec::new();
        for (i, w) in raw.workload.iter().enumerate() {
            let iface = iface_name(format!("workload[{i}].iface"), &w.iface)?;
            if !ifaces.insert(iface.clone()) {
                return Err(invalid(
                    format!("workload[{i}].iface"),
                    format!("\"{iface}\""),
                    "already used by another [[underlay]] or [[workload]]",
                ));
            }
            let mut prefixes = Vec::new();
            for (j, p) in w.prefixes.iter().enumerate() {
                let net = parse_prefix(format!("workload[{i}].prefixes[{j}]"), p)?;
                prefixes.push(net);
                local_prefixes.push(net);
            }
            workload.push(Workload { iface, prefixes });
        }

        let mut neighbors: Vec<NeighborConfig> = Vec::new();
        for (i, n) in raw.neighbor.iter().enumerate() {
            let id = node_id(format!("neighbor[{i}].node"), &n.node)?;
            if id == node {
                return Err(invalid(
                    format!("neighbor[{i}].node"),
                    format!("\"{}\"", n.node),
                    "is this node itself",
                ));
            }
            if neighbors.iter().any(|x| x.node == id) {
                return Err(invalid(
                    format!("neighbor[{i}].node"),
                    format!("\"{}\"", n.node),
                    "listed twice",
                ));
            }
            let address = ipv4(format!("neighbor[{i}].address"), &n.address)?;
            let iface = n.iface.clone();
            if !underlay.iter().any(|u| u.iface == iface) {
                return Err(invalid(
                    format!("neighbor[{i}].iface"),
                    format!("\"{iface}\""),
                    "is not one of the [[underlay]] interfaces",
                ));
            }
            neighbors.push(NeighborConfig {
                node: id,
                address,
                iface,
            });
        }
        if neighbors.len() > matrix_common::MAX_NEIGHBORS as usize {
            return Err(invalid(
                "neighbor",
                neighbors.len(),
                format!("at most {} neighbours", matrix_common::MAX_NEIGHBORS),
            ));
        }

        let mut routes: Vec<RouteConfig> = Vec::new();
        for (i, r) in raw.route.iter().enumerate() {
            let dst: NodePrefix = r.dst.parse().map_err(|source| ConfigError::NodeId {
                field: format!("route[{i}].dst"),
                value: r.dst.clone(),
                source,
            })?;
            if routes.iter().any(|x| x.dst == dst) {
                return Err(invalid(
                    format!("route[{i}].dst"),
                    format!("\"{}\"", r.dst),
                    "listed twice",
                ));
            }
            if r.via.is_empty() || r.via.len() > matrix_common::MAX_NEXT_HOPS {
                return Err(invalid(
                    format!("route[{i}].via"),
                    format!("{:?}", r.via),
                    format!("needs 1 to {} next hops", matrix_common::MAX_NEXT_HOPS),
                ));
            }
            let weights = match &r.weights {
                Some(w) if w.len() != r.via.len() => {
                    return Err(invalid(
                        format!("route[{i}].weights"),
                        format!("{w:?}"),
                        format!("needs one weight per `via` entry ({})", r.via.len()),
                    ));
                }
                Some(w) if w.iter().all(|x| *x == 0) => {
                    return Err(invalid(
                        format!("route[{i}].weights"),
                        format!("{w:?}"),
                        "all weights are 0",
                    ));
                }
                Some(w) => w.clone(),
                None => vec![1; r.via.len()],
            };
            let mut via = Vec::new();
            for (j, v) in r.via.iter().enumerate() {
                let id = node_id(format!("route[{i}].via[{j}]"), v)?;
                if !neighbors.iter().any(|n| n.node == id) {
                    return Err(invalid(
                        format!("route[{i}].via[{j}]"),
                        format!("\"{v}\""),
                        "is not a configured [[neighbor]]",
                    ));
                }
                via.push((id, weights[j]));
            }
            routes.push(RouteConfig { dst, via });
        }

        let mut remote_prefixes = Vec::new();
        for (i, p) in raw.remote_prefix.iter().enumerate() {
            let net = parse_prefix(format!("remote_prefix[{i}].prefix"), &p.prefix)?;
            let owner = node_id(format!("remote_prefix[{i}].node"), &p.node)?;
            if local_prefixes.contains(&net) {
                return Err(invalid(
                    format!("remote_prefix[{i}].prefix"),
                    format!("\"{}\"", p.prefix),
                    "is also a local [[workload]] prefix",
                ));
            }
            remote_prefixes.push((net, owner));
        }

        let metrics = match &raw.metrics {
            None => None,
            Some(m) => Some(m.address.parse().map_err(|_| {
                invalid(
                    "metrics.address",
                    format!("\"{}\"", m.address),
                    "not an IP:port like 127.0.0.1:9469 or [::]:9469",
                )
            })?),
        };
        let routing = match raw.routing {
            None => None,
            Some(table) => Some(parse_routing(table)?),
        };

        Ok(Config {
            routing,
            node,
            name,
            vni,
            hop_limit: hop_limit as u8,
            underlay,
            workload,
            neighbors,
            routes,
            remote_prefixes,
            metrics,
        })
    }
}

fn parse_routing(table: toml::Table) -> Result<RoutingConfig, ConfigError> {
    let mut params = Params::default();
    let mut key_file = None;
    for (name, value) in table {
        let text = match &value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(invalid(
                    format!("routing.{name}"),
                    other,
                    "expected a string or a number",
                ));
            }
        };
        if name == "key_file" {
            key_file = Some(std::path::PathBuf::from(text));
            continue;
        }
        params
            .set(&name, &text)
            .map_err(|e| invalid(format!("routing.{name}"), &value, e.to_string()))?;
    }
    let key_file = key_file.ok_or_else(|| {
        invalid(
            "routing.key_file",
            "(missing)",
            "adaptive routing needs the cluster key file",
        )
    })?;
    Ok(RoutingConfig { key_file, params })
}

fn parse_prefix(field: String, value: &str) -> Result<IpNet, ConfigError> {
    let net: IpNet = value.parse().map_err(|_| {
        invalid(
            field.clone(),
            format!("\"{value}\""),
            "not an IP prefix like 10.1.0.0/24 or fd00::/64",
        )
    })?;
    if net.trunc() != net {
        return Err(invalid(
            field,
            format!("\"{value}\""),
            format!("has host bits set (did you mean {}?)", net.trunc()),
        ));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
node = "0.1"
name = "a"
[[underlay]]
iface = "u0"
address = "10.200.0.1"
[[workload]]
iface = "w0"
prefixes = ["10.101.0.0/24", "fd00:1:0::/64"]
[[neighbor]]
node = "0.2"
address = "10.200.0.2"
iface = "u0"
[[route]]
dst = "0.4/32"
via = ["0.2"]
[[remote_prefix]]
prefix = "10.104.0.0/24"
node = "0.4"
"#;

    #[test]
    fn parses_a_full_config() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.node, NodeId::new(0, 1));
        assert_eq!(c.name, "a");
        assert_eq!(c.vni, DEFAULT_VNI);
        assert_eq!(c.hop_limit, 16);
        assert_eq!(c.routes[0].via, vec![(NodeId::new(0, 2), 1)]);
        assert_eq!(c.workload[0].prefixes.len(), 2);
        assert_eq!(c.routing, None);
        assert_eq!(c.metrics, None);
        let m = Config::parse(&format!("{GOOD}[metrics]\naddress = \"[::]:9469\"\n")).unwrap();
        assert_eq!(m.metrics, Some("[::]:9469".parse().unwrap()));
        let r = Config::parse(&format!(
            "{GOOD}[routing]\nstrategy = \"antnet\"\nkey_file = \"/k\"\nhello_interval_ms = 50\n"
        ))
        .unwrap()
        .routing
        .unwrap();
        assert_eq!(r.params.strategy, crate::params::StrategyKind::Antnet);
        assert_eq!(
            r.params.hello_interval,
            std::time::Duration::from_millis(50)
        );
    }

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn key_files_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("matrix-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let routing = |name: &str| RoutingConfig {
            key_file: dir.join(name),
            params: Params::default(),
        };
        std::fs::write(dir.join("good"), [7u8; 32]).unwrap();
        std::fs::write(dir.join("short"), b"secret").unwrap();
        assert_eq!(routing("good").read_key().unwrap(), [7u8; 32]);
        let e = routing("short").read_key().unwrap_err().to_string();
        assert!(e.contains("short holds 6 bytes; use at least 16"), "{e}");
        let e = routing("missing").read_key().unwrap_err().to_string();
        assert!(
            e.contains("cannot read the cluster key file") && e.contains("missing"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                GOOD.replace("node = \"0.1\"", "node = \"zero\""),
                "`node` = \"zero\"",
            ),
            (
                GOOD.replace("10.200.0.1", "10.200.0"),
                "`underlay[0].address` = \"10.200.0\": not an IPv4 address",
            ),
            (
                GOOD.replace("10.101.0.0/24", "10.101.0.1/24"),
                "`workload[0].prefixes[0]` = \"10.101.0.1/24\": has host bits set",
            ),
            (
                GOOD.replace("via = [\"0.2\"]", "via = [\"0.9\"]"),
                "`route[0].via[0]` = \"0.9\": is not a configured [[neighbor]]",
            ),
            (
                GOOD.replace("iface = \"u0\"\n[[route]]", "iface = \"u7\"\n[[route]]"),
                "`neighbor[0].iface` = \"u7\"",
            ),
            (
                GOOD.replace("name = \"a\"", "name = \"a\"\nvni = 16777216"),
                "`vni` = 16777216",
            ),
            (
                GOOD.replace("name = \"a\"", "name = \"a\"\nhop_limit = 1"),
                "`hop_limit` = 1",
            ),
            (
                GOOD.replace("name = \"a\"", "name = \"a\"\ncolour = 1"),
                "unknown field `colour`",
            ),
            (
                format!("{GOOD}[metrics]\naddress = \"localhost\"\n"),
                "`metrics.address` = \"localhost\": not an IP:port",
            ),
            (
                format!("{GOOD}[routing]\nstrategy = \"ospf\"\nkey_file = \"k\"\n"),
                "`routing.strategy` = \"ospf\"",
            ),
            (
                format!("{GOOD}[routing]\nstrategy = \"antnet\"\n"),
                "`routing.key_file` = (missing)",
            ),
            (
                format!("{GOOD}[routing]\nkey_file = \"k\"\ndead_count = 0\n"),
                "`routing.dead_count` = 0",
            ),
        ];
        for (text, want) in cases {
            let got = err(&text);
            assert!(got.contains(want), "want `{want}` in `{got}`");
        }
    }
}
