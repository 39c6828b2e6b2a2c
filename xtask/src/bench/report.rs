//! From the runners' JSON to the ratios, the goals and the markdown table.
//!
//! Every ratio compares two things measured in the same run; the raw figures stand
//! beside it in the table and in `results.json` (`figures`).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::RunInfo;

const TRANSIT_ROWS: [&str; 4] = [
    "transit_tx_v4",
    "transit_tx_v6",
    "transit_redirect_v4",
    "transit_redirect_v6",
];
const ENCAP_ROWS: [&str; 3] = ["encap_v4", "encap_v6", "encap_v4_icmp"];
const DECAP_ROWS: [&str; 2] = ["decap_v4", "decap_v6"];

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The worst (largest) `ratio_to_baseline` among `names` in xdp_cost's rows, and its row.
fn worst_ratio(figures: &Value, names: &[&str]) -> Option<(f64, String)> {
    figures["xdp_cost"]["rows"]
        .as_array()?
        .iter()
        .filter(|r| names.contains(&r["path"].as_str().unwrap_or_default()))
        .filter_map(|r| Some((f(&r["ratio_to_baseline"])?, r["path"].as_str()?.to_string())))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// `{"ratios": {...}}` and the goals, each with its measured value and verdict.
pub fn ratios_and_goals(figures: &Value) -> (Value, Value) {
    let transit = worst_ratio(figures, &TRANSIT_ROWS);
    let encap = worst_ratio(figures, &ENCAP_ROWS);
    let decap = worst_ratio(figures, &DECAP_ROWS);
    let fwd = &figures["forwarding"]["ratios"];
    let ratios = json!({
        "transit_vs_xdp_tx": transit.as_ref().map(|t| t.0),
        "encap_vs_xdp_tx": encap.as_ref().map(|t| t.0),
        "decap_vs_xdp_tx": decap.as_ref().map(|t| t.0),
        "relay_vs_linux_fwd": fwd["relay_vs_linux_fwd"],
        "relay_vs_userspace": fwd["relay_vs_userspace"],
        "relay_vs_linux_fwd_1400": fwd["relay_vs_linux_fwd_1400"],
        "relay_vs_userspace_1400": fwd["relay_vs_userspace_1400"],
        "relay_cpu_linux_fwd_vs_matrix_64": fwd["relay_cpu_linux_fwd_vs_matrix_64"],
        "relay_cpu_userspace_vs_matrix_64": fwd["relay_cpu_userspace_vs_matrix_64"],
        "lookup_100k_vs_10": figures["route_lookup"]["lookup_100k_vs_10"],
        "agent_vs_raw_update": figures["map_update"]["agent_vs_raw_update"],
        "agent_burst_vs_raw_update": figures["map_update"]["burst_vs_raw_update"],
        "notes": {
            "transit_vs_xdp_tx": format!("worst of {}", TRANSIT_ROWS.join(", ")),
            "encap_vs_xdp_tx": format!("worst of {}", ENCAP_ROWS.join(", ")),
            "relay_vs_*": "delivered pps at the sink at full generator rate, 64-byte inner \
                           packets (the _1400 keys: 1400 bytes); median of per-round ratios",
            "relay_cpu_*": "relay-side CPU ns per delivered packet, other / matrix",
        },
    });
    let idle = &figures["agent_idle"];
    let goal = |name: &str,
                measured: Option<f64>,
                shown: String,
                target: &str,
                met: Option<bool>| {
        json!({"goal": name, "value": measured, "measured": shown, "target": target, "met": met})
    };
    let ratio = |key: &str| f(&ratios[key]);
    let show =
        |v: Option<f64>, what: &str| v.map_or("not measured".into(), |v| format!("{v:.2}x {what}"));
    let goals = vec![
        goal(
            "transit test_run cost vs trivial XDP_TX",
            ratio("transit_vs_xdp_tx"),
            show(
                ratio("transit_vs_xdp_tx"),
                &transit.map(|t| format!("({})", t.1)).unwrap_or_default(),
            ),
            "<= 3x",
            ratio("transit_vs_xdp_tx").map(|r| r <= 3.0),
        ),
        goal(
            "encap test_run cost vs trivial XDP_TX",
            ratio("encap_vs_xdp_tx"),
            show(
                ratio("encap_vs_xdp_tx"),
                &encap.map(|t| format!("({})", t.1)).unwrap_or_default(),
            ),
            "<= 5x",
            ratio("encap_vs_xdp_tx").map(|r| r <= 5.0),
        ),
        goal(
            "transit relay pps vs Linux IP forwarding",
            ratio("relay_vs_linux_fwd"),
            show(ratio("relay_vs_linux_fwd"), "(64 B)"),
            ">= 3x",
            ratio("relay_vs_linux_fwd").map(|r| r >= 3.0),
        ),
        goal(
            "transit relay pps vs userspace UDP relay",
            ratio("relay_vs_userspace"),
            show(ratio("relay_vs_userspace"), "(64 B)"),
            ">= 10x",
            ratio("relay_vs_userspace").map(|r| r >= 10.0),
        ),
        goal(
            "transit cost, 100k routes vs 10",
            ratio("lookup_100k_vs_10"),
            show(ratio("lookup_100k_vs_10"), ""),
            "< 2x",
            ratio("lookup_100k_vs_10").map(|r| r < 2.0),
        ),
        goal(
            "agent route writes vs raw map-update ceiling",
            ratio("agent_vs_raw_update"),
            ratio("agent_vs_raw_update")
                .map_or("not measured".into(), |r| format!("{:.0}%", 100.0 * r)),
            ">= 50%",
            ratio("agent_vs_raw_update").map(|r| r >= 0.5),
        ),
        goal(
            "idle agent CPU (max over agents)",
            f(&idle["max_cpu_percent"]),
            f(&idle["max_cpu_percent"])
                .map_or("not measured".into(), |v| format!("{v:.3}% of a core")),
            "< 1% of a core",
            f(&idle["max_cpu_percent"]).map(|v| v < 1.0),
        ),
        goal(
            "idle agent RSS (max over agents)",
            f(&idle["max_rss_mib"]),
            f(&idle["max_rss_mib"]).map_or("not measured".into(), |v| format!("{v:.1} MiB")),
            "< 30 MiB",
            f(&idle["max_rss_mib"]).map(|v| v < 30.0),
        ),
    ];
    (ratios, Value::Array(goals))
}

fn verdict(met: &Value) -> &'static str {
    match met.as_bool() {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

/// The goals as a markdown table.
pub fn goals_table(results: &Value) -> String {
    let mut s = head(&["goal", "measured", "target", ""]);
    for g in results["goals"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            g["goal"].as_str().unwrap_or_default(),
            g["measured"].as_str().unwrap_or_default(),
            g["target"].as_str().unwrap_or_default(),
            verdict(&g["met"])
        );
    }
    s
}

/// A markdown table's header and separator rows.
fn head(columns: &[&str]) -> String {
    format!(
        "| {} |\n|{}\n",
        columns.join(" | "),
        "---|".repeat(columns.len())
    )
}

fn num(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

fn pps(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x >= 1e6 => format!("{:.2} M", x / 1e6),
        Some(x) => format!("{:.0} k", x / 1e3),
        None => "-".into(),
    }
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{:.1}%", 100.0 * x.max(0.0)))
}

/// `program ns, ...` of a forwarding point's XDP in-place costs.
fn in_place(v: &Value) -> String {
    let list: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            format!(
                "{} {}",
                x["program"].as_str().unwrap_or_default(),
                num(&x["ns_per_packet"], 0)
            )
        })
        .collect();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(", ")
    }
}

