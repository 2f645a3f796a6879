//! Writing a model out: an HF checkpoint folder (config.json, model.safetensors, tokenizer.json)
//! or a GGUF file laid out as llama.cpp's `convert_hf_to_gguf.py` writes one. Used by
//! `ingot merge` (a fine-tuned model with its adapters folded in) and by checkpoints.
//!
//! Two layouts of the llama q/k projections meet here. HF checkpoints rotate the two halves of
//! each head (dimension i with i + D/2); llama.cpp's converter permutes the rows of q_proj and
//! k_proj (and their biases) so that GGUF files rotate adjacent pairs (2i with 2i + 1), and Ingot
//! runs interleaved RoPE on llama/mistral GGUF files (Qwen2 GGUF files keep the halves).
//! [`hf_to_gguf_rows`] and [`gguf_to_hf_rows`] convert one tensor; [`llama_qk_to_gguf`] and
//! [`llama_qk_to_hf`] a whole model's tensors. The writers take tensors in the layout of the
//! format they write: [`write_gguf`] writes what it is given, q/k already interleaved for llama.
//!
//! Dimension legend: H query heads, K key/value heads, D head dim, C hidden size.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use ingot_core::atomic::{self, StagedDir};
use ingot_core::gguf::{GgmlType, GgufFile, GgufWriter, Value};
use ingot_core::text::quoted;
use ingot_core::{CandleContext, Error, Result};
use ingot_kernels::QFormat;
use ingot_nn::weights::GgufNames;
use ingot_nn::RopeScaling;
use serde_json::{json, Value as Json};

use crate::config::{Activation, GgufKeys, Gpt2Config, LlamaConfig};

/// The file in every folder [`write_hf_checkpoint`] writes, so a later export may replace the
/// folder (see `ingot_core::atomic::check_output`). A folder without it (a user's own download
/// of a model, say) is replaced only with `force`.
pub const EXPORT_MARKER: &str = "ingot-export.json";

// ---------------------------------------------------------------------------------------------
// HF config.json

/// Special token ids recorded in a model's config (HF config.json's `bos_token_id`, ...; GGUF's
/// `tokenizer.ggml.bos_token_id`, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
}

/// The HF config.json of a llama-family model, which [`crate::read_hf_config`] and
/// [`crate::HfConfig::llama`] read back to an equal [`LlamaConfig`].
///
/// `LlamaForCausalLM` (model_type "llama"), except with q/k/v biases: HF's llama puts
/// `attention_bias` on o_proj too, and Ingot's (Qwen2's) biases are on q, k and v only, which is
/// `Qwen2ForCausalLM` (model_type "qwen2"). Weights are written as f32 (`torch_dtype`).
///
/// Errors for RoPE scaling stored as per-frequency factors (a GGUF file's `rope_freqs.weight`,
/// see [`llama_config_from_gguf`]): config.json has no field for them.
pub fn llama_hf_config(cfg: &LlamaConfig, ids: &SpecialIds) -> Result<Json> {
    let rope_scaling = match cfg.rope_scaling {
        RopeScaling::None => Json::Null,
        RopeScaling::Linear { factor } => json!({ "rope_type": "linear", "factor": factor }),
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } => json!({
            "rope_type": "llama3",
            "factor": factor,
            "low_freq_factor": low_freq_factor,
            "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": original_max_position,
        }),
        RopeScaling::FreqFactors(_) => {
            return Err(Error::Model(
                "the model's RoPE scaling is a table of per-frequency factors (a GGUF file's rope_freqs.weight), \
                 which an HF config.json cannot express; export it as GGUF, or start from its HF checkpoint"
                    .into(),
            ))
        }
    };
    let (architecture, model_type) =
        if cfg.attention_bias { ("Qwen2ForCausalLM", "qwen2") } else { ("LlamaForCausalLM", "llama") };
    let hidden_act = match cfg.hidden_act {
        Activation::Silu => "silu",
        Activation::GeluTanh => "gelu_pytorch_tanh",
        Activation::GeluErf => "gelu",
        Activation::Relu => "relu",
    };
    let mut config = json!({
        "architectures": [architecture],
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": hidden_act,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": rope_scaling,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "attention_bias": cfg.attention_bias,
        "mlp_bias": false,
        "attention_dropout": 0.0,
        "torch_dtype": "float32",
        "use_cache": true,
    });
    with_special_ids(&mut config, ids);
    Ok(config)
}

