//! The shared chart module: well-formed SVG for every kind, tick values on linear and log axes,
//! data landing on the right pixels, undrawable values skipped, empty charts saying so, and
//! labels escaped.
//!
//! Set INGOT_CHART_OUT to a folder to keep one chart of each kind there, to look at.

use ingot_core::chart::{linear_ticks, log10_ticks, Bar, Chart, Curve, Scale};

use ingot_test_support::svg::assert_well_formed_svg as assert_well_formed;

/// Every `<name ...>` tag's attributes, as (attribute, value) lists.
fn tags<'a>(svg: &'a str, name: &str) -> Vec<Vec<(&'a str, &'a str)>> {
    let open = format!("<{name} ");
    svg.match_indices(&open)
        .map(|(i, _)| {
            let body = &svg[i + open.len()..];
            let body = &body[..body.find('>').expect("unclosed tag")];
            body.split('"')
                .collect::<Vec<_>>()
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| (c[0].trim().trim_end_matches('='), c[1]))
                .collect()
        })
        .collect()
}

fn attr(tag: &[(&str, &str)], name: &str) -> f64 {
    let v = tag.iter().find(|(k, _)| *k == name).unwrap_or_else(|| panic!("no {name} in {tag:?}")).1;
    v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number"))
}

/// The plot area: (left, top, width, height).
fn frame(svg: &str) -> (f64, f64, f64, f64) {
    let rects = tags(svg, "rect");
    let f = rects.iter().find(|t| t.contains(&("class", "frame"))).expect("no frame");
    (attr(f, "x"), attr(f, "y"), attr(f, "width"), attr(f, "height"))
}

fn circles(svg: &str) -> Vec<(f64, f64)> {
    tags(svg, "circle").iter().map(|t| (attr(t, "cx"), attr(t, "cy"))).collect()
}

/// The coordinates of a path's `d` (M and L commands only).
fn path_points(d: &str) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    for cmd in d.split_whitespace() {
        let (op, xy) = cmd.split_at(1);
        let (x, y) = xy.split_once(',').expect("x,y");
        let p = (x.parse().expect("x"), y.parse().expect("y"));
        if op == "M" {
            runs.push(vec![p]);
        } else {
            runs.last_mut().expect("L before M").push(p);
        }
    }
    runs
}

