//! Recipe: pre-train a language model from scratch on a corpus.
//!
//! Supports: GPT-2 and llama-family presets (`ingot_models::presets`) with per-field overrides;
//! character-level or byte-level BPE tokenizers trained on the corpus, or an existing
//! tokenizer.json; next-token cross-entropy on random windows of the token shards; the shared
//! [`Trainer`] (accumulation, clipping, AdamW, warmup + cosine, evaluation, samples, checkpoints,
//! exact resume).
//!
//! Assumes: a corpus folder of .txt / .jsonl files, or a folder prepared by `ingot data prepare`.
//!
//! Errors: bad config fields (named), missing corpus or data, a tokenizer that does not match
//! the prepared data, divergence (non-finite loss), checkpoint I/O.
//!
//! Skeleton: setup (config → tokenizer → data → model), train, save.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use ingot_data::{BatchSampler, Split, TokenDataset};
use ingot_models::Model;
use ingot_nn::{SeededVarMap, Weights};
use ingot_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Context, Error, Result};
use crate::trainer::{Objective, TrainConfig, TrainReport, Trainer};

/// `[model]`: a preset and HF-named overrides.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelSection {
    /// One of `ingot_models::presets::PRESETS` (char-baby, tiny, small, llama-tiny, llama-small).
    pub preset: String,
    /// Any field of the preset's HF config, e.g. `n_layer = 6` or `resid_pdrop = 0.2`.
    #[serde(flatten)]
    pub overrides: serde_json::Map<String, Value>,
}

/// `[data]`: where tokens come from and how batches are cut.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// A folder made by `ingot data prepare`; if it has no dataset.json yet and `corpus` is set,
    /// the corpus is tokenized into it first.
    pub dir: Option<PathBuf>,
    /// A folder of .txt / .jsonl documents (default data dir: `<out>/data`).
    pub corpus: Option<PathBuf>,
    /// An existing tokenizer.json; if absent one is trained on the corpus.
    pub tokenizer: Option<PathBuf>,
    /// "char" or "bpe": the tokenizer to train when none is given.
    #[serde(default = "default_kind")]
    pub tokenizer_kind: String,
    /// Vocabulary size of a trained BPE tokenizer.
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    /// Fraction of documents held out for validation.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Tokens per sequence (at most the model's context length).
    pub context: usize,
    /// Batches averaged for the validation loss.
    #[serde(default = "default_eval_batches")]
    pub eval_batches: usize,
}

fn default_kind() -> String {
    "char".into()
}
fn default_vocab() -> usize {
    4096
}
fn default_val_fraction() -> f64 {
    0.1
}
fn default_eval_batches() -> usize {
    20
}

/// `[sample]`: the text shown every `train.sample_interval` steps.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleSection {
    pub prompt: String,
    pub max_tokens: usize,
    pub temperature: f64,
    pub top_k: usize,
}

impl Default for SampleSection {
    fn default() -> Self {
        Self { prompt: "\n".into(), max_tokens: 200, temperature: 0.8, top_k: 200 }
    }
}

/// A whole pre-training config file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    pub model: ModelSection,
    pub data: DataSection,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub sample: SampleSection,
}

impl PretrainConfig {
    /// Parse TOML, then apply `section.key=value` overrides (values in TOML syntax).
    pub fn from_toml(text: &str, overrides: &[String], origin: &str) -> Result<Self> {
        let cfg: PretrainConfig = parse_toml(text, overrides, origin)?;
        cfg.train.validate()?;
        if cfg.data.batch_size == 0 || cfg.data.context == 0 {
            return Err(Error::Config("data.batch_size and data.context must be at least 1".into()));
        }
        ingot_core::limits::at_least("data.eval_batches", cfg.data.eval_batches, 1)?;
        Ok(cfg)
    }
}

