//! Charts as self-contained SVG (no plotting dependency; opens in any browser): line charts,
//! bar charts with error whiskers, and scatter plots with a fitted curve, in one house style so
//! every report Ingot writes looks alike.
//!
//! ```
//! use ingot_core::chart::{Bar, Chart, Curve, Scale};
//! let loss = Chart::new("Loss").x_label("step").y_label("loss").y_scale(Scale::Log10)
//!     .line("train", &[(0.0, 9.0), (100.0, 4.0), (200.0, 3.1)])
//!     .to_svg();
//! let scores = Chart::new("SmolLM2-135M").x_label("accuracy (%)").x_range(0.0, 100.0).horizontal()
//!     .bars("", vec![Bar::new("piqa (acc_norm)", 67.2, Some(1.1))])
//!     .to_svg();
//! let fit = Chart::new("Scaling").x_scale(Scale::Log10).y_scale(Scale::Log10)
//!     .scatter_fit("runs", &[(1e6, 5.0), (1e7, 4.1), (1e8, 3.4)], "fit", Curve::function(|n| 20.0 * n.powf(-0.1)))
//!     .to_svg();
//! # assert!(loss.starts_with("<svg") && scores.starts_with("<svg") && fit.starts_with("<svg"));
//! ```
//!
//! Axes are linear or log10, with "nice" ticks (1, 2 or 5 times a power of ten). Points that cannot
//! be drawn (NaN, infinities, values <= 0 on a log axis) are skipped: a line breaks there, a bar or
//! a scatter point is left out. A chart with nothing to draw shows a "no data" notice. Line series
//! longer than the plot is wide are thinned to the first, lowest, highest and last point of each
//! pixel column, so a 100k-step loss curve stays a small file and its noise band still shows.
//!
//! A chart is either numeric (lines, scatter, fits) or categorical (bars); the axes named `x` and
//! `y` are always the visual ones, so a horizontal bar chart's values run along `x`.

use std::fmt::Write;

/// Series colours (Tableau 10, as matplotlib's default cycle), reused in turn.
pub const PALETTE: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

// The house style.
const FONT: &str = "Helvetica, Arial, sans-serif";
const GRID: &str = "#e0e0e0";
const INK: &str = "#333";
/// Average width of a 12 px Helvetica character, to lay out labels without measuring text.
const CHAR_W: f64 = 6.6;
// Margins around the plot area: room for the title, tick labels and axis labels.
const LEFT: f64 = 72.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 56.0;
/// Headroom above and below auto-ranged data, as a fraction of the axis (in axis space).
const PAD: f64 = 0.04;
/// Pixel coordinates are clamped to this far outside the canvas: a finite value far outside a
/// fixed range must not print as a 300-digit number.
const PX_LIMIT: f64 = 1e5;
/// Up to this many points on a line, every point is also marked (an eval every N steps).
const SPARSE: usize = 60;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scale {
    #[default]
    Linear,
    /// Logarithmic (base 10): loss over a long run, parameter counts, compute.
    Log10,
}

impl Scale {
    /// Whether `v` can be placed on this scale.
    pub fn usable(self, v: f64) -> bool {
        v.is_finite() && (self == Scale::Linear || v > 0.0)
    }

    fn forward(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log10 => v.log10(),
        }
    }

    fn inverse(self, t: f64) -> f64 {
        match self {
            Scale::Linear => t,
            Scale::Log10 => 10f64.powf(t),
        }
    }
}

/// One bar: its category, value and optional error (a whisker from value - err to value + err).
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub category: String,
    pub value: f64,
    pub err: Option<f64>,
}

impl Bar {
    pub fn new(category: impl Into<String>, value: f64, err: Option<f64>) -> Self {
        Self { category: category.into(), value, err }
    }
}

/// A fitted curve drawn over a scatter series: a function of x (sampled across the plot), or
/// points the caller sampled.
pub enum Curve {
    Function(Box<dyn Fn(f64) -> f64>),
    Points(Vec<(f64, f64)>),
}

impl Curve {
    pub fn function(f: impl Fn(f64) -> f64 + 'static) -> Self {
        Curve::Function(Box::new(f))
    }

    pub fn points(points: &[(f64, f64)]) -> Self {
        Curve::Points(points.to_vec())
    }
}

impl std::fmt::Debug for Curve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Curve::Function(_) => f.write_str("Curve::Function(..)"),
            Curve::Points(p) => write!(f, "Curve::Points({} points)", p.len()),
        }
    }
}

#[derive(Debug)]
enum Series {
    Line { name: String, points: Vec<(f64, f64)> },
    Scatter { name: String, points: Vec<(f64, f64)>, fit: Option<(String, Curve)> },
    Bars { group: String, bars: Vec<Bar> },
}

/// A chart under construction; [`Chart::to_svg`] draws it.
#[derive(Debug)]
pub struct Chart {
    title: String,
    x_label: String,
    y_label: String,
    x_scale: Scale,
    y_scale: Scale,
    x_range: Option<(f64, f64)>,
    y_range: Option<(f64, f64)>,
    width: u32,
    height: u32,
    horizontal: bool,
    series: Vec<Series>,
}

