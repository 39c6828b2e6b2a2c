//! Packet tracing through the maps: `TRACE_CONFIG` says what the programs trace, `TRACE`
//! (a ring buffer) carries the events. Used by `matrix trace`, which switches tracing on
//! for as long as it runs, and by the tests.

use std::net::Ipv4Addr;

use aya::maps::{MapData, RingBuf};
use matrix_common::{
    DROP_NAMES, PATH_NAMES, TRACE_PROG_UNDERLAY, TraceConfig, TraceEvent, VERDICT_NAMES, names,
};
use serde::Serialize;

use super::{DataPlane, Result, Source, map_err};

impl DataPlane {
    /// What the programs trace now.
    pub fn trace_config(&self) -> Result<TraceConfig> {
        self.trace_config
            .get(&0, 0)
            .map_err(map_err(names::TRACE_CONFIG, "read", 0))
    }

    /// Tells the programs what to trace; `TraceConfig::default()` switches tracing off.
    pub fn set_trace(&mut self, config: TraceConfig) -> Result<()> {
        self.trace_config
            .set(0, config, 0)
            .map_err(map_err(names::TRACE_CONFIG, "write", 0))
    }

    /// A reader of the `TRACE` ring buffer: [`TraceReader::next_event`] returns events as the
    /// programs write them.
    pub fn trace_reader(&self) -> Result<TraceReader> {
        let src = match &self.dir {
            Some(dir) => Source::Pinned(dir),
            None => {
                return Err(super::DataPlaneError::MissingMap { name: names::TRACE });
            }
        };
        Ok(TraceReader {
            ring: src.open(names::TRACE)?,
        })
    }
}

/// Reads traced packets.
pub struct TraceReader {
    pub(super) ring: RingBuf<MapData>,
}

impl TraceReader {
    /// Over a ring buffer opened elsewhere (a loaded, unpinned object's).
    pub fn new(ring: RingBuf<MapData>) -> Self {
        Self { ring }
    }

    /// The next event, if one is waiting; never blocks.
    pub fn next_event(&mut self) -> Option<TraceEvent> {
        let item = self.ring.next()?;
        if item.len() < size_of::<TraceEvent>() {
            return None;
        }
        Some(event_from_bytes(&item))
    }
}

/// Copies the bytes of a `TraceEvent` out of the ring buffer, which gives no alignment.
fn event_from_bytes(bytes: &[u8]) -> TraceEvent {
    let mut ev = TraceEvent {
        ktime_ns: 0,
        ifindex: 0,
        program: 0,
        verdict: 0,
        slot: 0,
        frame_len: 0,
        cap_len: 0,
        data: [0; matrix_common::TRACE_SNAP_LEN],
    };
    let u64_at = |o: usize| u64::from_ne_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    ev.ktime_ns = u64_at(0);
    ev.ifindex = u32_at(8);
    ev.program = u32_at(12);
    ev.verdict = u32_at(16);
    ev.slot = u32_at(20);
    ev.frame_len = u32_at(24);
    ev.cap_len = u32_at(28);
    ev.data
        .copy_from_slice(&bytes[32..32 + matrix_common::TRACE_SNAP_LEN]);
    ev
}

/// A traced packet, decoded for people and scripts.
#[derive(Clone, Debug, Serialize)]
pub struct TracedPacket {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ktime_ns: u64,
    pub ifindex: u32,
    pub program: &'static str,
    pub verdict: &'static str,
    /// The drop reason for a drop, else what the program did.
    pub reason: &'static str,
    pub frame_len: u32,
    /// The outer and inner headers, one line each, as far as the captured bytes go.
    pub headers: Vec<String>,
}