/// Set `bos_token_id`, `eos_token_id` and `pad_token_id` in a config.json value (any
/// architecture); an id that is `None` is written as `null`, HF's "no such token". A value that
/// is not a JSON object (config.json always is one) is left as it is.
pub fn with_special_ids(config: &mut Json, ids: &SpecialIds) {
    let Some(obj) = config.as_object_mut() else { return };
    for (key, id) in [("bos_token_id", ids.bos), ("eos_token_id", ids.eos), ("pad_token_id", ids.pad)] {
        obj.insert(key.to_string(), id.map_or(Json::Null, |id| json!(id)));
    }
}

/// The llama config of a GGUF file, as [`GgufKeys::llama`] reads it but with the RoPE scaling
/// that the model runs: a `rope_freqs.weight` tensor (how llama.cpp stores Llama 3 scaling)
/// becomes [`RopeScaling::FreqFactors`], so that an export which cannot carry it says so.
pub fn llama_config_from_gguf(file: &GgufFile) -> Result<LlamaConfig> {
    let mut cfg = GgufKeys::new(file)?.llama()?;
    if file.tensor_info("rope_freqs.weight").is_some() {
        let factors = file
            .tensor("rope_freqs.weight", &Device::Cpu)?
            .flatten_all()
            .and_then(|f| f.to_vec1::<f32>())
            .context(|| format!("{}: reading rope_freqs.weight", file.path().display()))?;
        cfg.rope_scaling = RopeScaling::FreqFactors(factors.into_iter().map(f64::from).collect());
    }
    Ok(cfg)
}

// ---------------------------------------------------------------------------------------------
// The llama q/k permutation

/// HF's halves layout → llama.cpp's interleaved one, for the rows of a llama q_proj (`n_head` =
/// H) or k_proj (`n_head` = K) weight (H·D, C) or bias (H·D). Exactly the converter's `permute`:
/// rows as (n_head, 2, D/2) → (n_head, D/2, 2), so row i + D/2 of a head lands beside row i.
pub fn hf_to_gguf_rows(t: &Tensor, n_head: usize) -> Result<Tensor> {
    permute_rows(t, n_head, true)
}

/// The inverse of [`hf_to_gguf_rows`]: rows as (n_head, D/2, 2) → (n_head, 2, D/2).
pub fn gguf_to_hf_rows(t: &Tensor, n_head: usize) -> Result<Tensor> {
    permute_rows(t, n_head, false)
}

fn permute_rows(t: &Tensor, n_head: usize, to_gguf: bool) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims.first().copied().unwrap_or(0);
    if n_head == 0 || rows == 0 || !rows.is_multiple_of(2 * n_head) {
        return Err(Error::Model(format!(
            "cannot permute q/k rows of a {dims:?} tensor over {n_head} heads: the rows must split into heads of an even size"
        )));
    }
    let half = rows / n_head / 2;
    let split = if to_gguf { [n_head, 2, half] } else { [n_head, half, 2] };
    let shape: Vec<usize> = split.iter().chain(&dims[1..]).copied().collect();
    // (n_head, 2, D/2, ...) ⇄ (n_head, D/2, 2, ...), then back to (rows, ...)
    t.reshape(shape)
        .and_then(|t| t.transpose(1, 2))
        .and_then(|t| t.contiguous())
        .and_then(|t| t.reshape(dims.as_slice()))
        .context(|| format!("permuting q/k rows of a {dims:?} tensor over {n_head} heads"))
}

/// [`hf_to_gguf_rows`] on every q_proj/k_proj weight and bias of a llama or mistral model (HF
/// keys). Not for Qwen2, whose GGUF files keep HF's layout.
pub fn llama_qk_to_gguf(tensors: &mut [(String, Tensor)], cfg: &LlamaConfig) -> Result<()> {
    permute_qk(tensors, cfg, true)
}

/// [`gguf_to_hf_rows`] on every q_proj/k_proj weight and bias (HF keys) of a model read from a
/// llama or mistral GGUF file.
pub fn llama_qk_to_hf(tensors: &mut [(String, Tensor)], cfg: &LlamaConfig) -> Result<()> {
    permute_qk(tensors, cfg, false)
}

