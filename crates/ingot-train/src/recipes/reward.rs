//! Recipe: a reward model, trained on preference pairs (InstructGPT's first RLHF stage).
//!
//! Supports: the policy's own architecture with a scalar head (`score`, C → 1) on the hidden
//! state of each answer's last token (its end-of-turn marker), the Bradley-Terry loss
//! `-log σ(r_chosen − r_rejected − margin)` with the pairs' optional margins and TRL's centring
//! term; the model trained full, with LoRA or with QLoRA exactly as SFT trains it (the head is
//! always trained in full); pairs from files in TRL's formats ([`ingot_data::preference`]) or
//! from a built-in generator; the shared [`Trainer`] (accumulation, clipping, AdamW, schedule,
//! checkpoints, exact resume); held-out pairwise accuracy in the report.
//!
//! Assumes: the llama family (as SFT); data small enough to hold encoded in memory.
//!
//! Errors: bad config fields (named), data errors naming file and line, divergence, I/O.
//!
//! Skeleton: setup (config → data files → model with its trainable part and head → pairs),
//! train, save (`<out>/reward/`: the adapter or the full model, and `score.safetensors`).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use ingot_data::preference::{PreferencePair, PreferenceStats};
use ingot_data::sft::{Overlong, SftExample};
use ingot_models::heads::ScalarHead;
use ingot_models::Model;
use ingot_nn::LoraConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pretrain::parse_toml;
use super::sft::{batch_rows, GenerateSection, Generator, Method, ModelSection};
use super::tune::{
    base_config, check_data_source, checkpoint_configs, data_files, export, load_trainable, open_run, record_manifest,
    Trainable,
};
use crate::error::{Context, Error, Result};
use crate::loss::bradley_terry;
use crate::trainer::{Objective, TrainConfig, Trainer};

/// The head's name: HF's sequence-classification models call it `score`.
pub const HEAD: &str = "score";
/// Where the trained reward model is written inside the run folder.
pub const EXPORT_DIR: &str = "reward";

/// `[data]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairDataSection {
    /// Training pairs (JSONL, TRL's preference formats).
    pub train: Option<PathBuf>,
    /// Held-out pairs, for the validation loss and the pairwise accuracy.
    pub val: Option<PathBuf>,
    /// Generate the pairs into `<out>/data/` instead (train.jsonl, val.jsonl).
    pub generate: Option<GenerateSection>,
    /// Longest side of a pair, in tokens.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Pairs with a side longer than max_len: "error" (default), "truncate" or "drop".
    #[serde(default)]
    pub overlong: Overlong,
    /// Pairs per micro-batch (each pair is two rows).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
}

fn default_max_len() -> usize {
    1024
}
fn default_batch() -> usize {
    4
}

/// `[reward]`
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardSection {
    /// TRL's center_rewards_coefficient: adds c·mean((r_c + r_r)²), keeping rewards near 0.
    pub center_coef: f64,
    /// Subtract each pair's `margin` (when its line has one) inside the sigmoid.
    pub use_margin: bool,
}

/// A whole reward-model config file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardConfig {
    pub model: ModelSection,
    /// Adapter settings (PEFT's LoraConfig names); ignored by `full`.
    #[serde(default)]
    pub lora: LoraConfig,
    pub data: PairDataSection,
    #[serde(default)]
    pub reward: RewardSection,
    #[serde(default)]
    pub train: TrainConfig,
}

impl RewardConfig {
    pub fn from_toml(text: &str, overrides: &[String], origin: &str) -> Result<Self> {
        let cfg: RewardConfig = parse_toml(text, overrides, origin)?;
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
        if !(self.reward.center_coef >= 0.0 && self.reward.center_coef.is_finite()) {
            return Err(Error::Config(format!(
                "reward.center_coef must be 0 or more, got {}",
                self.reward.center_coef
            )));
        }
        check_data_source(self.data.train.as_deref(), self.data.generate.as_ref(), "a JSONL file of pairs")
    }
}