impl Chart {
    /// An empty 800x480 chart with linear axes.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            x_range: None,
            y_range: None,
            width: 800,
            height: 480,
            horizontal: false,
            series: Vec::new(),
        }
    }

    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    pub fn x_scale(mut self, scale: Scale) -> Self {
        self.x_scale = scale;
        self
    }

    pub fn y_scale(mut self, scale: Scale) -> Self {
        self.y_scale = scale;
        self
    }

    /// Show exactly [lo, hi] on x (no headroom); ignored unless lo < hi and both fit the scale.
    pub fn x_range(mut self, lo: f64, hi: f64) -> Self {
        self.x_range = Some((lo, hi));
        self
    }

    /// Show exactly [lo, hi] on y (no headroom); ignored unless lo < hi and both fit the scale.
    pub fn y_range(mut self, lo: f64, hi: f64) -> Self {
        self.y_range = Some((lo, hi));
        self
    }

    /// Canvas size in pixels (at least 200x150).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        (self.width, self.height) = (width.max(200), height.max(150));
        self
    }

    /// Bars run left to right, categories top to bottom (long category names read better so).
    pub fn horizontal(mut self) -> Self {
        self.horizontal = true;
        self
    }

    /// A line through `points` (x, y), in order.
    pub fn line(mut self, name: impl Into<String>, points: &[(f64, f64)]) -> Self {
        self.series.push(Series::Line { name: name.into(), points: points.to_vec() });
        self
    }

    /// A dot at each of `points`.
    pub fn scatter(mut self, name: impl Into<String>, points: &[(f64, f64)]) -> Self {
        self.series.push(Series::Scatter { name: name.into(), points: points.to_vec(), fit: None });
        self
    }

    /// A dot at each of `points`, with `curve` drawn over them dashed in the same colour.
    pub fn scatter_fit(
        mut self,
        name: impl Into<String>,
        points: &[(f64, f64)],
        fit_name: impl Into<String>,
        curve: Curve,
    ) -> Self {
        let fit = Some((fit_name.into(), curve));
        self.series.push(Series::Scatter { name: name.into(), points: points.to_vec(), fit });
        self
    }

    /// One group of bars (one colour); several groups stand side by side in each category.
    /// Categories appear in the order they are first named. An empty group name has no legend entry.
    pub fn bars(mut self, group: impl Into<String>, bars: Vec<Bar>) -> Self {
        self.series.push(Series::Bars { group: group.into(), bars });
        self
    }

    /// The chart as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        if self.series.iter().any(|s| matches!(s, Series::Bars { .. })) {
            self.bar_svg()
        } else {
            self.xy_svg()
        }
    }

    fn xy_svg(&self) -> String {
        let (w, h) = (self.width as f64, self.height as f64);
        let (sx, sy) = (self.x_scale, self.y_scale);

        // Ranges come from the data points (lines, scatter, sampled fits); function fits are
        // drawn across whatever range the data sets, and clipped.
        let (mut xs, mut ys) = (Extent::default(), Extent::default());
        let mut scatter = false;
        for s in &self.series {
            let (points, fit): (&[(f64, f64)], _) = match s {
                Series::Line { points, .. } => (points, None),
                Series::Scatter { points, fit, .. } => {
                    scatter = true;
                    (points, fit.as_ref())
                }
                Series::Bars { .. } => continue,
            };
            let fit_points = match fit {
                Some((_, Curve::Points(p))) => p.as_slice(),
                _ => &[],
            };
            for &(x, y) in points.iter().chain(fit_points) {
                if sx.usable(x) && sy.usable(y) {
                    xs.add(x);
                    ys.add(y);
                }
            }
        }
        let has_data = !xs.is_empty();
        // Scatter dots on the frame's edge would be cut in half: give x headroom too.
        let (x_lo, x_hi) = resolve_range(sx, self.x_range, &xs, if scatter { PAD } else { 0.0 });
        let (y_lo, y_hi) = resolve_range(sy, self.y_range, &ys, PAD);

        // The legend goes in the plot's corner that hides least; when every corner would hide a
        // dot, the plot narrows and the legend stands to its right.
        let legend = self.legend_entries();
        let inside = Rect { x: LEFT, y: TOP, w: w - LEFT - RIGHT, h: h - TOP - BOTTOM };
        let draw = |plot: &Rect| {
            let x = Axis { scale: sx, lo: x_lo, hi: x_hi, from: plot.x, to: plot.x + plot.w };
            let y = Axis { scale: sy, lo: y_lo, hi: y_hi, from: plot.y + plot.h, to: plot.y };
            let mut svg = open(w, h, &self.title, plot.x + plot.w / 2.0);
            grid_and_ticks(&mut svg, plot, Some(&x), Some(&y));
            clip(&mut svg, plot);
            let drawn = self.draw_series(&mut svg, &x, &y, plot);
            if !has_data {
                no_data(&mut svg, plot);
            }
            frame_and_labels(&mut svg, plot, h, (&self.x_label, sx), (&self.y_label, sy));
            (svg, drawn)
        };
        let (mut svg, drawn) = draw(&inside);
        let (lw, lh) = legend_size(&legend);
        match best_corner(&inside, lw, lh, &drawn) {
            Some((corner, hidden)) if hidden < DOT_WEIGHT || legend.is_empty() || lw + 40.0 > inside.w / 2.0 => {
                legend_box(&mut svg, corner, &legend);
            }
            _ => {
                let narrow = Rect { w: inside.w - lw - 16.0, ..inside };
                svg = draw(&narrow).0;
                legend_box(&mut svg, (narrow.x + narrow.w + 12.0, narrow.y), &legend);
            }
        }
        svg.push_str("</svg>\n");
        svg
    }

    /// One legend entry per named series and fit, in drawing order, with its colour.
    fn legend_entries(&self) -> Vec<Entry<'_>> {
        let mut legend = Vec::new();
        for (i, s) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            match s {
                Series::Line { name, .. } => legend.push(Entry { name, colour, mark: Mark::Line }),
                Series::Scatter { name, fit, .. } => {
                    legend.push(Entry { name, colour, mark: Mark::Dot });
                    if let Some((fit_name, _)) = fit {
                        legend.push(Entry { name: fit_name, colour, mark: Mark::Dashed });
                    }
                }
                Series::Bars { .. } => {}
            }
        }
        legend.retain(|e| !e.name.is_empty());
        legend
    }

    /// Draws the lines, dots and fits; returns what the legend should not hide: every drawn
    /// point's pixel and weight.
    fn draw_series(&self, svg: &mut String, x: &Axis, y: &Axis, plot: &Rect) -> Vec<(f64, f64, f64)> {
        let mut drawn = Vec::new();
        let mut mark = |points: &[(f64, f64)], weight: f64| {
            let usable = points.iter().filter(|&&(a, b)| x.scale.usable(a) && y.scale.usable(b));
            drawn.extend(usable.map(|&(a, b)| (x.px(a), y.px(b), weight)));
        };
        for (i, s) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            match s {
                Series::Line { name, points } => {
                    draw_line(svg, name, points, x, y, plot, colour);
                    mark(points, 1.0);
                }
                Series::Scatter { name, points, fit } => {
                    draw_dots(svg, name, points, x, y, colour);
                    mark(points, DOT_WEIGHT);
                    if let Some((fit_name, curve)) = fit {
                        let sampled = draw_curve(svg, fit_name, curve, x, y, plot, colour);
                        mark(&sampled, CURVE_WEIGHT);
                    }
                }
                Series::Bars { .. } => {}
            }
        }
        drawn
    }

    fn bar_svg(&self) -> String {
        let (w, h) = (self.width as f64, self.height as f64);
        let groups: Vec<(&str, &[Bar])> = self
            .series
            .iter()
            .filter_map(|s| match s {
                Series::Bars { group, bars } => Some((group.as_str(), bars.as_slice())),
                _ => None,
            })
            .collect();
        let mut categories: Vec<&str> = Vec::new();
        for bar in groups.iter().flat_map(|g| g.1) {
            if !categories.contains(&bar.category.as_str()) {
                categories.push(&bar.category);
            }
        }
        let (scale, fixed) = if self.horizontal { (self.x_scale, self.x_range) } else { (self.y_scale, self.y_range) };

        let (lo, hi, has_data) = bar_range(scale, fixed, groups.iter().flat_map(|g| g.1));
        let base = if scale == Scale::Linear { 0.0f64.clamp(lo, hi) } else { lo };

        // Margins: room for the category labels, the value labels and a row of legend entries.
        let longest = categories.iter().map(|c| c.chars().count()).max().unwrap_or(0) as f64;
        let show_legend = groups.len() > 1 || groups.iter().any(|g| !g.0.is_empty());
        let top = if show_legend { TOP + 22.0 } else { TOP };
        let n_cat = categories.len().max(1) as f64;
        let n_groups = groups.len().max(1) as f64;
        let (mut left, mut right, mut bottom) = (LEFT, RIGHT, BOTTOM);
        let mut rotate = false;
        if self.horizontal {
            let y_label_room = if self.y_label.is_empty() { 0.0 } else { 22.0 };
            left = (16.0 + CHAR_W * longest + y_label_room).clamp(LEFT, 0.5 * w);
            let widest_value = groups.iter().flat_map(|g| g.1).map(|b| value_label(b.value).len()).max().unwrap_or(0);
            right = (12.0 + CHAR_W * widest_value as f64).max(RIGHT);
        } else {
            let slot = (w - left - right) / n_cat;
            if CHAR_W * longest > slot - 4.0 {
                // Long names under narrow slots: slant them, and make room below.
                rotate = true;
                bottom = (BOTTOM + 0.5 * CHAR_W * longest).min(0.45 * h);
            }
        }
        let plot = Rect { x: left, y: top, w: (w - left - right).max(20.0), h: (h - top - bottom).max(20.0) };
        let value = if self.horizontal {
            Axis { scale, lo, hi, from: plot.x, to: plot.x + plot.w }
        } else {
            Axis { scale, lo, hi, from: plot.y + plot.h, to: plot.y }
        };

        let mut svg = open(w, h, &self.title, plot.x + plot.w / 2.0);
        if self.horizontal {
            grid_and_ticks(&mut svg, &plot, Some(&value), None);
        } else {
            grid_and_ticks(&mut svg, &plot, None, Some(&value));
        }
        clip(&mut svg, &plot);

        // Each category gets a slot along the category axis; its groups share 80% of it.
        let slot = if self.horizontal { plot.h } else { plot.w } / n_cat;
        let thick = 0.8 * slot / n_groups;
        let place = Place { plot, horizontal: self.horizontal };
        let mut layers = BarLayers::default();
        for (g, (group, bars)) in groups.iter().enumerate() {
            let _ = writeln!(layers.bars, r#"<g fill="{}" clip-path="url(#plot)">"#, PALETTE[g % PALETTE.len()]);
            for b in bars.iter().filter(|b| scale.usable(b.value)) {
                let Some(c) = categories.iter().position(|c| *c == b.category) else { continue };
                let along = slot * c as f64 + 0.1 * slot + thick * g as f64;
                let name = if group.is_empty() { b.category.clone() } else { format!("{group}: {}", b.category) };
                draw_bar(&mut layers, &place, &value, base, b, (along, thick), &name);
            }
            layers.bars.push_str("</g>\n");
        }
        svg.push_str(&layers.bars);
        if lo < base && base < hi {
            // The zero line, so bars hanging below it read as negative.
            let ((x1, y1), (x2, y2)) = (place.xy(0.0, value.px(base)), place.xy(slot * n_cat, value.px(base)));
            let _ = writeln!(svg, r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{INK}"/>"#);
        }
        let _ = writeln!(
            svg,
            r#"<g stroke="{INK}" stroke-width="1.2" fill="none" clip-path="url(#plot)">{}</g>"#,
            layers.whiskers
        );
        let _ = writeln!(svg, r#"<g fill="{INK}" font-size="11">{}</g>"#, layers.labels);

        // Category names along the category axis.
        svg.push_str(&format!("<g fill=\"{INK}\">"));
        for (c, name) in categories.iter().enumerate() {
            let mid = slot * (c as f64 + 0.5);
            if self.horizontal {
                let _ = write!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    plot.x - 8.0,
                    plot.y + mid + 4.0,
                    escape(name)
                );
            } else if rotate {
                let (tx, ty) = (plot.x + mid, plot.y + plot.h + 14.0);
                let _ = write!(
                    svg,
                    r#"<text x="{tx:.1}" y="{ty:.1}" text-anchor="end" transform="rotate(-35 {tx:.1} {ty:.1})">{}</text>"#,
                    escape(name)
                );
            } else {
                let _ = write!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                    plot.x + mid,
                    plot.y + plot.h + 18.0,
                    escape(name)
                );
            }
        }
        svg.push_str("</g>\n");
        if !has_data {
            no_data(&mut svg, &plot);
        }
        let (sx, sy) = if self.horizontal { (scale, Scale::Linear) } else { (Scale::Linear, scale) };
        frame_and_labels(&mut svg, &plot, h, (&self.x_label, sx), (&self.y_label, sy));
        if show_legend {
            let entries: Vec<Entry> = groups
                .iter()
                .enumerate()
                .map(|(g, (name, _))| Entry { name, colour: PALETTE[g % PALETTE.len()], mark: Mark::Swatch })
                .collect();
            legend_row(&mut svg, plot.x + plot.w / 2.0, TOP + 6.0, &entries);
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// The value range of a bar chart: bars grow from 0 on a linear axis, so 0 is always in it, with
/// headroom only on the side(s) the bars grow towards. Also whether any bar can be drawn.
fn bar_range<'a>(scale: Scale, fixed: Option<(f64, f64)>, bars: impl Iterator<Item = &'a Bar>) -> (f64, f64, bool) {
    let mut values = Extent::default();
    for b in bars.filter(|b| scale.usable(b.value)) {
        values.add(b.value);
        for end in b.err.filter(|e| e.is_finite()).map_or([None, None], |e| [Some(b.value - e), Some(b.value + e)]) {
            if let Some(end) = end.filter(|v| scale.usable(*v)) {
                values.add(end);
            }
        }
    }
    let has_data = !values.is_empty();
    if scale == Scale::Linear && has_data && fixed.is_none() {
        let (lo, hi) = widen(values.lo.min(0.0), values.hi.max(0.0), scale);
        let pad = 2.0 * PAD * (hi - lo); // more than lines get: value labels sit beyond the bars
        return (if lo < 0.0 { lo - pad } else { lo }, if hi > 0.0 { hi + pad } else { hi }, true);
    }
    let (lo, hi) = resolve_range(scale, fixed, &values, PAD);
    (lo, hi, has_data)
}

/// Turns bar coordinates into pixels: `along` runs down the category axis from the plot's edge,
/// `across` is a pixel on the value axis.
struct Place {
    plot: Rect,
    horizontal: bool,
}

impl Place {
    fn xy(&self, along: f64, across: f64) -> (f64, f64) {
        if self.horizontal {
            (across, self.plot.y + along)
        } else {
            (self.plot.x + along, across)
        }
    }
}

/// A bar chart's layers, drawn in this order: bars, whiskers over them, value labels.
#[derive(Default)]
struct BarLayers {
    bars: String,
    whiskers: String,
    labels: String,
}

/// One bar at `along` (its start and thickness on the category axis), its whisker clamped to the
/// plot with caps at the ends, and its value beside (or above) its outer end where that fits.
fn draw_bar(
    out: &mut BarLayers,
    place: &Place,
    value: &Axis,
    base: f64,
    b: &Bar,
    (along, thick): (f64, f64),
    name: &str,
) {
    let (v, v0) = (value.px(b.value), value.px(base));
    let (x, y) = place.xy(along, v.min(v0));
    let (w, h) = if place.horizontal { ((v - v0).abs(), thick) } else { (thick, (v - v0).abs()) };
    let err = b.err.filter(|e| e.is_finite() && *e != 0.0).map(f64::abs);
    let tip =
        format!("{name}: {}{}", value_label(b.value), err.map_or(String::new(), |e| format!(" ± {}", value_label(e))));
    let _ = writeln!(
        out.bars,
        r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}"><title>{}</title></rect>"#,
        escape(&tip)
    );

    let centre = along + thick / 2.0;
    let mut outer = v;
    if let Some(e) = err {
        // An end the scale cannot place (below 0 on a log axis) runs to the axis' end.
        let end = |t: f64, fallback: f64| value.clamp_px(if value.scale.usable(t) { value.px(t) } else { fallback });
        let (pa, pz) = (end(b.value - e, value.from), end(b.value + e, value.to));
        outer = if (pz - v0).abs() > (pa - v0).abs() { pz } else { pa };
        let cap = (thick * 0.25).min(5.0);
        let mut d = String::new();
        for (from, to) in [
            ((centre, pa), (centre, pz)),
            ((centre - cap, pa), (centre + cap, pa)),
            ((centre - cap, pz), (centre + cap, pz)),
        ] {
            let ((x1, y1), (x2, y2)) = (place.xy(from.0, from.1), place.xy(to.0, to.1));
            let _ = write!(d, "M{x1:.1},{y1:.1}L{x2:.1},{y2:.1}");
        }
        let _ = write!(out.whiskers, r#"<path d="{d}"/>"#);
    }

    let text = value_label(b.value);
    if place.horizontal && thick >= 11.0 {
        let (dx, anchor) = if v >= v0 { (5.0, "start") } else { (-5.0, "end") };
        let (x, y) = place.xy(centre, outer + dx);
        let _ = write!(out.labels, r#"<text x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{text}</text>"#, y + 4.0);
    } else if !place.horizontal && CHAR_W * text.len() as f64 <= thick + 6.0 {
        let dy = if v <= v0 { -5.0 } else { 13.0 }; // above a bar that grows up, below one that hangs
        let (x, y) = place.xy(centre, outer + dy);
        let _ = write!(out.labels, r#"<text x="{x:.1}" y="{y:.1}" text-anchor="middle">{text}</text>"#);
    }
}

#[derive(Clone, Copy, Debug)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

/// Running min and max of the values seen.
#[derive(Debug)]
struct Extent {
    lo: f64,
    hi: f64,
}

impl Default for Extent {
    fn default() -> Self {
        Self { lo: f64::INFINITY, hi: f64::NEG_INFINITY }
    }
}

impl Extent {
    fn add(&mut self, v: f64) {
        (self.lo, self.hi) = (self.lo.min(v), self.hi.max(v));
    }

    fn is_empty(&self) -> bool {
        self.lo > self.hi
    }
}

/// An axis: the values [lo, hi] on `scale` drawn from pixel `from` (at lo) to `to` (at hi).
struct Axis {
    scale: Scale,
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl Axis {
    /// The pixel of a value the scale can place (see [`Scale::usable`]).
    fn px(&self, v: f64) -> f64 {
        let (a, b) = (self.scale.forward(self.lo), self.scale.forward(self.hi));
        let px = self.from + (self.scale.forward(v) - a) / (b - a) * (self.to - self.from);
        px.clamp(-PX_LIMIT, PX_LIMIT)
    }

    fn clamp_px(&self, px: f64) -> f64 {
        px.clamp(self.from.min(self.to), self.from.max(self.to))
    }

    /// About one tick per `spacing` pixels on a linear axis; decades (and their 2s and 5s) on a log one.
    fn ticks(&self, spacing: f64) -> Vec<f64> {
        match self.scale {
            Scale::Linear => linear_ticks(self.lo, self.hi, ((self.to - self.from).abs() / spacing).max(2.0) as usize),
            Scale::Log10 => log10_ticks(self.lo, self.hi),
        }
    }

    fn labels(&self, ticks: &[f64]) -> Vec<String> {
        match self.scale {
            Scale::Linear => linear_labels(ticks),
            // Log ticks are unevenly spaced: each gets the decimals it needs (0.05, 0.1, 2, 10).
            Scale::Log10 => ticks.iter().map(|&t| log_label(t)).collect(),
        }
    }
}

/// The range an axis shows: the caller's when it is valid on this scale, else the data's
/// (widened if it is a single value), with `pad` of its width as headroom on both sides.
fn resolve_range(scale: Scale, fixed: Option<(f64, f64)>, data: &Extent, pad: f64) -> (f64, f64) {
    if let Some((lo, hi)) = fixed.filter(|&(lo, hi)| scale.usable(lo) && scale.usable(hi) && lo < hi) {
        return (lo, hi);
    }
    let (lo, hi) = match (data.is_empty(), scale) {
        (false, _) => widen(data.lo, data.hi, scale),
        (true, Scale::Linear) => (0.0, 1.0),
        (true, Scale::Log10) => (1.0, 10.0),
    };
    let (a, b) = (scale.forward(lo), scale.forward(hi));
    let d = pad * (b - a);
    (scale.inverse(a - d), scale.inverse(b + d))
}

/// Give a degenerate range (one value) some width so it can be drawn.
fn widen(lo: f64, hi: f64, scale: Scale) -> (f64, f64) {
    if hi > lo {
        return (lo, hi);
    }
    match scale {
        Scale::Log10 => (lo / 2.0, hi * 2.0),
        Scale::Linear => {
            let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo - d, hi + d)
        }
    }
}

/// About `target` evenly spaced round values (1, 2 or 5 times a power of ten) inside [lo, hi].
pub fn linear_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return Vec::new();
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    // The tolerance keeps a spacing of 0.05000000000000001 (0.3 / 6) at 0.05 rather than 0.1.
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw * (1.0 - 1e-9)).unwrap_or(10.0 * mag);
    let mut ticks = Vec::new();
    let mut k = (lo / step).ceil();
    while k * step <= hi + step * 1e-9 && ticks.len() < 100 {
        // k * step rather than accumulating, so 0.1 + 0.2 drift never shows as 0.30000000000000004.
        ticks.push(k * step);
        k += 1.0;
    }
    ticks
}

/// Ticks for a log axis over [lo, hi] (lo > 0): powers of ten, with 2x and 5x (or every integer
/// multiple) in between when the range spans few decades, so a loss falling from 10 to 3 still
/// gets labels; only every few decades over a very wide range.
pub fn log10_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi.is_finite() && hi > lo) {
        return Vec::new();
    }
    let decades = (hi / lo).log10();
    let multiples: &[f64] = if decades >= 4.0 {
        &[1.0]
    } else if decades >= 1.5 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    };
    let every = (decades / 10.0).ceil().max(1.0) as i32; // at most about ten labels
    let mut ticks = Vec::new();
    for e in (lo.log10().floor() as i32)..=(hi.log10().ceil() as i32) {
        if e.rem_euclid(every) != 0 {
            continue;
        }
        for m in multiples {
            let t = m * 10f64.powi(e);
            if t >= lo * (1.0 - 1e-9) && t <= hi * (1.0 + 1e-9) {
                ticks.push(t);
            }
        }
    }
    if ticks.len() < 2 {
        ticks = linear_ticks(lo, hi, 4).into_iter().filter(|t| *t > 0.0).collect();
    }
    ticks
}