/// The whole results page.
pub fn markdown(results: &Value, run: &RunInfo) -> String {
    let fig = &results["figures"];
    let mut s = String::new();
    let _ = writeln!(s, "# matrix benchmarks\n");
    let _ = writeln!(
        s,
        "Reproduce with `sudo -E {}` (as root; `--quick` for fewer repetitions). This run: \
         {}, kernel {}, {} CPUs, {} mode, {:.0} s wall time ({:.0} s of it building). \
         Every ratio compares two figures measured in the same run; raw figures are beside \
         it and in `results.json`.\n",
        run.command(),
        run.date,
        results["kernel"].as_str().unwrap_or_default(),
        results["cpus"],
        if run.quick { "quick" } else { "full" },
        run.wall.as_secs_f64(),
        run.build.as_secs_f64(),
    );
    let load = &results["load_average"];
    let _ = writeln!(
        s,
        "Load average (1 min) at the start and end of the run: {} and {} on {} CPUs: anything \
         else running shares the CPUs with the generator and the relays (the relay CPU \
         ns/packet column is the figure least affected by that).\n",
        num(&load["start"], 2),
        num(&load["end"], 2),
        results["cpus"]
    );
    if let Some(failed) = results["failed"].as_array().filter(|a| !a.is_empty()) {
        let _ = writeln!(s, "**Failed runners:** {failed:?}\n");
    }
    let _ = writeln!(s, "## Goals\n\n{}", goals_table(results));

    let x = &fig["xdp_cost"];
    let _ = writeln!(
        s,
        "## Per-packet cost, BPF_PROG_TEST_RUN\n\nTrivial XDP_TX (`matrix_baseline_tx`): {} ns \
         per run. `repeat`: the kernel's mean over {} repetitions (the frame is left as it \
         came); `paired`: the frame is rewritten, so one repetition per call (every run sees \
         the original frame), paired with a re-runnable path doing the same lookups. Median of \
         {} interleaved rounds.\n",
        num(&x["baseline_ns"], 1),
        x["repeat"],
        x["rounds"]
    );
    s += &head(&[
        "path",
        "ns/packet",
        "x XDP_TX",
        "spread ns",
        "method (paired with)",
    ]);
    for r in x["rows"].as_array().into_iter().flatten() {
        let method = match r["paired_with"].as_str() {
            Some(p) => format!("{} ({p})", r["method"].as_str().unwrap_or_default()),
            None => r["method"].as_str().unwrap_or_default().to_string(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r["path"].as_str().unwrap_or_default(),
            num(&r["ns_per_packet"], 1),
            num(&r["ratio_to_baseline"], 2),
            num(&r["ns_per_packet_spread"], 1),
            method
        );
    }

    let fw = &fig["forwarding"];
    let _ = writeln!(
        s,
        "\n## Forwarding throughput: src -> relay -> sink\n\nGenerator: {}. It runs on CPU {}, \
         the relay side (its NAPI thread, the userspace relay) on CPU {}; the sink counts in \
         XDP and drops. Offered = frames sent / run time; delivered = frames counted at the \
         sink / the same time; loss = 1 - counted / sent; ns/packet = 1e9 / delivered; relay \
         CPU = CPU time of the relay-side tasks per delivered packet; XDP in place = \
         run_time_ns / run_cnt with `kernel.bpf_stats_enabled` on. Full rate: {} s runs, \
         median of {} interleaved rounds. Plain cases (Linux forwarding, userspace relay) \
         carry the same inner packets without the 52 bytes of Geneve. In \
         `matrix_end_to_end` the relay side is the whole path after the generator (encap at \
         src, transit, decap and the sink stack routing the packet to its workload, whose \
         veth counts), all on the relay CPU. The userspace relay shares its core with its \
         own receive path: every wake-up costs two context switches for a few datagrams, so \
         its figures move with the machine's load more than the others do.\n",
        fw["generator"].as_str().unwrap_or("-"),
        fw["cpus"]["generator"],
        fw["cpus"]["relay"],
        num(&fw["seconds_per_run"], 0),
        fw["rounds"]
    );
    s += &head(&[
        "case",
        "inner B",
        "frame B",
        "offered pps",
        "delivered pps",
        "loss",
        "ns/packet",
        "relay CPU ns/packet",
        "XDP in place ns/packet",
    ]);
    let cases = fw["cases"].as_array().cloned().unwrap_or_default();
    for c in &cases {
        for z in c["sizes"].as_array().into_iter().flatten() {
            let p = &z["full_rate"];
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c["case"].as_str().unwrap_or_default(),
                z["inner_bytes"],
                z["frame_bytes"],
                pps(&p["offered_pps"]),
                pps(&p["delivered_pps"]),
                pct(&p["loss"]),
                num(&p["ns_per_packet"], 0),
                num(&p["relay_cpu_ns_per_packet"], 0),
                in_place(&p["xdp_in_place"])
            );
        }
    }
    let _ = writeln!(
        s,
        "\nAt lower offered rates ({} s runs; the generator paced by `bpf_ktime_get_ns`, \
         skipping ahead rather than bursting when it falls behind; target {}). Loss far \
         below a relay's capacity means its core was shared: while the relay thread is off \
         the CPU, the veth's 256-frame ring overflows.\n",
        num(&fw["seconds_per_ladder_run"], 0),
        fw["ladder_pps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(pps)
            .collect::<Vec<_>>()
            .join(", ")
    );
    s += &head(&[
        "case",
        "inner B",
        "target pps",
        "offered pps",
        "delivered pps",
        "loss",
        "ns/packet",
        "relay CPU ns/packet",
    ]);
    for c in &cases {
        for z in c["sizes"].as_array().into_iter().flatten() {
            for p in z["ladder"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    c["case"].as_str().unwrap_or_default(),
                    z["inner_bytes"],
                    pps(&p["target_pps"]),
                    pps(&p["offered_pps"]),
                    pps(&p["delivered_pps"]),
                    pct(&p["loss"]),
                    num(&p["ns_per_packet"], 0),
                    num(&p["relay_cpu_ns_per_packet"], 0)
                );
            }
        }
    }
    let r = &results["ratios"];
    let _ = writeln!(
        s,
        "\nRatios (delivered pps, same run): matrix / Linux forwarding {} (64 B), {} (1400 B); \
         matrix / userspace relay {} (64 B), {} (1400 B). Relay CPU per packet, Linux / matrix \
         {}, userspace / matrix {} (64 B).\n",
        num(&r["relay_vs_linux_fwd"], 2),
        num(&r["relay_vs_linux_fwd_1400"], 2),
        num(&r["relay_vs_userspace"], 2),
        num(&r["relay_vs_userspace_1400"], 2),
        num(&r["relay_cpu_linux_fwd_vs_matrix_64"], 2),
        num(&r["relay_cpu_userspace_vs_matrix_64"], 2),
    );

    let rl = &fig["route_lookup"];
    s += "## Route lookup scale (transit, BPF_PROG_TEST_RUN)\n\n";
    s += &head(&[
        "routes",
        "transit ns/packet",
        "x XDP_TX",
        "too-big twin ns/packet",
    ]);
    for z in rl["sizes"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            z["routes"],
            num(&z["transit_ns_per_packet"], 1),
            num(&z["transit_ratio_to_baseline"], 2),
            num(&z["too_big_twin_ns_per_packet"], 1)
        );
    }
    let _ = writeln!(
        s,
        "\n100k / 10 routes: {}\n",
        num(&rl["lookup_100k_vs_10"], 2)
    );

    let mu = &fig["map_update"];
    let _ = writeln!(
        s,
        "## Route writes into ROUTES ({} routes per pass)\n\n{}\
         | DataPlane::install_route, one at a time (the agent's map writer) | {} |\n\
         | DataPlane::install_routes (burst: a loop of single updates) | {} |\n\
         | raw bpf(BPF_MAP_UPDATE_ELEM) loop, same map and keys | {} |\n\
         | raw BPF_MAP_UPDATE_BATCH, one call per pass | {} |\n\n\
         agent / raw: {}; BPF_MAP_UPDATE_BATCH on the LPM trie: {}.\n",
        mu["routes_per_pass"],
        head(&["path", "routes/s"]),
        num(&mu["install_route_routes_per_s"], 0),
        num(&mu["install_routes_burst_routes_per_s"], 0),
        num(&mu["raw_update_elem_routes_per_s"], 0),
        num(&mu["raw_update_batch_routes_per_s"], 0),
        num(&mu["agent_vs_raw_update"], 3),
        mu["update_batch_on_lpm_trie"].as_str().unwrap_or("-"),
    );

    let idle = &fig["agent_idle"];
    let _ = writeln!(
        s,
        "## Idle agents ({}, {} s window)\n",
        idle["topology"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or("-"),
        num(&idle["window_s"], 0)
    );
    s += &head(&[
        "node",
        "CPU % of a core (stat)",
        "CPU % (schedstat)",
        "VmRSS MiB",
        "VmHWM MiB",
    ]);
    for a in idle["agents"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            a["node"].as_str().unwrap_or_default(),
            num(&a["cpu_percent"], 3),
            num(&a["cpu_percent_schedstat"], 3),
            num(&a["rss_mib"], 1),
            num(&a["hwm_mib"], 1)
        );
    }

    s += "\n## Routing core and flow hash (criterion, mean)\n\n";
    s += &head(&["benchmark", "time"]);
    for target in ["routing", "flow_hash"] {
        if let Some(m) = fig[target].as_object() {
            for (id, v) in m {
                let t = v["mean_ns"].as_f64().map_or("-".into(), |ns| {
                    if ns >= 1e6 {
                        format!("{:.2} ms", ns / 1e6)
                    } else if ns >= 1e3 {
                        format!("{:.2} µs", ns / 1e3)
                    } else {
                        format!("{ns:.1} ns")
                    }
                });
                let _ = writeln!(s, "| {id} | {t} |");
            }
        }
    }
    s
}