fn permute_qk(tensors: &mut [(String, Tensor)], cfg: &LlamaConfig, to_gguf: bool) -> Result<()> {
    for (key, t) in tensors.iter_mut() {
        let Some((module, _leaf)) = key.rsplit_once('.') else { continue };
        let n_head = if module.ends_with("self_attn.q_proj") {
            cfg.num_heads
        } else if module.ends_with("self_attn.k_proj") {
            cfg.num_kv_heads
        } else {
            continue;
        };
        *t = permute_rows(t, n_head, to_gguf).map_err(|e| match e {
            Error::Model(m) => Error::Model(format!("{key}: {m}")),
            other => other,
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// HF checkpoint folder

/// Write an HF checkpoint folder `dir`: `config.json` (`config`, pretty-printed),
/// `model.safetensors` (`tensors` as f32 under their HF keys, with the `{"format": "pt"}`
/// metadata transformers requires), `tokenizer.json` (`tokenizer_json` as given), the
/// `extra_files` (name, bytes) (tokenizer_config.json, chat_template.jinja,
/// generation_config.json, ...), and [`EXPORT_MARKER`].
///
/// Keys follow the HF tree of the architecture (`model.embed_tokens.weight`,
/// `model.layers.N.self_attn.q_proj.weight`, ..., `lm_head.weight` only when the head is not
/// tied; llama q/k in HF's layout, see [`llama_qk_to_hf`]). For llama-family configs a head
/// that disagrees with `tie_word_embeddings` is refused.
///
/// The folder is filled beside `dir` and swapped in whole (`ingot_core::atomic::StagedDir`).
/// An existing `dir` is replaced only if it is empty or an earlier export (it holds
/// [`EXPORT_MARKER`]), or with `force`.
pub fn write_hf_checkpoint(
    dir: &Path,
    config: &Json,
    tensors: &[(String, Tensor)],
    tokenizer_json: &[u8],
    extra_files: &[(&str, &[u8])],
    force: bool,
) -> Result<()> {
    atomic::check_output(dir, "model export", EXPORT_MARKER, force)?;
    check_head(config, tensors, dir)?;
    const OURS: [&str; 4] = ["config.json", "model.safetensors", "tokenizer.json", EXPORT_MARKER];
    for (name, _) in extra_files {
        let plain = Path::new(name).file_name().is_some_and(|n| n == *name) && !name.starts_with('.');
        // Any *.safetensors beside the weights could be read as weights (`safetensors_files`).
        if !plain || OURS.contains(name) || name.ends_with(".safetensors") {
            return Err(Error::Input(format!(
                "cannot add {} to the model folder {}: extra files are plain file names, not *.safetensors, other than {}",
                quoted(name),
                dir.display(),
                OURS.join(", ")
            )));
        }
    }
    let staged = StagedDir::create(dir)?;
    let tmp = staged.path();
    // Inside a staged folder, whose commit syncs every file: plain writes are enough here.
    write_safetensors(&tmp.join("model.safetensors"), tensors)?;
    let config_text =
        serde_json::to_string_pretty(config).map_err(|cause| Error::Json { path: tmp.join("config.json"), cause })?;
    let config_text = format!("{config_text}\n");
    let marker =
        format!("{}\n", json!({ "written_by": "ingot", "version": env!("CARGO_PKG_VERSION"), "format": "hf" }));
    let mut files: Vec<(&str, &[u8])> = vec![
        ("config.json", config_text.as_bytes()),
        ("tokenizer.json", tokenizer_json),
        (EXPORT_MARKER, marker.as_bytes()),
    ];
    files.extend_from_slice(extra_files);
    for (name, bytes) in files {
        let path = tmp.join(name);
        std::fs::write(&path, bytes).map_err(Error::io("write", &path))?;
    }
    staged.commit()
}

/// A llama-family head must match `tie_word_embeddings`: HF loads a stored `lm_head.weight` of a
/// tied model as nothing (or a missing one of an untied model as random values), silently.
fn check_head(config: &Json, tensors: &[(String, Tensor)], dir: &Path) -> Result<()> {
    let model_type = config.get("model_type").and_then(Json::as_str).unwrap_or("");
    if !matches!(model_type, "llama" | "mistral" | "qwen2") {
        return Ok(());
    }
    // HF LlamaConfig's default (see HfConfig::llama).
    let tied = config.get("tie_word_embeddings").and_then(Json::as_bool).unwrap_or(false);
    let has_head = tensors.iter().any(|(k, _)| k == "lm_head.weight");
    if tied == has_head {
        return Err(Error::Model(format!(
            "{}: config.json says tie_word_embeddings = {tied} but the tensors {} lm_head.weight",
            dir.display(),
            if has_head { "include" } else { "lack" }
        )));
    }
    Ok(())
}

fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut seen = BTreeSet::new();
    let mut f32s = Vec::with_capacity(tensors.len());
    for (key, t) in tensors {
        if !seen.insert(key.as_str()) {
            return Err(Error::Model(format!("tensor {} is given twice", quoted(key))));
        }
        let t = t
            .to_device(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.contiguous())
            .context(|| format!("preparing tensor {} for {}", quoted(key), path.display()))?;
        f32s.push((key.as_str(), t));
    }
    // transformers refuses safetensors files without it ("does not contain the valid metadata").
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(f32s, Some(metadata), path).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        format: "safetensors",
        detail: format!("writing the model weights: {e}"),
    })
}

// ---------------------------------------------------------------------------------------------
// GGUF

/// How [`write_gguf`] stores 2-d weights; 1-d tensors (norms, biases, rope factors) are F32 in
/// every case, as llama.cpp keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportType {
    F32,
    F16,
    Q8_0,
    Q4_1,
    Q4_0,
}