/// Labels for evenly spaced ticks: as many decimals as the spacing needs, and one unit for the
/// whole axis when its numbers are big (5k 10k 15k, 1.5M 2M, 2e9 4e9).
fn linear_labels(ticks: &[f64]) -> Vec<String> {
    let step = ticks.get(1).zip(ticks.first()).map_or(1.0, |(b, a)| b - a).abs();
    let top = ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    let unit = if top >= 1e9 && step >= 1e8 {
        None // scientific
    } else if top >= 1e6 && step >= 1e5 {
        Some((1e6, "M"))
    } else if top >= 1e4 && step >= 1e3 {
        Some((1e3, "k"))
    } else {
        Some((1.0, ""))
    };
    ticks
        .iter()
        .map(|&v| {
            if v.abs() < step * 1e-9 {
                return "0".to_string(); // no "-0", "1e-17" or "0k"
            }
            match unit {
                None => scientific(v),
                Some((div, suffix)) => format!("{}{suffix}", fixed(v / div, (step / div).log10())),
            }
        })
        .collect()
}

/// A log-axis tick: the fewest decimals that show it exactly (0.05, 2, 0.125), k and M for
/// thousands and millions, powers of ten beyond (1e9, 5e-5).
fn log_label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 || (a > 0.0 && a < 1e-4) {
        return scientific(v);
    }
    if a >= 1e6 {
        return format!("{}M", shortest(v / 1e6));
    }
    if a >= 1e4 {
        return format!("{}k", shortest(v / 1e3));
    }
    shortest(v)
}

