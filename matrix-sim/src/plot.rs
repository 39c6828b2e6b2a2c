//! `--plot FILE.svg`: delivered throughput (top) and mean delay (bottom) over the whole
//! run, one line per strategy, with the end of warm-up and every cut marked, so a
//! failure and the recovery from it can be seen.
//!
//! Drawn with plotters' SVG backend and no font feature: the SVG holds `<text>` elements
//! and the viewer lays them out, so nothing here needs system fonts or libraries.

use plotters::{
    coord::{
        Shift,
        ranged1d::{AsRangedCoord, ValueFormatter},
    },
    element::DashedPathElement,
    prelude::*,
};

use crate::report::RunReport;

const SIZE: (u32, u32) = (1100, 800);
/// Okabe-Ito colours: told apart with any colour vision; one per strategy, cycling.
const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
];
const OFFERED: RGBColor = RGBColor(150, 150, 150);
const CUT: RGBColor = RGBColor(200, 0, 0);
/// Delays spanning more than this factor get a logarithmic axis: a strategy that loops
/// or queues for seconds would flatten everyone else's milliseconds to zero.
const LOG_DELAY_SPAN: f64 = 20.0;
const FONT: &str = "sans-serif";
/// Panels reach this factor above their highest value, leaving room for the legend.
const HEADROOM: f64 = 1.4;

/// What to draw: the rows of one invocation and the run's landmarks.
#[derive(Debug)]
pub struct Figure<'a> {
    pub title: String,
    pub rows: &'a [RunReport],
    pub duration_s: f64,
    pub warmup_s: f64,
    /// (label, time in seconds) of each `--fail`.
    pub cuts: Vec<(String, f64)>,
}

/// One legend entry: pieces of line (split where there is no value).
struct Line {
    name: String,
    colour: RGBColor,
    dashed: bool,
    segments: Vec<Vec<(f64, f64)>>,
}

/// A vertical line across a panel.
struct Marker {
    label: String,
    at_s: f64,
    colour: RGBColor,
}

/// The figure as SVG text.
pub fn render(fig: &Figure) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, fig).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Points of `values` (one per window) at window midpoints, inside the run (the drain
/// after traffic stops would only show throughput falling to zero); None splits a line.
fn segments(fig: &Figure, row: &RunReport, values: &[Option<f64>]) -> Vec<Vec<(f64, f64)>> {
    let s = &row.series;
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut open = false;
    for (i, v) in values.iter().enumerate() {
        let t = s.start_s(i) + s.window_s / 2.0;
        if t > fig.duration_s {
            break;
        }
        match v {
            Some(v) if open => out.last_mut().expect("open segment").push((t, *v)),
            Some(v) => {
                out.push(vec![(t, *v)]);
                open = true;
            }
            None => open = false,
        }
    }
    out
}

fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let area = root.titled(&fig.title, (FONT, 20))?;
    let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 / 2);

    let mut markers = vec![Marker {
        label: "warm-up ends".into(),
        at_s: fig.warmup_s,
        colour: OFFERED,
    }];
    for (label, at_s) in &fig.cuts {
        markers.push(Marker {
            label: label.clone(),
            at_s: *at_s,
            colour: CUT,
        });
    }

    // Throughput: one offered line (the same load for every strategy), then each
    // strategy's delivered.
    let mut lines = Vec::new();
    if let Some(first) = fig.rows.first() {
        let offered: Vec<_> = first.series.offered_mbps.iter().map(|&v| Some(v)).collect();
        lines.push(Line {
            name: "offered".into(),
            colour: OFFERED,
            dashed: true,
            segments: segments(fig, first, &offered),
        });
    }
    for (i, row) in fig.rows.iter().enumerate() {
        let delivered: Vec<_> = row.series.delivered_mbps.iter().map(|&v| Some(v)).collect();
        lines.push(Line {
            name: row.strategy.clone(),
            colour: colour(i),
            dashed: false,
            segments: segments(fig, row, &delivered),
        });
    }
    // Headroom above the lines keeps the legend (upper right) off them.
    let y_max = max_y(&lines).max(1e-3) * HEADROOM;
    panel(
        &top,
        0.0..y_max,
        (0.0, y_max),
        "delivered throughput (Mbit/s)",
        fig,
        &lines,
        &markers,
    )?;

    let lines: Vec<Line> = fig
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| Line {
            name: row.strategy.clone(),
            colour: colour(i),
            dashed: false,
            segments: segments(fig, row, &row.series.mean_delay_ms),
        })
        .collect();
    let (lo, hi) = (min_positive_y(&lines), max_y(&lines));
    let label = "mean delay of packets delivered (ms)";
    if lo > 0.0 && hi / lo > LOG_DELAY_SPAN {
        // The same share of headroom as the linear panels, in decades.
        let range = (lo / 1.5, hi * (hi / lo * 1.5).powf(HEADROOM - 1.0));
        let y = (range.0..range.1)
            .log_scale()
            .with_key_points(ticks_1_2_5(range.0, range.1));
        panel(&bottom, y, range, label, fig, &lines, &markers)
    } else {
        let range = (0.0, hi.max(1e-3) * HEADROOM);
        panel(
            &bottom,
            range.0..range.1,
            range,
            label,
            fig,
            &lines,
            &markers,
        )
    }
}

