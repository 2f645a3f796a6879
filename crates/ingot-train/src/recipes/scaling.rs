//! Recipe: scaling laws on one command. Train a family of model sizes on a grid of token
//! budgets, fit how loss falls with parameters and data, and predict what the next size and a
//! larger compute budget would reach.
//!
//! Supports: GPT-2 and llama presets sized from one knob, depth, as Kaplan et al. 2020 size
//! theirs (width = `aspect_ratio` x depth, heads = width / `head_dim`); every size trained on
//! every token budget through the pretrain recipe ([`pretrain::run`]), with the schedule matched
//! to the run's length (warmup a fraction of its steps, cosine decay ending on its last step:
//! Hoffmann et al. 2022 found a cosine longer than the run overstates its loss) and an optional
//! learning rate rule lr ∝ width^-k; one data preparation shared by every run; resumable sweeps
//! (finished runs are skipped, a run cut short resumes from its checkpoint, sizes or budgets
//! added later are trained on `--resume`); the fits of [`crate::scaling_fit`] with bootstrap
//! intervals; a held-out check (the laws fitted on every size but the largest predict the
//! largest); a report (JSON, Markdown, SVG) by [`crate::scaling_report`].
//!
//! Assumes: what the pretrain recipe assumes of the corpus. N is Kaplan's non-embedding
//! parameter count (token and position embeddings and the LM head left out) and compute is
//! C = 6ND.
//!
//! Errors: bad config fields (named), shape fields in `[model]` that the sweep sets itself, a
//! finished run whose settings differ from the current config, and whatever pretraining raises.
//!
//! Skeleton: setup (config → sweep folder → data, prepared once → plan of runs), train (each run
//! through the pretrain recipe, skipped when done), save (each run's `result.json`; the report).
//!
//! Layout of `--out`: `ingot-scaling.json` (marks the folder, records the config), `data/`,
//! `runs/<name>/` (a pretrain run folder, plus `result.json` once it is finished), and the report
//! (`scaling.json`, `scaling.md`, `loss_vs_params.svg`, `loss_vs_compute.svg`,
//! `predicted_vs_measured.svg`).

use std::path::Path;

use candle_core::Device;
use ingot_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pretrain::{self, parse_toml, DataSection, ModelSection, PretrainConfig, SampleSection, RUN_MANIFEST};
use crate::error::{Error, Result};
use crate::scaling_fit::FitOptions;
use crate::scaling_report::{self, Curve, RunResult, ScalingReport};
use crate::trainer::{Metrics, TrainConfig};

/// `[sweep]`: which sizes and token budgets to train.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSection {
    /// The size knob: layers of each model size.
    pub depths: Vec<usize>,
    /// Width per layer (Kaplan's d_model / n_layer); width = aspect_ratio x depth.
    pub aspect_ratio: usize,
    /// Channels per attention head; heads = width / head_dim (aspect_ratio must be a multiple).
    pub head_dim: usize,
    /// Token budgets D; every size is trained once on each (rounded up to whole steps).
    pub tokens: Vec<u64>,
    /// Warmup steps as a fraction of each run's steps.
    #[serde(default = "default_warmup_fraction")]
    pub warmup_fraction: f64,
    /// lr = train.lr x (lr_reference_width / width)^lr_width_exponent, min_lr likewise
    /// (0 = one learning rate for every size).
    #[serde(default)]
    pub lr_width_exponent: f64,
    /// The width at which `train.lr` applies (default: the smallest size's).
    pub lr_reference_width: Option<usize>,
}

fn default_warmup_fraction() -> f64 {
    0.05
}

/// `[fit]`: how the laws are fitted and what the report predicts.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitSection {
    /// Huber threshold on log-loss residuals (Chinchilla's 1e-3).
    pub huber_delta: f64,
    /// Bootstrap resamples for the intervals (0 = none).
    pub bootstrap: usize,
    /// Central probability of each interval.
    pub confidence: f64,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// Largest relative error of the held-out prediction that passes.
    pub holdout_tolerance: f64,
    /// FLOP budgets to split compute-optimally (default: 1x, 10x and 100x the largest run's).
    pub compute_budgets: Vec<f64>,
}