/// A bar's value: up to three significant digits (71.2, 0.5, 1.23k).
fn value_label(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let a = v.abs();
    if a >= 1e9 || (a > 0.0 && a < 1e-3) {
        return format!("{v:.2e}");
    }
    if a >= 1e4 {
        return if a >= 1e6 { format!("{}M", value_label(v / 1e6)) } else { format!("{}k", value_label(v / 1e3)) };
    }
    let digits = if a == 0.0 { 0 } else { a.log10().floor() as i32 };
    let decimals = (2 - digits).clamp(0, 6) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// `v` as "m e x" with the shortest mantissa: 1e9, 2.5e10, 5e-5.
fn scientific(v: f64) -> String {
    let e = v.abs().log10().floor() as i32;
    let m = v / 10f64.powi(e);
    // Rounding can carry the mantissa to 10.
    let (m, e) = if (m.abs() - 10.0).abs() < 1e-9 { (m / 10.0, e + 1) } else { (m, e) };
    format!("{}e{e}", shortest(m))
}

/// The fewest decimals (up to 8) that show `v` exactly.
fn shortest(v: f64) -> String {
    let decimals = (0..8).find(|&d| {
        let scaled = v * 10f64.powi(d);
        (scaled - scaled.round()).abs() <= 1e-6 * scaled.abs().max(1.0)
    });
    let decimals = decimals.unwrap_or(8) as usize;
    format!("{v:.decimals$}")
}

fn fixed(v: f64, step_log10: f64) -> String {
    let decimals = if step_log10.is_finite() { (-step_log10.floor()).clamp(0.0, 8.0) as usize } else { 2 };
    format!("{v:.decimals$}")
}

/// The document, background and title.
fn open(w: f64, h: f64, title: &str, title_x: f64) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FONT}" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{title_x:.1}" y="26" text-anchor="middle" font-size="16" font-weight="bold">{}</text>
"##,
        escape(title)
    )
}

