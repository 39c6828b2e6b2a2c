//! The time series behind `--plot`, and the SVG it draws.

use std::{collections::HashSet, path::PathBuf};

use matrix_sim::{SimArgs, run, run_reports};

fn nsfnet(duration: f64, warmup: f64) -> SimArgs {
    SimArgs {
        topology: "nsfnet".into(),
        strategy: "all".into(),
        load: "uniform".into(),
        duration,
        warmup,
        fail: vec!["0.8-0.9@3".into()],
        ..SimArgs::default()
    }
}

fn temp_svg(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("matrix-sim-{name}-{}.svg", std::process::id()))
}

#[test]
fn series_add_up_to_the_report() {
    // Warm-up and duration on window edges (100 ms), so the measured windows are exact.
    let args = nsfnet(5.0, 2.0);
    let rows = run_reports(&args).unwrap();
    for r in &rows {
        let s = &r.series;
        assert_eq!(s.window_s, 0.1);
        let measured = s.windows_within(args.warmup, args.duration);
        assert_eq!(measured, 20..50, "{}", r.strategy);
        // Offered counts by creation time, as the report does: equal exactly.
        let offered: u64 = s.offered[measured.clone()].iter().sum();
        assert_eq!(offered, r.offered_packets, "{}", r.strategy);
        // Delivered counts by arrival time; the report by creation time. They differ only
        // by packets crossing the window's edges: created in warm-up and delivered after
        // it (`early`), created before the end and delivered in the drain after it.
        let in_window: u64 = s.delivered[measured.clone()].iter().sum();
        let drain: u64 = s.delivered[measured.end..].iter().sum();
        let early = (in_window + drain)
            .checked_sub(r.delivered_packets)
            .unwrap_or_else(|| panic!("{}: fewer by arrival than by creation", r.strategy));
        // At most what arrives in the first 200 ms: NSFNET paths take tens of ms.
        let first: u64 = s.delivered[20..22].iter().sum();
        assert!(
            early <= first,
            "{}: {early} early, {first} first",
            r.strategy
        );
        // The rate columns say the same as the counts, in Mbit/s of 512-byte packets.
        for i in measured.clone() {
            let mbit = s.delivered[i] as f64 * 512.0 * 8.0 / 1e6 / 0.1;
            assert!(
                (s.delivered_mbps[i] - mbit).abs() < 1e-9,
                "{} window {i}",
                r.strategy
            );
        }
        // Mean delay of the arrivals from the window on (the drain included: packets
        // created late in the window arrive after it, with the longest delays), weighted,
        // is the report's mean (close to: a few early arrivals were created before it).
        let (mut sum, mut n) = (0.0, 0u64);
        for i in measured.start..s.delivered.len() {
            if let Some(d) = s.mean_delay_ms[i] {
                sum += d * s.delivered[i] as f64;
                n += s.delivered[i];
            }
        }
        let (series_mean, mean) = (sum / n as f64, r.mean_delay_ms.unwrap());
        assert!(
            (series_mean - mean).abs() < 0.02 * mean,
            "{}: series {series_mean} ms, report {mean} ms",
            r.strategy
        );
    }
}

/// Checks that tags nest and close, as XML requires; returns the text between tags.
fn xml_texts(svg: &str) -> Vec<String> {
    let mut open: Vec<&str> = Vec::new();
    let mut texts = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let text = rest[..start].trim();
        if !text.is_empty() {
            texts.push(text.to_string());
        }
        let end = rest[start..].find('>').expect("unclosed tag") + start;
        let tag = &rest[start + 1..end];
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap();
        if let Some(closing) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(closing.trim()), "misnested </{closing}>");
        } else if !tag.ends_with('/') {
            open.push(name);
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty(), "unclosed {open:?}");
    texts
}

/// (stroke colour, points) of every polyline.
fn polylines(svg: &str) -> Vec<(String, usize)> {
    svg.split("<polyline")
        .skip(1)
        .map(|p| {
            let attr = |name: &str| {
                let from = p.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                p[from..from + p[from..].find('"').unwrap()].to_string()
            };
            (attr("stroke"), attr("points").split_whitespace().count())
        })
        .collect()
}

#[test]
fn plot_draws_every_strategy_with_legend_and_markers() {
    let path = temp_svg("plot");
    let mut args = nsfnet(4.0, 1.0);
    args.plot = Some(path.clone());
    let table = run(&args).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(table.starts_with("nsfnet"), "the table is still printed");
    assert!(svg.starts_with("<svg") && svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    let texts = xml_texts(&svg);
    let has = |t: &str| texts.iter().any(|x| x == t);
    let title = &texts[0];
    assert!(
        title.starts_with("nsfnet") && title.contains("load uniform") && title.contains("seed 1"),
        "{title}"
    );
    for name in ["direct", "shortest", "antnet", "q-routing", "offered"] {
        assert!(has(name), "no legend entry {name} in {texts:?}");
    }
    for label in [
        "warm-up ends",
        "cut 0.8-0.9",
        "simulated time (s)",
        "delivered throughput (Mbit/s)",
        "mean delay of packets delivered (ms)",
    ] {
        assert!(has(label), "no {label} in {texts:?}");
    }
    // One line per strategy in each panel: 40 windows of 100 ms, in one piece or a few.
    let long: Vec<_> = polylines(&svg).into_iter().filter(|p| p.1 >= 10).collect();
    let colours: HashSet<&str> = long.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(colours.len(), 4, "{long:?}");
    assert!(long.len() >= 8, "{long:?}");
    for (_, points) in &long {
        assert!(*points <= 40, "points past the run's 40 windows");
    }
}

#[test]
fn plot_of_one_strategy_has_one_line_per_panel() {
    let path = temp_svg("one");
    let mut args = nsfnet(2.0, 1.0);
    args.strategy = "shortest".into();
    args.fail.clear();
    args.plot = Some(path.clone());
    run(&args).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let texts = xml_texts(&svg);
    assert!(texts.iter().any(|t| t == "shortest"));
    assert!(!texts.iter().any(|t| t == "antnet" || t.starts_with("cut ")));
    let long: Vec<_> = polylines(&svg).into_iter().filter(|p| p.1 >= 10).collect();
    assert_eq!(long.len(), 2, "{long:?}");
    assert_eq!(long[0].0, long[1].0);
}

#[test]
fn unwritable_plot_path_fails_first_and_names_it() {
    let mut args = nsfnet(30.0, 5.0);
    args.topology = "random:3000".into();
    args.fail.clear();
    args.plot = Some("/nonexistent/dir/fig.svg".into());
    let started = std::time::Instant::now();
    let e = run(&args).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/dir/fig.svg"), "{e}");
    // Before the run: 30 s of a 3000-node fleet would take far longer in debug.
    assert!(started.elapsed().as_secs() < 20, "{e}");
}
