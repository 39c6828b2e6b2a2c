//! Tunable parameters of the routing core, settable at run time (`matrix set NAME VALUE`).

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// One hop to configured peers: a fleet that is one LAN.
    Direct,
    /// Link-state shortest path on measured link cost.
    Shortest,
    /// AntNet (Di Caro & Dorigo, JAIR 1998).
    Antnet,
    /// Q-routing (Boyan & Littman, 1994).
    QRouting,
}

impl StrategyKind {
    pub const ALL: [StrategyKind; 4] = [Self::Direct, Self::Shortest, Self::Antnet, Self::QRouting];
    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Shortest => "shortest",
            Self::Antnet => "antnet",
            Self::QRouting => "q-routing",
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StrategyKind {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s || (s == "qrouting" && *k == Self::QRouting))
            .ok_or_else(|| ParamError::Value {
                name: "strategy".into(),
                value: s.into(),
                reason: "expected one of direct, shortest, antnet, q-routing".into(),
            })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    #[error("unknown parameter `{0}` (see `matrix get`)")]
    Unknown(String),
    #[error("parameter `{name}` = `{value}`: {reason}")]
    Value {
        name: String,
        value: String,
        reason: String,
    },
}

/// Every tunable, with the defaults the issue and the papers give.
///
/// `#[serde(default)]`: a stored parameter set from an older version, lacking newer
/// fields, still loads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Params {
    pub strategy: StrategyKind,
    /// Interval between hellos to each neighbour.
    pub hello_interval: Duration,
    /// Hellos missed before a neighbour is declared dead.
    pub dead_count: u32,
    /// Interval between this node's own link-state adverts (also sent on change).
    pub advert_interval: Duration,
    /// Interval between forward ants launched by this node (AntNet).
    pub ant_interval: Duration,
    /// AntNet: probability that a forward ant picks its next hop uniformly. Q-routing:
    /// the weight share of the next hops other than the best (those closer to the
    /// destination than this node).
    pub exploration: f64,
    /// AntNet reinforcement weights c1 (trip time vs best) and c2 (confidence).
    pub antnet_c1: f64,
    pub antnet_c2: f64,
    /// AntNet squash function steepness `a` (the paper's `a/|N_k|`).
    pub antnet_a: f64,
    /// AntNet weight `alpha` of the local queue heuristic in a forward ant's choice
    /// (the paper keeps it between 0.2 and 0.5).
    pub antnet_alpha: f64,
    /// AntNet local traffic model: exponential mean factor eta and window factor c.
    pub antnet_eta: f64,
    pub antnet_window: f64,
    /// Q-routing learning rate.
    pub q_learning_rate: f64,
    /// Relative weight change below which an installed route is left alone.
    pub hysteresis: f64,
    /// How long a route (and the overlay prefixes behind it) stays installed after its
    /// destination lost every live next hop and nothing replaces it. A neighbour that
    /// stops answering may be only its agent restarting, while its data plane forwards
    /// on: its traffic keeps going; a destination that is really gone is withdrawn after
    /// this. Where a replacement exists it is installed at once, whatever this says.
    pub stale_hold: Duration,
    /// Routing-state budget: at most this many route entries (None: derived from memory).
    pub max_routes: Option<usize>,
    /// Capacity assumed for an underlay link whose speed the host does not report,
    /// megabits per second: the queueing term of a link's cost is an M/M/1 wait at the
    /// measured load on the link's capacity.
    pub link_capacity_mbps: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            strategy: StrategyKind::Shortest,
            hello_interval: Duration::from_millis(100),
            dead_count: 3,
            advert_interval: Duration::from_secs(1),
            ant_interval: Duration::from_millis(100),
            exploration: 0.05,
            antnet_c1: 0.7,
            antnet_c2: 0.3,
            antnet_a: 10.0,
            antnet_alpha: 0.45,
            antnet_eta: 0.005,
            antnet_window: 0.3,
            q_learning_rate: 0.5,
            hysteresis: 0.1,
            stale_hold: Duration::from_secs(5),
            max_routes: None,
            link_capacity_mbps: 1000.0,
        }
    }
}

/// Longest interval accepted.
const MAX_INTERVAL_MS: u64 = 86_400_000;

fn ms(name: &str, value: &str) -> Result<Duration, ParamError> {
    let v: u64 = value.parse().map_err(|_| ParamError::Value {
        name: name.into(),
        value: value.into(),
        reason: "expected milliseconds, a positive integer".into(),
    })?;
    if v == 0 {
        return Err(ParamError::Value {
            name: name.into(),
            value: value.into(),
            reason: "must be at least 1 ms".into(),
        });
    }
    // Deadlines are `now + interval * a few`: keep them far from overflowing.
    if v > MAX_INTERVAL_MS {
        return Err(ParamError::Value {
            name: name.into(),
            value: value.into(),
            reason: format!("must be at most {MAX_INTERVAL_MS} ms (a day)"),
        });
    }
    Ok(Duration::from_millis(v))
}

fn unit(name: &str, value: &str, lo: f64, hi: f64) -> Result<f64, ParamError> {
    let v: f64 = value.parse().map_err(|_| ParamError::Value {
        name: name.into(),
        value: value.into(),
        reason: "expected a number".into(),
    })?;
    if !(lo..=hi).contains(&v) || v.is_nan() {
        return Err(ParamError::Value {
            name: name.into(),
            value: value.into(),
            reason: format!("must be in {lo}..={hi}"),
        });
    }
    Ok(v)
}