/// Grid lines and tick labels for the numeric axes given.
fn grid_and_ticks(svg: &mut String, plot: &Rect, x: Option<&Axis>, y: Option<&Axis>) {
    let x_ticks = x.map(|a| a.ticks(90.0)).unwrap_or_default();
    let y_ticks = y.map(|a| a.ticks(60.0)).unwrap_or_default();
    let _ = write!(svg, r#"<g stroke="{GRID}" stroke-width="1">"#);
    if let Some(x) = x {
        for &t in &x_ticks {
            let _ = write!(
                svg,
                r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}"/>"#,
                x.px(t),
                plot.y,
                plot.y + plot.h
            );
        }
    }
    if let Some(y) = y {
        for &t in &y_ticks {
            let _ = write!(
                svg,
                r#"<line x1="{1:.1}" y1="{0:.1}" x2="{2:.1}" y2="{0:.1}"/>"#,
                y.px(t),
                plot.x,
                plot.x + plot.w
            );
        }
    }
    let _ = write!(svg, "</g>\n<g fill=\"{INK}\">");
    if let Some(x) = x {
        for (t, label) in x_ticks.iter().zip(x.labels(&x_ticks)) {
            let _ = write!(
                svg,
                r#"<text class="tick-x" x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
                x.px(*t),
                plot.y + plot.h + 18.0
            );
        }
    }
    if let Some(y) = y {
        for (t, label) in y_ticks.iter().zip(y.labels(&y_ticks)) {
            let _ = write!(
                svg,
                r#"<text class="tick-y" x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#,
                plot.x - 8.0,
                y.px(*t) + 4.0
            );
        }
    }
    svg.push_str("</g>\n");
}