impl Default for FitSection {
    fn default() -> Self {
        let f = FitOptions::default();
        Self {
            huber_delta: f.huber_delta,
            bootstrap: f.bootstrap,
            confidence: f.confidence,
            seed: f.seed,
            holdout_tolerance: 0.02,
            compute_budgets: Vec::new(),
        }
    }
}

impl FitSection {
    pub fn options(&self) -> FitOptions {
        FitOptions {
            huber_delta: self.huber_delta,
            bootstrap: self.bootstrap,
            confidence: self.confidence,
            seed: self.seed,
            ..FitOptions::default()
        }
    }
}

/// A whole scaling config: a pretrain config (the base every run starts from) plus the sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingConfig {
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub sample: SampleSection,
    pub sweep: SweepSection,
    #[serde(default)]
    pub fit: FitSection,
}

/// One run of the sweep: a size on a token budget, as a pretrain config.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    /// `L<depth>-W<width>-D<tokens>`, its folder under `runs/`.
    pub name: String,
    pub depth: usize,
    pub width: usize,
    pub heads: usize,
    /// Tokens trained on: the budget rounded up to whole steps.
    pub tokens: u64,
    pub config: PretrainConfig,
}

/// The HF fields of each architecture that the sweep sets from the size knob.
const GPT2_SHAPE: &[&str] = &["n_layer", "n_embd", "n_head"];
const LLAMA_SHAPE: &[&str] =
    &["num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size"];

impl ScalingConfig {
    /// Parse TOML, apply `section.key=value` overrides, and check every field.
    pub fn from_toml(text: &str, overrides: &[String], origin: &str) -> Result<Self> {
        let cfg: ScalingConfig = parse_toml(text, overrides, origin)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let s = &self.sweep;
        let bad = |m: String| Err(Error::Config(m));
        if s.depths.is_empty() || s.tokens.is_empty() {
            return bad("sweep.depths and sweep.tokens must each list at least one value".into());
        }
        if s.depths.contains(&0) || s.tokens.contains(&0) {
            return bad(format!(
                "sweep.depths and sweep.tokens must be at least 1; got {:?} and {:?}",
                s.depths, s.tokens
            ));
        }
        if s.head_dim == 0 || s.aspect_ratio == 0 || !s.aspect_ratio.is_multiple_of(s.head_dim) {
            return bad(format!(
                "sweep.aspect_ratio ({}) must be a positive multiple of sweep.head_dim ({}), so that every \
                 width splits into whole heads",
                s.aspect_ratio, s.head_dim
            ));
        }
        if !(0.0..1.0).contains(&s.warmup_fraction) {
            return bad(format!("sweep.warmup_fraction must be in [0, 1); got {}", s.warmup_fraction));
        }
        if !s.lr_width_exponent.is_finite() || s.lr_reference_width == Some(0) {
            return bad("sweep.lr_width_exponent must be finite and sweep.lr_reference_width at least 1".into());
        }
        let f = &self.fit;
        if !(f.holdout_tolerance > 0.0 && f.holdout_tolerance.is_finite())
            || f.compute_budgets.iter().any(|c| !(*c > 0.0 && c.is_finite()))
        {
            return bad("fit.holdout_tolerance and every fit.compute_budgets value must be above 0".into());
        }
        self.fit.options().validate()?;
        let shape = self.shape_fields()?;
        if let Some(k) = self.model.overrides.keys().find(|k| shape.contains(&k.as_str())) {
            return bad(format!("[model] {k} is set by the sweep from sweep.depths; remove it from [model]"));
        }
        // Every run's pretrain config is checked as `ingot pretrain` checks it, before any data work.
        for run in self.plan()? {
            run.config.train.validate()?;
            run.config.train.schedule().validate()?;
            let (_, _, context) = pretrain::resolve_model_config(&run.config.model, 256)?;
            if self.data.context > context {
                return bad(format!(
                    "data.context {} exceeds the model's context length {context} (set n_positions or \
                     max_position_embeddings in [model])",
                    self.data.context
                ));
            }
        }
        if self.data.batch_size == 0 || self.data.context == 0 {
            return bad("data.batch_size and data.context must be at least 1".into());
        }
        ingot_core::limits::at_least("data.eval_batches", self.data.eval_batches, 1)?;
        Ok(())
    }

