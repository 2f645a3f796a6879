//! Fitting scaling laws to measured losses: Kaplan's L(N) = E + A / N^alpha and Chinchilla's
//! parametric L(N, D) = E + A / N^alpha + B / D^beta, the compute-optimal split of a budget
//! C ~ 6ND, and seeded bootstrap intervals on every parameter. Pure functions of the numbers
//! given; no I/O.
//!
//! How the fit is done follows Hoffmann et al. 2022 ("Training Compute-Optimal Large Language
//! Models", appendix D.2): the law is written in log-sum-exp form,
//! `log L̂ = LSE(a - alpha log N, b - beta log D, e)` with `A = exp(a)`, `B = exp(b)`, `E = exp(e)`,
//! and the Huber loss (delta = 1e-3) of `log L̂ - log L` is minimised with L-BFGS, started from
//! a grid of initialisations; the best local minimum wins. The log form makes every residual a
//! relative error (a run at loss 6 weighs as much as one at 3), and the Huber loss keeps one bad
//! run from dragging the exponents. Our L-BFGS takes numeric (central-difference) gradients: the
//! objective has five parameters and a few dozen terms, so exactness costs nothing here.
//!
//! The grid is Chinchilla's (alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in
//! {0, 5, ..., 25}: 4500 points). It is evaluated everywhere, but L-BFGS is only run from its
//! best [`FitOptions::starts`] points: running it from all of them, as the paper does, would make
//! each bootstrap resample seconds long and in our tests never found a better minimum.
//!
//! Intervals are percentile bootstrap intervals: the observations (runs) are resampled with
//! replacement ([`FitOptions::bootstrap`] times, from [`FitOptions::seed`]), the law is refitted
//! to each resample, and the interval is the central [`FitOptions::confidence`] of the refits.
//! Resamples that cannot identify the law (too few distinct N or D) are drawn again.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One finished run: parameters N (Kaplan's: non-embedding), tokens D, final held-out loss.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub n: f64,
    pub d: f64,
    pub loss: f64,
}

/// Kaplan's L(N) = E + A / N^alpha.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PowerLaw {
    pub e: f64,
    pub a: f64,
    pub alpha: f64,
}

impl PowerLaw {
    pub fn predict(&self, n: f64) -> f64 {
        self.e + self.a / n.powf(self.alpha)
    }

    fn from_theta(t: &[f64]) -> Self {
        Self { a: t[0].exp(), alpha: t[1], e: t[2].exp() }
    }
}

/// Chinchilla's L(N, D) = E + A / N^alpha + B / D^beta.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chinchilla {
    pub e: f64,
    pub a: f64,
    pub alpha: f64,
    pub b: f64,
    pub beta: f64,
}

/// The compute-optimal split of a budget of `compute` FLOPs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    pub compute: f64,
    pub n: f64,
    pub d: f64,
    /// The law's loss at (n, d).
    pub loss: f64,
}

impl Chinchilla {
    pub fn predict(&self, n: f64, d: f64) -> f64 {
        self.e + self.a / n.powf(self.alpha) + self.b / d.powf(self.beta)
    }

    fn from_theta(t: &[f64]) -> Self {
        Self { a: t[0].exp(), b: t[1].exp(), e: t[2].exp(), alpha: t[3], beta: t[4] }
    }

    /// The N and D that minimise the law under C = 6ND (Hoffmann et al. eq. 4):
    /// `N_opt = G (C/6)^(beta/(alpha+beta))`, `G = (alpha A / (beta B))^(1/(alpha+beta))`,
    /// `D_opt = (C/6) / N_opt`. `None` unless both exponents are positive (otherwise loss keeps
    /// falling as one of N, D shrinks, and there is no optimum).
    pub fn compute_optimal(&self, compute: f64) -> Option<Allocation> {
        let (alpha, beta) = (self.alpha, self.beta);
        if !(alpha > 0.0 && beta > 0.0 && self.a > 0.0 && self.b > 0.0 && compute > 0.0) {
            return None;
        }
        let g = (alpha * self.a / (beta * self.b)).powf(1.0 / (alpha + beta));
        let n = g * (compute / 6.0).powf(beta / (alpha + beta));
        let d = compute / 6.0 / n;
        Some(Allocation { compute, n, d, loss: self.predict(n, d) })
    }
}

