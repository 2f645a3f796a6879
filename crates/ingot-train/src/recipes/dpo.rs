//! Recipe: direct preference optimisation (Rafailov et al. 2023), and IPO (Azar et al. 2023).
//!
//! Supports: preference pairs as the reward model reads them ([`ingot_data::preference`], files
//! or a built-in set); the policy trained full, with LoRA or with QLoRA exactly as SFT trains
//! it; the reference model being the policy as loaded, before any update (LoRA's B starts at 0,
//! so that is the base): its log-probabilities of every pair are computed once at setup, so no
//! second copy of the model is held; the sigmoid loss with label smoothing (conservative DPO) and
//! IPO, with TRL's formulas ([`crate::loss::dpo_loss`]); RPO's negative log-likelihood of the
//! chosen answers added to the training loss (`rpo_alpha`, logged as `nll_loss`; the held-out
//! loss stays the preference loss alone); TRL's logged figures (rewards of chosen
//! and rejected, margins, accuracy) in metrics.jsonl; held-out preference accuracy in the
//! report; the shared [`Trainer`] (accumulation, clipping, AdamW, schedule, checkpoints, exact
//! resume: a resumed run recomputes the same reference from the model as loaded).
//!
//! Assumes: the llama family; data small enough to hold encoded in memory.
//!
//! Errors: bad config fields (named), data errors naming file and line, divergence, I/O.
//!
//! Skeleton: setup (config → data files → model with its trainable part → pairs → reference
//! log-probabilities), train, save (`<out>/adapter` or `<out>/model`, as SFT writes them).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use ingot_data::preference::{PreferencePair, PreferenceStats};
use ingot_data::sft::Packed;
use ingot_models::Model;
use ingot_nn::LoraConfig;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::pretrain::parse_toml;
use super::reward::PairDataSection;
use super::sft::{batch_rows, rows_logprobs, single_row, Generator, Method, ModelSection};
use super::tune::{
    base_config, check_data_source, checkpoint_configs, data_files, export, load_trainable, open_run, record_manifest,
    Trainable,
};
use crate::error::{Context, Error, Result};
use crate::loss::{dpo_loss, leading_nll, sequence_logprobs, sequence_mean_logprobs, DpoLoss};
use crate::plot::MetricChart;
use crate::trainer::{Objective, TrainConfig, Trainer};

/// Which preference loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpoKind {
    /// −log σ(β·margin), with optional label smoothing (TRL's default).
    #[default]
    Sigmoid,
    /// (margin − 1/(2β))² on per-token mean log-probabilities.
    Ipo,
}

/// `[dpo]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpoSection {
    /// How far the policy may move from the reference (TRL's default 0.1).
    pub beta: f64,
    pub loss: DpoKind,
    /// Sigmoid loss only: the assumed share of pairs whose labels are flipped, in [0, 0.5).
    pub label_smoothing: f64,
    /// TRL's `rpo_alpha` (RPO, Pang et al. 2024): adds alpha times the mean negative
    /// log-likelihood of the chosen answers' tokens to the preference loss, so the chosen answers
    /// grow likelier rather than only the rejected ones less likely; 0 (default) is plain DPO.
    pub rpo_alpha: f64,
}

impl Default for DpoSection {
    fn default() -> Self {
        Self { beta: 0.1, loss: DpoKind::Sigmoid, label_smoothing: 0.0, rpo_alpha: 0.0 }
    }
}

impl DpoSection {
    fn loss(&self) -> DpoLoss {
        match self.loss {
            DpoKind::Sigmoid => DpoLoss::Sigmoid { label_smoothing: self.label_smoothing },
            DpoKind::Ipo => DpoLoss::Ipo,
        }
    }
}

/// A whole DPO config file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpoConfig {
    pub model: ModelSection,
    /// Adapter settings (PEFT's LoraConfig names); ignored by `full`.
    #[serde(default)]
    pub lora: LoraConfig,
    pub data: PairDataSection,
    #[serde(default)]
    pub dpo: DpoSection,
    #[serde(default)]
    pub train: TrainConfig,
}