/// Parse a recipe's TOML config, then apply `section.key=value` overrides (values in TOML
/// syntax; a bare word is a string). Errors name the file, line and column.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, overrides: &[String], origin: &str) -> Result<T> {
    {
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
        for o in overrides {
            let (path, raw) = o.split_once('=').ok_or_else(|| {
                Error::Config(format!("--set {}: expected section.key=value", ingot_core::text::quoted(o)))
            })?;
            let (section, key) = path.trim().split_once('.').ok_or_else(|| {
                Error::Config(format!("--set {}: expected section.key=value", ingot_core::text::quoted(o)))
            })?;
            // A bare word that is not valid TOML is taken as a string (e.g. preset=tiny).
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
            // `data.generate.train`: every part but the last names a (nested) table.
            let (tables, key) = match key.rsplit_once('.') {
                Some((inner, key)) => (std::iter::once(section).chain(inner.split('.')).collect::<Vec<_>>(), key),
                None => (vec![section], key),
            };
            let mut table = &mut doc;
            for name in tables {
                table = table
                    .entry(name.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "--set {}: {} is not a section",
                            ingot_core::text::quoted(o),
                            ingot_core::text::quoted(name)
                        ))
                    })?;
            }
            table.insert(key.to_string(), value);
        }
        toml::Value::Table(doc).try_into().map_err(|e: toml::de::Error| toml_error(origin, text, &e))
    }
}

/// A TOML error as one line: toml's own rendering spans several (a source snippet with a caret).
fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> Error {
    let at = match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.len() - before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
            format!(" line {line}, column {column}:")
        }
        None => String::new(),
    };
    let message = e.message().trim().replace(['\n', '\r'], " ");
    // The message can quote a key or value from the file (an unknown field): escaped and capped.
    Error::Config(format!("{origin}:{at} {}", ingot_core::text::escaped(&message, 300)))
}

/// Next-token prediction on random windows of the token shards.
pub struct LmObjective<'a> {
    pub train: TokenDataset,
    pub val: TokenDataset,
    pub sampler: BatchSampler,
    pub batch_size: usize,
    pub context: usize,
    pub eval_batches: usize,
    pub device: Device,
    pub tokenizer: &'a Tokenizer,
    pub sample: SampleSection,
}

pub use crate::loss::lm_loss;

impl Objective for LmObjective<'_> {
    fn loss(&mut self, model: &Model, step: u64, micro: u32) -> Result<(Tensor, usize)> {
        let (x, y) = self.sampler.batch(&self.train, step, micro, self.batch_size, self.context)?;
        let loss = lm_loss(model, &x, &y, self.batch_size, self.context, &self.device)?;
        Ok((loss, self.batch_size * self.context))
    }

    fn eval_loss(&mut self, model: &Model) -> Result<Option<f64>> {
        let mut total = 0f64;
        for i in 0..self.eval_batches {
            let (x, y) = self.sampler.eval_batch(&self.val, i as u32, self.batch_size, self.context)?;
            let loss = lm_loss(model, &x, &y, self.batch_size, self.context, &self.device)?;
            total += loss.detach().to_scalar::<f32>().context(|| "reading eval loss".into())? as f64;
        }
        Ok(Some(total / self.eval_batches.max(1) as f64))
    }

    fn sample(&mut self, model: &Model) -> Result<Option<String>> {
        let mut prompt = self.tokenizer.encode(&self.sample.prompt, false)?;
        if prompt.is_empty() {
            prompt = vec![self.tokenizer.eos_id().unwrap_or(0)];
        }
        let params = ingot_generate::GenerateParams {
            max_tokens: self.sample.max_tokens.min(model.context_length().saturating_sub(prompt.len() + 1)).max(1),
            sampling: ingot_generate::SamplingParams {
                temperature: self.sample.temperature,
                top_k: self.sample.top_k,
                seed: 1,
                ..Default::default()
            },
            stop: Vec::new(),
            ..Default::default()
        };
        let g = ingot_generate::generate(model, self.tokenizer, &prompt, &params, &self.device, |_| {})?;
        Ok(Some(format!("{}{}", self.sample.prompt, g.text)))
    }
}

