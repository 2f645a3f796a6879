//! Recipe: supervised fine-tuning (instruction tuning) of a pretrained model.
//!
//! Supports: GGUF files and HF checkpoint folders of the llama family; three methods on the one
//! model code path: `full` (every weight dequantized to a trainable f32 variable), `lora`
//! (PEFT-style adapters over a frozen f32 base) and `qlora` (adapters over the base kept
//! quantized, gradients flowing through Ingot's quantized matmul); chat JSONL (`messages`, with
//! optional `tools`) rendered with the model's own template, and prompt/completion JSONL; loss
//! on assistant (completion) tokens only; packing of several examples per row with positions
//! restarted and attention kept inside each example; the shared [`Trainer`] (accumulation,
//! clipping, AdamW, warmup + cosine, evaluation, checkpoints, exact resume).
//!
//! Assumes: a model with a chat template for chat data; data files small enough to hold encoded
//! in memory.
//!
//! Errors: bad config fields (named), data errors naming file and line (`ingot_data::sft`), an
//! adapter target module the model lacks, divergence, checkpoint I/O.
//!
//! Skeleton: setup (config → data files → model with adapters → examples), train, save (the
//! adapter in PEFT's layout under `<out>/adapter/`, or the full model under `<out>/model/`).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use ingot_data::sft::{Overlong, Packed, SftExample, SftStats};
use ingot_models::Model;
use ingot_nn::LoraConfig;
use ingot_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pretrain::parse_toml;
use super::tune::{
    base_config, check_data_source, checkpoint_configs, data_files, export, load_trainable, open_run, record_manifest,
    Trainable,
};
use crate::error::{Context, Error, Result};
use crate::loss::lm_head_loss;
use crate::trainer::{Objective, TrainConfig, TrainReport, Trainer};

/// How the model is trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Every weight trainable, in f32.
    Full,
    /// Adapters over a frozen f32 base.
    Lora,
    /// Adapters over the frozen base kept quantized.
    Qlora,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Full => "full",
            Method::Lora => "lora",
            Method::Qlora => "qlora",
        }
    }
}

/// `[model]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A GGUF file or an HF checkpoint folder (default: the default model; `--model` overrides).
    pub path: Option<PathBuf>,
    /// "full", "lora" or "qlora".
    pub method: Method,
    /// A tokenizer.json to use instead of the model's own (a GGUF file without tokenizer
    /// metadata).
    pub tokenizer: Option<PathBuf>,
}

/// `[data.generate]`: make the data set with a built-in generator instead of reading files.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSection {
    /// The generator: "tool-use" (calculator, search and no-tool conversations).
    pub kind: String,
    /// Training conversations.
    pub train: usize,
    /// Held-out conversations for the validation loss (from the generator's evaluation split).
    pub val: usize,
    pub seed: u64,
    /// Shares of calculator, search and no-tool conversations (normalised; default 0.45, 0.30,
    /// 0.25).
    #[serde(default = "default_mix")]
    pub mix: [f64; 3],
    /// Plain-text few-shot examples (no chat template; arithmetic with a worked answer) added to
    /// the training conversations, spread evenly among them, and in the same proportion to the
    /// validation set. They keep the tuned model answering plain few-shot prompts (default 0).
    #[serde(default)]
    pub few_shot: usize,
    /// Preference sets, "harmlessness" only: a model's own answers to the training prompts (the
    /// JSON `ingot align-eval --split train --json FILE` writes), added as on-policy pairs beside
    /// the authored ones (`ingot_eval::preference::on_policy_harmlessness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<PathBuf>,
    /// With `answers`: an answer that is mostly repetition is rejected against the authored
    /// answer, whatever the refusal rule says (off by default: the recorded runs were made
    /// without it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reject_degenerate: bool,
}

impl GenerateSection {
    /// An error when `answers` is set for a generator (`what`) that does not read them.
    pub fn refuse_answers(&self, what: &str) -> Result<()> {
        match &self.answers {
            Some(p) => Err(Error::Config(format!(
                "data.generate.answers = {}: only the \"harmlessness\" preference set takes on-policy answers, not {what}",
                p.display()
            ))),
            None => Ok(()),
        }
    }
}

fn default_mix() -> [f64; 3] {
    [0.45, 0.30, 0.25]
}

/// `[data]`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Training JSONL (chat `messages` or `prompt`/`completion` lines).
    pub train: Option<PathBuf>,
    /// Held-out JSONL for the validation loss.
    pub val: Option<PathBuf>,
    /// Generate the data into `<out>/data/` instead (train.jsonl, val.jsonl).
    pub generate: Option<GenerateSection>,
    /// Longest example in tokens.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Examples longer than max_len: "error" (default), "truncate" or "drop".
    #[serde(default)]
    pub overlong: Overlong,
    /// Pack several examples into each row of `seq_len` tokens.
    #[serde(default = "default_true")]
    pub pack: bool,
    /// Row length when packing (default: max_len).
    pub seq_len: Option<usize>,
    /// Rows per micro-batch.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
}