impl From<&TraceEvent> for TracedPacket {
    fn from(ev: &TraceEvent) -> Self {
        let name = |table: &[(u32, &'static str)], slot| {
            table
                .iter()
                .find(|(s, _)| *s == slot)
                .map_or("?", |(_, n)| *n)
        };
        let cap = (ev.cap_len as usize).min(ev.data.len());
        Self {
            ktime_ns: ev.ktime_ns,
            ifindex: ev.ifindex,
            program: if ev.program == TRACE_PROG_UNDERLAY {
                "underlay"
            } else {
                "workload"
            },
            verdict: name(&VERDICT_NAMES, ev.verdict),
            reason: if ev.verdict == matrix_common::VERDICT_DROP {
                name(&DROP_NAMES, ev.slot)
            } else {
                name(&PATH_NAMES, ev.slot)
            },
            frame_len: ev.frame_len,
            headers: decode(&ev.data[..cap]),
        }
    }
}

/// One line per header: Ethernet, IP, UDP/TCP, Geneve with the Matrix option, and the
/// inner IP and transport headers of an overlay packet.
pub fn decode(frame: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    decode_into(frame, &mut out);
    out
}

fn decode_into(frame: &[u8], out: &mut Vec<String>) {
    use etherparse::{LaxNetSlice, LaxSlicedPacket, LinkHeader, TransportSlice};
    let Ok(p) = LaxSlicedPacket::from_ethernet(frame) else {
        out.push(format!(
            "{} bytes that do not parse as Ethernet",
            frame.len()
        ));
        return;
    };
    if let Some(LinkHeader::Ethernet2(e)) = p.link.as_ref().and_then(|l| l.to_header()) {
        out.push(format!(
            "eth {} > {} type {:#06x}",
            super::mac_string(e.source),
            super::mac_string(e.destination),
            e.ether_type.0
        ));
    }
    match &p.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            out.push(format!(
                "ipv4 {} > {} proto {} len {} ttl {} csum {:#06x}",
                Ipv4Addr::from(h.source()),
                Ipv4Addr::from(h.destination()),
                h.protocol().0,
                h.total_len(),
                h.ttl(),
                h.header_checksum()
            ));
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let h = ip.header();
            out.push(format!(
                "ipv6 {} > {} next {} payload {}",
                h.source_addr(),
                h.destination_addr(),
                h.next_header().0,
                h.payload_length()
            ));
        }
        _ => return,
    }
    match &p.transport {
        Some(TransportSlice::Udp(u)) => {
            out.push(format!(
                "udp {} > {} len {}",
                u.source_port(),
                u.destination_port(),
                u.length()
            ));
            if u.destination_port() == matrix_common::GENEVE_PORT {
                match geneve(u.payload()) {
                    Some((line, inner_type, inner)) => {
                        out.push(line);
                        // The inner packet behind a stand-in Ethernet header, whose line
                        // is left out.
                        let mut framed = vec![0u8; 12];
                        framed.extend_from_slice(&inner_type.to_be_bytes());
                        framed.extend_from_slice(inner);
                        let mut inner_lines = Vec::new();
                        decode_into(&framed, &mut inner_lines);
                        out.extend(inner_lines.into_iter().skip(1).map(|l| format!("  {l}")));
                    }
                    None => out.push(format!("geneve: {} bytes, cut short", u.payload().len())),
                }
            }
        }
        Some(TransportSlice::Tcp(t)) => out.push(format!(
            "tcp {} > {} flags {}{}{}{}",
            t.source_port(),
            t.destination_port(),
            if t.syn() { "S" } else { "" },
            if t.ack() { "A" } else { "" },
            if t.fin() { "F" } else { "" },
            if t.rst() { "R" } else { "" }
        )),
        Some(TransportSlice::Icmpv4(i)) => out.push(format!("icmp type {}", i.type_u8())),
        Some(TransportSlice::Icmpv6(i)) => out.push(format!("icmpv6 type {}", i.type_u8())),
        _ => {}
    }
}

/// The Geneve header and Matrix option as one line; the inner EtherType and packet.
fn geneve(payload: &[u8]) -> Option<(String, u16, &[u8])> {
    let g = payload.get(..8)?;
    let opt_len = (g[0] & 0x3F) as usize * 4;
    let inner_type = u16::from_be_bytes([g[2], g[3]]);
    let vni = u32::from_be_bytes([0, g[4], g[5], g[6]]);
    let opt = payload.get(8..8 + opt_len)?;
    let mut line = format!(
        "geneve vni {vni} flags {:#04x} opt_len {opt_len} proto {inner_type:#06x}",
        g[1]
    );
    if opt_len >= 16 && opt[0..2] == matrix_common::MATRIX_OPT_CLASS.to_be_bytes() {
        let id = |b: &[u8]| {
            let v = u32::from_be_bytes(b.try_into().expect("4 bytes"));
            crate::node::NodeId(v).to_string()
        };
        line += &format!(
            " matrix dst {} src {} hop_limit {} flow {:#06x}",
            id(&opt[4..8]),
            id(&opt[8..12]),
            opt[12],
            u16::from_be_bytes([opt[14], opt[15]])
        );
    }
    Some((line, inner_type, payload.get(8 + opt_len..)?))
}
