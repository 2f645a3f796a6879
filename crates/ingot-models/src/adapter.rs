//! LoRA adapter folders in PEFT's layout, so adapters move between Ingot and transformers + PEFT:
//!
//! ```text
//! <dir>/
//!   adapter_config.json          PEFT's LoraConfig (peft_type "LORA", r, lora_alpha, target_modules, ...)
//!   adapter_model.safetensors    base_model.model.<module key>.lora_A.weight (r, in) / .lora_B.weight (out, r)
//! ```
//!
//! Keys and row order are those of the HF model. A GGUF llama file stores its q/k projection rows
//! permuted (llama.cpp's converter interleaves each head's two RoPE halves), so adapters trained
//! on it have q_proj/k_proj `lora_B` rows in that order: they are permuted back to HF's order on
//! save and forward again on load ([`RowOrder`]). `lora_A` (which mixes inputs, not q/k rows) is
//! untouched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use ingot_core::{CandleContext, Error, Result};
use ingot_nn::{Adapters, LoraConfig};
use serde_json::{json, Value};

pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
pub const ADAPTER_FILE: &str = "adapter_model.safetensors";

/// How a model's q/k projection rows are ordered relative to HF's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowOrder {
    /// HF's order (safetensors checkpoints, Qwen2 GGUF files).
    Hf,
    /// llama.cpp's interleaved order (GGUF llama / mistral files), with (query heads, kv heads).
    Interleaved { heads: usize, kv_heads: usize },
}

impl RowOrder {
    /// The order of the model at `path` (a GGUF file or a checkpoint folder).
    pub fn of_model(path: &Path) -> Result<Self> {
        if path.is_dir() || path.extension().is_some_and(|e| e == "safetensors") {
            return Ok(RowOrder::Hf);
        }
        let file = ingot_core::gguf::GgufFile::open(path)?;
        let keys = crate::config::GgufKeys::new(&file)?;
        Ok(match keys.arch.as_str() {
            "llama" | "mistral" => {
                let cfg = keys.llama()?;
                RowOrder::Interleaved { heads: cfg.num_heads, kv_heads: cfg.num_kv_heads }
            }
            _ => RowOrder::Hf,
        })
    }

    /// Heads whose rows a tensor of `module_key` is permuted by, when it needs it.
    fn heads_for(&self, module_key: &str) -> Option<usize> {
        match *self {
            RowOrder::Hf => None,
            RowOrder::Interleaved { heads, kv_heads } => {
                if module_key.ends_with("self_attn.q_proj") {
                    Some(heads)
                } else if module_key.ends_with("self_attn.k_proj") {
                    Some(kv_heads)
                } else {
                    None
                }
            }
        }
    }
}

/// The module key of a PEFT tensor name, and which part (`lora_A` / `lora_B`) it is.
fn split_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("base_model.model.")?.strip_suffix(".weight")?;
    let (module, part) = rest.rsplit_once('.')?;
    matches!(part, "lora_A" | "lora_B").then_some((module, part))
}

/// Permute each q/k `lora_B` between the model's row order and HF's.
fn reorder(tensors: Vec<(String, Tensor)>, order: RowOrder, to_hf: bool) -> Result<Vec<(String, Tensor)>> {
    tensors
        .into_iter()
        .map(|(key, t)| {
            let heads = split_key(&key).filter(|(_, part)| *part == "lora_B").and_then(|(m, _)| order.heads_for(m));
            let t = match heads {
                Some(h) if to_hf => crate::export::gguf_to_hf_rows(&t, h)?,
                Some(h) => crate::export::hf_to_gguf_rows(&t, h)?,
                None => t,
            };
            Ok((key, t))
        })
        .collect()
}

/// PEFT's adapter_config.json for `cfg`.
pub fn peft_config(cfg: &LoraConfig, base_model: &str) -> Value {
    json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": cfg.r,
        "lora_alpha": cfg.lora_alpha,
        "lora_dropout": cfg.lora_dropout,
        "target_modules": cfg.target_modules,
        "use_rslora": cfg.use_rslora,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
        "use_dora": false,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": null,
    })
}