fn tick_labels(svg: &str, class: &str) -> Vec<String> {
    let open = format!("<text class=\"{class}\"");
    svg.match_indices(&open)
        .map(|(i, _)| {
            let body = &svg[i..];
            let start = body.find('>').expect("text") + 1;
            body[start..start + body[start..].find('<').expect("</text>")].to_string()
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    // Coordinates are written with one decimal.
    (a - b).abs() <= 0.051
}

fn keep(name: &str, svg: &str) {
    if let Some(dir) = std::env::var_os("INGOT_CHART_OUT") {
        std::fs::write(std::path::Path::new(&dir).join(name), svg).expect("writing the chart to look at");
    }
}

fn loss(i: usize, scale: f64) -> f64 {
    scale * (8.0 * (-(i as f64) / 300.0).exp() + 2.5 + 0.15 * ((i as f64) * 0.7).sin())
}

#[test]
fn every_kind_is_well_formed() {
    let train: Vec<(f64, f64)> = (0..2000).map(|i| (i as f64, loss(i, 1.0))).collect();
    let val: Vec<(f64, f64)> = (0..2000).step_by(100).map(|i| (i as f64, loss(i, 1.06))).collect();
    let line = Chart::new("Loss").x_label("step").y_label("loss").line("train", &train).line("validation", &val);
    let line_log = Chart::new("Loss").x_label("step").y_label("loss").y_scale(Scale::Log10).line("train", &train);

    let tasks = ["arc_easy (acc_norm)", "hellaswag (acc_norm)", "piqa (acc_norm)", "mmlu (acc)", "winogrande (acc)"];
    let bars = |shift: f64| -> Vec<Bar> {
        tasks.iter().enumerate().map(|(i, t)| Bar::new(*t, 30.0 + 9.0 * i as f64 + shift, Some(1.5))).collect()
    };
    let horizontal = Chart::new("SmolLM2-135M-Instruct")
        .x_label("score (%), ±1 standard error")
        .x_range(0.0, 100.0)
        .horizontal()
        .size(800, 44 + 56 + 26 * tasks.len() as u32)
        .bars("", bars(0.0));
    let grouped = Chart::new("Documents kept by each filter")
        .y_label("documents (%)")
        .bars("before", bars(0.0))
        .bars("after", bars(-12.0))
        .bars("after dedup", bars(-20.0));

    // Long names under narrow slots are slanted; negative values hang below 0.
    let filters = ["length", "language id", "repetition (n-grams)", "perplexity filter", "near-duplicates", "pii"];
    let slanted = Chart::new("Change per filter")
        .y_label("documents (%)")
        .bars("", filters.iter().enumerate().map(|(i, f)| Bar::new(*f, 12.0 - 5.0 * i as f64, Some(2.0))).collect());
    let runs: Vec<(f64, f64)> = [1e6, 3e6, 1e7, 3e7, 1e8, 3e8, 1e9]
        .iter()
        .enumerate()
        .map(|(i, &n): (usize, &f64)| (n, 18.0 * n.powf(-0.09) * (1.0 + 0.02 * ((i as f64) * 2.1).sin())))
        .collect();
    let scatter = Chart::new("Loss against parameters")
        .x_label("parameters")
        .y_label("final loss")
        .x_scale(Scale::Log10)
        .y_scale(Scale::Log10)
        .scatter_fit("runs", &runs, "L = 18 N^-0.09", Curve::function(|n| 18.0 * n.powf(-0.09)));
    let empty = Chart::new("Nothing yet").x_label("x").y_label("y").line("train", &[]);

    for (name, chart) in [
        ("line.svg", line),
        ("line_log.svg", line_log),
        ("bars_horizontal.svg", horizontal),
        ("bars_grouped.svg", grouped),
        ("bars_slanted.svg", slanted),
        ("scatter_fit.svg", scatter),
        ("empty.svg", empty),
    ] {
        let svg = chart.to_svg();
        assert_well_formed(&svg);
        keep(name, &svg);
    }
}

#[test]
fn linear_and_log_ticks_are_round() {
    assert_eq!(linear_ticks(0.0, 1000.0, 5), vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]);
    assert_eq!(linear_ticks(2.1, 3.9, 4), vec![2.5, 3.0, 3.5]);
    assert_eq!(linear_ticks(-1.0, 1.0, 4), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
    assert_eq!(linear_ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    assert!(linear_ticks(1.0, 1.0, 4).is_empty() && linear_ticks(0.0, f64::NAN, 4).is_empty());
    assert_eq!(log10_ticks(3.0, 11.0), vec![3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
    assert_eq!(log10_ticks(1.0, 100.0), vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
    let wide = log10_ticks(0.01, 1000.0);
    let want = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0];
    assert_eq!(wide.len(), want.len(), "{wide:?}");
    assert!(wide.iter().zip(want).all(|(a, b)| (a - b).abs() <= 1e-12 * b), "{wide:?}");
    // Twenty decades: every other one, so the labels do not collide.
    assert_eq!(log10_ticks(1.0, 1e20).len(), 11);
    assert!(log10_ticks(0.0, 10.0).is_empty());

    // The labels drawn: as many decimals as the spacing needs, k/M for big round numbers.
    let svg = Chart::new("t").x_range(0.0, 20_000.0).y_range(0.1, 0.4).size(800, 480).line("a", &[(0.0, 0.2)]).to_svg();
    assert_eq!(tick_labels(&svg, "tick-x"), ["0", "5k", "10k", "15k", "20k"]);
    assert_eq!(tick_labels(&svg, "tick-y"), ["0.10", "0.15", "0.20", "0.25", "0.30", "0.35", "0.40"]);
    let svg = Chart::new("t")
        .x_scale(Scale::Log10)
        .x_range(1e6, 1e10)
        .y_scale(Scale::Log10)
        .y_range(0.01, 1.0)
        .scatter("a", &[(1e7, 0.1)])
        .to_svg();
    assert_eq!(tick_labels(&svg, "tick-x"), ["1M", "10M", "100M", "1e9", "1e10"]);
    assert_eq!(tick_labels(&svg, "tick-y"), ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"]);
}

#[test]
fn points_land_on_their_pixels() {
    // Fixed ranges have no headroom: the corners of the data are the corners of the frame.
    let points = [(0.0, 0.0), (10.0, 100.0), (5.0, 50.0), (2.5, 75.0)];
    let svg = Chart::new("t").x_range(0.0, 10.0).y_range(0.0, 100.0).scatter("p", &points).to_svg();
    let (left, top, w, h) = frame(&svg);
    assert!(w > 500.0 && h > 300.0, "an 800x480 chart's plot area is {w}x{h}");
    let got = circles(&svg);
    let want = [(left, top + h), (left + w, top), (left + w / 2.0, top + h / 2.0), (left + w / 4.0, top + h / 4.0)];
    assert_eq!(got.len(), want.len() + 1, "one dot per point, plus the legend's: {got:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(close(g.0, w.0) && close(g.1, w.1), "got {g:?}, want {w:?}");
    }

    // Log axes: 10 is halfway between 1 and 100; 1000 a third of the way from 100 to 1e5.
    let svg = Chart::new("t")
        .x_scale(Scale::Log10)
        .x_range(1.0, 100.0)
        .y_scale(Scale::Log10)
        .y_range(100.0, 1e5)
        .scatter("p", &[(10.0, 1000.0), (1.0, 1e5)])
        .to_svg();
    let (left, top, w, h) = frame(&svg);
    let got = circles(&svg);
    assert!(close(got[0].0, left + w / 2.0) && close(got[0].1, top + h * 2.0 / 3.0), "{got:?}");
    assert!(close(got[1].0, left) && close(got[1].1, top), "{got:?}");

    // A line's vertices, the same way.
    let svg = Chart::new("t").x_range(0.0, 4.0).y_range(-1.0, 1.0).line("l", &[(0.0, -1.0), (4.0, 1.0)]).to_svg();
    let (left, top, w, h) = frame(&svg);
    let d = tags(&svg, "path").iter().map(|t| t.iter().find(|a| a.0 == "d").expect("d").1).next().expect("a path");
    let runs = path_points(d);
    assert_eq!(runs.len(), 1);
    assert!(close(runs[0][0].0, left) && close(runs[0][0].1, top + h), "{runs:?}");
    assert!(close(runs[0][1].0, left + w) && close(runs[0][1].1, top), "{runs:?}");

    // A horizontal bar of 25 on a 0..100 axis is a quarter of the plot wide and starts at its left.
    let svg = Chart::new("t").x_range(0.0, 100.0).horizontal().bars("", vec![Bar::new("a", 25.0, None)]).to_svg();
    let (left, _, w, _) = frame(&svg);
    let bar = tags(&svg, "rect").into_iter().find(|t| t.contains(&("class", "bar"))).expect("bar");
    assert!(close(attr(&bar, "x"), left) && close(attr(&bar, "width"), w / 4.0), "{bar:?} in {left} + {w}");

    // A vertical bar of -2 on a -4..4 axis hangs from the middle down a quarter of the plot.
    let svg = Chart::new("t").y_range(-4.0, 4.0).bars("", vec![Bar::new("a", -2.0, None)]).to_svg();
    let (_, top, _, h) = frame(&svg);
    let bar = tags(&svg, "rect").into_iter().find(|t| t.contains(&("class", "bar"))).expect("bar");
    assert!(close(attr(&bar, "y"), top + h / 2.0) && close(attr(&bar, "height"), h / 4.0), "{bar:?}");
}

#[test]
fn a_fitted_power_law_is_straight_on_log_axes() {
    let runs = [(1e6, 4.0), (1e7, 3.3), (1e8, 2.7)];
    let svg = Chart::new("t")
        .x_scale(Scale::Log10)
        .y_scale(Scale::Log10)
        .scatter_fit("runs", &runs, "fit", Curve::function(|n| 16.0 * n.powf(-0.1)))
        .to_svg();
    assert_well_formed(&svg);
    let paths = tags(&svg, "path");
    let fit = paths.iter().find(|t| t.contains(&("stroke-dasharray", "7 4"))).expect("the fit is drawn dashed");
    let runs = path_points(fit.iter().find(|a| a.0 == "d").expect("d").1);
    assert_eq!(runs.len(), 1, "one unbroken curve");
    let pts = &runs[0];
    assert!(pts.len() > 100, "sampled across the plot: {} points", pts.len());
    let (a, z) = (pts[0], pts[pts.len() - 1]);
    for p in pts {
        // Distance from the chord, in pixels (coordinates are rounded to 0.1).
        let cross = (z.0 - a.0) * (p.1 - a.1) - (z.1 - a.1) * (p.0 - a.0);
        let dist = cross.abs() / ((z.0 - a.0).hypot(z.1 - a.1));
        assert!(dist < 0.2, "{p:?} is {dist} px off the line");
    }
    // Sampled points work as well, and a curve of NaNs draws nothing (but does not break the chart).
    let svg = Chart::new("t")
        .scatter_fit(
            "a",
            &[(0.0, 1.0), (3.0, 4.0)],
            "fit",
            Curve::points(&[(0.0, 1.0), (f64::NAN, 2.0), (2.0, 3.0), (3.0, 4.0)]),
        )
        .scatter_fit("b", &[(1.0, 1.0)], "nan fit", Curve::function(|_| f64::NAN))
        .to_svg();
    assert_well_formed(&svg);
    let fits: Vec<_> = tags(&svg, "path").into_iter().filter(|t| t.contains(&("stroke-dasharray", "7 4"))).collect();
    assert_eq!(path_points(fits[0].iter().find(|a| a.0 == "d").expect("d").1).len(), 2, "the NaN breaks the curve");
    assert_eq!(fits[1].iter().find(|a| a.0 == "d").expect("d").1, "");
}

#[test]
fn undrawable_values_are_skipped() {
    let points = [(0.0, 1.0), (1.0, f64::NAN), (2.0, 2.0), (f64::INFINITY, 3.0), (4.0, f64::NEG_INFINITY), (5.0, 0.5)];
    let svg = Chart::new("t").scatter("p", &points).to_svg();
    assert_well_formed(&svg);
    assert_eq!(circles(&svg).len(), 3 + 1, "three finite points and the legend dot");

    // A line breaks at each undrawable point; a point alone between two gaps is marked.
    let long: Vec<(f64, f64)> =
        (0..200).map(|i| (i as f64, if i == 100 || i == 102 { f64::NAN } else { (i as f64).sqrt() })).collect();
    let svg = Chart::new("t").line("l", &long).to_svg();
    assert_well_formed(&svg);
    let path = svg.lines().find(|l| l.contains("<title>l</title>")).expect("the line");
    assert_eq!(path.matches('M').count(), 3, "{path}");
    assert_eq!(circles(&svg).len(), 1, "the lone point at x=101 becomes a dot");

    // On a log axis, values <= 0 cannot be placed.
    let svg = Chart::new("t").y_scale(Scale::Log10).scatter("p", &[(0.0, -1.0), (1.0, 0.0), (2.0, 10.0)]).to_svg();
    assert_well_formed(&svg);
    assert_eq!(circles(&svg).len(), 1 + 1);

    // A NaN bar is left out; a NaN error just has no whisker.
    let svg = Chart::new("t")
        .bars(
            "",
            vec![Bar::new("a", 1.0, Some(f64::NAN)), Bar::new("b", f64::NAN, Some(0.1)), Bar::new("c", 2.0, Some(0.2))],
        )
        .to_svg();
    assert_well_formed(&svg);
    assert_eq!(svg.matches("<title>").count(), 2, "bars a and c");
    assert_eq!(svg.matches("<path ").count(), 1, "one whisker, for c");
}

#[test]
fn empty_charts_say_so() {
    let empty: &[(f64, f64)] = &[];
    let nan = [(f64::NAN, 1.0), (1.0, f64::INFINITY)];
    for chart in [
        Chart::new("t"),
        Chart::new("t").line("a", empty),
        Chart::new("t").y_scale(Scale::Log10).line("a", &nan),
        Chart::new("t").scatter_fit("a", empty, "fit", Curve::function(|x| x)),
        Chart::new("t").bars("g", vec![]),
        Chart::new("t").horizontal().bars("g", vec![Bar::new("a", f64::NAN, None)]),
    ] {
        let svg = chart.to_svg();
        assert_well_formed(&svg);
        assert!(svg.contains(">no data</text>"), "{chart:?}");
    }
    let svg = Chart::new("t").line("a", &[(1.0, 1.0)]).to_svg();
    assert!(!svg.contains("no data"));
    // A single point or a flat line still gets an axis range.
    for points in [vec![(5.0, 1.0)], vec![(0.0, 2.0), (1.0, 2.0)], vec![(0.0, 0.0)]] {
        for scale in [Scale::Linear, Scale::Log10] {
            assert_well_formed(&Chart::new("t").y_scale(scale).line("a", &points).to_svg());
        }
    }
}

#[test]
fn text_is_escaped() {
    let svg = Chart::new("<b>loss</b> & co")
        .x_label("step <k>")
        .y_label("nats & bits")
        .line("val <loss> & \"co\"", &[(0.0, 1.0), (1.0, 0.5)])
        .scatter("it's", &[(0.5, 0.7)])
        .to_svg();
    assert_well_formed(&svg);
    assert!(svg.contains("&lt;b&gt;loss&lt;/b&gt; &amp; co"));
    assert!(svg.contains("step &lt;k&gt;") && svg.contains("nats &amp; bits"));
    assert!(svg.contains("val &lt;loss&gt; &amp; &quot;co&quot;") && svg.contains("it&apos;s"));
    assert!(!svg.contains("<b>") && !svg.contains("& co"));

    let svg = Chart::new("m&m").bars("a<b", vec![Bar::new("x & <y>", 1.0, None)]).bars("c", vec![]).to_svg();
    assert_well_formed(&svg);
    assert!(svg.contains("x &amp; &lt;y&gt;") && svg.contains("a&lt;b") && svg.contains("m&amp;m"));
}

#[test]
fn long_lines_are_thinned_but_keep_their_extremes() {
    let points: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64, if i == 50_000 { 150.0 } else { 1.0 })).collect();
    let svg = Chart::new("t").y_range(0.0, 200.0).line("l", &points).to_svg();
    assert!(svg.len() < 150_000, "thinning should keep the file small: {} bytes", svg.len());
    let (_, top, _, h) = frame(&svg);
    let path = tags(&svg, "path").into_iter().next().expect("the line");
    let runs = path_points(path.iter().find(|a| a.0 == "d").expect("d").1);
    let highest = runs[0].iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    assert!(close(highest, top + h / 4.0), "the spike to 150 of 200 was thinned away: highest at {highest}");
}

#[test]
fn grouped_bars_share_each_category() {
    let svg = Chart::new("t")
        .y_range(0.0, 10.0)
        .bars("a", vec![Bar::new("x", 2.0, None), Bar::new("y", 4.0, None)])
        .bars("b", vec![Bar::new("y", 6.0, None), Bar::new("z", 8.0, None)])
        .to_svg();
    assert_well_formed(&svg);
    let (left, _, w, _) = frame(&svg);
    // Categories x, y, z in first-seen order, each a third of the plot; two bars fit in y's slot.
    let bars: Vec<(f64, f64)> = tags(&svg, "rect")
        .into_iter()
        .filter(|t| t.contains(&("class", "bar")))
        .map(|t| (attr(&t, "x"), attr(&t, "width")))
        .collect();
    assert_eq!(bars.len(), 4, "{bars:?}");
    let slot = w / 3.0;
    let slot_of = |x: f64| ((x - left) / slot).floor() as usize;
    assert_eq!(bars.iter().map(|b| slot_of(b.0)).collect::<Vec<_>>(), [0, 1, 1, 2]);
    assert!(bars[2].0 >= bars[1].0 + bars[1].1 - 0.1, "b's bar stands beside a's in y: {bars:?}");
    assert!(svg.contains(">a</text>") && svg.contains(">b</text>"), "a legend names the groups");
}

/// The legend box's (x, y), and the plot's (left, top, width, height).
fn legend_corner(svg: &str) -> ((f64, f64), (f64, f64, f64, f64)) {
    let at = svg.find(r#"<g class="legend">"#).expect("a legend");
    let rect = &tags(&svg[at..], "rect")[0];
    ((attr(rect, "x"), attr(rect, "y")), frame(svg))
}

#[test]
fn the_legend_takes_the_corner_that_hides_least() {
    // Falling dots leave the top right free: the legend goes there.
    let falling: Vec<(f64, f64)> = (0..40).map(|i| (i as f64, 40.0 - i as f64)).collect();
    let ((x, y), (left, top, w, _)) = legend_corner(&Chart::new("t").scatter("falling", &falling).to_svg());
    assert!(x > left + w / 2.0 && y < top + 20.0, "top right: ({x}, {y})");
    // Rising dots fill the top right and the bottom left: the top left is free.
    let rising: Vec<(f64, f64)> = (0..40).map(|i| (i as f64, i as f64)).collect();
    let svg = Chart::new("t").scatter("rising", &rising).to_svg();
    let ((x, y), (left, top, _, _)) = legend_corner(&svg);
    assert!(x < left + 20.0 && y < top + 20.0, "top left: ({x}, {y})");
    // No dot under the box.
    let at = svg.find(r#"<g class="legend">"#).unwrap();
    let rect = &tags(&svg[at..], "rect")[0];
    let (lw, lh) = (attr(rect, "width"), attr(rect, "height"));
    let dots = circles(&svg[..at]);
    assert_eq!(dots.len(), 40);
    assert!(dots.iter().all(|&(cx, cy)| !(cx >= x && cx <= x + lw && cy >= y && cy <= y + lh)), "{dots:?}");
    // Dots in every corner: the plot narrows and the legend stands to its right, hiding none.
    let corners = [(0.0, 0.0), (0.0, 10.0), (10.0, 0.0), (10.0, 10.0), (5.0, 5.0)];
    let svg = Chart::new("t").scatter("corners", &corners).to_svg();
    let ((x, _), (left, _, w, _)) = legend_corner(&svg);
    assert!(x > left + w, "the legend ({x}) is right of the plot ({left} + {w})");
    assert!(circles(&svg[..svg.find(r#"<g class="legend">"#).unwrap()]).iter().all(|&(cx, _)| cx <= left + w + 1.0));
}
