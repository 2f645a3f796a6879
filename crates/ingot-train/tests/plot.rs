//! Loss-curve SVGs: well-formed, one line and one legend entry per series, and no panic on
//! empty, NaN or degenerate data.

use ingot_train::plot::{line_chart_svg, loss_curve_svg, write_svg, ChartOptions};

use ingot_test_support::svg::assert_well_formed_svg as assert_well_formed;

fn curve(n: usize, scale: f64) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| (i as f64 * 10.0, scale * (10.0 * (-(i as f64) / 40.0).exp() + 2.0 + 0.1 * (i as f64).sin())))
        .collect()
}

#[test]
fn chart_has_a_line_and_legend_entry_per_series() {
    let train = curve(200, 1.0);
    let val: Vec<(f64, f64)> = curve(200, 1.05).into_iter().step_by(20).collect();
    let svg =
        loss_curve_svg(&[("train loss", &train), ("val <loss> & co", &val)], "GPT on Shakespeare", "step", "loss");
    assert_well_formed(&svg);
    assert_eq!(svg.matches("<path ").count(), 2);
    assert!(svg.contains("train loss"));
    assert!(svg.contains("val &lt;loss&gt; &amp; co"), "legend text must be escaped");
    assert!(svg.contains("GPT on Shakespeare") && svg.contains(">step<") && svg.contains(">loss<"));
}

#[test]
fn log_scale_and_long_series() {
    let long: Vec<(f64, f64)> = (0..50_000).map(|i| (i as f64, 10.0 / (1.0 + i as f64 / 100.0) + 0.01)).collect();
    let mut opts = ChartOptions::new("long run", "step", "loss");
    opts.log_y = true;
    let svg = line_chart_svg(&[("train", &long)], &opts);
    assert_well_formed(&svg);
    assert!(svg.contains("(log scale)"));
    // Keep a copy (with a sparse second series) to look at when INGOT_PLOT_OUT_LOG is set.
    if let Some(keep) = std::env::var_os("INGOT_PLOT_OUT_LOG") {
        let short: Vec<(f64, f64)> = long.iter().copied().step_by(2500).collect();
        std::fs::write(keep, line_chart_svg(&[("train", &long), ("val", &short)], &opts)).unwrap();
    }
    assert!(svg.len() < 200_000, "thinning should keep the file small: {} bytes", svg.len());
}

#[test]
fn empty_nan_and_degenerate_series_do_not_panic() {
    let empty: Vec<(f64, f64)> = Vec::new();
    let nan = vec![(0.0, f64::NAN), (1.0, f64::INFINITY), (f64::NAN, 1.0)];
    let gap = vec![(0.0, 3.0), (1.0, f64::NAN), (2.0, 2.5), (3.0, 2.4)];
    let single = vec![(5.0, 1.0)];
    let flat = vec![(0.0, 2.0), (1.0, 2.0)];
    let negative_on_log = vec![(0.0, -1.0), (1.0, 0.0)];
    for series in [
        vec![],
        vec![("empty", empty.as_slice())],
        vec![("nan", nan.as_slice())],
        vec![("gap", gap.as_slice()), ("single", single.as_slice())],
        vec![("flat", flat.as_slice())],
        vec![("neg", negative_on_log.as_slice())],
    ] {
        for log_y in [false, true] {
            let mut opts = ChartOptions::new("t", "x", "y");
            opts.log_y = log_y;
            let svg = line_chart_svg(&series, &opts);
            assert_well_formed(&svg);
        }
    }
    // The NaN breaks the line into two pieces; the lone point becomes a dot.
    let svg = loss_curve_svg(&[("gap", &gap), ("single", &single)], "t", "x", "y");
    let path = svg.lines().find(|l| l.contains("<title>gap</title>")).unwrap();
    assert_eq!(path.matches('M').count(), 2, "{path}");
    assert!(svg.contains("<circle"));
}

#[test]
fn writes_atomically() {
    let dir = ingot_test_support::temp_dir("plot");
    let path = dir.join("loss.svg");
    let train = curve(300, 1.0);
    let val: Vec<(f64, f64)> = curve(300, 1.08).into_iter().step_by(25).collect();
    let svg = loss_curve_svg(&[("train", &train), ("val", &val)], "Training loss", "step", "loss (nats/token)");
    write_svg(&path, &svg).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), svg);
    // Keep a copy to look at when INGOT_PLOT_OUT is set.
    if let Some(keep) = std::env::var_os("INGOT_PLOT_OUT") {
        std::fs::copy(&path, keep).unwrap();
    }
}
