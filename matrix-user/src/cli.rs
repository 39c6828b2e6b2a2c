//! Client subcommands: read one node's pinned maps and print tables or JSON.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::{
    agent::{
        protocol::{
            ControlError, GetNeighbors, GetParams, GetRoutes, GetStatus, LinkHealth, RouteRow,
            SetParam,
        },
        socket::{self, RequestError},
    },
    dataplane::{self, DataPlane, NeighborRow},
    node::NodeId,
};

/// Finds the pin directory of `--node` (a pin name such as `a`, or a NodeId such as
/// `0.1`); with no `--node`, the only node pinned on this host.
pub fn select_node(node: Option<&str>) -> anyhow::Result<PathBuf> {
    let nodes = dataplane::pinned_nodes();
    match node {
        Some(want) => {
            if let Some((_, dir)) = nodes.iter().find(|(name, _)| name == want) {
                return Ok(dir.clone());
            }
            if let Ok(id) = want.parse::<NodeId>() {
                for (_, dir) in &nodes {
                    if let Ok(dp) = DataPlane::open(dir)
                        && dp.config().map(|c| c.node_id).ok() == Some(id.0)
                    {
                        return Ok(dir.clone());
                    }
                }
            }
            bail!(
                "no node `{want}` is pinned under {} (pinned: {})",
                dataplane::PIN_ROOT,
                names(&nodes)
            )
        }
        None => match nodes.as_slice() {
            [(_, dir)] => Ok(dir.clone()),
            [] => bail!(
                "no matrix node is pinned under {} (is `matrix agent` running?)",
                dataplane::PIN_ROOT
            ),
            _ => bail!(
                "several nodes are pinned here ({}): choose one with --node",
                names(&nodes)
            ),
        },
    }
}

/// Pinned maps outlive their agent: say so when none runs, on stderr, so `--json` output
/// stays clean.
fn note_if_no_agent(dir: &std::path::Path) {
    let name = name_of(dir);
    if !crate::agent::lock::held(&name) {
        eprintln!(
            "note: no agent runs for node `{name}`: these are its pinned maps, which keep \
             forwarding on the last routes an agent wrote"
        );
    }
}

fn names(nodes: &[(String, PathBuf)]) -> String {
    if nodes.is_empty() {
        return "none".into();
    }
    nodes
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Agent replies print with their keys in name order, as they always have.
fn print_json_sorted<T: Serialize>(v: &T) -> anyhow::Result<()> {
    print_json(&serde_json::to_value(v)?)
}

/// A route as the maps hold it, when no routing core answers.
#[derive(Serialize)]
struct MapRoute {
    dst: String,
    next_hops: Vec<HopRow>,
}

#[derive(Serialize)]
struct HopRow {
    node: String,
    slot: u32,
    weight: u32,
}

/// Pin name of a node directory (also the name of its control socket).
fn name_of(dir: &std::path::Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Routes as the routing core holds them, with weights and strategy detail.
fn print_agent_routes(rows: &[RouteRow], detail: bool, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json_sorted(&rows);
    }
    println!(
        "{:<16} {:<9} NEXT HOPS (node:weight){}",
        "DESTINATION",
        "KIND",
        if detail { "   DETAIL (node:value)" } else { "" }
    );
    for r in rows {
        let hops: Vec<String> = r
            .next_hops
            .iter()
            .map(|h| format!("{}:{}", h.node, h.weight))
            .collect();
        let kind = if r.is_static {
            "static"
        } else if r.aggregate {
            "aggregate"
        } else {
            "learnt"
        };
        // NodePrefix's Display ignores the width: pad its text.
        let mut line = format!("{:<16} {:<9} {}", r.dst.to_string(), kind, hops.join(" "));
        if detail {
            let d: Vec<String> = r
                .detail
                .iter()
                .map(|h| format!("{}:{:.4}", h.node, h.value))
                .collect();
            line = format!("{line:<60} {}", d.join(" "));
        }
        println!("{line}");
    }
    Ok(())
}

pub fn routes(node: Option<&str>, json: bool, detail: bool) -> anyhow::Result<()> {
    let dir = select_node(node)?;
    note_if_no_agent(&dir);
    let name = name_of(&dir);
    if socket::agent_running(&name) {
        match socket::request(&name, GetRoutes) {
            Ok(rows) => return print_agent_routes(&rows, detail, json),
            // A static-mode agent has no routing core: the maps are the truth.
            Err(RequestError::Refused(ControlError::NotConfigured)) => {}
            Err(e) => return Err(e.into()),
        }
    } else if detail {
        eprintln!("no agent answers for {name}: showing the installed routes only");
    }
    let dp = DataPlane::open(&dir)?;
    let rows: Vec<MapRoute> = dp
        .routes()?
        .into_iter()
        .map(|r| MapRoute {
            dst: r.dst.to_string(),
            next_hops: r
                .next_hops
                .iter()
                .map(|h| HopRow {
                    node: h
                        .node
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| format!("slot {}?", h.slot)),
                    slot: h.slot,
                    weight: h.weight,
                })
                .collect(),
        })
        .collect();
    if json {
        return print_json(&rows);
    }
    println!("{:<16} NEXT HOPS (node:weight)", "DESTINATION");
    for r in rows {
        let hops: Vec<String> = r
            .next_hops
            .iter()
            .map(|h| format!("{}:{}", h.node, h.weight))
            .collect();
        println!("{:<16} {}", r.dst, hops.join(" "));
    }
    Ok(())
}