    fn shape_fields(&self) -> Result<&'static [&'static str]> {
        let preset = ingot_models::presets::preset(&self.model.preset, 256)?;
        Ok(match preset["model_type"].as_str() {
            Some("llama") => LLAMA_SHAPE,
            _ => GPT2_SHAPE,
        })
    }

    /// Tokens per optimizer step.
    pub fn tokens_per_step(&self) -> u64 {
        (self.data.batch_size * self.data.context) as u64 * self.train.grad_accum as u64
    }

    /// Every run, smallest size first and, within a size, shortest budget first.
    pub fn plan(&self) -> Result<Vec<PlannedRun>> {
        let s = &self.sweep;
        let mut depths = s.depths.clone();
        depths.sort();
        depths.dedup();
        let mut budgets = s.tokens.clone();
        budgets.sort();
        budgets.dedup();
        let reference = s.lr_reference_width.unwrap_or(depths[0] * s.aspect_ratio) as f64;
        let per_step = self.tokens_per_step().max(1);
        let llama = self.shape_fields()? == LLAMA_SHAPE;
        let mut runs = Vec::new();
        for &depth in &depths {
            let width = depth * s.aspect_ratio;
            let heads = width / s.head_dim;
            let mut model = self.model.clone();
            let shape: Vec<(&str, usize)> = if llama {
                // SwiGLU's 8/3 expansion keeps the MLP at GPT-2's 4x in parameters (rounded to 16).
                let mlp = (8 * width).div_ceil(3).next_multiple_of(16);
                vec![
                    ("num_hidden_layers", depth),
                    ("hidden_size", width),
                    ("num_attention_heads", heads),
                    ("num_key_value_heads", heads),
                    ("intermediate_size", mlp),
                ]
            } else {
                vec![("n_layer", depth), ("n_embd", width), ("n_head", heads)]
            };
            for (k, v) in shape {
                model.overrides.insert(k.to_string(), Value::from(v));
            }
            let scale = (reference / width as f64).powf(s.lr_width_exponent);
            for &budget in &budgets {
                let steps = budget.div_ceil(per_step);
                let warmup = ((s.warmup_fraction * steps as f64).round() as u64).min(steps.saturating_sub(1));
                let train = TrainConfig {
                    max_steps: steps,
                    warmup_steps: warmup,
                    decay_steps: Some(steps),
                    lr: self.train.lr * scale,
                    min_lr: self.train.min_lr * scale,
                    ..self.train.clone()
                };
                let config = PretrainConfig {
                    model: model.clone(),
                    data: self.data.clone(),
                    train,
                    sample: self.sample.clone(),
                };
                runs.push(PlannedRun {
                    name: format!("L{depth}-W{width}-D{budget}"),
                    depth,
                    width,
                    heads,
                    tokens: steps * per_step,
                    config,
                });
            }
        }
        Ok(runs)
    }
}

/// `<out>/ingot-scaling.json`: marks a folder as a scaling sweep and records its config.
pub const SWEEP_MANIFEST: &str = "ingot-scaling.json";
/// `<out>/runs/<name>/result.json`: a finished run's numbers; its presence means "done".
pub const RESULT_FILE: &str = "result.json";
/// The report files, removed with the runs by `--force`.
const REPORT_FILES: &[&str] = &[
    scaling_report::JSON_FILE,
    scaling_report::MARKDOWN_FILE,
    scaling_report::PARAMS_SVG,
    scaling_report::COMPUTE_SVG,
    scaling_report::PREDICTED_SVG,
];