fn default_max_len() -> usize {
    1024
}
fn default_true() -> bool {
    true
}
fn default_batch() -> usize {
    1
}

/// A whole SFT config file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    pub model: ModelSection,
    /// Adapter settings (PEFT's LoraConfig names); ignored by `full`.
    #[serde(default)]
    pub lora: LoraConfig,
    pub data: DataSection,
    #[serde(default)]
    pub train: TrainConfig,
}

impl SftConfig {
    pub fn from_toml(text: &str, overrides: &[String], origin: &str) -> Result<Self> {
        let cfg: SftConfig = parse_toml(text, overrides, origin)?;
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
        if let Some(n) = self.data.seq_len {
            ingot_core::limits::at_least("data.seq_len", n, 2)?;
        }
        check_data_source(self.data.train.as_deref(), self.data.generate.as_ref(), "a JSONL file")?;
        if let Some(g) = &self.data.generate {
            ingot_core::limits::at_least("data.generate.train", g.train, 1)?;
        }
        Ok(())
    }

    fn seq_len(&self) -> usize {
        self.data.seq_len.unwrap_or(self.data.max_len)
    }
}

/// Writes a generated data set: (section, folder) → (train file, val file).
pub type Generator<'a> = dyn Fn(&GenerateSection, &Path) -> Result<(PathBuf, Option<PathBuf>)> + 'a;

/// Rows of (packed) examples and the batches cut from them.
pub struct SftObjective {
    pub train: Vec<Packed>,
    pub val: Vec<Packed>,
    pub batch_size: usize,
    pub seed: u64,
    pub device: Device,
}

/// One example as a row of its own.
pub fn single_row(e: &SftExample) -> Packed {
    Packed {
        ids: e.ids.clone(),
        trained: e.trained.clone(),
        positions: (0..e.ids.len() as u32).collect(),
        segments: vec![0; e.ids.len()],
        examples: vec![0],
    }
}

/// `rows` padded to the longest, with the positions whose next token is trained.
struct Batch {
    x: Tensor,
    positions: Vec<u32>,
    segments: Vec<u32>,
    /// Flat (row · T + position) indices whose next token is a target, and those targets.
    picked: Vec<u32>,
    targets: Vec<u32>,
    /// The row of each picked position.
    row_of: Vec<u32>,
}

fn batch(rows: &[&Packed], device: &Device) -> Result<Batch> {
    let t = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
    if t < 2 {
        return Err(Error::Config("an SFT row needs at least 2 tokens".into()));
    }
    let b = rows.len();
    let (mut ids, mut positions, mut segments) = (Vec::with_capacity(b * t), Vec::new(), Vec::new());
    let (mut picked, mut targets, mut row_of) = (Vec::new(), Vec::new(), Vec::new());
    for (r, row) in rows.iter().enumerate() {
        let n = row.ids.len();
        ids.extend_from_slice(&row.ids);
        positions.extend_from_slice(&row.positions);
        segments.extend_from_slice(&row.segments);
        // Padding: its own segment (it sees only itself and is never a target).
        ids.extend(std::iter::repeat_n(0, t - n));
        positions.extend(std::iter::repeat_n(0, t - n));
        segments.extend(std::iter::repeat_n(u32::MAX, t - n));
        for i in 0..n.saturating_sub(1) {
            if row.trained[i + 1] && row.segments[i + 1] == row.segments[i] {
                picked.push((r * t + i) as u32);
                targets.push(row.ids[i + 1]);
                row_of.push(r as u32);
            }
        }
    }
    if picked.is_empty() {
        return Err(Error::Config(
            "a batch holds no trained token (every example needs an assistant or completion token)".into(),
        ));
    }
    let x = Tensor::from_vec(ids, (b, t), device).context(|| "input ids".into())?;
    Ok(Batch { x, positions, segments, picked, targets, row_of })
}

/// Final hidden states of a batch, flattened to (B·T, C).
fn batch_hidden(model: &Model, batch: &Batch) -> Result<Tensor> {
    let hidden = model.forward_hidden_packed(&batch.x, &batch.positions, &batch.segments)?; // (B, T, C)
    let (b, t, c) = hidden.dims3().context(|| "hidden size".into())?;
    Ok(hidden.reshape((b * t, c)).context(|| "flattening hidden states".into())?)
}