impl ExportType {
    pub const ALL: [ExportType; 5] = [Self::F32, Self::F16, Self::Q8_0, Self::Q4_1, Self::Q4_0];

    /// The lower-case name (`--type q8_0`), as llama.cpp's tools spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Q8_0 => "q8_0",
            Self::Q4_1 => "q4_1",
            Self::Q4_0 => "q4_0",
        }
    }

    /// Parse a [`ExportType::name`] (any case).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// llama.cpp's `general.file_type` (enum llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_Q4_0,
    /// MOSTLY_Q4_1, MOSTLY_Q8_0).
    pub fn file_type(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q8_0 => 7,
        }
    }

    fn block_format(self) -> Option<QFormat> {
        match self {
            Self::F32 | Self::F16 => None,
            Self::Q8_0 => Some(QFormat::Q8_0),
            Self::Q4_1 => Some(QFormat::Q4_1),
            Self::Q4_0 => Some(QFormat::Q4_0),
        }
    }
}

/// What a GGUF file holds beyond the model's own weights: metadata keys, and tensors llama.cpp
/// derives from the config (`rope_freqs.weight` for Llama 3 scaling).
#[derive(Clone, Debug, Default)]
pub struct ArchMetadata {
    /// Set on top of the source file's metadata, replacing keys of the same name.
    pub keys: Vec<(String, Value)>,
    /// By GGUF name, stored as F32 whatever the export type; they replace source tensors.
    pub tensors: Vec<(String, Tensor)>,
}

impl ArchMetadata {
    /// The hyperparameter keys Ingot and llama.cpp read for a llama-family model, under `arch`
    /// ("llama", "mistral" or "qwen2"), as the converter writes them. Llama 3 RoPE scaling
    /// becomes `rope_freqs.weight` (the converter's `generate_extra_tensors`), linear scaling the
    /// `rope.scaling.*` keys.
    pub fn llama(arch: &str, cfg: &LlamaConfig) -> Result<Self> {
        let mut m = Self::default();
        let u32_of = |name: &str, v: usize| {
            u32::try_from(v).map(Value::U32).map_err(|_| Error::Model(format!("{name} = {v} does not fit GGUF's u32")))
        };
        m.set("general.architecture", Value::String(arch.to_string()));
        for (key, v) in [
            ("block_count", cfg.num_layers),
            ("context_length", cfg.max_position_embeddings),
            ("embedding_length", cfg.hidden_size),
            ("feed_forward_length", cfg.intermediate_size),
            ("attention.head_count", cfg.num_heads),
            ("attention.head_count_kv", cfg.num_kv_heads),
            ("attention.key_length", cfg.head_dim),
            ("attention.value_length", cfg.head_dim),
            ("rope.dimension_count", cfg.head_dim),
            ("vocab_size", cfg.vocab_size),
        ] {
            m.set(&format!("{arch}.{key}"), u32_of(key, v)?);
        }
        m.set(&format!("{arch}.attention.layer_norm_rms_epsilon"), Value::F32(cfg.rms_norm_eps as f32));
        m.set(&format!("{arch}.rope.freq_base"), Value::F32(cfg.rope_theta as f32));
        let factors: Option<Vec<f32>> = match &cfg.rope_scaling {
            RopeScaling::None => None,
            RopeScaling::Linear { factor } => {
                m.set(&format!("{arch}.rope.scaling.type"), Value::String("linear".into()));
                m.set(&format!("{arch}.rope.scaling.factor"), Value::F32(*factor as f32));
                None
            }
            RopeScaling::Llama3 { .. } => Some(llama3_rope_factors(cfg)),
            RopeScaling::FreqFactors(f) => Some(f.iter().map(|&x| x as f32).collect()),
        };
        if let Some(factors) = factors {
            let n = factors.len();
            let t = Tensor::from_vec(factors, n, &Device::Cpu).context(|| "rope_freqs.weight".into())?; // (D/2)
            m.tensors.push(("rope_freqs.weight".into(), t));
        }
        Ok(m)
    }

