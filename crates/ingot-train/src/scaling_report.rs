//! The report of a scaling sweep: `scaling.json` (every run and every fitted number),
//! `scaling.md` (tables a person reads), and three SVG charts drawn by [`ingot_core::chart`]:
//! loss against parameters with the fitted laws, training loss against compute with its
//! envelope and the compute-optimal frontier, and predicted against measured loss.
//!
//! The fits ([`crate::scaling_fit`]):
//! - L(N) over the lowest final loss each size reached (on its largest budget, unless it
//!   overfitted), Kaplan's loss of a size trained long enough;
//! - L(N, D) over every run;
//! - the held-out check: both laws fitted again without the largest size, predicting its runs.
//!   The headline is the largest run (largest N, largest D), predicted by L(N, D) when it can be
//!   fitted, by L(N) otherwise.
//!
//! A fit the runs cannot support (too few sizes or budgets) becomes a note, not an error: a
//! sweep still under way reports what it can.

use std::fmt::Write as _;
use std::path::Path;

use ingot_core::chart::{self, Chart, Scale};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::scaling_fit::{
    fit_chinchilla, fit_power_law, Allocation, Chinchilla, Fit, FitOptions, Observation, PowerLaw,
};

pub const JSON_FILE: &str = "scaling.json";
pub const MARKDOWN_FILE: &str = "scaling.md";
pub const PARAMS_SVG: &str = "loss_vs_params.svg";
pub const COMPUTE_SVG: &str = "loss_vs_compute.svg";
pub const PREDICTED_SVG: &str = "predicted_vs_measured.svg";

/// A finished run of the sweep (its `result.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub name: String,
    pub depth: usize,
    pub width: usize,
    pub heads: usize,
    /// Kaplan's N: every parameter but the embeddings and the LM head.
    pub non_embedding_params: u64,
    pub params: u64,
    /// D: tokens trained on.
    pub tokens: u64,
    pub steps: u64,
    /// C = 6ND, FLOPs.
    pub compute: f64,
    pub lr: f64,
    /// The final loss over the whole validation split: the number every law is fitted to.
    pub val_loss: f64,
    /// The last logged training loss.
    pub train_loss: Option<f64>,
    /// Mean training throughput over the run's metrics lines.
    pub tokens_per_sec: Option<f64>,
}

impl RunResult {
    fn observation(&self) -> Observation {
        Observation { n: self.non_embedding_params as f64, d: self.tokens as f64, loss: self.val_loss }
    }
}

/// A run's training-loss curve against compute (C = 6 N tokens-so-far), for the envelope plot.
#[derive(Clone, Debug)]
pub struct Curve {
    pub name: String,
    pub depth: usize,
    pub points: Vec<(f64, f64)>,
}

/// One prediction of a held-out run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub name: String,
    pub n: f64,
    pub d: f64,
    pub measured: f64,
    pub predicted: f64,
    /// 100 (predicted - measured) / measured.
    pub error_pct: f64,
}

/// The laws fitted on every size but the largest, predicting the largest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    /// The held-out size's N.
    pub held_out_n: f64,
    /// Runs the held-out laws were fitted on.
    pub fitted_runs: usize,
    /// L(N, D) fitted without the largest size, and its prediction of each of that size's runs.
    pub chinchilla: Option<Chinchilla>,
    pub predictions: Vec<Prediction>,
    /// L(N) fitted on the smaller sizes' lowest losses, predicting the largest size's lowest.
    pub power_law: Option<PowerLaw>,
    pub power_law_prediction: Option<Prediction>,
    /// The number the check is judged on: the largest run, by L(N, D) if fitted, else by L(N).
    pub headline: Prediction,
    pub headline_law: String,
    pub tolerance_pct: f64,
    pub passed: bool,
}

/// Everything the report shows.
#[derive(Clone, Debug, Serialize)]
pub struct ScalingReport {
    pub runs: Vec<RunResult>,
    /// L(N) over the lowest loss of each size.
    pub power_law: Option<Fit<PowerLaw>>,
    /// L(N, D) over every run.
    pub chinchilla: Option<Fit<Chinchilla>>,
    pub holdout: Option<Holdout>,
    /// Compute-optimal N and D for the report's budgets, by the fitted L(N, D).
    pub compute_optimal: Vec<Allocation>,
    /// What could not be fitted, and why.
    pub notes: Vec<String>,
    #[serde(skip)]
    pub curves: Vec<Curve>,
}