/// Next-token loss over the trained tokens of `rows` (padded to the longest), the tokens the
/// batch holds and how many of them were targets. Positions predict the next token of their own
/// example only.
pub fn rows_loss(model: &Model, rows: &[&Packed], device: &Device) -> Result<(Tensor, usize, usize)> {
    let batch = batch(rows, device)?;
    let flat = batch_hidden(model, &batch)?;
    let loss = lm_head_loss(&flat, &batch.picked, &batch.targets, |h| {
        model.logits(h).map_err(|e| candle_core::Error::Msg(e.to_string()))
    })
    .context(|| "SFT loss".into())?;
    Ok((loss, rows.iter().map(|r| r.ids.len()).sum(), batch.targets.len()))
}

/// Log-probability of every trained token of `rows` (differentiable), and the row each belongs
/// to: what DPO sums per answer (`loss::sequence_logprobs`) and PPO and GRPO use per token.
pub fn rows_logprobs(model: &Model, rows: &[&Packed], device: &Device) -> Result<(Tensor, Vec<u32>)> {
    let (lp, row_of, _) = rows_logprobs_hidden(model, rows, device)?;
    Ok((lp, row_of))
}

/// [`rows_logprobs`], with the hidden state (P, C) each trained token is predicted from: where
/// PPO's value head reads the value of the state before the token.
pub fn rows_logprobs_hidden(model: &Model, rows: &[&Packed], device: &Device) -> Result<(Tensor, Vec<u32>, Tensor)> {
    let batch = batch(rows, device)?;
    let flat = batch_hidden(model, &batch)?;
    let idx = Tensor::from_slice(&batch.picked, batch.picked.len(), device).context(|| "trained positions".into())?;
    let picked = flat.index_select(&idx, 0).context(|| "selecting trained positions".into())?;
    let logits = model.logits(&picked)?;
    let targets = Tensor::from_slice(&batch.targets, batch.targets.len(), device).context(|| "targets".into())?;
    let lp = crate::loss::token_logprobs(&logits, &targets).context(|| "token log-probabilities".into())?;
    Ok((lp, batch.row_of, picked))
}

/// The rows of micro-batch `micro` of step `step`: a pure function of (seed, step, micro), so a
/// resumed run sees the same data. Epochs are reshuffled permutations of all rows.
pub(crate) fn batch_rows(n_rows: usize, batch: usize, seed: u64, step: u64, micro: u32, accum: u32) -> Vec<usize> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let start = (step * accum as u64 + micro as u64) * batch as u64;
    (0..batch as u64)
        .map(|k| {
            let global = start + k;
            let (epoch, at) = (global / n_rows as u64, (global % n_rows as u64) as usize);
            let mut order: Vec<usize> = (0..n_rows).collect();
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E3779B97F4A7C15)));
            order[at]
        })
        .collect()
}

/// The Objective needs the accumulation count to number micro-batches globally.
pub struct SftTraining {
    pub objective: SftObjective,
    pub accum: u32,
}

impl Objective for SftTraining {
    fn loss(&mut self, model: &Model, step: u64, micro: u32) -> Result<(Tensor, usize)> {
        let o = &self.objective;
        let idx = batch_rows(o.train.len(), o.batch_size, o.seed, step, micro, self.accum);
        let rows: Vec<&Packed> = idx.iter().map(|&i| &o.train[i]).collect();
        let (loss, tokens, _) = rows_loss(model, &rows, &o.device)?;
        Ok((loss, tokens))
    }

    fn eval_loss(&mut self, model: &Model) -> Result<Option<f64>> {
        let o = &self.objective;
        if o.val.is_empty() {
            return Ok(None);
        }
        eval_loss(model, &o.val, o.batch_size, &o.device).map(Some)
    }
}

/// Mean loss per trained token over `rows`.
pub fn eval_loss(model: &Model, rows: &[Packed], batch: usize, device: &Device) -> Result<f64> {
    let (mut total, mut count) = (0f64, 0usize);
    for chunk in rows.chunks(batch.max(1)) {
        let refs: Vec<&Packed> = chunk.iter().collect();
        let (loss, _, n) = rows_loss(model, &refs, device)?;
        total += loss.detach().to_scalar::<f32>().context(|| "reading eval loss".into())? as f64 * n as f64;
        count += n;
    }
    Ok(total / count.max(1) as f64)
}