/// Is `out` a place for this sweep? A fresh sweep needs a folder that holds no sweep (or
/// `force`, which deletes that sweep's runs and report); `resume` needs one that does.
fn claim_sweep_folder(out: &Path, resume: bool, force: bool) -> Result<()> {
    let is_sweep = out.join(SWEEP_MANIFEST).is_file();
    if resume {
        if !is_sweep {
            return Err(Error::Config(format!(
                "--resume: {} holds no scaling sweep (no {SWEEP_MANIFEST}); start it without --resume",
                out.display()
            )));
        }
        return Ok(());
    }
    if !is_sweep {
        return ingot_core::atomic::check_output(out, "scaling sweep", SWEEP_MANIFEST, force).map_err(Error::Core);
    }
    if !force {
        return Err(Error::Config(format!(
            "{} already holds a scaling sweep; continue it with --resume (finished runs are skipped), \
             choose another --out, or pass --force to delete its runs and start afresh",
            out.display()
        )));
    }
    // Only what the sweep made: run folders (they carry the pretrain manifest) and the report.
    let runs = out.join("runs");
    if let Ok(entries) = std::fs::read_dir(&runs) {
        for dir in entries.flatten().map(|e| e.path()) {
            if dir.join(RUN_MANIFEST).is_file() || dir.join(crate::checkpoint::LATEST_FILE).is_file() {
                std::fs::remove_dir_all(&dir).map_err(Error::io("removing the old sweep's run", &dir))?;
            }
        }
    }
    for name in REPORT_FILES {
        let path = out.join(name);
        if path.is_file() {
            std::fs::remove_file(&path).map_err(Error::io("removing the old sweep's", &path))?;
        }
    }
    Ok(())
}

/// Kaplan's N (every parameter but the token and position embeddings and the LM head) and the
/// total, counted on the model as built.
fn parameter_counts(model: &ModelSection, vocab_size: usize) -> Result<(u64, u64)> {
    let (_, varmap, _) = pretrain::build_model(model, vocab_size, 0, &Device::Cpu)?;
    let (mut non_embedding, mut total) = (0u64, 0u64);
    for (name, var) in crate::trainer::named_vars(&varmap)? {
        let n = var.elem_count() as u64;
        total += n;
        if !name.split('.').any(|part| matches!(part, "wte" | "wpe" | "embed_tokens" | "lm_head")) {
            non_embedding += n;
        }
    }
    Ok((non_embedding, total))
}

/// One line per planned run (shape, N, D, steps, lr), for `--plan`. N does not depend on the
/// vocabulary, so no data is needed.
pub fn describe_plan(cfg: &ScalingConfig) -> Result<Vec<String>> {
    let plan = cfg.plan()?;
    let mut lines = Vec::new();
    for run in &plan {
        let (n, _) = parameter_counts(&run.config.model, 256)?;
        lines.push(format!(
            "{}: {}, width {}, {}, N = {}; D = {} tokens ({} steps, warmup {}), lr {:.2e}, C = {:.2e} FLOPs",
            run.name,
            counted(run.depth, "layer"),
            run.width,
            counted(run.heads, "head"),
            scaling_report::si(n as f64),
            scaling_report::si(run.tokens as f64),
            run.config.train.max_steps,
            run.config.train.warmup_steps,
            run.config.train.lr,
            6.0 * n as f64 * run.tokens as f64
        ));
    }
    Ok(lines)
}

/// "1 layer", "3 layers".
fn counted(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// What happened to a run on this invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Finished on an earlier invocation: not touched.
    Skipped,
    /// Trained to its last step earlier, killed before its result was written: measured only.
    Measured,
    /// Continued from its latest checkpoint.
    Resumed,
    /// Trained from step 0.
    Trained,
}