/// A neighbour's row in `matrix neighbors --json`: the data plane's row, with the
/// routing core's view of the link when an agent runs one.
#[derive(Serialize)]
struct NeighborJson<'a> {
    #[serde(flatten)]
    row: &'a NeighborRow,
    #[serde(flatten)]
    link: Option<&'a LinkHealth>,
}

pub fn neighbors(node: Option<&str>, json: bool) -> anyhow::Result<()> {
    let dir = select_node(node)?;
    note_if_no_agent(&dir);
    let dp = DataPlane::open(&dir)?;
    let rows = dp.neighbor_rows()?;
    // Liveness, RTT, loss and load come from the routing core when an agent runs one.
    let live = socket::request(&name_of(&dir), GetNeighbors).ok();
    let live_of = |node: &str| {
        live.as_ref()
            .and_then(|a| a.iter().find(|n| n.node.to_string() == node))
            .map(|n| &n.link)
    };
    if json {
        let merged: Vec<NeighborJson> = rows
            .iter()
            .map(|row| NeighborJson {
                row,
                link: live_of(&row.node),
            })
            .collect();
        return print_json_sorted(&merged);
    }
    if live.is_some() {
        println!(
            "{:<10} {:<16} {:<6} {:>9} {:>9} {:>6} {:>12} {:>10} {:>9}",
            "NODE",
            "ADDRESS",
            "ALIVE",
            "RTT(us)",
            "VAR(us)",
            "LOSS",
            "LOAD(B/s)",
            "LINK(Mb/s)",
            "COST(us)"
        );
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        for r in &rows {
            if let Some(l) = live_of(&r.node) {
                // ALIVE is printed unpadded, as it always has been (the header pads it).
                println!(
                    "{:<10} {:<16} {} {:>9} {:>9} {:>6.2} {:>12.0} {:>10} {:>9}",
                    r.node,
                    r.address,
                    l.alive,
                    or_dash(l.srtt_us.map(|v| v.to_string())),
                    or_dash(l.rttvar_us.map(|v| v.to_string())),
                    l.loss,
                    l.load_bps,
                    or_dash(l.capacity_mbps.map(|v| v.to_string())),
                    l.cost_us,
                );
            }
        }
        println!();
    }
    println!(
        "{:<4} {:<10} {:<16} {:<8} {:<18} {:>12} {:>14} {:>12} {:>14}",
        "SLOT", "NODE", "ADDRESS", "IFINDEX", "MAC", "RX PKTS", "RX BYTES", "TX PKTS", "TX BYTES"
    );
    for r in rows {
        let mac = if r.resolved {
            r.mac
        } else {
            "(resolving)".into()
        };
        println!(
            "{:<4} {:<10} {:<16} {:<8} {:<18} {:>12} {:>14} {:>12} {:>14}",
            r.slot,
            r.node,
            r.address,
            r.ifindex,
            mac,
            r.rx_packets,
            r.rx_bytes,
            r.tx_packets,
            r.tx_bytes
        );
    }
    Ok(())
}

pub fn stats(node: Option<&str>, json: bool) -> anyhow::Result<()> {
    let dir = select_node(node)?;
    note_if_no_agent(&dir);
    let dp = DataPlane::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let s = dp.stats()?;
    if json {
        return print_json(&s);
    }
    let line = |title: &str, m: &std::collections::BTreeMap<&'static str, u64>| {
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{title:<9} {}", parts.join("  "));
    };
    line("verdicts", &s.verdicts);
    line("paths", &s.paths);
    line("drops", &s.drops);
    println!();
    println!(
        "{:<10} {:>12} {:>14} {:>12} {:>14}",
        "NEIGHBOR", "RX PKTS", "RX BYTES", "TX PKTS", "TX BYTES"
    );
    for n in s.neighbors {
        println!(
            "{:<10} {:>12} {:>14} {:>12} {:>14}",
            n.node, n.rx_packets, n.rx_bytes, n.tx_packets, n.tx_bytes
        );
    }
    Ok(())
}

fn node_name(node: Option<&str>) -> anyhow::Result<String> {
    Ok(name_of(&select_node(node)?))
}