    /// The keys Ingot and llama.cpp read for a GPT-2 model.
    pub fn gpt2(cfg: &Gpt2Config) -> Result<Self> {
        let mut m = Self::default();
        m.set("general.architecture", Value::String("gpt2".into()));
        for (key, v) in [
            ("block_count", cfg.n_layer),
            ("context_length", cfg.n_positions),
            ("embedding_length", cfg.n_embd),
            ("feed_forward_length", cfg.n_inner),
            ("attention.head_count", cfg.n_head),
            ("vocab_size", cfg.vocab_size),
        ] {
            let v = u32::try_from(v).map_err(|_| Error::Model(format!("{key} = {v} does not fit GGUF's u32")))?;
            m.set(&format!("gpt2.{key}"), Value::U32(v));
        }
        m.set("gpt2.attention.layer_norm_epsilon", Value::F32(cfg.layer_norm_epsilon as f32));
        Ok(m)
    }

    /// Add `tokenizer.ggml.bos_token_id`, `eos_token_id` and `padding_token_id` for the ids that
    /// are known (GGUF has no null: an unknown id is left out, or as the source has it).
    pub fn with_special_ids(mut self, ids: &SpecialIds) -> Self {
        for (key, id) in [
            ("tokenizer.ggml.bos_token_id", ids.bos),
            ("tokenizer.ggml.eos_token_id", ids.eos),
            ("tokenizer.ggml.padding_token_id", ids.pad),
        ] {
            if let Some(id) = id {
                self.set(key, Value::U32(id));
            }
        }
        self
    }

    /// Set a key, replacing an earlier value.
    pub fn set(&mut self, key: &str, value: Value) {
        set_key(&mut self.keys, key, value);
    }
}

fn set_key(keys: &mut Vec<(String, Value)>, key: &str, value: Value) {
    match keys.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => keys.push((key.to_string(), value)),
    }
}

/// llama.cpp's `rope_freqs.weight` for Llama 3 scaling: one divisor per frequency (D/2), as the
/// converter's `LlamaModel.generate_extra_tensors` computes them (here in f64, rounded once).
fn llama3_rope_factors(cfg: &LlamaConfig) -> Vec<f32> {
    let RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } = cfg.rope_scaling
    else {
        return Vec::new();
    };
    let old = original_max_position as f64;
    let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
    let d = cfg.head_dim;
    (0..d / 2)
        .map(|i| {
            let freq = 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / d as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            let f = if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                1.0 / ((1.0 - smooth) / factor + smooth)
            };
            f as f32
        })
        .collect()
}

/// ggml's quantization version (GGML_QNT_VERSION), which llama.cpp writes into every file.
const QUANTIZATION_VERSION: u32 = 2;