/// The metrics lines a run wrote.
fn read_metrics(dir: &Path) -> Vec<Metrics> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Bring one run to its end and return its result: skip it if it finished earlier, otherwise
/// train it (afresh, or on from its checkpoint). A run that got as far as a checkpoint must have
/// been made with the current settings; one killed before its first is simply started again.
fn run_one(
    run: &PlannedRun,
    dir: &Path,
    (non_embedding, total): (u64, u64),
    tokenizer: &Tokenizer,
    data_dir: &Path,
    progress: bool,
) -> Result<(RunResult, Outcome)> {
    let result_path = dir.join(RESULT_FILE);
    let latest = crate::checkpoint::latest(dir)?;
    if result_path.is_file() || latest.is_some() {
        pretrain::check_resumable(dir, &pretrain::run_manifest(&run.config, tokenizer, data_dir)?)?;
    }
    if result_path.is_file() {
        let text = std::fs::read_to_string(&result_path).map_err(Error::io("reading", &result_path))?;
        let result: RunResult = serde_json::from_str(&text).map_err(Error::json(&result_path))?;
        return Ok((result, Outcome::Skipped));
    }
    let max_steps = run.config.train.max_steps;
    let at_step = match &latest {
        Some(ck) => crate::checkpoint::load(ck, &Device::Cpu)?.trainer_state.get("step").and_then(Value::as_u64),
        None => None,
    };
    let (val_loss, outcome) = match at_step {
        Some(step) if step >= max_steps => (pretrain::evaluate_latest(&run.config, dir)?.1, Outcome::Measured),
        Some(_) => (full_loss(pretrain::run(&run.config, dir, true, false, progress)?)?, Outcome::Resumed),
        None => {
            // A folder of ours is started again; anything else there is left for pretrain's
            // output policy to refuse.
            let ours = dir.join(RUN_MANIFEST).is_file();
            (full_loss(pretrain::run(&run.config, dir, false, ours, progress)?)?, Outcome::Trained)
        }
    };
    let metrics = read_metrics(dir);
    let rates: Vec<f64> = metrics.iter().map(|m| m.tokens_per_sec).filter(|r| r.is_finite() && *r > 0.0).collect();
    let tokens_per_sec = (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64);
    let result = RunResult {
        name: run.name.clone(),
        depth: run.depth,
        width: run.width,
        heads: run.heads,
        non_embedding_params: non_embedding,
        params: total,
        tokens: run.tokens,
        steps: max_steps,
        compute: 6.0 * non_embedding as f64 * run.tokens as f64,
        lr: run.config.train.lr,
        val_loss,
        train_loss: metrics.last().map(|m| m.loss),
        tokens_per_sec,
    };
    let json = serde_json::to_vec_pretty(&result).unwrap_or_default();
    ingot_core::atomic::write_file(&result_path, &json)?;
    Ok((result, outcome))
}

fn full_loss(report: crate::trainer::TrainReport) -> Result<f64> {
    report.full_val_loss.ok_or_else(|| Error::Config("the pretrain recipe reported no validation loss".into()))
}

/// The training-loss curve of a finished run against compute, for the envelope plot.
fn curve(result: &RunResult, dir: &Path, tokens_per_step: u64) -> Curve {
    let points = read_metrics(dir)
        .iter()
        .map(|m| (6.0 * result.non_embedding_params as f64 * (m.step * tokens_per_step) as f64, m.loss))
        .collect();
    Curve { name: result.name.clone(), depth: result.depth, points }
}

/// What one `ingot scaling` did: every run's result and outcome, and the report.
#[derive(Debug)]
pub struct SweepOutcome {
    pub outcomes: Vec<(String, Outcome)>,
    pub report: ScalingReport,
}