/// `matrix get`: every routing parameter of the running agent.
pub fn get(node: Option<&str>, json: bool) -> anyhow::Result<()> {
    let params = socket::request(&node_name(node)?, GetParams)?;
    if json {
        return print_json_sorted(&params);
    }
    for (k, val) in &params {
        println!("{k:<20} {val}");
    }
    Ok(())
}

/// `matrix set NAME VALUE` on the running agent.
pub fn set(node: Option<&str>, name: &str, value: &str) -> anyhow::Result<()> {
    socket::request(
        &node_name(node)?,
        SetParam {
            name: name.into(),
            value: value.into(),
        },
    )?;
    println!("{name} = {value}");
    Ok(())
}

/// `matrix status`: what the agent runs and its control-channel counters.
pub fn status(node: Option<&str>, json: bool) -> anyhow::Result<()> {
    let s = socket::request(&node_name(node)?, GetStatus)?;
    if json {
        return print_json_sorted(&s);
    }
    println!("node      {} ({})", s.node, s.name);
    println!("routing   {}", s.strategy.map_or("static", |k| k.name()));
    for (k, val) in s.control.by_name() {
        println!("{k:<15} {val}");
    }
    println!("{:<15} {}", "map_errors", s.map_errors);
    if let Some(cw) = s.carrier_watch {
        if cw.active {
            println!("{:<15} on ({} overruns)", "carrier_watch", cw.overruns);
        } else {
            println!("{:<15} off: hellos alone detect failures", "carrier_watch");
        }
    }
    Ok(())
}

/// `matrix trace`.
#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// Only drops with this reason (as `matrix stats` names them); default: every reason.
    #[arg(long)]
    pub reason: Option<String>,
    /// Forwarded and passed packets too, not only drops.
    #[arg(long)]
    pub all: bool,
    /// Trace about one packet in N.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub sample: u32,
    /// Stop after this many packets.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub seconds: Option<f64>,
}

/// Switches tracing off when `matrix trace` ends, however it ends short of SIGKILL.
struct TraceOff<'a>(&'a mut DataPlane);

impl Drop for TraceOff<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.set_trace(matrix_common::TraceConfig::default()) {
            eprintln!("warning: could not switch tracing off: {e}");
        }
    }
}

/// `matrix trace`: switches tracing on in the node's data plane, prints each traced
/// packet, and switches it off again on Ctrl-C, `--count` or `--seconds`.
pub fn trace(node: Option<&str>, json: bool, args: &TraceArgs) -> anyhow::Result<()> {
    use matrix_common::{DROP_NAMES, TRACE_F_DROPS, TRACE_F_FORWARDED, TraceConfig};
    let dir = select_node(node)?;
    let mut dp = DataPlane::open(&dir)?;
    let reason = match &args.reason {
        None => 0,
        Some(r) => DROP_NAMES
            .iter()
            .find(|(_, n)| n == r)
            .map(|(slot, _)| *slot)
            .with_context(|| {
                let names: Vec<&str> = DROP_NAMES.iter().map(|(_, n)| *n).collect();
                format!(
                    "--reason `{r}` is not a drop reason (one of {})",
                    names.join(", ")
                )
            })?,
    };
    let mut reader = dp.trace_reader()?;
    // Events left over from an earlier run are not this run's.
    while reader.next_event().is_some() {}
    let flags = TRACE_F_DROPS | if args.all { TRACE_F_FORWARDED } else { 0 };
    dp.set_trace(TraceConfig {
        flags,
        sample: args.sample,
        reason,
        _pad: 0,
    })?;
    let _off = TraceOff(&mut dp);
    let names = crate::net::interface_names();
    let deadline = args
        .seconds
        .map(|s| std::time::Instant::now() + std::time::Duration::from_secs_f64(s));
    if !json {
        eprintln!(
            "tracing {} of {} (Ctrl-C to stop)",
            if args.all { "every packet" } else { "drops" },
            name_of(&dir)
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut seen = 0u64;
    rt.block_on(async {
        let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
        loop {
            while let Some(ev) = reader.next_event() {
                let p = crate::dataplane::trace::TracedPacket::from(&ev);
                if json {
                    println!("{}", serde_json::to_string(&p)?);
                } else {
                    let iface = names
                        .get(&p.ifindex)
                        .cloned()
                        .unwrap_or_else(|| format!("if{}", p.ifindex));
                    println!(
                        "{:>14.6} {iface} {} {} {} len {}",
                        p.ktime_ns as f64 / 1e9,
                        p.program,
                        p.verdict,
                        p.reason,
                        p.frame_len
                    );
                    for h in &p.headers {
                        println!("    {h}");
                    }
                }
                seen += 1;
                if args.count.is_some_and(|c| seen >= c) {
                    return Ok(());
                }
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(());
            }
            tokio::select! {
                _ = &mut ctrl_c => return Ok(()),
                _ = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
            }
        }
    })
}