/// How laws are fitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitOptions {
    /// Huber threshold on log-loss residuals (Chinchilla's 1e-3: residuals above 0.1% count
    /// linearly, not squared).
    pub huber_delta: f64,
    /// Bootstrap resamples for the intervals (0 = no intervals).
    pub bootstrap: usize,
    /// Central probability of each interval.
    pub confidence: f64,
    /// Seed of the bootstrap's resampling.
    pub seed: u64,
    /// Initialisations L-BFGS is started from: the best of the grid.
    pub starts: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self { huber_delta: 1e-3, bootstrap: 200, confidence: 0.95, seed: 0, starts: 24 }
    }
}

impl FitOptions {
    pub fn validate(&self) -> Result<()> {
        if !(self.huber_delta > 0.0 && self.huber_delta.is_finite()) {
            return Err(Error::Config(format!("fit.huber_delta must be above 0; got {}", self.huber_delta)));
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(Error::Config(format!("fit.confidence must be in (0, 1); got {}", self.confidence)));
        }
        ingot_core::limits::at_least("fit.starts", self.starts, 1)?;
        Ok(())
    }
}

/// A parameter's fitted value and its bootstrap interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub name: String,
    pub value: f64,
    /// The interval's ends; `None` without bootstrap resamples.
    pub lo: Option<f64>,
    pub hi: Option<f64>,
}

/// A fitted law with its intervals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fit<L> {
    pub law: L,
    /// Every parameter (and, for L(N, D), the compute-optimal exponents a = beta/(alpha+beta)
    /// and b = alpha/(alpha+beta)) with its interval.
    pub estimates: Vec<Estimate>,
    /// The Huber objective at the optimum (sum over observations).
    pub objective: f64,
    /// Root mean square of the relative residuals, log(L̂ / L), over the fitted observations.
    pub rms_log_residual: f64,
    pub n_observations: usize,
    /// Bootstrap resamples refitted (resamples that could not identify the law were redrawn).
    pub bootstrap_resamples: usize,
    pub confidence: f64,
}

impl<L> Fit<L> {
    /// The estimate called `name` (e.g. "alpha").
    pub fn estimate(&self, name: &str) -> Option<&Estimate> {
        self.estimates.iter().find(|e| e.name == name)
    }
}

/// Fit L(N) = E + A / N^alpha. Needs at least 3 distinct N.
pub fn fit_power_law(obs: &[Observation], opts: &FitOptions) -> Result<Fit<PowerLaw>> {
    fit_law::<PowerLawForm>(obs, opts)
}

/// Fit L(N, D) = E + A / N^alpha + B / D^beta. Needs at least 5 runs over at least 2 distinct N
/// and 2 distinct D.
pub fn fit_chinchilla(obs: &[Observation], opts: &FitOptions) -> Result<Fit<Chinchilla>> {
    fit_law::<ChinchillaForm>(obs, opts)
}

// ---------------------------------------------------------------------------------------------
// The two laws in log-sum-exp form

/// A law as the fitter sees it: a parameter vector theta, log L̂(theta, obs), a start grid, and
/// what observations can identify it.
trait Form {
    type Law: Copy;
    /// (name of each reported estimate, in order), then `estimates` gives their values.
    const NAMES: &'static [&'static str];
    fn log_predict(theta: &[f64], o: &Observation) -> f64;
    fn grid() -> Vec<Vec<f64>>;
    fn law(theta: &[f64]) -> Self::Law;
    fn values(law: &Self::Law) -> Vec<f64>;
    /// Why `obs` cannot identify the law, if it cannot.
    fn unidentifiable(obs: &[Observation]) -> Option<String>;
}

/// log(exp(x) + exp(y) + ...) without overflow.
fn log_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