/// The key a training checkpoint's adapter_config.json carries when its tensors are in llama.cpp's
/// interleaved q/k row order (checkpoints keep the order they train in, so resuming is exact);
/// exported adapters never carry it: they are in HF's order, as PEFT expects.
pub const ROW_ORDER_KEY: &str = "ingot_row_order";

/// True when an adapter folder's tensors are already in the model's row order (an Ingot
/// checkpoint of a GGUF llama), false when they are in HF's (PEFT's) order.
fn in_model_order(config: &Value, model: RowOrder, path: &Path) -> Result<bool> {
    match (config.get(ROW_ORDER_KEY).and_then(Value::as_str), model) {
        (Some("interleaved"), RowOrder::Interleaved { .. }) => Ok(true),
        (Some("interleaved"), RowOrder::Hf) => Err(Error::Model(format!(
            "{}: this training checkpoint keeps its adapters in llama.cpp's q/k row order (it was trained on a GGUF file); apply it to that GGUF file, or use the adapter exported at the end of training (<out>/adapter), which is in HF's order",
            path.display()
        ))),
        _ => Ok(false),
    }
}

/// PEFT's adapter_config.json for a checkpoint of adapters trained on a model of `order`.
pub fn checkpoint_config(cfg: &LoraConfig, base_model: &str, order: RowOrder) -> Value {
    let mut v = peft_config(cfg, base_model);
    if let RowOrder::Interleaved { .. } = order {
        v[ROW_ORDER_KEY] = json!("interleaved");
    }
    v
}

/// The base model file an adapter folder's adapter_config.json records (PEFT's
/// base_model_name_or_path), when both that file and the recorded model file exist.
pub fn recorded_base(dir: &Path) -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string(dir.join("adapter_config.json")).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    let path = std::path::PathBuf::from(value.get("base_model_name_or_path")?.as_str()?);
    path.is_file().then_some(path)
}

/// Read PEFT's adapter_config.json, refusing what Ingot does not implement (with what to do).
pub fn read_config(path: &Path) -> Result<LoraConfig> {
    let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
    let v: Value = serde_json::from_str(&text).map_err(|cause| Error::Json { path: path.to_path_buf(), cause })?;
    let bad = |m: String| Error::Model(format!("{}: {m}", path.display()));
    let peft_type = v.get("peft_type").and_then(Value::as_str).unwrap_or("LORA");
    if peft_type != "LORA" {
        return Err(bad(format!("peft_type is {peft_type:?}; Ingot loads LoRA adapters only")));
    }
    for (flag, what) in [("use_dora", "DoRA"), ("fan_in_fan_out", "fan_in_fan_out (Conv1D) adapters")] {
        if v.get(flag).and_then(Value::as_bool) == Some(true) {
            return Err(bad(format!("{what} is not supported")));
        }
    }
    for pattern in ["rank_pattern", "alpha_pattern"] {
        if v.get(pattern).and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
            return Err(bad(format!("{pattern} (per-module ranks or alphas) is not supported")));
        }
    }
    if v.get("bias").and_then(Value::as_str).is_some_and(|b| b != "none") {
        return Err(bad("bias other than \"none\" is not supported".into()));
    }
    if v.get("modules_to_save").is_some_and(|m| !m.is_null()) {
        return Err(bad("modules_to_save (fully trained extra modules) is not supported".into()));
    }
    let r = v.get("r").and_then(Value::as_u64).ok_or_else(|| bad("has no integer \"r\"".into()))? as usize;
    let target_modules = match v.get("target_modules") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("target_modules must be strings".into()))?,
        Some(Value::String(s)) if s == "all-linear" => vec![s.clone()],
        Some(Value::String(s)) => {
            return Err(bad(format!(
                "target_modules is the pattern {s:?}; Ingot reads a list of module names or \"all-linear\""
            )))
        }
        _ => return Err(bad("has no target_modules".into())),
    };
    let cfg = LoraConfig {
        r,
        lora_alpha: v.get("lora_alpha").and_then(Value::as_f64).unwrap_or(8.0),
        lora_dropout: v.get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
        target_modules,
        use_rslora: v.get("use_rslora").and_then(Value::as_bool).unwrap_or(false),
    };
    cfg.validate().map_err(|e| bad(e.to_string()))?;
    Ok(cfg)
}

/// The folder inside a training output folder where `ingot sft` exports the final adapter.
pub const EXPORT_DIR: &str = "adapter";