impl DpoConfig {
    pub fn from_toml(text: &str, overrides: &[String], origin: &str) -> Result<Self> {
        let cfg: DpoConfig = parse_toml(text, overrides, origin)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        if self.model.method != Method::Full {
            self.lora.validate()?;
        }
        ingot_core::limits::at_least("data.max_len", self.data.max_len, 2)?;
        ingot_core::limits::at_least("data.batch_size", self.data.batch_size, 1)?;
        if !(self.dpo.beta > 0.0 && self.dpo.beta.is_finite()) {
            return Err(Error::Config(format!("dpo.beta must be above 0, got {}", self.dpo.beta)));
        }
        if !(0.0..0.5).contains(&self.dpo.label_smoothing) {
            return Err(Error::Config(format!(
                "dpo.label_smoothing must be in [0, 0.5), got {}",
                self.dpo.label_smoothing
            )));
        }
        if !(self.dpo.rpo_alpha >= 0.0 && self.dpo.rpo_alpha.is_finite()) {
            return Err(Error::Config(format!("dpo.rpo_alpha must be 0 (off) or above, got {}", self.dpo.rpo_alpha)));
        }
        if self.dpo.loss == DpoKind::Ipo && self.dpo.label_smoothing != 0.0 {
            return Err(Error::Config(
                "dpo.label_smoothing applies to the sigmoid loss only; set it to 0 for IPO".into(),
            ));
        }
        check_data_source(self.data.train.as_deref(), self.data.generate.as_ref(), "a JSONL file of pairs")
    }
}

/// Log-probabilities of each pair's chosen and rejected answers: sums (sigmoid) or per-token
/// means (IPO), (N) each; and the mean negative log-likelihood of the chosen answers' tokens
/// (a scalar, RPO's term).
pub fn pair_logprobs(
    model: &Model,
    pairs: &[&PreferencePair],
    mean: bool,
    device: &Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let n = pairs.len();
    let rows: Vec<Packed> =
        pairs.iter().map(|p| single_row(&p.chosen)).chain(pairs.iter().map(|p| single_row(&p.rejected))).collect();
    let refs: Vec<&Packed> = rows.iter().collect();
    let (lp, row_of) = rows_logprobs(model, &refs, device)?;
    let per_row =
        if mean { sequence_mean_logprobs(&lp, &row_of, 2 * n) } else { sequence_logprobs(&lp, &row_of, 2 * n) };
    let per_row = per_row.context(|| "answer log-probabilities".into())?;
    let chosen = per_row.narrow(0, 0, n).context(|| "chosen".into())?;
    let rejected = per_row.narrow(0, n, n).context(|| "rejected".into())?;
    let nll = leading_nll(&lp, &row_of, n).context(|| "the chosen answers' log-likelihood".into())?;
    Ok((chosen, rejected, nll))
}

/// The reference's log-probabilities of `pairs` (no gradient), in batches of `batch` pairs.
/// Under several ranks each computes every world_size-th batch and the ranks exchange them: the
/// same batches as one process computes, so the same values, in 1/world_size of the time.
fn reference(
    model: &Model,
    pairs: &[PreferencePair],
    mean: bool,
    batch: usize,
    device: &Device,
) -> Result<Vec<(f32, f32)>> {
    let world = crate::collective::world();
    let (rank, ranks) = (world.rank(), world.world_size());
    let chunks: Vec<&[PreferencePair]> = pairs.chunks(batch.max(1)).collect();
    let per_rank = chunks.len().div_ceil(ranks);
    // This rank's batches, flattened as (chosen, rejected) per pair, padded to the same length.
    let width = 2 * batch.max(1);
    let mut local = vec![0f32; per_rank * width];
    for (slot, chunk) in chunks.iter().skip(rank).step_by(ranks).enumerate() {
        let refs: Vec<&PreferencePair> = chunk.iter().collect();
        let (c, r, _) = pair_logprobs(model, &refs, mean, device)?;
        let c: Vec<f32> = c.detach().to_vec1().context(|| "reading log-probabilities".into())?;
        let r: Vec<f32> = r.detach().to_vec1().context(|| "reading log-probabilities".into())?;
        for (i, (c, r)) in c.into_iter().zip(r).enumerate() {
            local[slot * width + 2 * i] = c;
            local[slot * width + 2 * i + 1] = r;
        }
    }
    let stride = local.len();
    let all = if ranks > 1 {
        let mut all = vec![0f32; ranks * stride];
        world.all_gather_f32(&local, &mut all)?;
        all
    } else {
        local
    };
    // Batch j was computed by rank j % ranks in its slot j / ranks.
    let mut out = Vec::with_capacity(pairs.len());
    for (j, chunk) in chunks.iter().enumerate() {
        let at = (j % ranks) * stride + (j / ranks) * width;
        out.extend((0..chunk.len()).map(|i| (all[at + 2 * i], all[at + 2 * i + 1])));
    }
    Ok(out)
}