/// A count with a k / M / B / T suffix, three significant digits.
pub fn si(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        x if x >= 1e12 => (v / 1e12, "T"),
        x if x >= 1e9 => (v / 1e9, "B"),
        x if x >= 1e6 => (v / 1e6, "M"),
        x if x >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let digits = if scaled.abs() >= 100.0 {
        0
    } else if scaled.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{scaled:.digits$}{suffix}")
}

/// The lowest loss of each distinct N (ties: the larger D).
fn best_per_size(obs: &[Observation]) -> Vec<Observation> {
    let mut best: Vec<Observation> = Vec::new();
    for o in obs {
        match best.iter_mut().find(|b| b.n == o.n) {
            Some(b) if o.loss < b.loss => *b = *o,
            Some(_) => {}
            None => best.push(*o),
        }
    }
    best.sort_by(|a, b| a.n.total_cmp(&b.n));
    best
}

fn prediction(name: &str, o: &Observation, predicted: f64) -> Prediction {
    Prediction {
        name: name.into(),
        n: o.n,
        d: o.d,
        measured: o.loss,
        predicted,
        error_pct: 100.0 * (predicted - o.loss) / o.loss,
    }
}

/// Fit the laws to `results`, run the held-out check, and split `budgets` (default: 1x, 10x and
/// 100x the largest run's compute) compute-optimally.
pub fn build(
    results: &[RunResult],
    curves: Vec<Curve>,
    opts: &FitOptions,
    tolerance: f64,
    budgets: &[f64],
) -> ScalingReport {
    let obs: Vec<Observation> = results.iter().map(RunResult::observation).collect();
    let mut notes = Vec::new();
    let power_law = fit_power_law(&best_per_size(&obs), opts).map_err(|e| notes.push(format!("L(N): {e}"))).ok();
    let chinchilla = fit_chinchilla(&obs, opts).map_err(|e| notes.push(format!("L(N, D): {e}"))).ok();
    let holdout = holdout(results, opts, tolerance, &mut notes);
    let largest = results.iter().map(|r| r.compute).fold(0.0, f64::max);
    let budgets: Vec<f64> =
        if budgets.is_empty() { [1.0, 10.0, 100.0].iter().map(|k| k * largest).collect() } else { budgets.to_vec() };
    let compute_optimal = match &chinchilla {
        Some(fit) => {
            let found: Vec<Allocation> = budgets.iter().filter_map(|&c| fit.law.compute_optimal(c)).collect();
            if found.is_empty() && !budgets.is_empty() {
                notes.push(format!(
                    "compute-optimal allocation: needs both fitted exponents above 0 (alpha {:.3}, beta {:.3})",
                    fit.law.alpha, fit.law.beta
                ));
            }
            found
        }
        None => Vec::new(),
    };
    ScalingReport { runs: results.to_vec(), power_law, chinchilla, holdout, compute_optimal, notes, curves }
}