impl Params {
    /// Names accepted by [`Params::set`], in display order.
    pub const NAMES: [&'static str; 18] = [
        "strategy",
        "hello_interval_ms",
        "dead_count",
        "advert_interval_ms",
        "ant_interval_ms",
        "exploration",
        "antnet_c1",
        "antnet_c2",
        "antnet_a",
        "antnet_alpha",
        "antnet_eta",
        "antnet_window",
        "q_learning_rate",
        "hysteresis",
        "stale_hold_ms",
        "max_routes",
        "zone_bits",
        "link_capacity_mbps",
    ];

    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ParamError> {
        match name {
            "strategy" => self.strategy = value.parse()?,
            "hello_interval_ms" => self.hello_interval = ms(name, value)?,
            "advert_interval_ms" => self.advert_interval = ms(name, value)?,
            "ant_interval_ms" => self.ant_interval = ms(name, value)?,
            "dead_count" => {
                self.dead_count = unit(name, value, 1.0, 1000.0)? as u32;
            }
            "exploration" => self.exploration = unit(name, value, 0.0, 1.0)?,
            "antnet_c1" => self.antnet_c1 = unit(name, value, 0.0, 1.0)?,
            "antnet_c2" => self.antnet_c2 = unit(name, value, 0.0, 1.0)?,
            "antnet_a" => self.antnet_a = unit(name, value, 0.0, 1e6)?,
            "antnet_alpha" => self.antnet_alpha = unit(name, value, 0.0, 1.0)?,
            "antnet_eta" => self.antnet_eta = unit(name, value, 0.0, 1.0)?,
            "antnet_window" => self.antnet_window = unit(name, value, 0.0, 1.0)?,
            "q_learning_rate" => self.q_learning_rate = unit(name, value, 0.0, 1.0)?,
            "hysteresis" => self.hysteresis = unit(name, value, 0.0, 1.0)?,
            "stale_hold_ms" => self.stale_hold = ms(name, value)?,
            "max_routes" => {
                self.max_routes = if value == "auto" {
                    None
                } else {
                    Some(unit(name, value, 1.0, 1e9)? as usize)
                }
            }
            "link_capacity_mbps" => self.link_capacity_mbps = unit(name, value, 0.001, 1e7)?,
            "zone_bits" => {
                return Err(ParamError::Value {
                    name: name.into(),
                    value: value.into(),
                    reason: "fixed at build time (16)".into(),
                });
            }
            other => return Err(ParamError::Unknown(other.into())),
        }
        Ok(())
    }

    /// Every parameter with its current value, as `matrix get` prints them.
    pub fn get_all(&self) -> Vec<(&'static str, String)> {
        let ms = |d: Duration| d.as_millis().to_string();
        vec![
            ("strategy", self.strategy.to_string()),
            ("hello_interval_ms", ms(self.hello_interval)),
            ("dead_count", self.dead_count.to_string()),
            ("advert_interval_ms", ms(self.advert_interval)),
            ("ant_interval_ms", ms(self.ant_interval)),
            ("exploration", self.exploration.to_string()),
            ("antnet_c1", self.antnet_c1.to_string()),
            ("antnet_c2", self.antnet_c2.to_string()),
            ("antnet_a", self.antnet_a.to_string()),
            ("antnet_alpha", self.antnet_alpha.to_string()),
            ("antnet_eta", self.antnet_eta.to_string()),
            ("antnet_window", self.antnet_window.to_string()),
            ("q_learning_rate", self.q_learning_rate.to_string()),
            ("hysteresis", self.hysteresis.to_string()),
            ("stale_hold_ms", ms(self.stale_hold)),
            (
                "max_routes",
                self.max_routes.map_or("auto".into(), |m| m.to_string()),
            ),
            ("zone_bits", crate::node::ZONE_BITS.to_string()),
            ("link_capacity_mbps", self.link_capacity_mbps.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_get() {
        let mut p = Params::default();
        p.set("strategy", "antnet").unwrap();
        p.set("hello_interval_ms", "50").unwrap();
        assert_eq!(p.strategy, StrategyKind::Antnet);
        assert_eq!(p.hello_interval, Duration::from_millis(50));
        assert!(p.get_all().contains(&("strategy", "antnet".into())));
        assert_eq!(
            p.set("exploration", "2").unwrap_err().to_string(),
            "parameter `exploration` = `2`: must be in 0..=1"
        );
        assert_eq!(
            p.set("colour", "1"),
            Err(ParamError::Unknown("colour".into()))
        );
        assert!(p.set("strategy", "ospf").is_err());
        assert!(p.set("hello_interval_ms", "18446744073709551615").is_err());
    }

    #[test]
    fn names_and_get_all_agree() {
        let p = Params::default();
        let got: Vec<_> = p.get_all().into_iter().map(|(n, _)| n).collect();
        assert_eq!(got, Params::NAMES);
        let mut q = Params::default();
        for (name, value) in p.get_all() {
            if name != "zone_bits" {
                q.set(name, &value).unwrap();
            }
        }
        assert_eq!(p, q);
    }
}
