//! Loss curves as SVG line charts, drawn by the shared chart module ([`ingot_core::chart`]) so
//! they look like every other Ingot report.
//!
//! Non-finite points (and, on a log axis, points <= 0) are skipped and break the line there;
//! long runs are thinned to each pixel column's extremes, so a 100k-step run stays a small file.

use std::path::Path;

use ingot_core::chart::{Chart, Curve, Scale};

use crate::error::Result;

/// Chart size and axis options.
#[derive(Clone, Debug)]
pub struct ChartOptions<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Logarithmic y axis (loss over a long run, where early values dwarf late ones).
    pub log_y: bool,
    pub width: u32,
    pub height: u32,
}

impl<'a> ChartOptions<'a> {
    pub fn new(title: &'a str, x_label: &'a str, y_label: &'a str) -> Self {
        Self { title, x_label, y_label, log_y: false, width: 800, height: 480 }
    }
}

/// A line chart of `series` (name, (x, y) points), linear axes, 800x480.
pub fn loss_curve_svg(series: &[(&str, &[(f64, f64)])], title: &str, x_label: &str, y_label: &str) -> String {
    line_chart_svg(series, &ChartOptions::new(title, x_label, y_label))
}

/// Write an SVG atomically (temporary file, fsync, rename).
pub fn write_svg(path: &Path, svg: &str) -> Result<()> {
    Ok(ingot_core::atomic::write_file(path, svg.as_bytes())?)
}

/// A line chart of `series` with the given options; "no data" when nothing can be drawn.
pub fn line_chart_svg(series: &[(&str, &[(f64, f64)])], opts: &ChartOptions) -> String {
    let chart = Chart::new(opts.title)
        .x_label(opts.x_label)
        .y_label(opts.y_label)
        .y_scale(if opts.log_y { Scale::Log10 } else { Scale::Linear })
        .size(opts.width, opts.height);
    series.iter().fold(chart, |chart, (name, points)| chart.line(*name, points)).to_svg()
}

/// A chart of a training method's own figures (keys of metrics.jsonl), drawn beside loss.svg
/// at each evaluation (see `Objective::charts`).
#[derive(Clone, Debug)]
pub struct MetricChart {
    /// File name in the run folder.
    pub file: &'static str,
    pub title: &'static str,
    pub y_label: &'static str,
    /// (legend, metrics key) drawn as lines.
    pub lines: Vec<(&'static str, &'static str)>,
    /// (legend, metrics key) drawn as dots with their least-squares line, its slope in the
    /// legend: is the figure rising?
    pub trend: Option<(&'static str, &'static str)>,
    /// A horizontal reference line (legend, y), such as a configured target.
    pub level: Option<(String, f64)>,
}

/// The least-squares line through `points`: (slope, intercept); None for fewer than two
/// distinct x.
pub fn linear_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

/// `chart` drawn from `series(key)` (step, value) points; None when none of its keys has a
/// point yet.
pub fn metric_chart_svg(chart: &MetricChart, series: impl Fn(&str) -> Vec<(f64, f64)>) -> Option<String> {
    let mut svg = Chart::new(chart.title).x_label("step").y_label(chart.y_label);
    let mut any = false;
    let mut x_span = (f64::INFINITY, f64::NEG_INFINITY);
    let mut note = |points: &[(f64, f64)]| {
        for p in points {
            x_span = (x_span.0.min(p.0), x_span.1.max(p.0));
        }
    };
    for (name, key) in &chart.lines {
        let points = series(key);
        note(&points);
        any |= !points.is_empty();
        svg = svg.line(*name, &points);
    }
    if let Some((name, key)) = chart.trend {
        let points = series(key);
        note(&points);
        any |= !points.is_empty();
        svg = match linear_fit(&points) {
            Some((slope, intercept)) => svg.scatter_fit(
                name,
                &points,
                format!("trend {:+.3} per 100 steps", slope * 100.0),
                Curve::function(move |x| slope * x + intercept),
            ),
            None => svg.scatter(name, &points),
        };
    }
    if !any {
        return None;
    }
    if let (Some((name, y)), true) = (&chart.level, x_span.0 < x_span.1) {
        svg = svg.line(name.clone(), &[(x_span.0, *y), (x_span.1, *y)]);
    }
    Some(svg.to_svg())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trend_is_the_least_squares_line() {
        let (slope, intercept) = linear_fit(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((slope - 2.0).abs() < 1e-12 && (intercept - 1.0).abs() < 1e-12);
        // Noise around y = 0.5 x: the fit recovers the slope.
        let pts: Vec<(f64, f64)> =
            (0..10).map(|i| (i as f64, 0.5 * i as f64 + if i % 2 == 0 { 0.1 } else { -0.1 })).collect();
        assert!((linear_fit(&pts).unwrap().0 - 0.5).abs() < 0.02);
        assert!(linear_fit(&[(1.0, 2.0)]).is_none());
        assert!(linear_fit(&[(1.0, 2.0), (1.0, 3.0)]).is_none());
    }

    #[test]
    fn a_metric_chart_draws_its_lines_trend_and_level_or_nothing() {
        let chart = MetricChart {
            file: "reward.svg",
            title: "Reward",
            y_label: "score",
            lines: vec![("rollouts", "score")],
            trend: Some(("held-out", "eval/score")),
            level: Some(("target".into(), 1.0)),
        };
        let svg = metric_chart_svg(&chart, |key| match key {
            "score" => vec![(1.0, 0.1), (2.0, 0.3), (3.0, 0.2)],
            "eval/score" => vec![(1.0, 0.0), (3.0, 0.4)],
            _ => Vec::new(),
        })
        .unwrap();
        ingot_test_support::svg::assert_well_formed_svg(&svg);
        for text in ["rollouts", "held-out", "trend +20.000 per 100 steps", "target"] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(metric_chart_svg(&chart, |_| Vec::new()).is_none());
    }
}
