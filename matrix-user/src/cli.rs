//! Client subcommands: read one node's pinned maps and print tables or JSON.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::{
    dataplane::{self, DataPlane},
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
            _ => bail!("several nodes are pinned here ({}): choose one with --node", names(&nodes)),
        },
    }
}

fn names(nodes: &[(String, PathBuf)]) -> String {
    if nodes.is_empty() {
        return "none".into();
    }
    nodes.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[derive(Serialize)]
struct RouteRow {
    dst: String,
    next_hops: Vec<HopRow>,
}

#[derive(Serialize)]
struct HopRow {
    node: String,
    slot: u32,
    weight: u32,
}

pub fn routes(node: Option<&str>, json: bool) -> anyhow::Result<()> {
    let dp = DataPlane::open(&select_node(node)?)?;
    let neighbors = dp.neighbors()?;
    let rows: Vec<RouteRow> = dp
        .routes()?
        .into_iter()
        .map(|r| RouteRow {
            dst: r.dst.to_string(),
            next_hops: r.set.hops[..r.set.count as usize]
                .iter()
                .map(|h| HopRow {
                    node: neighbors
                        .iter()
                        .find(|(s, _)| *s == h.neighbor)
                        .map(|(_, n)| NodeId(n.node_id).to_string())
                        .unwrap_or_else(|| format!("slot {}?", h.neighbor)),
                    slot: h.neighbor,
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

pub fn neighbors(node: Option<&str>, json: bool) -> anyhow::Result<()> {
    let dp = DataPlane::open(&select_node(node)?)?;
    let rows = dp.neighbor_rows()?;
    if json {
        return print_json(&rows);
    }
    println!(
        "{:<4} {:<10} {:<16} {:<8} {:<18} {:>12} {:>14} {:>12} {:>14}",
        "SLOT", "NODE", "ADDRESS", "IFINDEX", "MAC", "RX PKTS", "RX BYTES", "TX PKTS", "TX BYTES"
    );
    for r in rows {
        let mac = if r.resolved { r.mac } else { "(resolving)".into() };
        println!(
            "{:<4} {:<10} {:<16} {:<8} {:<18} {:>12} {:>14} {:>12} {:>14}",
            r.slot, r.node, r.address, r.ifindex, mac, r.rx_packets, r.rx_bytes, r.tx_packets, r.tx_bytes
        );
    }
    Ok(())
}

pub fn stats(node: Option<&str>, json: bool) -> anyhow::Result<()> {
    let dir = select_node(node)?;
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
    println!("{:<10} {:>12} {:>14} {:>12} {:>14}", "NEIGHBOR", "RX PKTS", "RX BYTES", "TX PKTS", "TX BYTES");
    for n in s.neighbors {
        println!(
            "{:<10} {:>12} {:>14} {:>12} {:>14}",
            n.node, n.rx_packets, n.rx_bytes, n.tx_packets, n.tx_bytes
        );
    }
    Ok(())
}