fn clip(svg: &mut String, plot: &Rect) {
    let _ = writeln!(
        svg,
        r#"<clipPath id="plot"><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"/></clipPath>"#,
        plot.x, plot.y, plot.w, plot.h
    );
}

/// The plot's frame (drawn over the data) and the axis labels.
fn frame_and_labels(svg: &mut String, plot: &Rect, h: f64, (x_label, sx): (&str, Scale), (y_label, sy): (&str, Scale)) {
    let log = |s: Scale, label: &str| if s == Scale::Log10 && !label.is_empty() { " (log scale)" } else { "" };
    let _ = writeln!(
        svg,
        r#"<rect class="frame" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="{INK}"/>"#,
        plot.x, plot.y, plot.w, plot.h
    );
    if !x_label.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}{}</text>"#,
            plot.x + plot.w / 2.0,
            h - 14.0,
            escape(x_label),
            log(sx, x_label)
        );
    }
    if !y_label.is_empty() {
        let cy = plot.y + plot.h / 2.0;
        let _ = writeln!(
            svg,
            r#"<text x="18" y="{cy:.1}" text-anchor="middle" transform="rotate(-90 18 {cy:.1})">{}{}</text>"#,
            escape(y_label),
            log(sy, y_label)
        );
    }
}

fn no_data(svg: &mut String, plot: &Rect) {
    let _ = writeln!(
        svg,
        r##"<text class="no-data" x="{:.1}" y="{:.1}" text-anchor="middle" fill="#888">no data</text>"##,
        plot.x + plot.w / 2.0,
        plot.y + plot.h / 2.0
    );
}

