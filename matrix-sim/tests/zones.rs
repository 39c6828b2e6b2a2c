//! Zoned fleets under the real routing core: path stretch against the true shortest
//! paths, and the death of a border node.

use matrix_sim::{Setup, SimArgs, Topology, engine, run_reports};

fn fleet(topology: &str, rate: f64, duration: f64) -> SimArgs {
    SimArgs {
        topology: topology.into(),
        strategy: "shortest".into(),
        rate,
        duration,
        warmup: 3.0,
        quiet: true,
        ..SimArgs::default()
    }
}

#[test]
fn stretch_is_one_on_a_flat_grid_and_never_below_one_with_zones() {
    // One zone, every link 2 ms: shortest paths by cost are least-delay paths.
    let rows = run_reports(&fleet("grid:6x6", 0.5, 5.0)).unwrap();
    let r = &rows[0];
    eprintln!(
        "grid:6x6 stretch {:?} p99 {:?} max {:?} over {}",
        r.stretch_mean, r.stretch_p99, r.stretch_max, r.stretch_packets
    );
    assert!(r.stretch_packets > 1000, "{}", r.stretch_packets);
    assert!((r.stretch_mean.unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(r.stretch_p99, Some(1.0));
    // Zones of random delays: routes to a remote zone go to its nearest border by cost,
    // which is not always on the least-delay path to the host behind it.
    let setup = Setup::new(&fleet("random:300", 0.1, 5.0)).unwrap();
    assert!(setup.info.zones > 1);
    let s = engine::simulate(&setup.topology, &setup.plan, &setup.config).stretch;
    eprintln!("random:300 {s:?}");
    assert!(s.packets > 1000, "{s:?}");
    assert!(s.min.unwrap() >= 1.0, "{s:?}");
    assert!(
        s.mean.unwrap() >= 1.0 && s.p99.unwrap() >= s.mean.unwrap(),
        "{s:?}"
    );
}

/// The border node of `topo` with the most links to other zones.
fn busiest_border(topo: &Topology) -> usize {
    let zone = |n: usize| topo.nodes[n].id.zone();
    (0..topo.nodes.len())
        .max_by_key(|&n| {
            topo.links
                .iter()
                .filter(|l| {
                    (l.a == n && zone(l.b) != zone(n)) || (l.b == n && zone(l.a) != zone(n))
                })
                .count()
        })
        .unwrap()
}

#[test]
fn a_border_node_dies_and_the_flows_through_it_recover() {
    let topo = Topology::from_spec("random:300", 1).unwrap();
    let border = busiest_border(&topo);
    assert!(topo.is_border(border));
    let mut args = fleet("random:300", 0.1, 8.0);
    args.fail_node = vec![format!("{}@5", topo.nodes[border].name)];
    let rows = run_reports(&args).unwrap();
    let r = &rows[0];
    eprintln!(
        "{} (zone {}) dies: recovery {:?} ms, all {:?} ms, {} flows, delivered {:.4}, drops {:?}",
        topo.nodes[border].name,
        r.run.failed_nodes[0].zone,
        r.recovery_ms,
        r.recovery_all_ms,
        r.affected_flows,
        r.delivered_ratio,
        r.drops
    );
    let f = &r.run.failed_nodes[0];
    assert!(f.border && f.zone == topo.nodes[border].id.zone() && f.at_s == 5.0);
    assert!(r.affected_flows > 10, "{}", r.affected_flows);
    let rec = r.recovery_ms.expect("the flows through it recover");
    assert!(rec <= 1000.0, "{rec}");
}
