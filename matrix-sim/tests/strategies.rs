//! The real routing core in the simulator: every strategy on NSFNET under one load.
//! Durations are short (seconds of simulated time) so the suite stays quick in debug.

use matrix_sim::{RunReport, SimArgs, run, run_reports};

fn nsfnet(load: &str, duration: f64) -> SimArgs {
    SimArgs {
        topology: "nsfnet".into(),
        strategy: "all".into(),
        load: load.into(),
        duration,
        warmup: 3.0,
        ..SimArgs::default()
    }
}

fn row<'a>(rows: &'a [RunReport], strategy: &str) -> &'a RunReport {
    rows.iter().find(|r| r.strategy == strategy).unwrap()
}

/// `direct` routes only to configured peers (one LAN): on NSFNET it reaches the 3 or so
/// neighbours of each node, not the other 10. Every other strategy reaches everyone.
fn delivered_floor(strategy: &str) -> f64 {
    if strategy == "direct" { 0.1 } else { 0.9 }
}

#[test]
fn every_strategy_delivers_under_the_same_uniform_load() {
    let rows = run_reports(&nsfnet("uniform", 8.0)).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.strategy.as_str()).collect();
    assert_eq!(names, ["direct", "shortest", "antnet", "q-routing"]);
    let offered = rows[0].offered_packets;
    for r in &rows {
        eprintln!(
            "{:<10} delivered {:.4} mean {:?} ms p99 {:?} ms ctrl {:.1}/node/s state {:.1} drops {:?}",
            r.strategy,
            r.delivered_ratio,
            r.mean_delay_ms,
            r.p99_delay_ms,
            r.control_msgs_per_node_s,
            r.state_entries_per_node,
            r.drops
        );
        // Same load for everyone: the traffic does not depend on the routing.
        assert_eq!(r.offered_packets, offered, "{}", r.strategy);
        assert_eq!(r.offered_packets, r.delivered_packets + r.drops.total());
        assert!(
            r.delivered_ratio > delivered_floor(&r.strategy),
            "{} delivered {}",
            r.strategy,
            r.delivered_ratio
        );
        assert!(
            r.mean_delay_ms.unwrap() > 0.0 && r.p99_delay_ms.unwrap() >= r.mean_delay_ms.unwrap()
        );
        assert!(r.control_msgs_per_node_s > 0.0, "{}", r.strategy);
        assert!(r.state_entries_per_node > 0.0, "{}", r.strategy);
        assert!(r.recovery_ms.is_none(), "no failure, no recovery time");
    }
}

#[test]
fn every_strategy_recovers_from_a_cut() {
    // Champaign - Pittsburgh lies on more shortest paths than any other NSFNET link
    // (42 of the 182 ordered pairs, by delay).
    let mut args = nsfnet("uniform", 9.0);
    args.fail = vec!["0.8-0.9@5".into()];
    let rows = run_reports(&args).unwrap();
    for r in &rows {
        eprintln!(
            "{:<10} recovery {:?} ms delivered {:.4} drops {:?}",
            r.strategy, r.recovery_ms, r.delivered_ratio, r.drops
        );
    }
    for r in &rows {
        if r.strategy == "direct" {
            // The pairs that used the link were neighbours: with one hop to peers only,
            // nothing can carry their traffic once it is cut.
            continue;
        }
        let rec = r
            .recovery_ms
            .unwrap_or_else(|| panic!("{} never recovered", r.strategy));
        assert!(rec <= 1000.0, "{} took {rec} ms", r.strategy);
    }
}

/// The paper's uneven load: AntNet spreads traffic over several paths by pheromone,
/// where load-priced shortest paths move whole destinations from link to link. Over
/// seeds 1-6 (10 s runs) AntNet's mean delay was 0.43-0.77 of shortest's.
#[test]
fn antnet_beats_shortest_under_hot_spots() {
    let mut args = nsfnet("hotspot", 10.0);
    args.strategy = "shortest,antnet".into();
    let rows = run_reports(&args).unwrap();
    let (s, a) = (row(&rows, "shortest"), row(&rows, "antnet"));
    eprintln!(
        "hotspot load: shortest mean {:?} ms p99 {:?} ms delivered {:.4}; \
         antnet mean {:?} ms p99 {:?} ms delivered {:.4}",
        s.mean_delay_ms,
        s.p99_delay_ms,
        s.delivered_ratio,
        a.mean_delay_ms,
        a.p99_delay_ms,
        a.delivered_ratio
    );
    assert!(s.delivered_ratio > 0.8 && a.delivered_ratio > 0.8);
    assert!(a.mean_delay_ms.unwrap() <= s.mean_delay_ms.unwrap());
}

#[test]
fn same_seed_same_json() {
    let mut args = nsfnet("hotspot", 5.0);
    args.warmup = 1.0;
    args.json = true;
    args.fail = vec!["0.8-0.9@3".into()];
    let a = run(&args).unwrap();
    let b = run(&args).unwrap();
    assert_eq!(a, b);
    args.seed = 2;
    assert_ne!(run(&args).unwrap(), a);
}