/// Run the recipe: the whole of `ingot scaling`. A fresh sweep needs an unused `out` (or
/// `force`); `resume` carries on the sweep in `out`, skipping the runs that finished.
pub fn run(cfg: &ScalingConfig, out: &Path, resume: bool, force: bool, progress: bool) -> Result<SweepOutcome> {
    let plan = cfg.plan()?;
    claim_sweep_folder(out, resume, force)?;
    std::fs::create_dir_all(out).map_err(Error::io("creating", out))?;
    let manifest = serde_json::json!({ "format_version": 1, "config": cfg });
    ingot_core::atomic::write_file(
        &out.join(SWEEP_MANIFEST),
        serde_json::to_string_pretty(&manifest).unwrap_or_default().as_bytes(),
    )?;
    // One preparation for every run; each run then points data.dir at it.
    let (tokenizer, data_dir) = pretrain::prepare_data(&cfg.data, out, cfg.train.seed, force && !resume)?;
    // Absolute, so a resume from another working directory or spelling of --out matches the
    // data.dir each run recorded.
    let data_dir = std::fs::canonicalize(&data_dir).map_err(Error::io("resolving", &data_dir))?;
    let mut results = Vec::new();
    let mut outcomes = Vec::new();
    let mut curves = Vec::new();
    for (i, planned) in plan.iter().enumerate() {
        let mut planned = planned.clone();
        planned.config.data.dir = Some(data_dir.clone());
        let dir = out.join("runs").join(&planned.name);
        let counts = parameter_counts(&planned.config.model, tokenizer.vocab_size())?;
        eprintln!(
            "[run {}/{}] {}: {}, width {}, {}, N = {} non-embedding parameters; D = {} tokens ({} steps), lr {:.2e}",
            i + 1,
            plan.len(),
            planned.name,
            counted(planned.depth, "layer"),
            planned.width,
            counted(planned.heads, "head"),
            scaling_report::si(counts.0 as f64),
            scaling_report::si(planned.tokens as f64),
            planned.config.train.max_steps,
            planned.config.train.lr
        );
        let (result, outcome) = run_one(&planned, &dir, counts, &tokenizer, &data_dir, progress)?;
        let note = match outcome {
            Outcome::Skipped => "skipped: finished earlier",
            Outcome::Measured => "trained earlier, measured now",
            Outcome::Resumed => "resumed and finished",
            Outcome::Trained => "finished",
        };
        eprintln!("[run {}/{}] {}: {note}; validation loss {:.4}", i + 1, plan.len(), planned.name, result.val_loss);
        curves.push(curve(&result, &dir, cfg.tokens_per_step()));
        outcomes.push((planned.name.clone(), outcome));
        results.push(result);
    }
    let report = fit_and_write(cfg, &results, curves, out)?;
    Ok(SweepOutcome { outcomes, report })
}

/// Fit the laws to the runs' results and write the report into `out`.
fn fit_and_write(cfg: &ScalingConfig, results: &[RunResult], curves: Vec<Curve>, out: &Path) -> Result<ScalingReport> {
    let fit = &cfg.fit;
    let report = scaling_report::build(results, curves, &fit.options(), fit.holdout_tolerance, &fit.compute_budgets);
    report.write(out)?;
    Ok(report)
}

