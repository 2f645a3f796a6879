//! Training checkpoints: one folder per saved step, written atomically, plus a `latest` pointer.
//!
//! ```text
//! <out>/
//!   latest                    text file: "step-00001200"
//!   step-00001200/
//!     model.safetensors       weights under their HF key names (as in the training VarMap)
//!     config.json             HF-style model config, as given by the caller
//!     tokenizer.json          the tokenizer (plus tokenizer_config.json: BOS/EOS, chat template)
//!     optimizer.safetensors   AdamW moments, "m.<param>" and "v.<param>"
//!     trainer_state.json      the caller's: step, data position, metrics, ...
//! ```
//!
//! A checkpoint folder is also a model folder: `ingot_models::load(step_dir)` reads its
//! config.json and safetensors (optimizer.safetensors comes along; its keys cannot collide with
//! model keys, which never start with `m.` or `v.`).
//!
//! Crash safety (`ingot_core::atomic`): each checkpoint is written into a hidden temporary folder
//! beside `step-<N>`, every file and the folder fsync'd, the folder swapped into place, and only
//! then `latest` replaced (an atomic file write). A run killed at any point leaves `latest` naming
//! a complete checkpoint; the half-written temporary folder is removed by the next save in that
//! output folder. Old checkpoints are pruned only after the new one is in place, and never the one
//! `latest` names. One process writes to an output folder at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use ingot_core::atomic::{self, StagedDir};
use ingot_tokenizer::Tokenizer;
use serde_json::Value;

use crate::error::{Context, Error, Result};

pub const MODEL_FILE: &str = "model.safetensors";
/// Where an adapter-only checkpoint (LoRA, QLoRA) keeps its weights, as PEFT names the file.
pub const ADAPTER_FILE: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const TRAINER_STATE_FILE: &str = "trainer_state.json";
/// The pointer file in the output folder naming the newest complete checkpoint.
pub const LATEST_FILE: &str = "latest";

/// What goes into a checkpoint.
pub struct CheckpointContents<'a> {
    /// Model weights under HF key names; see [`weights_of`] for a `VarMap`.
    pub weights: &'a [(String, Tensor)],
    /// HF-style config.json, so the folder loads as a model.
    pub config: &'a Value,
    pub tokenizer: &'a Tokenizer,
    /// `AdamW::state_tensors()`.
    pub optimizer: &'a [(String, Tensor)],
    /// The trainer's own state (step, optimizer step count, data position, metrics).
    pub trainer_state: &'a Value,
    /// For adapter-only training: PEFT's adapter_config.json. The weights then go to
    /// adapter_model.safetensors (the folder is not a whole model).
    pub adapter_config: Option<&'a Value>,
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// The `step-<N>` folder.
    pub path: PathBuf,
    pub weights: HashMap<String, Tensor>,
    pub config: Value,
    pub optimizer: HashMap<String, Tensor>,
    pub trainer_state: Value,
}

impl Checkpoint {
    /// The tokenizer saved with this checkpoint.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        let path = self.path.join(TOKENIZER_FILE);
        if !path.exists() {
            return Err(Error::MissingFile { dir: self.path.clone(), file: TOKENIZER_FILE });
        }
        Ok(Tokenizer::from_file(path)?)
    }
}