/// Write a GGUF file at `path` (atomically: temporary file, fsync, rename).
///
/// Metadata: everything in `source` (tokenizer, chat template, hyperparameters) when given, then
/// `arch`'s keys over it, then `general.file_type` for `ty`. Without a source, `arch` must name
/// the architecture ([`ArchMetadata::llama`], [`ArchMetadata::gpt2`]); add the tokenizer's keys
/// to it for a file that runs on its own.
///
/// Tensors: each of `tensors` (HF key, tensor) under `names(key)` (`llama::gguf_name`,
/// `gpt2::gguf_name`), **in the layout the GGUF holds** (llama q/k interleaved, see
/// [`llama_qk_to_gguf`]; GPT-2 Conv1D weights as (out, in)), written as given; then `arch`'s
/// tensors; then every source tensor not replaced by those, as stored (its `rope_freqs.weight`,
/// and any weight left out keeps its stored type). 1-d tensors are F32; 2-d and larger ones are
/// `ty`, quantized by `ingot_kernels::quantize` (ggml's reference quantizers) row by row along
/// the last dimension; one whose rows are not whole 32-wide blocks falls back to F16, as
/// llama.cpp's converter does. NaN or infinite weights are refused.
///
/// The file is assembled in memory before it is written (about the size of the output).
pub fn write_gguf(
    path: &Path,
    source: Option<&GgufFile>,
    arch: &ArchMetadata,
    tensors: &[(String, Tensor)],
    names: GgufNames,
    ty: ExportType,
) -> Result<()> {
    let mut keys: Vec<(String, Value)> =
        source.map(|s| s.metadata().iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    for (k, v) in &arch.keys {
        set_key(&mut keys, k, v.clone());
    }
    set_key(&mut keys, "general.file_type", Value::U32(ty.file_type()));
    set_key(&mut keys, "general.quantization_version", Value::U32(QUANTIZATION_VERSION));
    if !keys.iter().any(|(k, _)| k == "general.architecture") {
        return Err(Error::Input(format!(
            "cannot write {}: no general.architecture (give a source GGUF file, or ArchMetadata::llama / ::gpt2)",
            path.display()
        )));
    }
    let mut w = GgufWriter::new();
    for (k, v) in keys {
        w.metadata(k, v);
    }
    let mut written = BTreeSet::new();
    let mut add = |w: &mut GgufWriter, name: String, t: &Tensor, ty: ExportType| -> Result<()> {
        if !written.insert(name.clone()) {
            return Err(Error::Model(format!("{}: tensor {} is given twice", path.display(), quoted(&name))));
        }
        let (shape, ggml_type, bytes) = encode(t, ty).map_err(|e| match e {
            Error::Input(m) => Error::Model(format!("{}: tensor {}: {m}", path.display(), quoted(&name))),
            other => other,
        })?;
        w.tensor(name, &shape, ggml_type, bytes);
        Ok(())
    };
    for (key, t) in tensors {
        let name = names(key).ok_or_else(|| {
            Error::Model(format!("{}: tensor {} has no GGUF name for this architecture", path.display(), quoted(key)))
        })?;
        add(&mut w, name, t, ty)?;
    }
    for (name, t) in &arch.tensors {
        add(&mut w, name.clone(), t, ExportType::F32)?;
    }
    if let Some(src) = source {
        for info in src.tensors() {
            if !written.contains(&info.name) {
                w.tensor(info.name.clone(), &info.shape, info.ggml_type, src.tensor_bytes(info).to_vec());
            }
        }
    }
    w.write(path)
}

/// A tensor's GGUF shape, type and stored bytes under `ty` (1-d tensors always F32).
fn encode(t: &Tensor, ty: ExportType) -> Result<(Vec<usize>, GgmlType, Vec<u8>)> {
    let shape = t.dims().to_vec();
    let what = || format!("reading a {shape:?} tensor to export");
    let values: Vec<f32> = t
        .to_device(&Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .context(what)?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!(
            "element {i} is {}; a model with NaN or infinite weights is broken",
            values[i]
        )));
    }
    let width = shape.last().copied().unwrap_or(1);
    let ty = if shape.len() < 2 { ExportType::F32 } else { ty };
    let ty = match ty.block_format() {
        Some(_) if !width.is_multiple_of(ingot_kernels::qmatmul::BLOCK) => ExportType::F16,
        _ => ty,
    };
    if let Some(format) = ty.block_format() {
        let rows = values.len() / width.max(1);
        let q = ingot_kernels::quantize_matrix(format, &values, rows, width).context(what)?;
        let ggml_type = match format {
            QFormat::Q4_0 => GgmlType::Q4_0,
            QFormat::Q4_1 => GgmlType::Q4_1,
            QFormat::Q8_0 => GgmlType::Q8_0,
        };
        return Ok((shape, ggml_type, q.raw().to_vec()));
    }
    if ty == ExportType::F16 {
        // candle's conversion: round to nearest even, as numpy's astype(float16).
        let dense = Tensor::from_vec(values, shape.as_slice(), &Device::Cpu).context(what)?;
        let bytes =
            QTensor::quantize(&dense, GgmlDType::F16).and_then(|q| q.data().map(|d| d.into_owned())).context(what)?;
        return Ok((shape, GgmlType::F16, bytes));
    }
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok((shape, GgmlType::F32, bytes))
}