fn steps(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let n = ((hi - lo) / step).round() as usize;
    (0..=n).map(|i| lo + step * i as f64).collect()
}

fn distinct(values: impl Iterator<Item = f64>) -> usize {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v.len()
}

struct PowerLawForm;

impl Form for PowerLawForm {
    type Law = PowerLaw;
    const NAMES: &'static [&'static str] = &["E", "A", "alpha"];

    // theta = (a, alpha, e)
    fn log_predict(t: &[f64], o: &Observation) -> f64 {
        log_sum_exp(&[t[0] - t[1] * o.n.ln(), t[2]])
    }

    fn grid() -> Vec<Vec<f64>> {
        let mut g = Vec::new();
        for &a in &steps(0.0, 25.0, 5.0) {
            for &alpha in &steps(0.0, 2.0, 0.5) {
                for &e in &steps(-1.0, 1.0, 0.5) {
                    g.push(vec![a, alpha, e]);
                }
            }
        }
        g
    }

    fn law(t: &[f64]) -> PowerLaw {
        PowerLaw::from_theta(t)
    }

    fn values(l: &PowerLaw) -> Vec<f64> {
        vec![l.e, l.a, l.alpha]
    }

    fn unidentifiable(obs: &[Observation]) -> Option<String> {
        let n = distinct(obs.iter().map(|o| o.n));
        (n < 3).then(|| format!("L(N) has 3 parameters and needs at least 3 distinct model sizes; got {n}"))
    }
}

struct ChinchillaForm;