#[test]
fn json_rows_have_the_documented_keys() {
    let mut args = nsfnet("uniform", 2.0);
    args.warmup = 1.0;
    args.strategy = "shortest".into();
    args.json = true;
    let out = run(&args).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    for key in [
        "strategy",
        "delivered_ratio",
        "throughput_bps",
        "mean_delay_ms",
        "p99_delay_ms",
        "control_msgs_per_node_s",
        "state_entries_per_node",
        "state_entries_max",
        "recovery_ms",
        "stretch_mean",
        "stretch_p99",
        "drops",
    ] {
        assert!(rows[0].get(key).is_some(), "missing {key} in {out}");
    }
    assert_eq!(rows[0]["strategy"], "shortest");
    assert!(rows[0]["recovery_ms"].is_null());
    // And the table form has one row per strategy under a header.
    args.json = false;
    let table = run(&args).unwrap();
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.lines().nth(2).unwrap().starts_with("shortest"));
}

#[test]
fn zoned_fleet_runs_and_keeps_zone_routes() {
    let args = SimArgs {
        topology: "random:300".into(),
        strategy: "shortest".into(),
        rate: 0.002,
        duration: 2.0,
        warmup: 1.5,
        ..SimArgs::default()
    };
    let rows = run_reports(&args).unwrap();
    let r = &rows[0];
    eprintln!("{r:?}");
    assert!(r.run.zones > 1);
    // Per-host routes inside a zone (~17 hosts) and one per remote zone (~17): far
    // fewer than one per node.
    assert!(r.routes_per_node < 60.0, "{}", r.routes_per_node);
    assert!(r.delivered_ratio > 0.9, "{}", r.delivered_ratio);
}

#[test]
fn a_traffic_matrix_file_sets_the_load() {
    let path = std::env::temp_dir().join(format!("matrix-sim-tm-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[flow]]\nsrc = \"0.1\"\ndst = \"0.14\"\nrate_pps = 200.0\n\
         [[flow]]\nsrc = \"0.3\"\ndst = \"0.12\"\nrate_pps = 100.0\n",
    )
    .unwrap();
    let mut args = nsfnet(path.to_str().unwrap(), 5.0);
    args.strategy = "shortest".into();
    args.rate = 1.5;
    let rows = run_reports(&args);
    std::fs::remove_file(&path).unwrap();
    let r = &rows.unwrap()[0];
    // (200 + 100) packets/s x 1.5 over the 2 s window, give or take session noise.
    let pps = r.offered_packets as f64 / 2.0;
    assert!((225.0..675.0).contains(&pps), "{pps}");
    // The larger flow is 1.2 Mbit/s of 512-byte packets on 1.5 Mbit/s T1 links: it
    // fits, so nearly everything arrives.
    assert!(r.delivered_ratio > 0.95, "{}", r.delivered_ratio);
}

#[test]
fn bad_arguments_name_the_value() {
    let err = |f: &dyn Fn(&mut SimArgs)| {
        let mut a = nsfnet("uniform", 1.0);
        a.warmup = 0.5;
        f(&mut a);
        run(&a).unwrap_err().to_string()
    };
    let e = err(&|a| a.topology = "random:zz".into());
    assert!(e.contains("`zz`"), "{e}");
    let e = err(&|a| a.topology = "grid:3y3".into());
    assert!(e.contains("`3y3`"), "{e}");
    let e = err(&|a| a.strategy = "ospf".into());
    assert!(e.contains("`ospf`"), "{e}");
    let e = err(&|a| a.fail = vec!["0.1-0.99@0.5".into()]);
    assert!(e.contains("`0.1-0.99@0.5`"), "{e}");
    let e = err(&|a| a.fail = vec!["0.1-0.14@0.5".into()]);
    assert!(e.contains("no link between 0.1 and 0.14"), "{e}");
    let e = err(&|a| a.fail = vec!["0.1-0.2@7".into()]);
    assert!(e.contains("7 s is outside the run"), "{e}");
    let e = err(&|a| a.fail = vec!["0.1-0.2@0.5".into(), "0.2-0.1@0.7".into()]);
    assert!(
        e.contains("`0.2-0.1@0.7`") && e.contains("already cut"),
        "{e}"
    );
    let e = err(&|a| a.fail_node = vec!["0.99@0.5".into()]);
    assert!(e.contains("`0.99` is not a node"), "{e}");
    let e = err(&|a| a.fail_node = vec!["0.3".into()]);
    assert!(e.contains("expected NODE@SECONDS"), "{e}");
    let e = err(&|a| a.fail_node = vec!["0.3@0.2".into(), "0.3@0.4".into()]);
    assert!(
        e.contains("`0.3@0.4`") && e.contains("already fails"),
        "{e}"
    );
    let e = err(&|a| a.load = "/nonexistent/tm.toml".into());
    assert!(e.contains("/nonexistent/tm.toml"), "{e}");
    let e = err(&|a| a.params = vec!["colour=1".into()]);
    assert!(e.contains("colour"), "{e}");
    let e = err(&|a| a.warmup = 2.0);
    assert!(e.contains("--warmup `2`"), "{e}");
    let e = err(&|a| a.rate = -1.0);
    assert!(e.contains("--rate `-1`"), "{e}");
}