fn holdout(results: &[RunResult], opts: &FitOptions, tolerance: f64, notes: &mut Vec<String>) -> Option<Holdout> {
    let no_bootstrap = FitOptions { bootstrap: 0, ..opts.clone() };
    let max_n = results.iter().map(|r| r.non_embedding_params).max()?;
    let (small, large): (Vec<&RunResult>, Vec<&RunResult>) =
        results.iter().partition(|r| r.non_embedding_params < max_n);
    let small_obs: Vec<Observation> = small.iter().map(|r| r.observation()).collect();
    let chinchilla = match fit_chinchilla(&small_obs, &no_bootstrap) {
        Ok(fit) => Some(fit.law),
        Err(e) => {
            notes.push(format!("held-out check, L(N, D) without the largest size: {e}"));
            None
        }
    };
    let predictions: Vec<Prediction> = match &chinchilla {
        Some(law) => large
            .iter()
            .map(|r| prediction(&r.name, &r.observation(), law.predict(r.observation().n, r.observation().d)))
            .collect(),
        None => Vec::new(),
    };
    let power_law = match fit_power_law(&best_per_size(&small_obs), &no_bootstrap) {
        Ok(fit) => Some(fit.law),
        Err(e) => {
            notes.push(format!("held-out check, L(N) without the largest size: {e}"));
            None
        }
    };
    let large_obs: Vec<Observation> = large.iter().map(|r| r.observation()).collect();
    let best_large = best_per_size(&large_obs).into_iter().next()?;
    let best_name = large.iter().find(|r| r.observation() == best_large).map_or(String::new(), |r| r.name.clone());
    let power_law_prediction = power_law.map(|law| prediction(&best_name, &best_large, law.predict(best_large.n)));
    // The largest run: the largest size on its largest budget.
    let largest = large.iter().max_by(|a, b| a.tokens.cmp(&b.tokens))?;
    let (headline, headline_law) = match (&chinchilla, &power_law_prediction) {
        (Some(_), _) => (predictions.iter().find(|p| p.name == largest.name)?.clone(), "L(N, D)"),
        (None, Some(p)) => (p.clone(), "L(N)"),
        (None, None) => return None,
    };
    let passed = headline.error_pct.abs() <= 100.0 * tolerance;
    Some(Holdout {
        held_out_n: max_n as f64,
        fitted_runs: small.len(),
        chinchilla,
        predictions,
        power_law,
        power_law_prediction,
        headline,
        headline_law: headline_law.into(),
        tolerance_pct: 100.0 * tolerance,
        passed,
    })
}

fn interval(fit_estimate: Option<&crate::scaling_fit::Estimate>) -> String {
    match fit_estimate {
        Some(e) => match (e.lo, e.hi) {
            (Some(lo), Some(hi)) => format!("{} [{}, {}]", num(e.value), num(lo), num(hi)),
            _ => num(e.value),
        },
        None => "-".into(),
    }
}

/// Four significant digits, scientific outside [1e-3, 1e5).
fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        format!("{v}")
    } else if v.abs() < 1e-3 || v.abs() >= 1e5 {
        format!("{v:.3e}")
    } else {
        let digits = (3 - v.abs().log10().floor() as i32).max(0) as usize;
        format!("{v:.digits$}")
    }
}