/// Refit and rewrite the report of a sweep from its finished runs' `result.json` files, without
/// training (the runs still missing are listed).
pub fn report_only(cfg: &ScalingConfig, out: &Path) -> Result<(ScalingReport, Vec<String>)> {
    if !out.join(SWEEP_MANIFEST).is_file() {
        return Err(Error::Config(format!(
            "{} holds no scaling sweep (no {SWEEP_MANIFEST}) to report on",
            out.display()
        )));
    }
    let (mut results, mut curves, mut missing) = (Vec::new(), Vec::new(), Vec::new());
    for planned in cfg.plan()? {
        let dir = out.join("runs").join(&planned.name);
        let path = dir.join(RESULT_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let result: RunResult = serde_json::from_str(&text).map_err(Error::json(&path))?;
                curves.push(curve(&result, &dir, cfg.tokens_per_step()));
                results.push(result);
            }
            Err(_) => missing.push(planned.name),
        }
    }
    let report = fit_and_write(cfg, &results, curves, out)?;
    Ok((report, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> String {
        format!(
            "[model]\npreset = \"char-baby\"\nn_positions = 32\n[data]\ncorpus = \"c\"\nbatch_size = 4\ncontext = 16\n\
             [train]\nlr = 2e-3\nmin_lr = 2e-4\n[sweep]\ndepths = [2, 1]\naspect_ratio = 16\nhead_dim = 8\n\
             tokens = [640, 128]\nlr_width_exponent = 1.0\n{extra}"
        )
    }

    #[test]
    fn plan_derives_shapes_steps_and_schedules_from_the_knob() {
        let cfg = ScalingConfig::from_toml(&config(""), &[], "test.toml").unwrap();
        let plan = cfg.plan().unwrap();
        let names: Vec<&str> = plan.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["L1-W16-D128", "L1-W16-D640", "L2-W32-D128", "L2-W32-D640"]);
        let big = &plan[3];
        assert_eq!((big.depth, big.width, big.heads), (2, 32, 4));
        assert_eq!(big.config.model.overrides["n_layer"], 2);
        assert_eq!(big.config.model.overrides["n_embd"], 32);
        assert_eq!(big.config.model.overrides["n_head"], 4);
        // 640 tokens at 64 a step: 10 steps, the cosine ending on the last, warmup 5% of it.
        let t = &big.config.train;
        assert_eq!((t.max_steps, t.decay_steps, t.warmup_steps), (10, Some(10), 1));
        // lr ∝ 1/width from the smallest width.
        assert!((t.lr - 1e-3).abs() < 1e-12 && (t.min_lr - 1e-4).abs() < 1e-12, "{t:?}");
        assert!((plan[0].config.train.lr - 2e-3).abs() < 1e-12);
        // A budget that is not a whole number of steps is rounded up.
        let cfg = ScalingConfig::from_toml(&config(""), &["sweep.tokens=[100]".into()], "t").unwrap();
        assert_eq!(cfg.plan().unwrap()[0].tokens, 128);
    }

    #[test]
    fn llama_sizes_set_llama_fields() {
        let text = config("").replace("char-baby\"\nn_positions = 32", "llama-tiny\"\nmax_position_embeddings = 32");
        let plan = ScalingConfig::from_toml(&text, &[], "t").unwrap().plan().unwrap();
        let o = &plan[3].config.model.overrides;
        assert_eq!((o["num_hidden_layers"].as_u64(), o["hidden_size"].as_u64()), (Some(2), Some(32)));
        assert_eq!((o["num_attention_heads"].as_u64(), o["intermediate_size"].as_u64()), (Some(4), Some(96)));
    }

    #[test]
    fn bad_configs_are_named_errors() {
        let err = |extra: &str, sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            ScalingConfig::from_toml(&config(extra), &sets, "test.toml").unwrap_err().to_string()
        };
        assert!(err("", &["sweep.head_dim=5"]).contains("multiple of sweep.head_dim"));
        assert!(err("", &["sweep.depths=[]"]).contains("at least one"));
        assert!(err("", &["sweep.tokens=[0]"]).contains("at least 1"));
        assert!(err("", &["model.n_layer=3"]).contains("[model] n_layer is set by the sweep"));
        assert!(err("", &["data.context=64"]).contains("exceeds the model's context length"));
        assert!(err("", &["sweep.warmup_fraction=1.5"]).contains("warmup_fraction"));
        assert!(err("bogus = 1\n", &[]).contains("unknown field"));
        assert!(err("[fit]\nconfidence = 2.0\n", &[]).contains("fit.confidence"));
        assert!(err("", &["model.preset=nope"]).contains("unknown model preset"));
    }
}
