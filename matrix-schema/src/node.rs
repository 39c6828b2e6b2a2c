//! NodeIds and NodeId prefixes, written `zone.host` and `zone.host/len`.
//!
//! A NodeId is a `u32`: the high [`ZONE_BITS`] name the zone, the low bits the host in
//! it, so `3.0/16` covers every host of zone 3 with one route.

use std::{fmt, str::FromStr};

/// Bits of a NodeId that name the zone.
pub const ZONE_BITS: u32 = 16;
const HOST_BITS: u32 = 32 - ZONE_BITS;
const HOST_MASK: u32 = (1 << HOST_BITS) - 1;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct NodeId(pub u32);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeIdError {
    #[error("node id `{0}` is not of the form zone.host (e.g. 3.17)")]
    Syntax(String),
    #[error("node id `{text}`: {part} {value} is out of range (max {max})")]
    Range {
        text: String,
        part: &'static str,
        value: u64,
        max: u32,
    },
    #[error("node id `{0}`: 0.0 is reserved (it means \"not configured\")")]
    Zero(String),
    #[error("node prefix `{text}`: length {len} is out of range 0..=32")]
    PrefixLen { text: String, len: String },
    #[error("node prefix `{text}` has bits set past its length {len}")]
    HostBits { text: String, len: u32 },
}

impl NodeId {
    pub const fn new(zone: u32, host: u32) -> Self {
        Self((zone << HOST_BITS) | (host & HOST_MASK))
    }
    pub const fn zone(self) -> u32 {
        self.0 >> HOST_BITS
    }
    pub const fn host(self) -> u32 {
        self.0 & HOST_MASK
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.zone(), self.host())
    }
}

fn parse_id(s: &str) -> Result<NodeId, NodeIdError> {
    let (zone, host) = s
        .split_once('.')
        .ok_or_else(|| NodeIdError::Syntax(s.to_string()))?;
    let num = |part: &'static str, text: &str, max: u32| -> Result<u32, NodeIdError> {
        let v: u64 = text
            .parse()
            .map_err(|_| NodeIdError::Syntax(s.to_string()))?;
        if v > max as u64 {
            return Err(NodeIdError::Range {
                text: s.to_string(),
                part,
                value: v,
                max,
            });
        }
        Ok(v as u32)
    };
    let zone = num("zone", zone, (1 << ZONE_BITS) - 1)?;
    let host = num("host", host, HOST_MASK)?;
    Ok(NodeId::new(zone, host))
}

impl FromStr for NodeId {
    type Err = NodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = parse_id(s)?;
        if id.0 == 0 {
            return Err(NodeIdError::Zero(s.to_string()));
        }
        Ok(id)
    }
}

/// A prefix over NodeIds: the first `len` bits of `id`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct NodePrefix {
    pub id: NodeId,
    pub len: u32,
}

impl NodePrefix {
    pub const fn host(id: NodeId) -> Self {
        Self { id, len: 32 }
    }
    /// `zone.0/16`: every host of `zone`.
    pub const fn of_zone(zone: u32) -> Self {
        Self {
            id: NodeId::new(zone, 0),
            len: ZONE_BITS,
        }
    }
    /// The prefix of length `len` (clamped to 0..=32) that covers `id`.
    pub const fn covering(id: NodeId, len: u32) -> Self {
        let len = if len > 32 { 32 } else { len };
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        Self {
            id: NodeId(id.0 & mask),
            len,
        }
    }
    pub fn contains(&self, id: NodeId) -> bool {
        let mask = if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        };
        id.0 & mask == self.id.0
    }
}

impl fmt::Display for NodePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.id, self.len)
    }
}

impl FromStr for NodePrefix {
    type Err = NodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, len) = match s.split_once('/') {
            Some((id, len)) => {
                let l: u32 = len.parse().map_err(|_| NodeIdError::PrefixLen {
                    text: s.to_string(),
                    len: len.to_string(),
                })?;
                if l > 32 {
                    return Err(NodeIdError::PrefixLen {
                        text: s.to_string(),
                        len: len.to_string(),
                    });
                }
                (parse_id(id)?, l)
            }
            None => (s.parse()?, 32),
        };
        let p = NodePrefix { id, len };
        if !p.contains(id) {
            return Err(NodeIdError::HostBits {
                text: s.to_string(),
                len,
            });
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let id: NodeId = "3.17".parse().unwrap();
        assert_eq!(id, NodeId((3 << 16) | 17));
        assert_eq!(id.to_string(), "3.17");
        let p: NodePrefix = "7.0/16".parse().unwrap();
        assert_eq!(p.to_string(), "7.0/16");
        assert!(p.contains(NodeId::new(7, 99)));
        assert!(!p.contains(NodeId::new(8, 0)));
        assert_eq!("0.4".parse::<NodePrefix>().unwrap().len, 32);
    }

    #[test]
    fn errors_name_the_value() {
        let e = "3".parse::<NodeId>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "node id `3` is not of the form zone.host (e.g. 3.17)"
        );
        let e = "70000.1".parse::<NodeId>().unwrap_err();
        assert!(e.to_string().contains("zone 70000"), "{e}");
        assert!(matches!("0.0".parse::<NodeId>(), Err(NodeIdError::Zero(_))));
        assert!(matches!(
            "3.1/16".parse::<NodePrefix>(),
            Err(NodeIdError::HostBits { .. })
        ));
        assert!(matches!(
            "3.0/40".parse::<NodePrefix>(),
            Err(NodeIdError::PrefixLen { .. })
        ));
    }
}