/// A `VarMap`'s variables as (name, tensor), sorted by name.
pub fn weights_of(varmap: &VarMap) -> Vec<(String, Tensor)> {
    // A poisoned lock only means another thread panicked while holding it; the map is still usable.
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<(String, Tensor)> = data.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The folder name of step `step`: `step-00001200` (zero-padded so names sort by step).
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// Save a checkpoint of step `step` under `out` and point `latest` at it; then delete all but
/// the newest `keep_last` checkpoints (0 keeps all). Returns the checkpoint folder.
///
/// Saving a step that already exists replaces it.
pub fn save(out: &Path, step: u64, contents: &CheckpointContents, keep_last: usize) -> Result<PathBuf> {
    let staged = stage(out, step, contents)?;
    staged.commit(keep_last)
}

/// A checkpoint fully written into its temporary folder, not yet visible.
///
/// [`save`] is `stage` then [`Staged::commit`]; they are separate so that tests can stop between
/// the two. Dropping a `Staged` removes the temporary folder; a process killed before the commit
/// leaves it for the next save in that output folder to remove.
#[derive(Debug)]
pub struct Staged {
    out: PathBuf,
    step: u64,
    dir: StagedDir,
}

impl Staged {
    /// The temporary folder holding the checkpoint.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Swap the checkpoint into place, point `latest` at it, and prune old checkpoints.
    pub fn commit(self, keep_last: usize) -> Result<PathBuf> {
        let name = step_dir_name(self.step);
        let dest = self.dir.dest().to_path_buf();
        // A kill between the swap's two renames leaves `latest` naming a missing folder for a
        // moment; the old copy beside it is put back by the next write here (and `latest()`
        // names the problem if that never comes).
        self.dir.commit()?;
        atomic::write_file(&self.out.join(LATEST_FILE), format!("{name}\n").as_bytes())?;
        if keep_last > 0 {
            prune(&self.out, keep_last, &name)?;
        }
        tracing::info!("saved checkpoint {}", dest.display());
        Ok(dest)
    }
}

/// Write a checkpoint into a fresh temporary folder under `out` (the first half of [`save`]).
/// Also cleans up after earlier runs that were killed mid-save.
pub fn stage(out: &Path, step: u64, contents: &CheckpointContents) -> Result<Staged> {
    let dir = StagedDir::create(&out.join(step_dir_name(step)))?;
    let tmp = dir.path();
    match contents.adapter_config {
        Some(adapter_config) => {
            write_safetensors(&tmp.join(ADAPTER_FILE), contents.weights, "adapter weights")?;
            write_json(&tmp.join(ADAPTER_CONFIG_FILE), adapter_config)?;
        }
        None => write_safetensors(&tmp.join(MODEL_FILE), contents.weights, "model weights")?,
    }
    write_safetensors(&tmp.join(OPTIMIZER_FILE), contents.optimizer, "optimizer state")?;
    write_json(&tmp.join(CONFIG_FILE), contents.config)?;
    write_json(&tmp.join(TRAINER_STATE_FILE), contents.trainer_state)?;
    contents.tokenizer.save(tmp.join(TOKENIZER_FILE))?;
    contents.tokenizer.save_config(tmp.join(TOKENIZER_CONFIG_FILE))?;
    Ok(Staged { out: out.to_path_buf(), step, dir })
}

/// The checkpoint folder `<out>/latest` names, or `None` when there is no `latest` yet (a fresh
/// run). A `latest` naming a folder that is not there is an error, not `None`: silently starting
/// afresh would throw away the run.
pub fn latest(out: &Path) -> Result<Option<PathBuf>> {
    let pointer = out.join(LATEST_FILE);
    let text = match std::fs::read_to_string(&pointer) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", &pointer)(e)),
    };
    let name = text.trim();
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(Error::Corrupt {
            path: pointer,
            detail: format!("expected a checkpoint folder name such as 'step-00001200', found {name:?}"),
        });
    }
    let dir = out.join(name);
    if !dir.is_dir() {
        return Err(Error::DanglingLatest { pointer, name: name.to_string(), missing: dir });
    }
    Ok(Some(dir))
}

/// Load the checkpoint `latest` names, if any.
pub fn load_latest(out: &Path, device: &Device) -> Result<Option<Checkpoint>> {
    latest(out)?.map(|dir| load(&dir, device)).transpose()
}

/// Load a checkpoint folder's weights, optimizer state, config and trainer state onto `device`.
pub fn load(dir: &Path, device: &Device) -> Result<Checkpoint> {
    if !dir.is_dir() {
        return Err(Error::Core(ingot_core::Error::NotFound {
            what: "checkpoint folder".into(),
            path: dir.to_path_buf(),
            hint: " (a checkpoint is a step-<N> folder under the training output folder)".into(),
        }));
    }
    let file = |name: &'static str| -> Result<PathBuf> {
        let path = dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingFile { dir: dir.to_path_buf(), file: name })
        }
    };
    Ok(Checkpoint {
        path: dir.to_path_buf(),
        weights: match dir.join(ADAPTER_FILE).is_file() {
            true => read_safetensors(&dir.join(ADAPTER_FILE), device)?,
            false => read_safetensors(&file(MODEL_FILE)?, device)?,
        },
        config: read_json(&file(CONFIG_FILE)?)?,
        optimizer: read_safetensors(&file(OPTIMIZER_FILE)?, device)?,
        trainer_state: read_json(&file(TRAINER_STATE_FILE)?)?,
    })
}