/// Running sums of TRL's DPO figures.
#[derive(Default)]
struct Figures {
    chosen: f64,
    rejected: f64,
    accuracy: f64,
    nll: f64,
    n: usize,
}

struct DpoTraining {
    train: Vec<PreferencePair>,
    train_ref: Vec<(f32, f32)>,
    val: Vec<PreferencePair>,
    val_ref: Vec<(f32, f32)>,
    dpo: DpoSection,
    batch_size: usize,
    accum: u32,
    seed: u64,
    device: Device,
    figures: Figures,
    /// Held-out figures of the last evaluation: (loss, accuracy, margin).
    last_val: Option<(f64, f64, f64)>,
}

impl DpoTraining {
    /// The preference loss, its figures and the chosen answers' mean negative log-likelihood
    /// (RPO's term, scalar), on pairs `idx` of `pairs`.
    fn loss_of(
        &self,
        model: &Model,
        pairs: &[PreferencePair],
        refs: &[(f32, f32)],
        idx: &[usize],
    ) -> Result<(Tensor, crate::loss::DpoMetrics, Tensor, usize)> {
        let batch: Vec<&PreferencePair> = idx.iter().map(|&i| &pairs[i]).collect();
        let tokens = batch.iter().map(|p| p.chosen.ids.len() + p.rejected.ids.len()).sum();
        let (pc, pr, nll) = pair_logprobs(model, &batch, self.dpo.loss == DpoKind::Ipo, &self.device)?;
        let col = |f: fn(&(f32, f32)) -> f32| -> Result<Tensor> {
            let v: Vec<f32> = idx.iter().map(|&i| f(&refs[i])).collect();
            Ok(Tensor::from_vec(v, idx.len(), &self.device).context(|| "reference log-probabilities".into())?)
        };
        let (rc, rr) = (col(|r| r.0)?, col(|r| r.1)?);
        let out = dpo_loss(&pc, &pr, &rc, &rr, self.dpo.beta, self.dpo.loss()).context(|| "DPO loss".into())?;
        let metrics = out.metrics().context(|| "DPO figures".into())?;
        Ok((out.loss, metrics, nll, tokens))
    }
}

impl Objective for DpoTraining {
    fn loss(&mut self, model: &Model, step: u64, micro: u32) -> Result<(Tensor, usize)> {
        let idx = batch_rows(self.train.len(), self.batch_size, self.seed, step, micro, self.accum);
        let (loss, m, nll, tokens) = self.loss_of(model, &self.train, &self.train_ref, &idx)?;
        let nll_value = nll.detach().to_scalar::<f32>().context(|| "reading the log-likelihood".into())? as f64;
        // RPO: the chosen answers' NLL on top (the held-out figures stay the preference loss's).
        let loss = if self.dpo.rpo_alpha > 0.0 {
            (loss + (nll * self.dpo.rpo_alpha).context(|| "RPO term".into())?).context(|| "RPO loss".into())?
        } else {
            loss
        };
        let f = &mut self.figures;
        let k = idx.len();
        f.chosen += m.chosen as f64 * k as f64;
        f.rejected += m.rejected as f64 * k as f64;
        f.accuracy += m.accuracy as f64 * k as f64;
        f.nll += nll_value * k as f64;
        f.n += k;
        Ok((loss, tokens))
    }