/// Scores (N) of `examples`: the head on the hidden state of each one's last trained token
/// (the end of its answer). Rows are padded to the longest; padding sees only itself.
pub fn scores(model: &Model, head: &ScalarHead, examples: &[&SftExample], device: &Device) -> Result<Tensor> {
    let t = examples.iter().map(|e| e.ids.len()).max().unwrap_or(0);
    let b = examples.len();
    if b == 0 || t == 0 {
        return Err(Error::Config("scoring an empty batch".into()));
    }
    let (mut ids, mut positions, mut segments, mut last) =
        (Vec::with_capacity(b * t), Vec::new(), Vec::new(), Vec::new());
    for (r, e) in examples.iter().enumerate() {
        let n = e.ids.len();
        let end = e.trained.iter().rposition(|&x| x).ok_or_else(|| {
            Error::Config(format!("line {}: an answer with no trained token cannot be scored", e.line))
        })?;
        ids.extend_from_slice(&e.ids);
        positions.extend(0..n as u32);
        segments.extend(std::iter::repeat_n(0, n));
        ids.extend(std::iter::repeat_n(0, t - n));
        positions.extend(std::iter::repeat_n(0, t - n));
        segments.extend(std::iter::repeat_n(u32::MAX, t - n));
        last.push((r * t + end) as u32);
    }
    let x = Tensor::from_vec(ids, (b, t), device).context(|| "input ids".into())?;
    let hidden = model.forward_hidden_packed(&x, &positions, &segments)?; // (B, T, C)
    let c = hidden.dim(2).context(|| "hidden size".into())?;
    let picked = hidden
        .reshape((b * t, c))
        .and_then(|h| h.index_select(&Tensor::from_vec(last, b, device)?, 0))
        .context(|| "selecting each answer's last token".into())?;
    Ok(head.forward(&picked)?)
}

/// Bradley-Terry loss and scores of a batch of pairs: (loss, chosen scores, rejected scores).
fn pair_loss(
    model: &Model,
    head: &ScalarHead,
    pairs: &[&PreferencePair],
    reward: &RewardSection,
    device: &Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let mut rows: Vec<&SftExample> = pairs.iter().map(|p| &p.chosen).collect();
    rows.extend(pairs.iter().map(|p| &p.rejected));
    let all = scores(model, head, &rows, device)?;
    let n = pairs.len();
    let (chosen, rejected) = (all.narrow(0, 0, n), all.narrow(0, n, n));
    let (chosen, rejected) = (chosen.context(|| "scores".into())?, rejected.context(|| "scores".into())?);
    let margin = if reward.use_margin && pairs.iter().any(|p| p.margin.is_some()) {
        let m: Vec<f32> = pairs.iter().map(|p| p.margin.unwrap_or(0.0)).collect();
        Some(Tensor::from_vec(m, n, device).context(|| "margins".into())?)
    } else {
        None
    };
    let loss =
        bradley_terry(&chosen, &rejected, margin.as_ref(), reward.center_coef).context(|| "reward loss".into())?;
    Ok((loss, chosen, rejected))
}

/// Pairwise accuracy (chosen scored above rejected) and mean loss over `pairs`.
pub fn evaluate(
    model: &Model,
    head: &ScalarHead,
    pairs: &[PreferencePair],
    reward: &RewardSection,
    batch: usize,
    device: &Device,
) -> Result<(f64, f64)> {
    let (mut right, mut loss_sum) = (0usize, 0f64);
    for chunk in pairs.chunks(batch.max(1)) {
        let refs: Vec<&PreferencePair> = chunk.iter().collect();
        let (loss, c, r) = pair_loss(model, head, &refs, reward, device)?;
        let (c, r): (Vec<f32>, Vec<f32>) = (
            c.detach().to_vec1().context(|| "reading scores".into())?,
            r.detach().to_vec1().context(|| "reading scores".into())?,
        );
        right += c.iter().zip(&r).filter(|(a, b)| a > b).count();
        loss_sum += loss.detach().to_scalar::<f32>().context(|| "reading the loss".into())? as f64 * chunk.len() as f64;
    }
    let n = pairs.len().max(1) as f64;
    Ok((right as f64 / n, loss_sum / n))
}

struct RewardTraining {
    train: Vec<PreferencePair>,
    val: Vec<PreferencePair>,
    head: ScalarHead,
    reward: RewardSection,
    batch_size: usize,
    accum: u32,
    seed: u64,
    device: Device,
}

impl Objective for RewardTraining {
    fn loss(&mut self, model: &Model, step: u64, micro: u32) -> Result<(Tensor, usize)> {
        let idx = batch_rows(self.train.len(), self.batch_size, self.seed, step, micro, self.accum);
        let pairs: Vec<&PreferencePair> = idx.iter().map(|&i| &self.train[i]).collect();
        let tokens = pairs.iter().map(|p| p.chosen.ids.len() + p.rejected.ids.len()).sum();
        let (loss, _, _) = pair_loss(model, &self.head, &pairs, &self.reward, &self.device)?;
        Ok((loss, tokens))
    }

    fn eval_loss(&mut self, model: &Model) -> Result<Option<f64>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let (_, loss) = evaluate(model, &self.head, &self.val, &self.reward, self.batch_size, &self.device)?;
        Ok(Some(loss))
    }
}