/// Mean next-token loss over a whole split: consecutive windows of `context` + 1 tokens
/// (overlapping by one), `batch_size` windows at a time. Exact where the periodic estimate samples.
pub fn full_loss(model: &Model, ds: &TokenDataset, context: usize, batch_size: usize, device: &Device) -> Result<f64> {
    let n_windows = (ds.len().saturating_sub(1) / context as u64) as usize;
    if n_windows == 0 {
        return Err(Error::Config(format!(
            "the split has {} tokens, fewer than context + 1 = {}",
            ds.len(),
            context + 1
        )));
    }
    let (mut total, mut count) = (0f64, 0usize);
    for first in (0..n_windows).step_by(batch_size) {
        let b = batch_size.min(n_windows - first);
        let (mut x, mut y) = (Vec::with_capacity(b * context), Vec::with_capacity(b * context));
        for w in first..first + b {
            let win = ds.window((w * context) as u64, context + 1)?;
            x.extend_from_slice(&win[..context]);
            y.extend_from_slice(&win[1..]);
        }
        let loss = lm_loss(model, &x, &y, b, context, device)?;
        total += loss.detach().to_scalar::<f32>().context(|| "reading loss".into())? as f64 * (b * context) as f64;
        count += b * context;
    }
    Ok(total / count as f64)
}

/// `<data dir>/ingot-data-source.json`: the settings a run's data folder was prepared from, so a
/// later run with other corpus or tokenizer settings does not silently train on the old shards.
const DATA_SOURCE_FILE: &str = "ingot-data-source.json";

/// The `[data]` settings that decide which tokens are in the shards.
/// (Not the seed: it also drives initialisation and batch order, and a run with another seed may
/// well train on the same prepared data; the run manifest records which data a run used.)
fn data_source(cfg: &DataSection) -> Result<Value> {
    let tokenizer_hash = match &cfg.tokenizer {
        Some(path) => Some(Tokenizer::from_file(path)?.content_hash()?),
        None => None,
    };
    Ok(serde_json::json!({
        "corpus": cfg.corpus,
        "tokenizer": cfg.tokenizer,
        "tokenizer_hash": tokenizer_hash,
        "tokenizer_kind": if cfg.tokenizer.is_some() { None } else { Some(&cfg.tokenizer_kind) },
        "vocab_size": if cfg.tokenizer.is_none() && cfg.tokenizer_kind == "bpe" { Some(cfg.vocab_size) } else { None },
        "val_fraction": cfg.val_fraction,
    }))
}