/// One path per line series; a point that cannot be drawn lifts the pen.
fn draw_line(svg: &mut String, name: &str, points: &[(f64, f64)], x: &Axis, y: &Axis, plot: &Rect, colour: &str) {
    let columns = plot.w.max(1.0) as usize;
    let column = |v: f64| (((x.px(v) - plot.x) / plot.w * columns as f64).max(0.0) as usize).min(columns - 1);
    let usable = |&(a, b): &(f64, f64)| x.scale.usable(a) && y.scale.usable(b);
    let thinned = thin(points, &usable, &column, columns);
    let pixels: Vec<Option<(f64, f64)>> = thinned.iter().map(|p| p.map(|(a, b)| (x.px(a), y.px(b)))).collect();
    let (d, lone) = path_data(&pixels);
    let _ = writeln!(
        svg,
        r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.6" stroke-linejoin="round" clip-path="url(#plot)"><title>{}</title></path>"#,
        escape(name)
    );
    // Few points: mark each one, so the reader sees where they are; else only the lone ones,
    // which a line would not show.
    let sparse = pixels.iter().flatten().count() <= SPARSE;
    let dots: Vec<(f64, f64)> = if sparse { pixels.iter().flatten().copied().collect() } else { lone };
    for (cx, cy) in dots {
        let _ = writeln!(svg, r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="2.5" fill="{colour}" clip-path="url(#plot)"/>"#);
    }
}

fn draw_dots(svg: &mut String, name: &str, points: &[(f64, f64)], x: &Axis, y: &Axis, colour: &str) {
    let _ = writeln!(
        svg,
        r#"<g fill="{colour}" fill-opacity="0.8" clip-path="url(#plot)"><title>{}</title>"#,
        escape(name)
    );
    for &(a, b) in points.iter().filter(|&&(a, b)| x.scale.usable(a) && y.scale.usable(b)) {
        let _ = writeln!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="3.5"/>"#, x.px(a), y.px(b));
    }
    svg.push_str("</g>\n");
}

/// A fitted curve, dashed: a function sampled every 2 pixels across the x axis, or the caller's
/// points. Returns the points drawn through.
fn draw_curve(
    svg: &mut String,
    name: &str,
    curve: &Curve,
    x: &Axis,
    y: &Axis,
    plot: &Rect,
    colour: &str,
) -> Vec<(f64, f64)> {
    let sampled: Vec<(f64, f64)> = match curve {
        Curve::Points(p) => p.clone(),
        Curve::Function(f) => {
            let n = (plot.w / 2.0).max(2.0) as usize;
            let (a, b) = (x.scale.forward(x.lo), x.scale.forward(x.hi));
            (0..=n).map(|i| x.scale.inverse(a + (b - a) * i as f64 / n as f64)).map(|v| (v, f(v))).collect()
        }
    };
    let pixels: Vec<Option<(f64, f64)>> =
        sampled.iter().map(|&(a, b)| (x.scale.usable(a) && y.scale.usable(b)).then(|| (x.px(a), y.px(b)))).collect();
    let (d, _) = path_data(&pixels);
    let _ = writeln!(
        svg,
        r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="7 4" clip-path="url(#plot)"><title>{}</title></path>"#,
        escape(name)
    );
    sampled
}

/// SVG path data through `points` (pixels), where `None` lifts the pen; and the points that no
/// segment touches.
fn path_data(points: &[Option<(f64, f64)>]) -> (String, Vec<(f64, f64)>) {
    let mut d = String::new();
    let mut lone = Vec::new();
    let mut pen_down = false;
    for (j, p) in points.iter().enumerate() {
        match p {
            Some((x, y)) => {
                let _ = write!(d, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
                let next = points.get(j + 1).is_some_and(Option::is_some);
                if !pen_down && !next {
                    lone.push((*x, *y));
                }
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d.truncate(d.trim_end().len());
    (d, lone)
}

/// The points of a line, with `None` where an unusable point breaks it. Longer than 2 points per
/// pixel column: the first, lowest, highest and last of each column's run, in order.
fn thin(
    points: &[(f64, f64)],
    usable: &dyn Fn(&(f64, f64)) -> bool,
    column: &dyn Fn(f64) -> usize,
    columns: usize,
) -> Vec<Option<(f64, f64)>> {
    if points.len() <= 2 * columns {
        return points.iter().map(|p| usable(p).then_some(*p)).collect();
    }
    let mut out = Vec::new();
    // The current run of usable points in the same pixel column.
    let mut bucket: Vec<(f64, f64)> = Vec::new();
    let flush = |bucket: &mut Vec<(f64, f64)>, out: &mut Vec<Option<(f64, f64)>>| {
        if bucket.is_empty() {
            return;
        }
        let lo = bucket.iter().enumerate().min_by(|a, b| a.1 .1.total_cmp(&b.1 .1)).map_or(0, |(i, _)| i);
        let hi = bucket.iter().enumerate().max_by(|a, b| a.1 .1.total_cmp(&b.1 .1)).map_or(0, |(i, _)| i);
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

#[derive(Clone, Copy)]
enum Mark {
    Line,
    Dashed,
    Dot,
    Swatch,
}

struct Entry<'a> {
    name: &'a str,
    colour: &'a str,
    mark: Mark,
}

fn mark_svg(mark: Mark, x: f64, y: f64, colour: &str) -> String {
    match mark {
        Mark::Line => {
            format!(
                r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2.5"/>"#,
                x + 20.0
            )
        }
        Mark::Dashed => format!(
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="5 3"/>"#,
            x + 20.0
        ),
        Mark::Dot => format!(r#"<circle cx="{:.1}" cy="{y:.1}" r="3.5" fill="{colour}"/>"#, x + 10.0),
        Mark::Swatch => {
            format!(r#"<rect x="{:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/>"#, x + 4.0, y - 6.0)
        }
    }
}

/// What the legend's corner weighs: a line's point 1, a scatter dot much more, a fitted curve
/// (sampled every 2 pixels) a quarter per sample.
const DOT_WEIGHT: f64 = 20.0;
const CURVE_WEIGHT: f64 = 0.25;

/// The legend box's width and height.
fn legend_size(entries: &[Entry]) -> (f64, f64) {
    let longest = entries.iter().map(|e| e.name.chars().count()).max().unwrap_or(0) as f64;
    (36.0 + CHAR_W * longest, 8.0 + 18.0 * entries.len() as f64)
}

/// The corner of `plot` where a `lw` x `lh` box hides least of `drawn` (pixel and weight of every
/// point), the top right on a tie (loss curves and scaling fits fall, so it is usually empty
/// there), and what it hides. None when the box does not fit in the plot.
fn best_corner(plot: &Rect, lw: f64, lh: f64, drawn: &[(f64, f64, f64)]) -> Option<((f64, f64), f64)> {
    if lw + 20.0 > plot.w || lh + 20.0 > plot.h {
        return None;
    }
    let (left, right) = (plot.x + 10.0, plot.x + plot.w - lw - 10.0);
    let (top, bottom) = (plot.y + 10.0, plot.y + plot.h - lh - 10.0);
    let hidden = |(lx, ly): (f64, f64)| -> f64 {
        let margin = 4.0;
        let under = |&&(px, py, _): &&(f64, f64, f64)| {
            px >= lx - margin && px <= lx + lw + margin && py >= ly - margin && py <= ly + lh + margin
        };
        drawn.iter().filter(under).map(|p| p.2).sum()
    };
    [(right, top), (left, top), (left, bottom), (right, bottom)].into_iter().map(|c| (c, hidden(c))).fold(
        None,
        |best: Option<((f64, f64), f64)>, c| match best {
            Some(b) if b.1 <= c.1 => Some(b),
            _ => Some(c),
        },
    )
}

/// The legend of a numeric chart ([`Chart::legend_entries`]): a box with its top left at
/// `(lx, ly)`.
fn legend_box(svg: &mut String, (lx, ly): (f64, f64), entries: &[Entry]) {
    if entries.is_empty() {
        return;
    }
    let (lw, lh) = legend_size(entries);
    let _ = writeln!(
        svg,
        r##"<g class="legend"><rect x="{lx:.1}" y="{ly:.1}" width="{lw:.1}" height="{lh:.1}" fill="white" fill-opacity="0.85" stroke="#bbb"/>"##
    );
    for (i, e) in entries.iter().enumerate() {
        let y = ly + 16.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"{}<text x="{:.1}" y="{y:.1}">{}</text>"#,
            mark_svg(e.mark, lx + 8.0, y - 4.0, e.colour),
            lx + 34.0,
            escape(e.name)
        );
    }
    svg.push_str("</g>\n");
}

/// The legend of a bar chart: one row under the title, clear of the bars.
fn legend_row(svg: &mut String, centre: f64, y: f64, entries: &[Entry]) {
    let widths: Vec<f64> = entries.iter().map(|e| 30.0 + CHAR_W * e.name.chars().count() as f64 + 12.0).collect();
    let mut x = centre - widths.iter().sum::<f64>() / 2.0;
    svg.push_str("<g class=\"legend\">");
    for (e, width) in entries.iter().zip(widths) {
        let _ = write!(
            svg,
            r#"{}<text x="{:.1}" y="{:.1}">{}</text>"#,
            mark_svg(e.mark, x, y + 10.0, e.colour),
            x + 22.0,
            y + 14.0,
            escape(e.name)
        );
        x += width;
    }
    svg.push_str("</g>\n");
}

/// Escape text for SVG (XML) content and attributes; control characters are dropped.
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