/// What `ingot sft` reports.
#[derive(Clone, Debug, Serialize)]
pub struct SftReport {
    pub method: &'static str,
    pub steps_run: u64,
    pub final_step: u64,
    pub final_loss: f64,
    pub final_val_loss: Option<f64>,
    pub tokens: u64,
    pub seconds: f64,
    pub tokens_per_sec: f64,
    /// Trainable parameters.
    pub trainable: usize,
    /// Peak resident memory of the process (VmHWM), bytes: activations dominate it for small models.
    pub peak_rss: u64,
    /// Resident memory once the model (and adapters) were loaded, before training, bytes: what
    /// holding the base costs (QLoRA keeps it quantized, LoRA and full expand it to f32).
    pub model_rss: u64,
    pub train_stats: SftStats,
    pub rows: usize,
    /// Whether blocks recomputed their activations in backward (train.activation_checkpointing).
    pub activation_checkpointing: bool,
    /// The exported adapter (`<out>/adapter`) or model (`<out>/model`).
    pub output: PathBuf,
}

/// Peak resident set size of this process, from /proc (0 where unavailable).
pub fn peak_rss() -> u64 {
    proc_status_bytes("VmHWM:")
}

/// Resident set size of this process now, from /proc (0 where unavailable).
pub fn current_rss() -> u64 {
    proc_status_bytes("VmRSS:")
}

fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}

/// Run the recipe: the whole of `ingot sft`.
pub fn run(
    cfg: &SftConfig,
    model_path: &Path,
    out: &Path,
    resume: bool,
    force: bool,
    progress: bool,
    generate: &Generator,
) -> Result<SftReport> {
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

    // Model, with the trainable part.
    let vars = VarMap::new();
    let Trainable { model, adapters, tokenizer, model_rss } =
        load_trainable(&cfg.model, &cfg.lora, &cfg.train, model_path, &device, &vars)?;
    let model_config = base_config(&model, &tokenizer)?;

    let config = serde_json::to_value(cfg).unwrap_or(Value::Null);
    record_manifest(
        out,
        resume,
        "sft",
        config,
        &["model", "lora", "data", "train"],
        model_path,
        &tokenizer,
        &train_path,
    )?;

    // Examples.
    let context = model.context_length();
    let max_len = cfg.data.max_len.min(context);
    let (train, stats) = ingot_data::sft::load(&train_path, &tokenizer, max_len, cfg.data.overlong)?;
    let val = match &val_path {
        Some(p) => ingot_data::sft::load(p, &tokenizer, max_len, cfg.data.overlong)?.0,
        None => Vec::new(),
    };
    let to_rows = |examples: &[SftExample]| -> Vec<Packed> {
        if cfg.data.pack {
            ingot_data::sft::pack(examples, cfg.seq_len().min(context))
        } else {
            examples.iter().map(single_row).collect()
        }
    };
    let (train_rows, val_rows) = (to_rows(&train), to_rows(&val));
    if train_rows.is_empty() {
        return Err(Error::Config(format!("{} holds no usable example", train_path.display())));
    }
    let trainable: usize = vars.all_vars().iter().map(|v| v.elem_count()).sum();
    eprintln!(
        "sft ({}): {} examples ({} tokens, {} trained; {} truncated, {} dropped) in {} rows; {} validation examples; {:.2} M trainable parameters",
        cfg.model.method.name(),
        stats.examples,
        stats.tokens,
        stats.trained_tokens,
        stats.truncated,
        stats.dropped,
        train_rows.len(),
        val.len(),
        trainable as f64 / 1e6
    );
    let rows = train_rows.len();
    let mut objective = SftTraining {
        objective: SftObjective {
            train: train_rows,
            val: val_rows,
            batch_size: cfg.data.batch_size,
            seed: cfg.train.seed,
            device: device.clone(),
        },
        accum: cfg.train.grad_accum,
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
    let report: TrainReport = trainer.run(&mut objective, resume)?;

    // Export what was trained.
    let output = export(out, None, &model, adapters.as_ref(), &tokenizer, &model_config, model_path)?;
    Ok(SftReport {
        method: cfg.model.method.name(),
        steps_run: report.steps_run,
        final_step: report.final_step,
        final_loss: report.final_loss,
        final_val_loss: report.final_val_loss,
        tokens: report.tokens,
        seconds: report.seconds,
        tokens_per_sec: report.tokens as f64 / report.seconds.max(1e-9),
        trainable,
        peak_rss: peak_rss(),
        model_rss,
        train_stats: stats,
        rows,
        activation_checkpointing: cfg.train.activation_checkpointing,
        output,
    })
}

/// The tokenizer's tokenizer.json and tokenizer_config.json (special tokens, chat template).
pub fn tokenizer_files(tokenizer: &Tokenizer) -> Result<(Vec<u8>, Vec<u8>)> {
    Ok((tokenizer.to_json()?.into_bytes(), tokenizer.config_json().into_bytes()))
}