/// Get (or make) the tokenizer and the prepared data folder.
///
/// A folder prepared earlier is reused only if it was prepared from the same `[data]` settings
/// (corpus, tokenizer, vocabulary size, split); otherwise this is an error naming what changed,
/// or, with `rebuild` (a fresh run with `--force`), the run's own data folder is prepared again.
pub fn prepare_data(cfg: &DataSection, out: &Path, seed: u64, rebuild: bool) -> Result<(Tokenizer, PathBuf)> {
    let own = cfg.dir.is_none();
    let dir = cfg.dir.clone().unwrap_or_else(|| out.join("data"));
    let wanted = if cfg.corpus.is_some() { Some(data_source(cfg)?) } else { None };
    if dir.join(ingot_data::MANIFEST_FILE).exists() {
        let recorded = std::fs::read_to_string(dir.join(DATA_SOURCE_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        let changed = match (&wanted, &recorded) {
            (Some(w), Some(r)) => differences("data", r, w),
            // Prepared by `ingot data prepare` (no record): the user pointed at it; use it as is.
            _ => Vec::new(),
        };
        if changed.is_empty() {
            let tok = Tokenizer::from_file(dir.join("tokenizer.json"))?;
            return Ok((tok, dir));
        }
        if !(rebuild && own) {
            return Err(Error::Config(format!(
                "{} was prepared from other [data] settings ({}); it would train on the old tokens. \
                 Use another --out (or data.dir) for the new settings{}",
                dir.display(),
                changed.join(", "),
                if own { ", or pass --force to prepare it again" } else { "" }
            )));
        }
        eprintln!("preparing {} again: the [data] settings changed ({})", dir.display(), changed.join(", "));
        std::fs::remove_dir_all(&dir).map_err(Error::io("removing the old prepared data", &dir))?;
    }
    let corpus = cfg.corpus.as_ref().ok_or_else(|| {
        Error::Config(format!(
            "{} has no prepared data (dataset.json) and data.corpus is not set; run `ingot data prepare` or set data.corpus",
            dir.display()
        ))
    })?;
    let docs = ingot_data::read_corpus(corpus)?;
    let tok = match &cfg.tokenizer {
        Some(path) => Tokenizer::from_file(path)?,
        None => {
            let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
            match cfg.tokenizer_kind.as_str() {
                "char" => ingot_tokenizer::char_level(&texts, &["<|endoftext|>".to_string()])?,
                "bpe" => ingot_tokenizer::train_bpe(
                    &texts,
                    &ingot_tokenizer::BpeOptions {
                        vocab_size: cfg.vocab_size,
                        min_frequency: 2,
                        special_tokens: vec!["<|endoftext|>".to_string()],
                        show_progress: false,
                    },
                )?,
                other => {
                    return Err(Error::Config(format!("data.tokenizer_kind '{other}': expected \"char\" or \"bpe\"")))
                }
            }
        }
    };
    let report = ingot_data::prepare(
        &docs,
        &tok,
        &dir,
        &ingot_data::PrepareOptions { val_fraction: cfg.val_fraction, seed, show_progress: true, ..Default::default() },
    )?;
    if let Some(source) = &wanted {
        let text = serde_json::to_string_pretty(source).unwrap_or_default();
        ingot_core::atomic::write_file(&dir.join(DATA_SOURCE_FILE), text.as_bytes())?;
    }
    eprintln!(
        "prepared {}: {} train / {} validation tokens, vocabulary {}",
        dir.display(),
        report.manifest.train.n_tokens,
        report.manifest.val.n_tokens,
        tok.vocab_size()
    );
    Ok((tok, dir))
}

/// `section.key was -> now` for every top-level key of two JSON objects that differs.
fn differences(section: &str, was: &Value, now: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (was.as_object().unwrap_or(&empty), now.as_object().unwrap_or(&empty));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null));
            (!same_setting(x, y)).then(|| format!("{section}.{k} {} -> {}", short(x), short(y)))
        })
        .collect()
}

/// Equal settings; numbers within a relative 1e-12, because serde_json's default float parser
/// may read a written f64 back one ulp off (a recomputed lr then looked like a changed one).
fn same_setting(x: &Value, y: &Value) -> bool {
    match (x, y) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs()),
            _ => false,
        },
        _ => x == y,
    }
}

/// A JSON value for a message, cut to 60 characters.
fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

// ---------------------------------------------------------------------------------------------
// The run folder

/// `<out>/ingot-run.json`: what a run was started with. It marks the folder as an Ingot training
/// run, and `--resume` checks the current config, tokenizer and data against it.
pub const RUN_MANIFEST: &str = "ingot-run.json";

/// Settings that may differ between a run and its resumption: how long to train, how often to
/// report and save, what to sample. Everything else decides the model and the data.
const RESUMABLE: &[&str] = &[
    "train.max_steps",
    "train.eval_interval",
    "train.sample_interval",
    "train.log_interval",
    "train.checkpoint_interval",
    "train.keep_last",
    "train.activation_checkpointing",
    "data.eval_batches",
];

/// The config with the resumable settings and the `[sample]` section removed, by section.
fn fingerprint(cfg: &PretrainConfig) -> Value {
    fingerprint_of(serde_json::to_value(cfg).unwrap_or(Value::Null), RESUMABLE)
}