/// The `step-<N>` checkpoints under `out`, oldest first.
pub fn list(out: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", out)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("listing", out))?;
        let name = entry.file_name();
        let Some(step) = name.to_str().and_then(|n| n.strip_prefix("step-")).and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        if entry.path().is_dir() {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Delete all but the newest `keep_last` checkpoints, never `keep` (the one `latest` names).
fn prune(out: &Path, keep_last: usize, keep: &str) -> Result<()> {
    let all = list(out)?;
    let old = all.len().saturating_sub(keep_last);
    for (_, path) in &all[..old] {
        if path.file_name().is_some_and(|n| n == keep) {
            continue;
        }
        remove_dir_logged(path);
    }
    Ok(())
}

/// Deleting an old checkpoint or a leftover temporary folder is housekeeping: a failure is
/// logged, not fatal to the run.
fn remove_dir_logged(path: &Path) {
    if let Err(e) = std::fs::remove_dir_all(path) {
        tracing::warn!("could not remove {}: {e}", path.display());
    }
}

fn write_safetensors(path: &Path, tensors: &[(String, Tensor)], what: &str) -> Result<()> {
    let map: HashMap<&str, Tensor> = tensors.iter().map(|(k, t)| (k.as_str(), t.clone())).collect();
    if map.len() != tensors.len() {
        return Err(Error::Config(format!("{what}: duplicate tensor names")));
    }
    // Hugging Face transformers refuses safetensors files without {"format": "pt"} metadata
    // ("does not contain the valid metadata"); write it so checkpoints load there too.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let contiguous: Vec<(&str, Tensor)> = map
        .into_iter()
        .map(|(k, t)| t.contiguous().map(|t| (k, t)))
        .collect::<candle_core::Result<_>>()
        .context(|| format!("preparing {what}"))?;
    // Inside a staged folder, whose commit syncs every file: a plain write is enough here.
    safetensors::serialize_to_file(contiguous, Some(metadata), path)
        .map_err(|e| Error::Corrupt { path: path.to_path_buf(), detail: format!("writing {what}: {e}") })
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(Error::json(path))?;
    std::fs::write(path, format!("{text}\n")).map_err(Error::io("writing", path))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
    serde_json::from_str(&text).map_err(Error::json(path))
}

/// Read a whole safetensors file. When candle refuses it, look at the file ourselves to say
/// whether it is truncated or otherwise corrupt.
pub fn read_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(Error::io("reading", path))?;
    candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| match diagnose_safetensors(&bytes) {
        Some(Diagnosis::Truncated(detail)) => Error::Truncated { path: path.to_path_buf(), detail },
        Some(Diagnosis::Corrupt(detail)) => Error::Corrupt { path: path.to_path_buf(), detail },
        None => Error::Corrupt { path: path.to_path_buf(), detail: format!("not a valid safetensors file: {e}") },
    })
}

enum Diagnosis {
    Truncated(String),
    Corrupt(String),
}

/// Check a safetensors file's framing: an 8-byte little-endian header length, a JSON header, then
/// the tensor data whose extent the header's `data_offsets` give.
fn diagnose_safetensors(bytes: &[u8]) -> Option<Diagnosis> {
    let len = bytes.len() as u64;
    let Some(prefix) = bytes.get(..8) else {
        return Some(Diagnosis::Truncated(format!("{len} bytes, shorter than the 8-byte header length")));
    };
    let header_len = u64::from_le_bytes(prefix.try_into().ok()?);
    if header_len > 100 << 20 {
        return Some(Diagnosis::Corrupt(format!("header length {header_len} is implausible; not a safetensors file?")));
    }
    let header_end = 8 + header_len;
    if len < header_end {
        return Some(Diagnosis::Truncated(format!("{len} bytes, but the header alone needs {header_end}")));
    }
    let header: Value = match serde_json::from_slice(&bytes[8..header_end as usize]) {
        Ok(h) => h,
        Err(e) => {
            return Some(Diagnosis::Corrupt(format!("header is not valid JSON: {}", ingot_core::text::error_text(&e))))
        }
    };
    let data_end = header
        .as_object()?
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    if len < header_end + data_end {
        return Some(Diagnosis::Truncated(format!(
            "{len} bytes, but its header says the file is {} bytes",
            header_end + data_end
        )));
    }
    None
}
