//! Loss curves as self-contained SVG line charts: no plotting dependency, opens in any browser.
//!
//! A chart has a title, axes with "nice" ticks (1, 2 or 5 times a power of ten), axis labels,
//! a legend, and one line per series. Non-finite points (and, on a log axis, points <= 0) are
//! skipped and break the line there. Series longer than the plot is wide are thinned to the
//! minimum and maximum of each pixel column, so a 100k-step run stays a small file and its noise
//! band still shows.

use std::fmt::Write;
use std::path::Path;

use crate::error::Result;

/// Line colours (Tableau 10, as matplotlib's default cycle), reused in turn.
const PALETTE: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

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
    Ok(ingot_core::assets::write_atomic(path, svg.as_bytes())?)
}

// Plot area margins in pixels: room for the title, tick labels and axis labels.
const LEFT: f64 = 72.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 56.0;

/// A line chart of `series` with the given options.
pub fn line_chart_svg(series: &[(&str, &[(f64, f64)])], opts: &ChartOptions) -> String {
    let (w, h) = (opts.width.max(200) as f64, opts.height.max(150) as f64);
    let (plot_w, plot_h) = (w - LEFT - RIGHT, h - TOP - BOTTOM);
    let log_y = opts.log_y;
    let usable = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);

    // Data ranges over every usable point of every series.
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for (_, points) in series {
        for &(x, y) in points.iter().filter(|p| usable(p)) {
            (x_lo, x_hi) = (x_lo.min(x), x_hi.max(x));
            (y_lo, y_hi) = (y_lo.min(y), y_hi.max(y));
        }
    }
    let has_data = x_lo <= x_hi;
    if !has_data {
        (x_lo, x_hi, y_lo, y_hi) = (0.0, 1.0, if log_y { 1.0 } else { 0.0 }, if log_y { 10.0 } else { 1.0 });
    }
    let (x_lo, x_hi) = widen(x_lo, x_hi, false);
    let (y_lo, y_hi) = widen(y_lo, y_hi, log_y);
    // Axis transform: y in log10 space on a log axis. A little headroom above and below the data.
    let ty = |y: f64| if log_y { y.log10() } else { y };
    let (ty_lo, ty_hi) = (ty(y_lo), ty(y_hi));
    let pad = 0.04 * (ty_hi - ty_lo);
    let (ty_lo, ty_hi) = (ty_lo - pad, ty_hi + pad);
    let px = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w;
    let py = |y: f64| TOP + (ty_hi - ty(y)) / (ty_hi - ty_lo) * plot_h;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="Helvetica, Arial, sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{cx}" y="26" text-anchor="middle" font-size="16" font-weight="bold">{title}</text>