impl Form for ChinchillaForm {
    type Law = Chinchilla;
    const NAMES: &'static [&'static str] =
        &["E", "A", "alpha", "B", "beta", "a = beta/(alpha+beta)", "b = alpha/(alpha+beta)"];

    // theta = (a, b, e, alpha, beta)
    fn log_predict(t: &[f64], o: &Observation) -> f64 {
        log_sum_exp(&[t[0] - t[3] * o.n.ln(), t[1] - t[4] * o.d.ln(), t[2]])
    }

    fn grid() -> Vec<Vec<f64>> {
        let mut g = Vec::new();
        for &alpha in &steps(0.0, 2.0, 0.5) {
            for &beta in &steps(0.0, 2.0, 0.5) {
                for &e in &steps(-1.0, 1.0, 0.5) {
                    for &a in &steps(0.0, 25.0, 5.0) {
                        for &b in &steps(0.0, 25.0, 5.0) {
                            g.push(vec![a, b, e, alpha, beta]);
                        }
                    }
                }
            }
        }
        g
    }

    fn law(t: &[f64]) -> Chinchilla {
        Chinchilla::from_theta(t)
    }

    fn values(l: &Chinchilla) -> Vec<f64> {
        let s = l.alpha + l.beta;
        vec![l.e, l.a, l.alpha, l.b, l.beta, l.beta / s, l.alpha / s]
    }

    fn unidentifiable(obs: &[Observation]) -> Option<String> {
        let (n, d) = (distinct(obs.iter().map(|o| o.n)), distinct(obs.iter().map(|o| o.d)));
        if n < 2 || d < 2 || obs.len() < 5 {
            return Some(format!(
                "L(N, D) has 5 parameters and needs at least 5 runs over at least 2 model sizes and 2 token \
                 budgets; got {} runs, {n} sizes, {d} budgets",
                obs.len()
            ));
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The fit

fn huber(r: f64, delta: f64) -> f64 {
    if r.abs() <= delta {
        0.5 * r * r
    } else {
        delta * (r.abs() - 0.5 * delta)
    }
}

/// Sum of Huber losses of the log residuals of `theta` on `obs`.
fn objective<F: Form>(theta: &[f64], obs: &[Observation], delta: f64) -> f64 {
    let total: f64 = obs.iter().map(|o| huber(F::log_predict(theta, o) - o.loss.ln(), delta)).sum();
    if total.is_finite() {
        total
    } else {
        f64::INFINITY
    }
}

/// The best local minimum from the best `starts` points of the grid, plus `extra` starts.
fn best_fit<F: Form>(obs: &[Observation], opts: &FitOptions, starts: usize, extra: &[Vec<f64>]) -> (Vec<f64>, f64) {
    let f = |t: &[f64]| objective::<F>(t, obs, opts.huber_delta);
    let mut grid: Vec<(f64, Vec<f64>)> = F::grid().into_iter().map(|t| (f(&t), t)).collect();
    grid.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut best: (Vec<f64>, f64) = (grid[0].1.clone(), grid[0].0);
    for start in grid.into_iter().take(starts).map(|g| g.1).chain(extra.iter().cloned()) {
        let (theta, value) = lbfgs(&f, &start);
        if value < best.1 {
            best = (theta, value);
        }
    }
    best
}

fn fit_law<F: Form>(obs: &[Observation], opts: &FitOptions) -> Result<Fit<F::Law>> {
    opts.validate()?;
    if let Some(bad) = obs.iter().find(|o| !(o.n > 0.0 && o.d > 0.0 && o.loss > 0.0 && o.loss.is_finite())) {
        return Err(Error::Fit(format!(
            "every run needs N > 0, D > 0 and a finite loss > 0; got N {}, D {}, loss {}",
            bad.n, bad.d, bad.loss
        )));
    }
    if let Some(why) = F::unidentifiable(obs) {
        return Err(Error::Fit(why));
    }
    let (theta, value) = best_fit::<F>(obs, opts, opts.starts, &[]);
    let law = F::law(&theta);
    let residuals: Vec<f64> = obs.iter().map(|o| F::log_predict(&theta, o) - o.loss.ln()).collect();
    let rms = (residuals.iter().map(|r| r * r).sum::<f64>() / obs.len() as f64).sqrt();

    // Bootstrap: refit resamples, starting from the full fit and the resample's best grid points.
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut samples: Vec<Vec<f64>> = Vec::with_capacity(opts.bootstrap);
    let mut draws = 0usize;
    while samples.len() < opts.bootstrap && draws < opts.bootstrap * 20 {
        draws += 1;
        let resample: Vec<Observation> = (0..obs.len()).map(|_| obs[rng.random_range(0..obs.len())]).collect();
        if F::unidentifiable(&resample).is_some() {
            continue;
        }
        let (t, _) = best_fit::<F>(&resample, opts, opts.starts.min(4), std::slice::from_ref(&theta));
        let v = F::values(&F::law(&t));
        if v.iter().all(|x| x.is_finite()) {
            samples.push(v);
        }
    }
    let values = F::values(&law);
    let tail = (1.0 - opts.confidence) / 2.0;
    let estimates = F::NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut column: Vec<f64> = samples.iter().map(|s| s[i]).collect();
            column.sort_by(f64::total_cmp);
            let (lo, hi) = match column.is_empty() {
                true => (None, None),
                false => (Some(quantile(&column, tail)), Some(quantile(&column, 1.0 - tail))),
            };
            Estimate { name: name.to_string(), value: values[i], lo, hi }
        })
        .collect();
    Ok(Fit {
        law,
        estimates,
        objective: value,
        rms_log_residual: rms,
        n_observations: obs.len(),
        bootstrap_resamples: samples.len(),
        confidence: opts.confidence,
    })
}

/// The `q` quantile of sorted values, linearly interpolated (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + frac * (next - sorted[i]),
        None => sorted[i],
    }
}

// ---------------------------------------------------------------------------------------------
// L-BFGS