/// Where the adapter files of `dir` are: the folder itself, or (a training output folder) the
/// adapter exported into its `adapter/` folder.
pub fn adapter_dir(dir: &Path) -> Result<PathBuf> {
    for candidate in [dir.to_path_buf(), dir.join(EXPORT_DIR)] {
        if candidate.join(ADAPTER_CONFIG_FILE).is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::NotFound {
        what: "adapter".into(),
        path: dir.to_path_buf(),
        hint: format!(" (an adapter folder holds {ADAPTER_CONFIG_FILE} and {ADAPTER_FILE}, as `ingot sft` and PEFT's save_pretrained write them)"),
    })
}

/// Load the adapter in `dir` for a model whose rows are in `order` (see [`RowOrder::of_model`]).
pub fn load(dir: &Path, order: RowOrder) -> Result<Arc<Adapters>> {
    let dir = adapter_dir(dir)?;
    let cfg = read_config(&dir.join(ADAPTER_CONFIG_FILE))?;
    let file = dir.join(ADAPTER_FILE);
    if !file.is_file() {
        return Err(Error::NotFound { what: "adapter weights".into(), path: file, hint: String::new() });
    }
    let raw = candle_core::safetensors::load(&file, &Device::Cpu).map_err(|e| Error::Corrupt {
        path: file.clone(),
        format: "safetensors",
        detail: ingot_core::text::error_text(&e),
    })?;
    let mut tensors = Vec::new();
    for (key, t) in raw {
        // PEFT names a default adapter without a suffix; a named one as `lora_A.<name>.weight`.
        if split_key(&key).is_none() {
            return Err(Error::Model(format!(
                "{}: tensor '{key}' is not a LoRA tensor (expected base_model.model.<module>.lora_A.weight / lora_B.weight)",
                file.display()
            )));
        }
        tensors.push((key, t));
    }
    let config_path = dir.join(ADAPTER_CONFIG_FILE);
    let config: Value =
        std::fs::read_to_string(&config_path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
    // Tensors already in the model's order (an Ingot checkpoint of this model) stay as they are.
    let tensors = if in_model_order(&config, order, &config_path)? { tensors } else { reorder(tensors, order, false)? };
    let tensors: HashMap<String, Tensor> = tensors.into_iter().collect();
    Adapters::loaded(cfg, tensors, file.display().to_string())
}

/// The adapter tensors of `adapters` (trained values), in HF row order, under PEFT's keys.
pub fn tensors_for_save(adapters: &Adapters, order: RowOrder) -> Result<Vec<(String, Tensor)>> {
    let vars = adapters
        .var_map()
        .ok_or_else(|| Error::Input("these adapters were loaded, not trained: nothing new to save".into()))?;
    let data = vars.data().lock().map_err(|_| Error::Input("adapter variables lock poisoned".into()))?;
    // Only the LoRA pairs: the same VarMap may hold other trained tensors (a reward model's head),
    // which are saved apart.
    let mut tensors: Vec<(String, Tensor)> =
        data.iter().filter(|(k, _)| split_key(k).is_some()).map(|(k, v)| (k.clone(), v.as_tensor().detach())).collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    drop(data);
    reorder(tensors, order, true)
}

/// Write `adapters` as a PEFT adapter folder at `dir` (atomically: a staged folder swapped in).
/// `base_model` is recorded as base_model_name_or_path.
pub fn save(dir: &Path, adapters: &Adapters, order: RowOrder, base_model: &str) -> Result<()> {
    let tensors = tensors_for_save(adapters, order)?;
    let config = peft_config(adapters.config(), base_model);
    let staged = ingot_core::atomic::StagedDir::create(dir)?;
    let tmp = staged.path();
    candle_core::safetensors::save(&tensors.iter().cloned().collect::<HashMap<_, _>>(), tmp.join(ADAPTER_FILE))
        .context(|| format!("writing {}", tmp.join(ADAPTER_FILE).display()))?;
    let text = serde_json::to_string_pretty(&config).unwrap_or_default();
    std::fs::write(tmp.join(ADAPTER_CONFIG_FILE), text).map_err(Error::io("write", tmp.join(ADAPTER_CONFIG_FILE)))?;
    staged.commit()?;
    Ok(())
}