/// A config as JSON without `[sample]` and the `resumable` keys (`section.key`).
pub(crate) fn fingerprint_of(mut v: Value, resumable: &[&str]) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.remove("sample");
        for path in resumable {
            if let Some((section, key)) = path.split_once('.') {
                if let Some(table) = obj.get_mut(section).and_then(Value::as_object_mut) {
                    table.remove(key);
                }
            }
        }
    }
    v
}

/// What a run records in [`RUN_MANIFEST`].
pub(crate) fn run_manifest(cfg: &PretrainConfig, tokenizer: &Tokenizer, data_dir: &Path) -> Result<Value> {
    let dataset = std::fs::read(data_dir.join(ingot_data::MANIFEST_FILE))
        .map_err(Error::io("reading", data_dir.join(ingot_data::MANIFEST_FILE)))?;
    Ok(serde_json::json!({
        "format_version": 1,
        "config": fingerprint(cfg),
        "tokenizer_hash": tokenizer.content_hash()?,
        "dataset_hash": format!("{:016x}", ingot_core::hash::fnv1a64(&dataset)),
        "data_dir": data_dir,
    }))
}

/// Is `out` a fresh place for a new run? A folder holding a run (its manifest or a checkpoint) is
/// refused unless `force`, which then removes that run's checkpoints, metrics and plot (never
/// anything Ingot did not write). A non-empty folder that is not a run is refused unless `force`.
pub(crate) fn claim_run_folder(out: &Path, force: bool) -> Result<()> {
    let has_latest = out.join(crate::checkpoint::LATEST_FILE).is_file();
    if has_latest || out.join(RUN_MANIFEST).is_file() {
        let checkpoints = crate::checkpoint::list(out)?;
        if !force && checkpoints.is_empty() && !has_latest {
            // Nothing to resume (--resume would refuse too): say so rather than send the user
            // from one refusal to the other.
            return Err(Error::Config(format!(
                "{} holds a training run that saved no checkpoint (it stopped before its first one, \
                 or is still running); pass --force to start it afresh, or choose another --out",
                out.display()
            )));
        }
        if !force {
            let at = checkpoints.last().map(|(step, _)| format!(" (checkpoint at step {step})"));
            return Err(Error::Config(format!(
                "{} already holds a training run{}; continue it with --resume, choose another --out, \
                 or pass --force to delete its checkpoints and start afresh",
                out.display(),
                at.unwrap_or_default()
            )));
        }
        for (_, dir) in checkpoints {
            std::fs::remove_dir_all(&dir).map_err(Error::io("removing the old checkpoint", &dir))?;
        }
        for name in [crate::checkpoint::LATEST_FILE, RUN_MANIFEST, "metrics.jsonl", "loss.svg"] {
            let path = out.join(name);
            if path.exists() {
                std::fs::remove_file(&path).map_err(Error::io("removing the old run's", &path))?;
            }
        }
        return Ok(());
    }
    // Data prepared into the run's default data folder beforehand (`ingot data prepare --out
    // <out>/data`) is the one thing a new run's folder may already hold.
    let only_data = std::fs::read_dir(out).is_ok_and(|entries| {
        entries.flatten().all(|e| e.file_name() == "data" && e.path().join(ingot_data::MANIFEST_FILE).is_file())
    });
    if only_data {
        return Ok(());
    }
    ingot_core::atomic::check_output(out, "training run", RUN_MANIFEST, force).map_err(Error::Core)
}

/// Refuse to resume a run with another config, tokenizer or data than it was made with.
pub(crate) fn check_resumable(out: &Path, now: &Value) -> Result<()> {
    check_resumable_with(out, now, &["model", "data", "train"], RESUMABLE)
}