/// 1, 2, 5, 10, 20, ... within `[lo, hi]`: log-axis ticks that read as round numbers.
fn ticks_1_2_5(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if (lo..=hi).contains(&t) {
                out.push(t);
            }
        }
        decade *= 10.0;
    }
    out
}

/// A tick label without trailing zeros: 20, 2.5, 0.125.
fn tick_label(v: &f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn max_y(lines: &[Line]) -> f64 {
    let points = lines.iter().flat_map(|l| l.segments.iter().flatten());
    points.map(|p| p.1).fold(0.0, f64::max)
}

fn min_positive_y(lines: &[Line]) -> f64 {
    let points = lines.iter().flat_map(|l| l.segments.iter().flatten());
    let min = points
        .map(|p| p.1)
        .filter(|&y| y > 0.0)
        .fold(f64::INFINITY, f64::min);
    if min.is_finite() { min } else { 0.0 }
}

/// One chart: time on x, `y` (linear or log, spanning `y_span`) on y.
fn panel<DB, Y>(
    area: &DrawingArea<DB, Shift>,
    y: Y,
    y_span: (f64, f64),
    y_desc: &str,
    fig: &Figure,
    lines: &[Line],
    markers: &[Marker],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .margin_right(25)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..fig.duration_s, y)?;
    chart
        .configure_mesh()
        .x_desc("simulated time (s)")
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .x_label_formatter(&tick_label)
        .y_label_formatter(&tick_label)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for m in markers {
        let style = m.colour.stroke_width(1);
        chart.draw_series(std::iter::once(DashedPathElement::new(
            vec![(m.at_s, y_span.0), (m.at_s, y_span.1)],
            6,
            4,
            style,
        )))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((m.at_s, y_span.1))
                + Text::new(
                    m.label.clone(),
                    (4, 4),
                    (FONT, 13).into_font().color(&m.colour),
                ),
        ))?;
    }
    for line in lines {
        let style = line.colour.stroke_width(2);
        let legend = move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 20, y)], style);
        if line.dashed {
            chart
                .draw_series(
                    line.segments
                        .iter()
                        .map(|s| DashedPathElement::new(s.clone(), 6, 4, style)),
                )?
                .label(&line.name)
                .legend(legend);
        } else {
            chart
                .draw_series(
                    line.segments
                        .iter()
                        .map(|s| PathElement::new(s.clone(), style)),
                )?
                .label(&line.name)
                .legend(legend);
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_round_numbers_in_range() {
        assert_eq!(
            ticks_1_2_5(3.0, 600.0),
            [5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
        );
        assert_eq!(ticks_1_2_5(0.15, 0.6), [0.2, 0.5]);
    }

    #[test]
    fn tick_labels_drop_trailing_zeros() {
        assert_eq!(tick_label(&20.0), "20");
        assert_eq!(tick_label(&2.5), "2.5");
        assert_eq!(tick_label(&0.125), "0.125");
        assert_eq!(tick_label(&0.0), "0");
    }
}