"##,
        cx = LEFT + plot_w / 2.0,
        title = escape(opts.title),
    );

    // Grid lines and tick labels.
    let x_ticks = nice_ticks(x_lo, x_hi, (plot_w / 90.0).max(2.0) as usize);
    let y_ticks = if log_y { log_ticks(y_lo, y_hi) } else { nice_ticks(y_lo, y_hi, (plot_h / 60.0).max(2.0) as usize) };
    svg.push_str(r##"<g stroke="#e0e0e0" stroke-width="1">"##);
    for &x in &x_ticks {
        let _ = write!(svg, r#"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1:.1}"/>"#, px(x), TOP + plot_h);
    }
    for &y in &y_ticks {
        let _ = write!(svg, r#"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}"/>"#, py(y), LEFT + plot_w);
    }
    svg.push_str("</g>\n<g fill=\"#333\">");
    let x_step = x_ticks.get(1).zip(x_ticks.first()).map_or(1.0, |(b, a)| b - a);
    for &x in &x_ticks {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            px(x),
            TOP + plot_h + 18.0,
            tick_label(x, x_step)
        );
    }
    let y_step = y_ticks.get(1).zip(y_ticks.first()).map_or(1.0, |(b, a)| b - a);
    for &y in &y_ticks {
        // Log ticks are unevenly spaced: give each the decimals it needs (0.05, 0.1, 2, 10).
        let label = if log_y { short_label(y) } else { tick_label(y, y_step) };
        let _ = write!(svg, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#, LEFT - 8.0, py(y) + 4.0);
    }
    svg.push_str("</g>\n");

    // Axis frame and labels.
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>
<text x="{cx}" y="{xl_y}" text-anchor="middle">{x_label}</text>
<text x="18" y="{cy}" text-anchor="middle" transform="rotate(-90 18 {cy})">{y_label}{log}</text>
"##,
        cx = LEFT + plot_w / 2.0,
        xl_y = h - 14.0,
        cy = TOP + plot_h / 2.0,
        x_label = escape(opts.x_label),
        y_label = escape(opts.y_label),
        log = if log_y { " (log scale)" } else { "" },
    );

    // One path per series; a non-finite point starts a new sub-path.
    let _ = write!(
        svg,
        r#"<clipPath id="plot"><rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/></clipPath>"#
    );
    svg.push('\n');
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let thinned = thin(points, x_lo, x_hi, plot_w as usize, &usable);
        // Few points (an eval every N steps): mark each one, so the reader sees where they are.
        let sparse = thinned.iter().flatten().count() <= 60;
        let mut d = String::new();
        let mut pen_down = false;
        let mut dots = Vec::new();
        for (j, p) in thinned.iter().enumerate() {
            match p {
                Some((x, y)) => {
                    let _ = write!(d, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, px(*x), py(*y));
                    let next_usable = thinned.get(j + 1).is_some_and(Option::is_some);
                    if sparse || (!pen_down && !next_usable) {
                        dots.push((px(*x), py(*y))); // an isolated point would not show as a line
                    }
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = writeln!(
            svg,
            r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="1.6" stroke-linejoin="round" clip-path="url(#plot)"><title>{}</title></path>"#,
            d.trim_end(),
            escape(name)
        );
        for (x, y) in dots {
            let _ = writeln!(svg, r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{colour}"/>"#);
        }
    }
    if !has_data {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#888">no data</text>"##,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }

    // Legend, top right inside the plot (loss curves fall, so it is usually empty there).
    if !series.is_empty() {
        let longest = series.iter().map(|(n, _)| n.chars().count()).max().unwrap_or(0) as f64;
        let (lw, lh) = (36.0 + 7.0 * longest, 8.0 + 18.0 * series.len() as f64);
        let (lx, ly) = (LEFT + plot_w - lw - 10.0, TOP + 10.0);
        let _ = writeln!(
            svg,
            r##"<rect x="{lx:.1}" y="{ly:.1}" width="{lw:.1}" height="{lh:.1}" fill="white" fill-opacity="0.85" stroke="#bbb"/>"##
        );
        for (i, (name, _)) in series.iter().enumerate() {
            let y = ly + 16.0 + 18.0 * i as f64;
            let colour = PALETTE[i % PALETTE.len()];
            let _ = writeln!(
                svg,
                r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2.5"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                lx + 8.0,
                y - 4.0,
                lx + 28.0,
                y - 4.0,
                lx + 34.0,
                y,
                escape(name)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// Give a degenerate range (one value) some width so it can be drawn.
fn widen(lo: f64, hi: f64, log: bool) -> (f64, f64) {
    if hi > lo {
        return (lo, hi);
    }
    if log {
        (lo / 2.0, hi * 2.0)
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    }
}

/// About `target` evenly spaced round values (1, 2 or 5 times a power of ten) inside [lo, hi].
fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil();
    let mut ticks = Vec::new();
    let mut k = first;
    while k * step <= hi + step * 1e-9 && ticks.len() < 100 {
        // k * step rather than accumulating, so 0.1 + 0.2 drift never shows as 0.30000000000000004.
        ticks.push(k * step);
        k += 1.0;
    }
    ticks
}

/// Ticks for a log axis: powers of ten, with 2x and 5x (or every integer multiple) in between when
/// the range spans few decades, so a loss falling from 10 to 3 still gets labels.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (hi / lo).log10();
    let multiples: &[f64] = if decades >= 4.0 {
        &[1.0]
    } else if decades >= 1.5 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    };
    let mut ticks = Vec::new();
    for e in (lo.log10().floor() as i32)..=(hi.log10().ceil() as i32) {
        for m in multiples {
            let t = m * 10f64.powi(e);
            if t >= lo * (1.0 - 1e-9) && t <= hi * (1.0 + 1e-9) {
                ticks.push(t);
            }
        }
    }
    if ticks.len() < 2 {
        ticks = nice_ticks(lo, hi, 4).into_iter().filter(|t| *t > 0.0).collect();
    }
    ticks
}

/// A tick value with as many decimals as the tick spacing needs; large round numbers as 20k, 1.5M.
fn tick_label(v: f64, step: f64) -> String {
    let v = if v.abs() < step.abs() * 1e-9 { 0.0 } else { v }; // no "-0" or "1e-17"
    if v.abs() >= 1e6 && step.abs() >= 1e5 {
        return format!("{}M", trim(v / 1e6, (step.abs() / 1e6).log10()));
    }
    if v.abs() >= 1e4 && step.abs() >= 1e3 {
        return format!("{}k", trim(v / 1e3, (step.abs() / 1e3).log10()));
    }
    trim(v, step.abs().log10())
}

/// A value with the fewest decimals (up to 8) that show it exactly: 0.05, 2, 0.125.
fn short_label(v: f64) -> String {
    if v.abs() >= 1e4 {
        return tick_label(v, v);
    }
    let decimals = (0..8).find(|&d| {
        let scaled = v * 10f64.powi(d);
        (scaled - scaled.round()).abs() <= 1e-6 * scaled.abs().max(1.0)
    });
    let decimals = decimals.unwrap_or(8) as usize;
    format!("{v:.decimals$}")
}

fn trim(v: f64, step_log10: f64) -> String {
    let decimals = if step_log10.is_finite() { (-step_log10.floor()).clamp(0.0, 8.0) as usize } else { 2 };
    format!("{v:.decimals$}")
}

/// The usable points of a series, with `None` where a non-usable point breaks the line. Longer
/// than 2 points per pixel column: the first, min, max and last of each column, in order.
fn thin(
    points: &[(f64, f64)],
    x_lo: f64,
    x_hi: f64,
    columns: usize,
    usable: &dyn Fn(&(f64, f64)) -> bool,
) -> Vec<Option<(f64, f64)>> {
    let columns = columns.max(1);
    if points.len() <= 2 * columns {
        return points.iter().map(|p| usable(p).then_some(*p)).collect();
    }
    let column = |x: f64| (((x - x_lo) / (x_hi - x_lo) * columns as f64) as usize).min(columns - 1);
    let mut out = Vec::new();
    // The current run of usable points in the same pixel column.
    let mut bucket: Vec<(f64, f64)> = Vec::new();
    let flush = |bucket: &mut Vec<(f64, f64)>, out: &mut Vec<Option<(f64, f64)>>| {
        if bucket.is_empty() {
            return;
        }
        let lo = bucket.iter().enumerate().min_by(|a, b| a.1 .1.total_cmp(&b.1 .1)).map(|(i, _)| i).unwrap_or(0);
        let hi = bucket.iter().enumerate().max_by(|a, b| a.1 .1.total_cmp(&b.1 .1)).map(|(i, _)| i).unwrap_or(0);
        let mut keep = vec![0, lo, hi, bucket.len() - 1];
        keep.sort_unstable();
        keep.dedup();
        out.extend(keep.into_iter().map(|i| Some(bucket[i])));
        bucket.clear();
    };
    for p in points {
        if !usable(p) {
            flush(&mut bucket, &mut out);
            out.push(None);
            continue;
        }
        if bucket.last().is_some_and(|b| column(b.0) != column(p.0)) {
            flush(&mut bucket, &mut out);
        }
        bucket.push(*p);
    }
    flush(&mut bucket, &mut out);
    out
}

/// Escape text for SVG (XML) content and attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_ticks(0.0, 1000.0, 5), vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
        assert_eq!(nice_ticks(2.1, 3.9, 4), vec![2.5, 3.0, 3.5]);
        assert_eq!(log_ticks(3.0, 11.0), vec![3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        let wide = log_ticks(0.01, 1000.0);
        let want = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0];
        assert_eq!(wide.len(), want.len(), "{wide:?}");
        assert!(wide.iter().zip(want).all(|(a, b)| (a - b).abs() <= 1e-12 * b), "{wide:?}");
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(20000.0, 5000.0), "20k");
        assert_eq!(tick_label(2.5, 0.5), "2.5");
        assert_eq!(tick_label(400.0, 200.0), "400");
        assert_eq!(short_label(0.05), "0.05");
        assert_eq!(short_label(10.0), "10");
        assert_eq!(short_label(2.2), "2.2");
    }

    #[test]
    fn thinning_keeps_extremes() {
        let points: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, if i == 5_000 { 100.0 } else { 1.0 })).collect();
        let thinned = thin(&points, 0.0, 9_999.0, 100, &|p| p.1.is_finite());
        assert!(thinned.len() <= 400, "{} points", thinned.len());
        assert!(thinned.iter().flatten().any(|p| p.1 == 100.0), "the spike was thinned away");
        assert_eq!(thinned.first(), Some(&Some((0.0, 1.0))));
        assert_eq!(thinned.last(), Some(&Some((9_999.0, 1.0))));
    }
}