/// [`check_resumable`] for any recipe: compares the `sections` of the manifests' configs and
/// their `*_hash` fields; `resumable` names what may change (for the message).
pub(crate) fn check_resumable_with(out: &Path, now: &Value, sections: &[&str], resumable: &[&str]) -> Result<()> {
    let path = out.join(RUN_MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        // Runs from before the manifest: nothing to compare against.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("reading", &path)(e)),
    };
    let was: Value = serde_json::from_str(&text).map_err(Error::json(&path))?;
    let mut changed = Vec::new();
    for section in sections {
        changed.extend(differences(section, &was["config"][section], &now["config"][section]));
    }
    for (key, what) in
        [("tokenizer_hash", "the tokenizer"), ("dataset_hash", "the prepared data"), ("model_hash", "the base model")]
    {
        if was[key] != now[key] {
            changed.push(format!("{what} ({} -> {})", short(&was[key]), short(&now[key])));
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "cannot resume {}: it was made with other settings: {}. Resume with the original settings \
         (only {} may change), or start a new run in another --out",
        out.display(),
        changed.join(", "),
        resumable.join(", ")
    )))
}

/// The HF config of `cfg` for `vocab_size` tokens, checked, and the model's context length.
pub fn resolve_model_config(cfg: &ModelSection, vocab_size: usize) -> Result<(Value, ingot_models::HfConfig, usize)> {
    let mut config = ingot_models::presets::preset(&cfg.preset, vocab_size)?;
    ingot_models::presets::apply_overrides(&mut config, &cfg.overrides)?;
    let hf: ingot_models::HfConfig = serde_json::from_value(config.clone()).map_err(|e| {
        // serde quotes the offending value (from the config file or --set): escaped and capped.
        Error::Config(format!("model config: {}", ingot_core::text::escaped(&e.to_string(), 300)))
    })?;
    let context = match hf.model_type().as_str() {
        "gpt2" => hf.gpt2("model config")?.n_positions,
        _ => hf.llama("model config")?.max_position_embeddings,
    };
    Ok((config, hf, context))
}

/// Build the model of `cfg` with fresh, seeded weights; returns it with its VarMap and HF config.
pub fn build_model(
    cfg: &ModelSection,
    vocab_size: usize,
    seed: u64,
    device: &Device,
) -> Result<(Model, VarMap, Value)> {
    let (config, hf, _) = resolve_model_config(cfg, vocab_size)?;
    let varmap = VarMap::new();
    let seeded = SeededVarMap::new(varmap.clone(), seed);
    let w = Weights::from_var_builder(seeded.var_builder(device));
    let model = ingot_models::from_hf_config(&hf, &w, "model config")?;
    Ok((model, varmap, config))
}