impl ScalingReport {
    /// The lines `ingot scaling` prints at the end: the exponents and the held-out check.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let pct = |f: &Fit<PowerLaw>| 100.0 * f.confidence;
        if let Some(f) = &self.power_law {
            lines.push(format!(
                "L(N) = E + A/N^alpha: E {}, A {}, alpha {} ({:.0}% bootstrap intervals, {} resamples)",
                interval(f.estimate("E")),
                interval(f.estimate("A")),
                interval(f.estimate("alpha")),
                pct(f),
                f.bootstrap_resamples
            ));
        }
        if let Some(f) = &self.chinchilla {
            lines.push(format!(
                "L(N, D) = E + A/N^alpha + B/D^beta: E {}, alpha {}, beta {}; N_opt ∝ C^{}, D_opt ∝ C^{}",
                interval(f.estimate("E")),
                interval(f.estimate("alpha")),
                interval(f.estimate("beta")),
                interval(f.estimate("a = beta/(alpha+beta)")),
                interval(f.estimate("b = alpha/(alpha+beta)")),
            ));
        }
        if let Some(h) = &self.holdout {
            lines.push(format!(
                "held-out check: {} fitted on the {} runs below N = {} predicts {} at {:.4}, measured {:.4}: \
                 error {:+.2}% ({} the {:.0}% tolerance)",
                h.headline_law,
                h.fitted_runs,
                si(h.held_out_n),
                h.headline.name,
                h.headline.predicted,
                h.headline.measured,
                h.headline.error_pct,
                if h.passed { "within" } else { "OUTSIDE" },
                h.tolerance_pct
            ));
        }
        for a in &self.compute_optimal {
            lines.push(format!(
                "compute-optimal at C = {:.2e} FLOPs: N {}, D {} ({:.1} tokens per parameter), predicted loss {:.4}",
                a.compute,
                si(a.n),
                si(a.d),
                a.d / a.n,
                a.loss
            ));
        }
        lines.extend(self.notes.iter().map(|n| format!("note: {n}")));
        lines
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let sizes = {
            let mut n: Vec<u64> = self.runs.iter().map(|r| r.non_embedding_params).collect();
            n.sort();
            n.dedup();
            n
        };
        let budgets = {
            let mut d: Vec<u64> = self.runs.iter().map(|r| r.tokens).collect();
            d.sort();
            d.dedup();
            d
        };
        let _ = writeln!(s, "# Scaling laws\n");
        let span = match (sizes.first(), sizes.last()) {
            (Some(&lo), Some(&hi)) if lo > 0 => {
                format!(", {} to {} ({:.0}x)", si(lo as f64), si(hi as f64), hi as f64 / lo as f64)
            }
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "{} runs: {} sizes{span} x {} token budgets. N counts non-embedding parameters (Kaplan et al. 2020), \
             D the tokens trained on, C = 6ND; every loss is the final loss over the whole validation split.\n",
            self.runs.len(),
            sizes.len(),
            budgets.len()
        );
        let _ = writeln!(s, "## Runs\n");
        let _ = writeln!(
            s,
            "| run | layers | width | heads | N | all params | D | C (FLOPs) | lr | val loss | train loss | tokens/s |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.runs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {:.2e} | {:.2e} | {:.4} | {} | {} |",
                r.name,
                r.depth,
                r.width,
                r.heads,
                si(r.non_embedding_params as f64),
                si(r.params as f64),
                si(r.tokens as f64),
                r.compute,
                r.lr,
                r.val_loss,
                r.train_loss.map_or("".into(), |l| format!("{l:.4}")),
                r.tokens_per_sec.map_or("".into(), |t| format!("{t:.0}"))
            );
        }
        if let Some(f) = &self.power_law {
            let _ = writeln!(s, "\n## L(N) = E + A / N^alpha\n");
            let _ = writeln!(s, "Fitted on the lowest loss of each size ({} points).\n", f.n_observations);
            estimate_table(&mut s, &f.estimates, f.confidence, f.bootstrap_resamples);
            let _ = writeln!(s, "\nRMS relative residual {:.3}%.", 100.0 * f.rms_log_residual);
        }
        if let Some(f) = &self.chinchilla {
            let _ = writeln!(s, "\n## L(N, D) = E + A / N^alpha + B / D^beta\n");
            let _ = writeln!(
                s,
                "Fitted on every run ({}), Huber loss on log-loss from a grid of starts (Hoffmann et al. 2022). \
                 a and b are the compute-optimal exponents: N_opt ∝ C^a, D_opt ∝ C^b.\n",
                f.n_observations
            );
            estimate_table(&mut s, &f.estimates, f.confidence, f.bootstrap_resamples);
            let _ = writeln!(s, "\nRMS relative residual {:.3}%.", 100.0 * f.rms_log_residual);
        }
        if let Some(h) = &self.holdout {
            let _ = writeln!(s, "\n## Held-out check\n");
            let _ = writeln!(
                s,
                "Fitted on the {} runs below N = {}, {} predicts the largest run {}: measured {:.4}, predicted {:.4}, \
                 error **{:+.2}%**: **{}** (tolerance {:.0}%).\n",
                h.fitted_runs,
                si(h.held_out_n),
                h.headline_law,
                h.headline.name,
                h.headline.measured,
                h.headline.predicted,
                h.headline.error_pct,
                if h.passed { "pass" } else { "fail" },
                h.tolerance_pct
            );
            let _ =
                writeln!(s, "| law | run | N | D | measured | predicted | error |\n|---|---|---:|---:|---:|---:|---:|");
            let rows =
                h.predictions.iter().map(|p| ("L(N, D)", p)).chain(h.power_law_prediction.iter().map(|p| ("L(N)", p)));
            for (law, p) in rows {
                let _ = writeln!(
                    s,
                    "| {law} | {} | {} | {} | {:.4} | {:.4} | {:+.2}% |",
                    p.name,
                    si(p.n),
                    si(p.d),
                    p.measured,
                    p.predicted,
                    p.error_pct
                );
            }
        }
        if !self.compute_optimal.is_empty() {
            let _ = writeln!(s, "\n## Compute-optimal allocation (C = 6ND)\n");
            let _ = writeln!(
                s,
                "| C (FLOPs) | N_opt | D_opt | tokens per parameter | predicted loss |\n|---:|---:|---:|---:|---:|"
            );
            for a in &self.compute_optimal {
                let _ =
                    writeln!(s, "| {:.2e} | {} | {} | {:.1} | {:.4} |", a.compute, si(a.n), si(a.d), a.d / a.n, a.loss);
            }
        }
        let _ = writeln!(s, "\n## Plots\n");
        let _ = writeln!(s, "![loss against parameters]({PARAMS_SVG})\n");
        let _ = writeln!(s, "![training loss against compute]({COMPUTE_SVG})\n");
        let _ = writeln!(s, "![predicted against measured loss]({PREDICTED_SVG})");
        if !self.notes.is_empty() {
            let _ = writeln!(s, "\n## Notes\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }

    /// Final validation loss against N (log-log): a series per token budget with L(N, D) at that
    /// budget, L(N) sampled past the largest size, and the held-out prediction.
    pub fn params_svg(&self) -> String {
        let mut chart = Chart::new("Loss against parameters")
            .x_label("non-embedding parameters N")
            .y_label("final validation loss")
            .x_scale(Scale::Log10)
            .y_scale(Scale::Log10);
        let mut budgets: Vec<u64> = self.runs.iter().map(|r| r.tokens).collect();
        budgets.sort();
        budgets.dedup();
        for &d in &budgets {
            let points: Vec<(f64, f64)> = self
                .runs
                .iter()
                .filter(|r| r.tokens == d)
                .map(|r| (r.non_embedding_params as f64, r.val_loss))
                .collect();
            let name = format!("D = {}", si(d as f64));
            chart = match &self.chinchilla {
                Some(f) => {
                    let law = f.law;
                    let curve = chart::Curve::function(move |n| law.predict(n, d as f64));
                    chart.scatter_fit(name, &points, format!("L(N, D = {})", si(d as f64)), curve)
                }
                None => chart.scatter(name, &points),
            };
        }
        let (lo, hi) = self.n_range();
        if let Some(f) = &self.power_law {
            let law = f.law;
            let sampled: Vec<(f64, f64)> =
                log_samples(lo / 1.5, hi * 4.0, 200).into_iter().map(|n| (n, law.predict(n))).collect();
            chart = chart.line("L(N), lowest loss per size", &sampled);
        }
        if let Some(h) = &self.holdout {
            chart = chart.scatter("held-out prediction (largest run)", &[(h.headline.n, h.headline.predicted)]);
        }
        chart.to_svg()
    }

    /// Training loss against compute for every run (one colour per size), the envelope (the
    /// lowest loss any run reached by each compute), and the fitted compute-optimal frontier.
    pub fn compute_svg(&self) -> String {
        let mut chart = Chart::new("Training loss against compute")
            .x_label("compute C = 6ND (FLOPs)")
            .y_label("training loss (5-point moving average)")
            .x_scale(Scale::Log10)
            .y_scale(Scale::Log10);
        let mut depths: Vec<usize> = self.curves.iter().map(|c| c.depth).collect();
        depths.sort();
        depths.dedup();
        let mut all: Vec<(f64, f64)> = Vec::new();
        for &depth in &depths {
            // One series per size: its runs joined with a NaN between them (a break in the line).
            let mut points = Vec::new();
            for c in self.curves.iter().filter(|c| c.depth == depth) {
                let smooth = moving_average(&c.points, 5);
                all.extend(&smooth);
                points.extend(smooth);
                points.push((f64::NAN, f64::NAN));
            }
            let width = self
                .runs
                .iter()
                .find(|r| r.depth == depth)
                .map_or(String::new(), |r| format!(" (N = {})", si(r.non_embedding_params as f64)));
            let layers = if depth == 1 { "layer" } else { "layers" };
            chart = chart.line(format!("{depth} {layers}{width}"), &points);
        }
        all.retain(|p| p.0 > 0.0 && p.1.is_finite());
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut envelope: Vec<(f64, f64)> = Vec::new();
        for (c, l) in all {
            let lowest = envelope.last().map_or(l, |&(_, m)| l.min(m));
            envelope.push((c, lowest));
        }
        if !envelope.is_empty() {
            chart = chart.line("envelope (lowest loss so far)", &envelope);
        }
        if let Some(f) = &self.chinchilla {
            let (lo, hi) = (
                self.runs.iter().map(|r| r.compute).fold(f64::INFINITY, f64::min),
                self.runs.iter().map(|r| r.compute).fold(0.0, f64::max),
            );
            let frontier: Vec<(f64, f64)> = log_samples(lo, hi * 10.0, 200)
                .into_iter()
                .filter_map(|c| f.law.compute_optimal(c).map(|a| (c, a.loss)))
                .collect();
            if !frontier.is_empty() {
                chart = chart.line("L(N, D) at the compute-optimal N, D", &frontier);
            }
        }
        chart.to_svg()
    }

    /// Predicted against measured final loss: in-sample by L(N, D) (or L(N)) on every run, and
    /// out of sample by the held-out laws on the largest size; the diagonal is a perfect law.
    pub fn predicted_svg(&self) -> String {
        let mut chart = Chart::new("Predicted against measured loss")
            .x_label("measured final validation loss")
            .y_label("predicted loss");
        let fitted: Vec<(f64, f64)> = match (&self.chinchilla, &self.power_law) {
            (Some(f), _) => {
                self.runs.iter().map(|r| (r.val_loss, f.law.predict(r.observation().n, r.observation().d))).collect()
            }
            (None, Some(f)) => self.runs.iter().map(|r| (r.val_loss, f.law.predict(r.observation().n))).collect(),
            (None, None) => Vec::new(),
        };
        let mut lo_hi: Vec<f64> = fitted.iter().flat_map(|&(a, b)| [a, b]).collect();
        chart = chart.scatter("fitted on every run", &fitted);
        if let Some(h) = &self.holdout {
            let held: Vec<(f64, f64)> = h
                .predictions
                .iter()
                .chain(h.power_law_prediction.iter().filter(|_| h.predictions.is_empty()))
                .map(|p| (p.measured, p.predicted))
                .collect();
            lo_hi.extend(held.iter().flat_map(|&(a, b)| [a, b]));
            chart = chart.scatter("held out: fitted without the largest size", &held);
        }
        lo_hi.retain(|v| v.is_finite());
        if let (Some(lo), Some(hi)) = (lo_hi.iter().cloned().reduce(f64::min), lo_hi.iter().cloned().reduce(f64::max)) {
            // Enough points that the chart draws a plain line, not one marked at each point.
            let diagonal: Vec<(f64, f64)> =
                (0..=100).map(|i| lo + (hi - lo) * i as f64 / 100.0).map(|v| (v, v)).collect();
            chart = chart.line("predicted = measured", &diagonal);
        }
        chart.to_svg()
    }

    fn n_range(&self) -> (f64, f64) {
        let ns = self.runs.iter().map(|r| r.non_embedding_params as f64);
        (ns.clone().fold(f64::INFINITY, f64::min), ns.fold(0.0, f64::max))
    }

    /// Write scaling.json, scaling.md and the three SVGs into `dir`, each atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        ingot_core::atomic::write_file(&dir.join(JSON_FILE), &json)?;
        ingot_core::atomic::write_file(&dir.join(MARKDOWN_FILE), self.markdown().as_bytes())?;
        ingot_core::atomic::write_file(&dir.join(PARAMS_SVG), self.params_svg().as_bytes())?;
        ingot_core::atomic::write_file(&dir.join(COMPUTE_SVG), self.compute_svg().as_bytes())?;
        ingot_core::atomic::write_file(&dir.join(PREDICTED_SVG), self.predicted_svg().as_bytes())?;
        Ok(())
    }
}