    fn eval_loss(&mut self, model: &Model) -> Result<Option<f64>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let (mut loss, mut acc, mut margin) = (0f64, 0f64, 0f64);
        let all: Vec<usize> = (0..self.val.len()).collect();
        for chunk in all.chunks(self.batch_size.max(1)) {
            let (l, m, _, _) = self.loss_of(model, &self.val, &self.val_ref, chunk)?;
            let k = chunk.len() as f64;
            loss += l.detach().to_scalar::<f32>().context(|| "reading the loss".into())? as f64 * k;
            acc += m.accuracy as f64 * k;
            margin += m.margin as f64 * k;
        }
        let n = self.val.len() as f64;
        self.last_val = Some((loss / n, acc / n, margin / n));
        Ok(Some(loss / n))
    }

    fn take_metrics(&mut self) -> serde_json::Map<String, Value> {
        let f = std::mem::take(&mut self.figures);
        let mut m = serde_json::Map::new();
        if f.n > 0 {
            let n = f.n as f64;
            m.insert("rewards/chosen".into(), json!(f.chosen / n));
            m.insert("rewards/rejected".into(), json!(f.rejected / n));
            m.insert("rewards/margins".into(), json!((f.chosen - f.rejected) / n));
            m.insert("rewards/accuracies".into(), json!(f.accuracy / n));
            m.insert("nll_loss".into(), json!(f.nll / n));
        }
        if let Some((_, acc, margin)) = self.last_val.take() {
            m.insert("eval/rewards/accuracies".into(), json!(acc));
            m.insert("eval/rewards/margins".into(), json!(margin));
        }
        m
    }

    fn charts(&self) -> Vec<MetricChart> {
        vec![
            MetricChart {
                file: "rewards.svg",
                title: "DPO implicit rewards (beta x log-ratio to the reference)",
                y_label: "reward",
                lines: vec![
                    ("chosen", "rewards/chosen"),
                    ("rejected", "rewards/rejected"),
                    ("margin", "rewards/margins"),
                ],
                trend: None,
                level: None,
            },
            MetricChart {
                file: "accuracy.svg",
                title: "Preference accuracy (implicit reward margin > 0)",
                y_label: "accuracy",
                lines: vec![("training batches", "rewards/accuracies")],
                trend: Some(("held-out pairs", "eval/rewards/accuracies")),
                level: None,
            },
        ]
    }
}

/// What `ingot dpo` reports.
#[derive(Clone, Debug, Serialize)]
pub struct DpoReport {
    pub method: &'static str,
    pub loss: DpoKind,
    pub beta: f64,
    pub rpo_alpha: f64,
    pub steps_run: u64,
    pub final_step: u64,
    pub final_loss: f64,
    pub tokens: u64,
    pub seconds: f64,
    pub tokens_per_sec: f64,
    pub trainable: usize,
    pub train_stats: PreferenceStats,
    /// Held-out pairs: how many, the share whose implicit reward margin is above 0, the mean
    /// margin and loss; at the start (the policy is the reference: margin 0, loss ln 2 for the
    /// sigmoid loss) and at the end.
    pub val_pairs: usize,
    pub val_start: Option<(f64, f64, f64)>,
    pub val_end: Option<(f64, f64, f64)>,
    /// The exported adapter (`<out>/adapter`) or model (`<out>/model`).
    pub output: PathBuf,
}