/// Gradient of `f` at `x` by central differences.
fn gradient(f: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let mut x = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = 1e-6 * x[i].abs().max(1.0);
            let keep = x[i];
            x[i] = keep + h;
            let up = f(&x);
            x[i] = keep - h;
            let down = f(&x);
            x[i] = keep;
            (up - down) / (2.0 * h)
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimise `f` from `x0` by L-BFGS (Nocedal & Wright, algorithm 7.4: ten curvature pairs, the
/// two-loop recursion) with a backtracking Armijo line search. Returns the best point and value.
fn lbfgs(f: &dyn Fn(&[f64]) -> f64, x0: &[f64]) -> (Vec<f64>, f64) {
    const MEMORY: usize = 10;
    const MAX_ITER: usize = 500;
    let mut x = x0.to_vec();
    let mut fx = f(&x);
    if !fx.is_finite() {
        return (x, fx);
    }
    let mut g = gradient(f, &x);
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    for _ in 0..MAX_ITER {
        let g_norm = dot(&g, &g).sqrt();
        if g_norm < 1e-12 {
            break;
        }
        // Two-loop recursion: direction = -H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        let gamma = match history.back() {
            Some((s, y, _)) => dot(s, y) / dot(y, y),
            None => 1.0 / g_norm.max(1.0),
        };
        q.iter_mut().for_each(|qi| *qi *= gamma);
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &dir);
        if slope >= 0.0 {
            // Not a descent direction (curvature information gone stale): steepest descent.
            history.clear();
            dir = g.iter().map(|v| -v / g_norm.max(1.0)).collect();
            slope = dot(&g, &dir);
        }
        // Backtracking: the first step length with sufficient decrease.
        let mut step = 1.0;
        let mut next = None;
        for _ in 0..60 {
            let xn: Vec<f64> = x.iter().zip(&dir).map(|(xi, di)| xi + step * di).collect();
            let fxn = f(&xn);
            if fxn.is_finite() && fxn <= fx + 1e-4 * step * slope {
                next = Some((xn, fxn));
                break;
            }
            step *= 0.5;
        }
        let Some((xn, fxn)) = next else {
            if history.is_empty() {
                break;
            }
            history.clear();
            continue;
        };
        let gn = gradient(f, &xn);
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
            if history.len() == MEMORY {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        let improvement = fx - fxn;
        (x, fx, g) = (xn, fxn, gn);
        if improvement <= 1e-16 * fx.abs().max(1e-300) && step < 1e-10 {
            break;
        }
    }
    (x, fx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chinchilla's own fitted law (Hoffmann et al. 2022, eq. 10), the truth synthetic runs are
    /// drawn from.
    const TRUE: Chinchilla = Chinchilla { e: 1.69, a: 406.4, alpha: 0.34, b: 410.7, beta: 0.28 };

    /// A standard normal draw (Box-Muller), seeded.
    fn normal(rng: &mut StdRng) -> f64 {
        let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random_range(0.0..1.0));
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Runs on a grid of sizes and budgets, their losses from `law` times exp(noise * z).
    fn synthetic(law: impl Fn(f64, f64) -> f64, ns: &[f64], ds: &[f64], noise: f64, seed: u64) -> Vec<Observation> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut obs = Vec::new();
        for &n in ns {
            for &d in ds {
                obs.push(Observation { n, d, loss: law(n, d) * (noise * normal(&mut rng)).exp() });
            }
        }
        obs
    }

    fn close(what: &str, got: f64, want: f64, rel: f64) {
        assert!((got - want).abs() <= rel * want.abs(), "{what}: got {got}, want {want} (within {:.1}%)", 100.0 * rel);
    }

    fn log_grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
        (0..n).map(|i| lo * (hi / lo).powf(i as f64 / (n - 1) as f64)).collect()
    }

    /// Exact losses give back the exact law; 0.5% noise gives it back within a few percent, and
    /// the 95% bootstrap intervals contain the truth. (Tolerances: at this noise over two decades
    /// of N and D, E, A and alpha trade off along a ridge, so A is the loosest.)
    #[test]
    fn chinchilla_fit_recovers_known_parameters() {
        let ns = log_grid(1e7, 1e9, 6);
        let ds = log_grid(1e9, 1e11, 5);
        let opts = FitOptions { bootstrap: 0, ..Default::default() };
        let exact = fit_chinchilla(&synthetic(|n, d| TRUE.predict(n, d), &ns, &ds, 0.0, 1), &opts).unwrap();
        close("exact E", exact.law.e, TRUE.e, 1e-3);
        close("exact alpha", exact.law.alpha, TRUE.alpha, 1e-3);
        close("exact beta", exact.law.beta, TRUE.beta, 1e-3);
        close("exact A", exact.law.a, TRUE.a, 1e-2);
        close("exact B", exact.law.b, TRUE.b, 1e-2);
        assert!(exact.rms_log_residual < 1e-5, "{}", exact.rms_log_residual);

        let obs = synthetic(|n, d| TRUE.predict(n, d), &ns, &ds, 0.005, 7);
        let opts = FitOptions { bootstrap: 100, seed: 3, ..Default::default() };
        let fit = fit_chinchilla(&obs, &opts).unwrap();
        close("E", fit.law.e, TRUE.e, 0.05);
        close("alpha", fit.law.alpha, TRUE.alpha, 0.15);
        close("beta", fit.law.beta, TRUE.beta, 0.15);
        assert_eq!(fit.bootstrap_resamples, 100);
        for (name, truth) in [("E", TRUE.e), ("alpha", TRUE.alpha), ("beta", TRUE.beta), ("A", TRUE.a), ("B", TRUE.b)] {
            let est = fit.estimate(name).unwrap();
            let (lo, hi) = (est.lo.unwrap(), est.hi.unwrap());
            assert!(lo <= truth && truth <= hi, "{name}: truth {truth} outside [{lo}, {hi}] (fit {})", est.value);
            assert!(lo <= est.value && est.value <= hi, "{name}: fit {} outside its own interval", est.value);
        }
        // Predictions a decade beyond the largest run stay within 1%.
        close("extrapolation", fit.law.predict(1e10, 1e11), TRUE.predict(1e10, 1e11), 0.01);
        // The same seed gives the same intervals.
        let few = FitOptions { bootstrap: 10, ..opts };
        assert_eq!(fit_chinchilla(&obs, &few).unwrap(), fit_chinchilla(&obs, &few).unwrap());
    }

    #[test]
    fn power_law_fit_recovers_known_parameters() {
        let truth = PowerLaw { e: 3.2, a: 55.0, alpha: 0.3 };
        let ns = log_grid(3e4, 3e6, 6);
        let opts = FitOptions { bootstrap: 100, seed: 1, ..Default::default() };
        let exact = fit_power_law(&synthetic(|n, _| truth.predict(n), &ns, &[1e6], 0.0, 1), &opts).unwrap();
        close("exact E", exact.law.e, truth.e, 1e-3);
        close("exact alpha", exact.law.alpha, truth.alpha, 1e-3);
        close("exact A", exact.law.a, truth.a, 1e-2);
        let fit = fit_power_law(&synthetic(|n, _| truth.predict(n), &log_grid(3e4, 3e6, 12), &[1e6], 0.003, 5), &opts)
            .unwrap();
        close("E", fit.law.e, truth.e, 0.05);
        close("alpha", fit.law.alpha, truth.alpha, 0.2);
        let alpha = fit.estimate("alpha").unwrap();
        assert!(alpha.lo.unwrap() <= truth.alpha && truth.alpha <= alpha.hi.unwrap(), "{alpha:?}");
        // Fitted on all but the largest size, it predicts the largest within 1%.
        let obs = synthetic(|n, _| truth.predict(n), &ns, &[1e6], 0.003, 9);
        let small = fit_power_law(&obs[..obs.len() - 1], &opts).unwrap();
        let last = obs[obs.len() - 1];
        close("held-out prediction", small.law.predict(last.n), last.loss, 0.01);
    }

    /// One wild run (a diverged or mis-measured loss, 30% off) barely moves a Huber fit.
    #[test]
    fn huber_fit_shrugs_off_an_outlier() {
        let ns = log_grid(1e7, 1e9, 6);
        let ds = log_grid(1e9, 1e11, 5);
        let mut obs = synthetic(|n, d| TRUE.predict(n, d), &ns, &ds, 0.0, 1);
        obs[7].loss *= 1.3;
        let fit = fit_chinchilla(&obs, &FitOptions { bootstrap: 0, ..Default::default() }).unwrap();
        close("alpha", fit.law.alpha, TRUE.alpha, 0.02);
        close("beta", fit.law.beta, TRUE.beta, 0.02);
        close("E", fit.law.e, TRUE.e, 0.01);
    }

    /// The allocation is the closed form, written out here independently, for the
    /// exponents the fitter returned; it is also the minimum of the law along C = 6ND, found by
    /// golden-section search over log N; and it spends exactly C.
    #[test]
    fn compute_optimal_matches_the_closed_form() {
        let ns = log_grid(1e7, 1e9, 5);
        let ds = log_grid(1e9, 1e11, 4);
        let obs = synthetic(|n, d| TRUE.predict(n, d), &ns, &ds, 0.003, 11);
        let law = fit_chinchilla(&obs, &FitOptions { bootstrap: 0, ..Default::default() }).unwrap().law;
        let (alpha, beta) = (law.alpha, law.beta);
        for c in [1e18, 5.76e23, 1e26] {
            let got = law.compute_optimal(c).unwrap();
            let g = (alpha * law.a / (beta * law.b)).powf(1.0 / (alpha + beta));
            let n_opt = g * (c / 6.0).powf(beta / (alpha + beta));
            let d_opt = (c / 6.0) / n_opt;
            close("N_opt", got.n, n_opt, 1e-12);
            close("D_opt", got.d, d_opt, 1e-12);
            close("C = 6ND", 6.0 * got.n * got.d, c, 1e-12);
            // Golden-section search for the minimum along the iso-FLOP line.
            let along = |log_n: f64| law.predict(log_n.exp(), c / 6.0 / log_n.exp());
            let (mut lo, mut hi) = (1.0f64, (c / 6.0).ln() - 1.0);
            let phi = (5f64.sqrt() - 1.0) / 2.0;
            for _ in 0..200 {
                let (m1, m2) = (hi - phi * (hi - lo), lo + phi * (hi - lo));
                if along(m1) < along(m2) {
                    hi = m2;
                } else {
                    lo = m1;
                }
            }
            close("numeric N_opt", (0.5 * (lo + hi)).exp(), got.n, 1e-4);
            assert!(got.loss <= along(got.n.ln() + 0.01) && got.loss <= along(got.n.ln() - 0.01));
        }
        // With Chinchilla's own constants the 5.76e23-FLOP budget (Chinchilla's) gives about
        // 40B parameters (their Table 3, approach 3: 40.6B... here from eq. 10's rounded constants).
        let chin = TRUE.compute_optimal(5.76e23).unwrap();
        assert!(chin.n > 2e10 && chin.n < 6e10, "{chin:?}");
        assert!(Chinchilla { beta: -0.1, ..TRUE }.compute_optimal(1e20).is_none());
    }

    #[test]
    fn too_few_runs_are_an_error_not_a_panic() {
        let obs = vec![Observation { n: 1e6, d: 1e8, loss: 4.0 }, Observation { n: 2e6, d: 1e8, loss: 3.8 }];
        let e = fit_power_law(&obs, &FitOptions::default()).unwrap_err().to_string();
        assert!(e.contains("3 distinct model sizes"), "{e}");
        let e = fit_chinchilla(&obs, &FitOptions::default()).unwrap_err().to_string();
        assert!(e.contains("2 token budgets"), "{e}");
        let bad = vec![Observation { n: 1e6, d: 1e8, loss: f64::NAN }; 3];
        assert!(fit_power_law(&bad, &FitOptions::default()).unwrap_err().to_string().contains("finite"));
        assert!(fit_power_law(&[], &FitOptions::default()).is_err());
    }

    #[test]
    fn lbfgs_minimises_rosenbrock() {
        let f = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let (x, fx) = lbfgs(&f, &[-1.2, 1.0]);
        assert!(fx < 1e-10 && (x[0] - 1.0).abs() < 1e-4 && (x[1] - 1.0).abs() < 1e-4, "{x:?} {fx}");
    }
}