fn estimate_table(s: &mut String, estimates: &[crate::scaling_fit::Estimate], confidence: f64, resamples: usize) {
    let _ = writeln!(
        s,
        "| parameter | value | {:.0}% interval ({resamples} bootstrap resamples) |\n|---|---:|---:|",
        100.0 * confidence
    );
    for e in estimates {
        let range = match (e.lo, e.hi) {
            (Some(lo), Some(hi)) => format!("[{}, {}]", num(lo), num(hi)),
            _ => "-".into(),
        };
        let _ = writeln!(s, "| {} | {} | {range} |", e.name, num(e.value));
    }
}

/// `count` points evenly spaced in log between lo and hi.
fn log_samples(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo) {
        return Vec::new();
    }
    (0..count).map(|i| lo * (hi / lo).powf(i as f64 / (count - 1) as f64)).collect()
}

/// Each point's y replaced by the mean of the `window` points around it.
fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let half = window / 2;
    (0..points.len())
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(points.len()));
            let ys: Vec<f64> = points[a..b].iter().map(|p| p.1).filter(|y| y.is_finite()).collect();
            (points[i].0, ys.iter().sum::<f64>() / ys.len().max(1) as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs whose losses follow a known L(N, D) exactly (five sizes over ~30x, three budgets).
    fn runs() -> Vec<RunResult> {
        let law = Chinchilla { e: 2.0, a: 40.0, alpha: 0.3, b: 300.0, beta: 0.35 };
        let mut runs = Vec::new();
        for (depth, n) in [(1u64, 30_000u64), (2, 100_000), (3, 300_000), (4, 600_000), (5, 1_000_000)] {
            for d in [250_000u64, 500_000, 1_000_000] {
                runs.push(RunResult {
                    name: format!("L{depth}-D{d}"),
                    depth: depth as usize,
                    width: 48 * depth as usize,
                    heads: depth as usize,
                    non_embedding_params: n,
                    params: n + 200_000,
                    tokens: d,
                    steps: d / 1024,
                    compute: 6.0 * n as f64 * d as f64,
                    lr: 1e-3,
                    val_loss: law.predict(n as f64, d as f64),
                    train_loss: None,
                    tokens_per_sec: Some(1000.0),
                });
            }
        }
        runs
    }

    #[test]
    fn report_fits_predicts_and_renders() {
        let runs = runs();
        let curves = runs
            .iter()
            .map(|r| Curve {
                name: r.name.clone(),
                depth: r.depth,
                points: vec![(r.compute / 2.0, 6.0), (r.compute, r.val_loss)],
            })
            .collect();
        let opts = FitOptions { bootstrap: 20, ..Default::default() };
        let report = build(&runs, curves, &opts, 0.02, &[]);
        assert!(report.notes.is_empty(), "{:?}", report.notes);
        let h = report.holdout.as_ref().unwrap();
        assert_eq!((h.fitted_runs, h.headline.name.as_str(), h.headline_law.as_str()), (12, "L5-D1000000", "L(N, D)"));
        assert!(h.passed && h.headline.error_pct.abs() < 0.1, "{h:?}");
        assert_eq!(report.compute_optimal.len(), 3);
        let md = report.markdown();
        for needle in ["## Held-out check", "L5-D1000000", "**pass**", "| alpha |", "## Compute-optimal", "33x"] {
            assert!(md.contains(needle), "{needle} missing from:\n{md}");
        }
        for svg in [report.params_svg(), report.compute_svg(), report.predicted_svg()] {
            ingot_test_support::svg::assert_well_formed_svg(&svg);
            assert!(!svg.contains("no data"), "{svg}");
        }
        let summary = report.summary().join("\n");
        assert!(summary.contains("held-out check") && summary.contains("within the 2% tolerance"), "{summary}");
    }

    /// A sweep with one budget and two sizes cannot fit either law: notes, no panic, and the
    /// report still renders.
    #[test]
    fn too_few_runs_become_notes() {
        let runs: Vec<RunResult> = runs().into_iter().filter(|r| r.tokens == 250_000 && r.depth <= 2).collect();
        let report = build(&runs, Vec::new(), &FitOptions::default(), 0.02, &[]);
        assert!(report.power_law.is_none() && report.chinchilla.is_none() && report.holdout.is_none());
        assert_eq!(report.notes.len(), 4, "{:?}", report.notes);
        assert!(report.markdown().contains("## Notes"));
        for svg in [report.params_svg(), report.compute_svg(), report.predicted_svg()] {
            ingot_test_support::svg::assert_well_formed_svg(&svg);
        }
        assert!(build(&[], Vec::new(), &FitOptions::default(), 0.02, &[]).holdout.is_none());
    }

    #[test]
    fn si_and_num_format() {
        assert_eq!(si(27_648.0), "27.6k");
        assert_eq!(si(3_456_000.0), "3.46M");
        assert_eq!(si(1_000_000.0), "1.00M");
        assert_eq!(si(512.0), "512");
        assert_eq!(num(0.3412), "0.3412");
        assert_eq!(num(406.43), "406.4");
        assert_eq!(num(2.5e7), "2.500e7");
    }
}