/// Run the recipe: the whole of `ingot dpo`.
pub fn run(
    cfg: &DpoConfig,
    model_path: &Path,
    out: &Path,
    resume: bool,
    force: bool,
    progress: bool,
    generate: &Generator,
) -> Result<DpoReport> {
    cfg.validate()?;
    let device = Device::Cpu;
    open_run(out, resume, force)?;
    let (train_path, val_path) = data_files(
        cfg.data.train.as_deref(),
        cfg.data.val.as_deref(),
        cfg.data.generate.as_ref(),
        out,
        resume,
        generate,
    )?;

    let vars = VarMap::new();
    let Trainable { model, adapters, tokenizer, .. } =
        load_trainable(&cfg.model, &cfg.lora, &cfg.train, model_path, &device, &vars)?;
    let model_config = base_config(&model, &tokenizer)?;
    let config = serde_json::to_value(cfg).unwrap_or(Value::Null);
    record_manifest(
        out,
        resume,
        "dpo",
        config,
        &["model", "lora", "data", "dpo", "train"],
        model_path,
        &tokenizer,
        &train_path,
    )?;

    let max_len = cfg.data.max_len.min(model.context_length());
    let (train, stats) = ingot_data::preference::load(&train_path, &tokenizer, max_len, cfg.data.overlong)?;
    let val = match &val_path {
        Some(p) => ingot_data::preference::load(p, &tokenizer, max_len, cfg.data.overlong)?.0,
        None => Vec::new(),
    };
    let trainable: usize = vars.all_vars().iter().map(|v| v.elem_count()).sum();
    let mean = cfg.dpo.loss == DpoKind::Ipo;
    if crate::collective::world().is_main() {
        eprintln!(
            "dpo ({}, {:?} loss, beta {}): {} pairs ({} tokens; {} truncated, {} dropped); {} held-out pairs; {:.2} M trainable parameters; computing the reference's log-probabilities",
            cfg.model.method.name(),
            cfg.dpo.loss,
            cfg.dpo.beta,
            stats.pairs,
            stats.tokens,
            stats.truncated,
            stats.dropped,
            val.len(),
            trainable as f64 / 1e6
        );
    }
    // The reference: the model as loaded (before the trainer restores any checkpoint).
    let train_ref = reference(&model, &train, mean, cfg.data.batch_size, &device)?;
    let val_ref = reference(&model, &val, mean, cfg.data.batch_size, &device)?;
    let mut objective = DpoTraining {
        train,
        train_ref,
        val,
        val_ref,
        dpo: cfg.dpo.clone(),
        batch_size: cfg.data.batch_size,
        accum: cfg.train.grad_accum,
        seed: cfg.train.seed,
        device: device.clone(),
        figures: Figures::default(),
        last_val: None,
    };
    let val_start = if objective.val.is_empty() || resume {
        None
    } else {
        objective.eval_loss(&model)?;
        objective.last_val.take()
    };
    let (checkpoint_config, adapter_config) = checkpoint_configs(&model, adapters.as_ref(), model_path, &model_config);
    let trainer = Trainer {
        model: &model,
        varmap: &vars,
        tokenizer: &tokenizer,
        model_config: checkpoint_config,
        run_info: serde_json::to_value(cfg).unwrap_or(Value::Null),
        cfg: cfg.train.clone(),
        out_dir: out.to_path_buf(),
        progress,
        adapter_config,
    };
    let report = trainer.run(&mut objective, resume)?;
    let val_end = if objective.val.is_empty() {
        None
    } else {
        objective.eval_loss(&model)?;
        objective.last_val.take()
    };
    let output = export(out, None, &model, adapters.as_ref(), &tokenizer, &model_config, model_path)?;
    Ok(DpoReport {
        method: cfg.model.method.name(),
        loss: cfg.dpo.loss,
        beta: cfg.dpo.beta,
        rpo_alpha: cfg.dpo.rpo_alpha,
        steps_run: report.steps_run,
        final_step: report.final_step,
        final_loss: report.final_loss,
        tokens: report.tokens,
        seconds: report.seconds,
        tokens_per_sec: report.tokens as f64 / report.seconds.max(1e-9),
        trainable,
        train_stats: stats,
        val_pairs: objective.val.len(),
        val_start,
        val_end,
        output,
    })
}