/// Run the recipe: the whole of `ingot pretrain`. A fresh run needs an unused `out` (or `force`,
/// which replaces the run there); `resume` continues the run in `out` if its settings match.
pub fn run(cfg: &PretrainConfig, out: &Path, resume: bool, force: bool, progress: bool) -> Result<TrainReport> {
    let device = Device::Cpu;
    // Check the model config before the (slower) data preparation, so typos fail fast.
    let (_, _, model_context) = resolve_model_config(&cfg.model, 256)?;
    if cfg.data.context > model_context {
        return Err(Error::Config(format!(
            "data.context {} exceeds the model's context length {model_context}",
            cfg.data.context
        )));
    }
    // In a job of several ranks, rank 0 alone claims the folder and prepares the data; the
    // others wait, then open what it wrote (the run folder is on a file system they share).
    let world = crate::collective::world();
    let (tokenizer, data_dir) = if world.is_main() {
        if !resume {
            claim_run_folder(out, force)?;
        }
        std::fs::create_dir_all(out).map_err(Error::io("creating", out))?;
        let (tokenizer, data_dir) = prepare_data(&cfg.data, out, cfg.train.seed, force && !resume)?;
        let manifest = run_manifest(cfg, &tokenizer, &data_dir)?;
        if resume {
            check_resumable(out, &manifest)?;
        } else {
            let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
            ingot_core::atomic::write_file(&out.join(RUN_MANIFEST), text.as_bytes())?;
        }
        world.barrier()?;
        (tokenizer, data_dir)
    } else {
        world.barrier()?;
        prepare_data(&cfg.data, out, cfg.train.seed, false)?
    };
    let train = TokenDataset::open(&data_dir, Split::Train)?;
    let val = TokenDataset::open(&data_dir, Split::Val)?;
    train.check_tokenizer(&tokenizer)?;
    let (mut model, varmap, mut model_config) =
        build_model(&cfg.model, tokenizer.vocab_size(), cfg.train.seed, &device)?;
    if cfg.train.activation_checkpointing {
        model.enable_checkpointing(varmap.clone());
    }
    // So transformers knows the special tokens (without them it assumes GPT-2's id 50256).
    let ids =
        ingot_models::export::SpecialIds { bos: tokenizer.bos_id(), eos: tokenizer.eos_id(), pad: tokenizer.pad_id() };
    ingot_models::export::with_special_ids(&mut model_config, &ids);
    if cfg.data.context > model.context_length() {
        return Err(Error::Config(format!(
            "data.context {} exceeds the model's context length {}",
            cfg.data.context,
            model.context_length()
        )));
    }
    let n_params: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    eprintln!(
        "model: {} ({}), {:.2} M parameters; {} train / {} validation tokens",
        cfg.model.preset,
        model.architecture(),
        n_params as f64 / 1e6,
        train.len(),
        val.len()
    );
    let mut objective = LmObjective {
        train,
        val,
        sampler: BatchSampler { seed: cfg.train.seed },
        batch_size: cfg.data.batch_size,
        context: cfg.data.context,
        eval_batches: cfg.data.eval_batches,
        device: device.clone(),
        tokenizer: &tokenizer,
        sample: cfg.sample.clone(),
    };
    let run_info = serde_json::to_value(cfg).unwrap_or(Value::Null);
    let trainer = Trainer {
        model: &model,
        varmap: &varmap,
        tokenizer: &tokenizer,
        model_config,
        run_info,
        cfg: cfg.train.clone(),
        out_dir: out.to_path_buf(),
        progress,
        adapter_config: None,
    };
    let mut report = trainer.run(&mut objective, resume)?;
    let full = full_loss(&model, &objective.val, cfg.data.context, cfg.data.batch_size.max(1) * 4, &device)?;
    report.full_val_loss = Some(full);
    Ok(report)
}

/// Load the latest checkpoint of a run and measure its loss over the whole validation split.
pub fn evaluate_latest(cfg: &PretrainConfig, out: &Path) -> Result<(PathBuf, f64)> {
    let device = Device::Cpu;
    let dir = crate::checkpoint::latest(out)?
        .ok_or_else(|| Error::Config(format!("no checkpoint in {} to evaluate", out.display())))?;
    let data_dir = cfg.data.dir.clone().unwrap_or_else(|| out.join("data"));
    let val = TokenDataset::open(&data_dir, Split::Val)?;
    let (model, _) = ingot_models::load(&dir, &device)?;
    let loss = full_loss(&model, &val, cfg.data.context, cfg.data.batch_size.max(1) * 4, &device)?;
    Ok((dir, loss))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_float_read_back_from_json_is_the_same_setting() {
        // The lr a scaling sweep computes, written to ingot-run.json and parsed back.
        let lr = 0.0032659863237109042_f64;
        let written = serde_json::json!({ "lr": lr, "steps": 245 }).to_string();
        let was: Value = serde_json::from_str(&written).unwrap();
        assert_ne!(was["lr"].as_f64(), Some(lr), "serde_json reads this one back exactly now: the test needs another");
        let now = serde_json::json!({ "lr": lr, "steps": 245 });
        assert!(differences("train", &was, &now).is_empty(), "{:?}", differences("train", &was, &now));
        // A real change is still one.
        let changed = serde_json::json!({ "lr": lr * 1.001, "steps": 245 });
        assert_eq!(differences("train", &was, &changed).len(), 1);
        let changed = serde_json::json!({ "lr": lr, "steps": 246 });
        assert_eq!(differences("train", &was, &changed), vec!["train.steps 245 -> 246".to_string()]);
    }
}
