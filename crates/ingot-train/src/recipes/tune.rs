//! What every recipe that tunes a pretrained model shares (SFT, reward model, DPO, PPO, GRPO):
//! the model loaded with its trainable part, the data files (given or generated), the run
//! manifest that `--resume` checks, the trainer's checkpoint configs, and the export of what was
//! trained. Each recipe keeps only what is its own: its data, its objective, its report.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use candle_nn::VarMap;
use ingot_models::{Hold, LoadOptions, Model};
use ingot_nn::{Adapters, LoraConfig};
use ingot_tokenizer::Tokenizer;
use serde_json::{json, Value};

use super::pretrain::{check_resumable_with, claim_run_folder, fingerprint_of, RUN_MANIFEST};
use super::sft::{current_rss, tokenizer_files, GenerateSection, Generator, Method, ModelSection};
use crate::error::{Error, Result};
use crate::trainer::TrainConfig;

/// Settings that may change on --resume: how long to train, how often to report and save, and
/// activation checkpointing (it changes memory, not results).
pub(crate) const RESUMABLE: &[&str] = &[
    "train.max_steps",
    "train.eval_interval",
    "train.sample_interval",
    "train.log_interval",
    "train.checkpoint_interval",
    "train.keep_last",
    "train.activation_checkpointing",
];

/// A config's data source must be exactly one of a file and a generator.
pub(crate) fn check_data_source(train: Option<&Path>, generate: Option<&GenerateSection>, what: &str) -> Result<()> {
    match (train, generate) {
        (None, None) => Err(Error::Config(format!("set data.train ({what}) or a [data.generate] section"))),
        (Some(_), Some(_)) => Err(Error::Config("set data.train or [data.generate], not both".into())),
        _ => Ok(()),
    }
}

/// Claim `out` for a fresh run (refusing to overwrite another without `force`), or keep it for
/// `resume`. In a job of several ranks, rank 0 claims it and the others wait for that (the run
/// folder is on a file system they share); only rank 0 writes into it.
pub(crate) fn open_run(out: &Path, resume: bool, force: bool) -> Result<()> {
    let world = crate::collective::world();
    if world.is_main() {
        if !resume {
            claim_run_folder(out, force)?;
        }
        std::fs::create_dir_all(out).map_err(Error::io("creating", out))?;
    }
    world.barrier()
}

/// The training and held-out files: the config's, or the generator's under `<out>/data/` (kept
/// from the first run when resuming).
pub(crate) fn data_files(
    train: Option<&Path>,
    val: Option<&Path>,
    generate: Option<&GenerateSection>,
    out: &Path,
    resume: bool,
    generator: &Generator,
) -> Result<(PathBuf, Option<PathBuf>)> {
    match (train, generate) {
        (Some(train), _) => Ok((train.to_path_buf(), val.map(Path::to_path_buf))),
        (None, Some(g)) => {
            let dir = out.join("data");
            let (t, v) = (dir.join("train.jsonl"), dir.join("val.jsonl"));
            // Rank 0 generates; the others read what it wrote.
            let world = crate::collective::world();
            if !world.is_main() {
                world.barrier()?;
                return Ok((t, v.is_file().then_some(v)));
            }
            let files = if resume && t.is_file() { Ok((t, v.is_file().then_some(v))) } else { generator(g, &dir) };
            world.barrier()?;
            files
        }
        (None, None) => Err(Error::Config("set data.train or a [data.generate] section".into())),
    }
}

/// Write the run manifest (a fresh run), or check that a resumed run's settings, tokenizer and
/// data are the ones it started with (`sections` of the config are compared).
pub(crate) fn record_manifest(
    out: &Path,
    resume: bool,
    recipe: &str,
    config: Value,
    sections: &[&str],
    model_path: &Path,
    tokenizer: &Tokenizer,
    train: &Path,
) -> Result<()> {
    let manifest = json!({
        "format_version": 1,
        "recipe": recipe,
        "config": fingerprint_of(config, RESUMABLE),
        "model_path": model_path,
        "tokenizer_hash": tokenizer.content_hash()?,
        "dataset_hash": file_hash(train)?,
    });
    if !crate::collective::world().is_main() {
        return Ok(());
    }
    if resume {
        check_resumable_with(out, &manifest, sections, RESUMABLE)
    } else {
        let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
        ingot_core::atomic::write_file(&out.join(RUN_MANIFEST), text.as_bytes())?;
        Ok(())
    }
}

/// The configs checkpoints carry: (config.json, adapter_config.json when adapters train).
/// Adapters are kept in the order they train in (exact resume) and their config says which, so
/// `--adapter <out>/step-N` reads them right; full fine-tuning of a GGUF llama trains q/k rows in
/// llama.cpp's order, so its checkpoints say so and loading one as an HF folder is refused (the
/// export is in HF order).
pub(crate) fn checkpoint_configs(
    model: &Model,
    adapters: Option<&Arc<Adapters>>,
    model_path: &Path,
    model_config: &Value,
) -> (Value, Option<Value>) {
    let adapter_config = adapters.map(|a| {
        ingot_models::adapter::checkpoint_config(a.config(), &model_path.display().to_string(), model.row_order())
    });
    let mut config = model_config.clone();
    if adapters.is_none() && model.row_order() != ingot_models::adapter::RowOrder::Hf {
        config[ingot_models::adapter::ROW_ORDER_KEY] = json!("interleaved");
    }
    (config, adapter_config)
}