/// What `ingot reward-train` reports.
#[derive(Clone, Debug, Serialize)]
pub struct RewardReport {
    pub method: &'static str,
    pub steps_run: u64,
    pub final_step: u64,
    pub final_loss: f64,
    pub tokens: u64,
    pub seconds: f64,
    pub tokens_per_sec: f64,
    pub trainable: usize,
    pub train_stats: PreferenceStats,
    /// Held-out pairs, the share the model ranks right, and their mean loss.
    pub val_pairs: usize,
    pub val_accuracy: Option<f64>,
    pub val_loss: Option<f64>,
    /// The exported reward model (`<out>/reward`).
    pub output: PathBuf,
}

/// Run the recipe: the whole of `ingot reward-train`.
pub fn run(
    cfg: &RewardConfig,
    model_path: &Path,
    out: &Path,
    resume: bool,
    force: bool,
    progress: bool,
    generate: &Generator,
) -> Result<RewardReport> {
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
    let head = ScalarHead::train(&vars, HEAD, model.hidden_size(), false, cfg.train.seed)?;
    let model_config = base_config(&model, &tokenizer)?;

    let config = serde_json::to_value(cfg).unwrap_or(Value::Null);
    record_manifest(
        out,
        resume,
        "reward",
        config,
        &["model", "lora", "data", "reward", "train"],
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
    if crate::collective::world().is_main() {
        eprintln!(
            "reward-train ({}): {} pairs ({} tokens; {} truncated, {} dropped); {} held-out pairs; {:.2} M trainable parameters",
            cfg.model.method.name(),
            stats.pairs,
            stats.tokens,
            stats.truncated,
            stats.dropped,
            val.len(),
            trainable as f64 / 1e6
        );
    }
    let mut objective = RewardTraining {
        train,
        val,
        head: head.clone(),
        reward: cfg.reward.clone(),
        batch_size: cfg.data.batch_size,
        accum: cfg.train.grad_accum,
        seed: cfg.train.seed,
        device: device.clone(),
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
    let (val_accuracy, val_loss) = if objective.val.is_empty() {
        (None, None)
    } else {
        let (acc, loss) = evaluate(&model, &head, &objective.val, &cfg.reward, cfg.data.batch_size, &device)?;
        (Some(acc), Some(loss))
    };

    // Export: the trained part (adapter or model) and the head, in one folder.
    let dir =
        export(out, Some(&out.join(EXPORT_DIR)), &model, adapters.as_ref(), &tokenizer, &model_config, model_path)?;
    if crate::collective::world().is_main() {
        head.save(&dir)?;
    }
    Ok(RewardReport {
        method: cfg.model.method.name(),
        steps_run: report.steps_run,
        final_step: report.final_step,
        final_loss: report.final_loss,
        tokens: report.tokens,
        seconds: report.seconds,
        tokens_per_sec: report.tokens as f64 / report.seconds.max(1e-9),
        trainable,
        train_stats: stats,
        val_pairs: objective.val.len(),
        val_accuracy,
        val_loss,
        output: dir,
    })
}

/// The model file a reward model in `dir` (`<out>/reward` or `<out>`) is to be loaded over: the
/// base its adapter records, else `fallback` (a full reward model ignores it). A policy that
/// starts from a merged file still gets its reward model over the base that model was trained on.
pub fn reward_base(dir: &Path, fallback: &Path) -> PathBuf {
    let dir = if dir.join(EXPORT_DIR).is_dir() { dir.join(EXPORT_DIR) } else { dir.to_path_buf() };
    ingot_models::adapter::recorded_base(&dir).unwrap_or_else(|| fallback.to_path_buf())
}

/// A trained reward model from its folder (`<out>/reward` or the run folder `<out>`): the base
/// `base` with the folder's adapter, or the folder's own full model, and the head.
pub fn load_reward_model(base: &Path, dir: &Path, device: &Device) -> Result<(Model, ScalarHead)> {
    let dir = if dir.join(EXPORT_DIR).is_dir() { dir.join(EXPORT_DIR) } else { dir.to_path_buf() };
    let (model, _) = if dir.join("config.json").is_file() {
        ingot_models::load(&dir, device)?
    } else {
        let order = ingot_models::adapter::RowOrder::of_model(base)?;
        let adapters = ingot_models::adapter::load(&dir, order)?;
        let opts = ingot_models::LoadOptions { hold: ingot_models::Hold::AsStored, adapters: Some(adapters) };
        ingot_models::load_with(base, device, &opts)?
    };
    let head = ScalarHead::load(&dir, HEAD, model.hidden_size())?;
    Ok((model, head))
}
