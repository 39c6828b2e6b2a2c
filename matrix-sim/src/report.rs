//! One row per strategy: the JSON object `--json` prints, and the human table.

use serde::Serialize;

use crate::{
    engine::RunResult,
    metrics::{ControlDrops, Drops},
    series::TimeSeries,
};

/// The measurements of one strategy's run. Field names are the JSON keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    pub strategy: String,
    /// What was run: the same for every strategy of one invocation (flattened: its
    /// fields are keys of the row).
    #[serde(flatten)]
    pub run: RunInfo,
    /// Delivered / offered data packets created in the measurement window.
    pub delivered_ratio: f64,
    /// Delivered data bits per second of the measurement window.
    pub throughput_bps: f64,
    pub mean_delay_ms: Option<f64>,
    pub p99_delay_ms: Option<f64>,
    /// Links crossed by delivered packets: mean and longest.
    pub mean_hops: Option<f64>,
    pub max_hops: u8,
    /// Control messages sent per node per second of the measurement window.
    pub control_msgs_per_node_s: f64,
    pub control_bytes_per_node_s: f64,
    /// `Router::state_entries` at the end of the run: mean and max over nodes.
    pub state_entries_per_node: f64,
    pub state_entries_max: usize,
    /// Forwarding-table entries (installed routes) per node at the end of the run.
    pub routes_per_node: f64,
    /// Route installs and withdrawals per node per second of the measurement window.
    pub route_updates_per_node_s: f64,
    /// Milliseconds until the flows that crossed a cut link (or a dead node) were
    /// delivered normally again (see `metrics`); null without `--fail` or
    /// `--fail-node`, or if they never were.
    pub recovery_ms: Option<f64>,
    /// Milliseconds until every packet of those flows arrived again (the end of the last
    /// window that lost one; see `metrics`); null as above, or if losses lasted to the end.
    pub recovery_all_ms: Option<f64>,
    /// Source-destination pairs whose traffic crossed a failure before it.
    pub affected_flows: usize,
    /// Propagation delay of the path each measured packet took over the least possible
    /// between its ends (see `stretch`): mean, 99th percentile and largest; null when
    /// none was measured.
    pub stretch_mean: Option<f64>,
    pub stretch_p99: Option<f64>,
    pub stretch_max: Option<f64>,
    /// Delivered packets the stretch figures cover.
    pub stretch_packets: u64,
    pub offered_packets: u64,
    pub delivered_packets: u64,
    pub drops: Drops,
    pub control_drops: ControlDrops,
    /// Events the engine processed (a measure of the run's work).
    pub events: u64,
    /// The whole run over time, for `--plot`. Not in the JSON: hundreds of numbers per
    /// row would bury the totals.
    #[serde(skip)]
    pub series: TimeSeries,
}

/// The run's context, the same in every row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunInfo {
    pub topology: String,
    pub nodes: usize,
    pub links: usize,
    pub zones: usize,
    pub load: String,
    pub rate: f64,
    pub seed: u64,
    /// Seconds of the measurement window.
    pub window_s: f64,
    /// Nodes that `--fail-node` kills.
    pub failed_nodes: Vec<FailedNode>,
}

/// A node `--fail-node` kills, and where it sits.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailedNode {
    pub node: String,
    pub zone: u32,
    /// It has links to other zones.
    pub border: bool,
    pub at_s: f64,
}

impl RunReport {
    pub fn new(strategy: &str, mut r: RunResult, info: &RunInfo) -> Self {
        let (nodes, window_s) = (info.nodes, info.window_s);
        let m = &mut r.metrics;
        let (mean, p99) = m.delay_ms();
        let per_node_s = |x: u64| x as f64 / nodes as f64 / window_s;
        let mean_of = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
        Self {
            strategy: strategy.to_string(),
            run: info.clone(),
            delivered_ratio: if m.offered == 0 {
                0.0
            } else {
                m.delivered as f64 / m.offered as f64
            },
            throughput_bps: m.delivered_bytes as f64 * 8.0 / window_s,
            mean_delay_ms: mean,
            p99_delay_ms: p99,
            mean_hops: (m.delivered > 0).then(|| m.hops_sum as f64 / m.delivered as f64),
            max_hops: m.hops_max,
            control_msgs_per_node_s: per_node_s(m.control_msgs),
            control_bytes_per_node_s: per_node_s(m.control_bytes),
            state_entries_per_node: mean_of(&r.state_entries),
            state_entries_max: r.state_entries.iter().copied().max().unwrap_or(0),
            routes_per_node: mean_of(&r.fib_entries),
            route_updates_per_node_s: per_node_s(m.route_updates),
            recovery_ms: m.recovery_ms(),
            recovery_all_ms: m.recovery_all_ms(),
            affected_flows: m.affected_flows(),
            stretch_mean: r.stretch.mean,
            stretch_p99: r.stretch.p99,
            stretch_max: r.stretch.max,
            stretch_packets: r.stretch.packets,
            offered_packets: m.offered,
            delivered_packets: m.delivered,
            drops: m.drops,
            control_drops: m.control_drops,
            events: r.events,
            series: m.series.finish(),
        }
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// The human table: a header line about the run, then one row per strategy.
pub fn table(header: &str, rows: &[RunReport]) -> String {
    let mut out = format!("{header}\n");
    out.push_str(&format!(
        "{:<10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>12} {:>11} {:>15} {:>9} {:>12}  {}\n",
        "strategy",
        "delivered",
        "Mbit/s",
        "mean ms",
        "p99 ms",
        "hops(max)",
        "stretch(p99)",
        "ctrl/node/s",
        "state/node(max)",
        "routes",
        "recov/all ms",
        "drops queue/hop/route/down/cut/end"
    ));
    for r in rows {
        let d = &r.drops;
        out.push_str(&format!(
            "{:<10} {:>9.4} {:>8.3} {:>8} {:>8} {:>9} {:>12} {:>11.1} {:>15} {:>9.1} {:>12}  {}/{}/{}/{}/{}/{}\n",
            r.strategy,
            r.delivered_ratio,
            r.throughput_bps / 1e6,
            opt(r.mean_delay_ms, 2),
            opt(r.p99_delay_ms, 2),
            format!("{}({})", opt(r.mean_hops, 1), r.max_hops),
            format!("{}({})", opt(r.stretch_mean, 3), opt(r.stretch_p99, 2)),
            r.control_msgs_per_node_s,
            format!("{:.1}({})", r.state_entries_per_node, r.state_entries_max),
            r.routes_per_node,
            format!("{}/{}", opt(r.recovery_ms, 0), opt(r.recovery_all_ms, 0)),
            d.queue_full,
            d.hop_limit,
            d.no_route,
            d.link_down,
            d.link_failed,
            d.in_flight_at_end,
        ));
    }
    out
}
