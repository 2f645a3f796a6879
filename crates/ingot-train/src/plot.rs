//! Loss curves as SVG line charts, drawn by the shared chart module ([`ingot_core::chart`]) so
//! they look like every other Ingot report.
//!
//! Non-finite points (and, on a log axis, points <= 0) are skipped and break the line there;
//! long runs are thinned to each pixel column's extremes, so a 100k-step run stays a small file.

use std::path::Path;

use ingot_core::chart::{Chart, Scale};

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