/// Export what was trained: the adapter in PEFT's layout at `<dir>` (default `<out>/adapter`),
/// or the full model as an HF checkpoint (default `<out>/model`). Rank 0 writes it; every rank
/// gets the path.
pub(crate) fn export(
    out: &Path,
    dir: Option<&Path>,
    model: &Model,
    adapters: Option<&Arc<Adapters>>,
    tokenizer: &Tokenizer,
    model_config: &Value,
    model_path: &Path,
) -> Result<PathBuf> {
    let main = crate::collective::world().is_main();
    match adapters {
        Some(a) => {
            let dir = dir.map_or_else(|| out.join(ingot_models::adapter::EXPORT_DIR), Path::to_path_buf);
            if main {
                ingot_models::adapter::save(&dir, a, model.row_order(), &model_path.display().to_string())?;
            }
            Ok(dir)
        }
        None => {
            let dir = dir.map_or_else(|| out.join("model"), Path::to_path_buf);
            if main {
                write_full_model(&dir, model, tokenizer, model_config)?;
            }
            Ok(dir)
        }
    }
}

/// The base model's tokenizer (GGUF metadata or tokenizer.json beside the weights).
fn load_tokenizer(model_path: &Path, gguf: Option<&ingot_core::gguf::GgufFile>) -> Result<Tokenizer> {
    Ok(match gguf {
        Some(file) => Tokenizer::from_gguf(file)?,
        None => Tokenizer::from_file(model_path.join("tokenizer.json"))?,
    })
}

/// The base model's HF config.json for checkpoints, with the tokenizer's special ids.
pub(crate) fn base_config(model: &Model, tokenizer: &Tokenizer) -> Result<Value> {
    let ids =
        ingot_models::export::SpecialIds { bos: tokenizer.bos_id(), eos: tokenizer.eos_id(), pad: tokenizer.pad_id() };
    match model {
        Model::Llama(m) => Ok(ingot_models::export::llama_hf_config(m.config(), &ids)?),
        Model::Gpt2(_) => Err(Error::Config("SFT supports the llama family; this model is GPT-2".into())),
    }
}

/// fnv1a of a file's bytes, for the run manifest (`--resume` refuses changed data).
pub(crate) fn file_hash(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(Error::io("reading", path))?;
    Ok(format!("{:016x}", ingot_core::hash::fnv1a64(&bytes)))
}

/// A model loaded for training, its trainable part in the VarMap given to [`load_trainable`].
pub(crate) struct Trainable {
    pub model: Model,
    pub adapters: Option<std::sync::Arc<Adapters>>,
    pub tokenizer: Tokenizer,
    /// Resident memory once the model was loaded (see `SftReport::model_rss`).
    pub model_rss: u64,
}

/// The model of `[model]` loaded for `method`: every weight a variable in `vars` (full), or
/// fresh adapters in `vars` over the base held dense (lora) or as stored (qlora); activation
/// checkpointing as `train` says. Shared by every recipe that tunes a pretrained model.
pub(crate) fn load_trainable(
    section: &ModelSection,
    lora: &LoraConfig,
    train: &TrainConfig,
    model_path: &Path,
    device: &Device,
    vars: &VarMap,
) -> Result<Trainable> {
    let adapters = match section.method {
        Method::Full => None,
        Method::Lora | Method::Qlora => Some(Adapters::train(lora.clone(), vars.clone(), train.seed)?),
    };
    let hold = match section.method {
        Method::Full => Hold::Trainable(vars.clone()),
        Method::Lora => Hold::Dense,
        Method::Qlora => Hold::AsStored,
    };
    let (mut model, files) =
        ingot_models::load_with(model_path, device, &LoadOptions { hold, adapters: adapters.clone() })?;
    if train.activation_checkpointing {
        model.enable_checkpointing(vars.clone());
    }
    let model_rss = current_rss();
    let tokenizer = match &section.tokenizer {
        Some(path) => Tokenizer::from_file(path)?,
        None => load_tokenizer(model_path, files.gguf.as_deref())?,
    };
    Ok(Trainable { model, adapters, tokenizer, model_rss })
}

/// A fully fine-tuned model as an HF checkpoint folder at `dir` (q/k rows back in HF's order),
/// with its tokenizer files.
pub(crate) fn write_full_model(dir: &Path, model: &Model, tokenizer: &Tokenizer, model_config: &Value) -> Result<()> {
    let mut tensors = model.named_weights(false)?;
    if let Model::Llama(m) = model {
        if model.row_order() != ingot_models::adapter::RowOrder::Hf {
            ingot_models::export::llama_qk_to_hf(&mut tensors, m.config())?;
        }
    }
    let (tok, tok_config) = tokenizer_files(tokenizer)?;
    ingot_models::export::write_hf_checkpoint(
        dir,
        model_config,
        &tensors,
        &tok,
        &[("tokenizer_config.json", &tok_config)],
        true,
    )?;
    Ok(())
}
