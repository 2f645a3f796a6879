//! Writing tiny models as GGUF files the way llama.cpp's `convert_hf_to_gguf.py` does, from an HF
//! key tree (a [`crate::models::random_model`] VarMap). The conventions are written here from the
//! converter and gguf-py's `tensor_mapping.py`, not from Ingot's own name tables, so a test that
//! loads these files checks Ingot's loader against llama.cpp's layout:
//!   - llama: `blk.N.attn_q.weight` etc.; q/k rows permuted within each head (the converter's
//!     `permute`), which is why Ingot runs interleaved RoPE on GGUF llama files; Llama 3 rope
//!     scaling stored as the `rope_freqs.weight` tensor; `output.weight` absent when tied.
//!   - qwen2: the same names plus q/k/v biases, q/k not permuted (NeoX RoPE).
//!   - gpt2: HF's Conv1D weights (in, out) transposed to (out, in).
//!
//! [`GgufParts`] holds a file's contents before writing, so tests can break them on purpose.
//!
//! Dimension legend: C hidden size, D head dim.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use ingot_core::gguf::{GgufWriter, Value};
use ingot_models::{HfConfig, LlamaConfig};
use ingot_nn::RopeScaling;

use crate::models::{config, hf_weights, random_model};

/// How a file stores its 2-d weights. 1-d tensors (norms, biases, rope factors) stay F32 in every
/// case, as llama.cpp keeps them.
#[derive(Clone, Copy, Debug)]
pub enum Storage {
    F32,
    /// Quantized by candle (the same block layouts as ggml).
    Quantized(GgmlDType),
    /// Quantized, then dequantized back to F32: the function the quantized file computes, exactly,
    /// in plain f32 arithmetic.
    Dequantized(GgmlDType),
}

/// A GGUF file's contents before writing, so that tests can break them on purpose.
#[derive(Default)]
pub struct GgufParts {
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<(String, QTensor)>,
}

impl GgufParts {
    /// Set a metadata key, replacing any earlier value.
    pub fn set(&mut self, key: &str, value: Value) {
        self.metadata.retain(|(k, _)| k != key);
        self.metadata.push((key.to_string(), value));
    }

    /// Add tensor `name` holding `t`, stored as `storage` says (1-d tensors always F32).
    pub fn put(&mut self, name: &str, t: &Tensor, storage: Storage) {
        let t = t.contiguous().unwrap();
        let q = match storage {
            _ if t.rank() == 1 => QTensor::quantize(&t, GgmlDType::F32),
            Storage::F32 => QTensor::quantize(&t, GgmlDType::F32),
            Storage::Quantized(dtype) => QTensor::quantize(&t, dtype),
            Storage::Dequantized(dtype) => {
                let back = QTensor::quantize(&t, dtype).unwrap().dequantize(&Device::Cpu).unwrap();
                QTensor::quantize(&back, GgmlDType::F32)
            }
        };
        self.tensors.push((name.to_string(), q.unwrap()));
    }

    /// Drop tensor `name`, which must be there.
    pub fn remove_tensor(&mut self, name: &str) {
        let before = self.tensors.len();
        self.tensors.retain(|(n, _)| n != name);
        assert_eq!(self.tensors.len(), before - 1, "no tensor '{name}' to remove");
    }

    /// Write the file with Ingot's `GgufWriter` (default alignment 32).
    pub fn write(&self, path: &Path) {
        let mut w = GgufWriter::new();
        for (k, v) in &self.metadata {
            w.metadata(k.clone(), v.clone());
        }
        for (name, q) in &self.tensors {
            w.qtensor(name.clone(), q).unwrap();
        }
        w.write(path).unwrap();
    }
}

/// gguf-py's name for an HF llama/qwen2 key: `model.layers.3.mlp.up_proj.weight` → `blk.3.ffn_up.weight`.
pub fn llama_cpp_name(hf_key: &str) -> String {
    const BLOCK: [(&str, &str); 9] = [
        ("input_layernorm", "attn_norm"),
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("post_attention_layernorm", "ffn_norm"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
    ];
    let (module, leaf) = hf_key.rsplit_once('.').unwrap();
    let base = match module {
        "model.embed_tokens" => "token_embd".to_string(),
        "model.norm" => "output_norm".to_string(),
        "lm_head" => "output".to_string(),
        _ => {
            let (i, sub) = module.strip_prefix("model.layers.").and_then(|r| r.split_once('.')).unwrap();
            let (_, name) = BLOCK.iter().find(|(hf, _)| *hf == sub).unwrap_or_else(|| panic!("unmapped key {hf_key}"));
            format!("blk.{i}.{name}")
        }
    };
    format!("{base}.{leaf}")
}

/// The converter's `permute`: within each head, HF's rotate-half pairs (rows i and i + D/2) become
/// adjacent rows (2i, 2i + 1), so RoPE on adjacent pairs computes what HF's RoPE computes.
/// w (heads·D, C) → (heads·D, C).
pub fn permute_qk(w: &Tensor, heads: usize) -> Tensor {
    let (out, inp) = w.dims2().unwrap();
    w.reshape((heads, 2, out / heads / 2, inp)) // (heads, 2, D/2, C)
        .unwrap()
        .transpose(1, 2) // (heads, D/2, 2, C)
        .unwrap()
        .reshape((out, inp)) // (heads·D, C), copied into the new order
        .unwrap()
}

/// llama.cpp's `rope_freqs.weight` for Llama 3 scaling: one divisor per frequency (D/2 of them),
/// as `LlamaModel.generate_extra_tensors` computes it.
pub fn llama3_rope_factors(cfg: &LlamaConfig) -> Option<Tensor> {
    let RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } = cfg.rope_scaling
    else {
        return None;
    };
    let old = original_max_position as f64;
    let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
    let d = cfg.head_dim;
    let factors: Vec<f32> = (0..d / 2)
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
        .collect();
    Some(Tensor::new(factors, &Device::Cpu).unwrap())
}

/// A llama-family GGUF ("llama" or "qwen2") of `weights` (HF keys); `permute` = false writes q/k
/// as HF stores them (right for qwen2, a deliberate mistake for llama).
pub fn llama_gguf(
    arch: &str,
    cfg: &LlamaConfig,
    weights: &BTreeMap<String, Tensor>,
    storage: Storage,
    permute: bool,
) -> GgufParts {
    let mut g = GgufParts::default();
    let key = |k: &str| format!("{arch}.{k}");
    g.set("general.architecture", Value::String(arch.into()));
    g.set(&key("block_count"), Value::U32(cfg.num_layers as u32));
    g.set(&key("context_length"), Value::U32(cfg.max_position_embeddings as u32));
    g.set(&key("embedding_length"), Value::U32(cfg.hidden_size as u32));
    g.set(&key("feed_forward_length"), Value::U32(cfg.intermediate_size as u32));
    g.set(&key("attention.head_count"), Value::U32(cfg.num_heads as u32));
    g.set(&key("attention.head_count_kv"), Value::U32(cfg.num_kv_heads as u32));
    g.set(&key("attention.layer_norm_rms_epsilon"), Value::F32(cfg.rms_norm_eps as f32));
    g.set(&key("rope.freq_base"), Value::F32(cfg.rope_theta as f32));
    g.set(&key("rope.dimension_count"), Value::U32(cfg.head_dim as u32));
    g.set(&key("vocab_size"), Value::U32(cfg.vocab_size as u32));
    g.set("general.file_type", Value::U32(0));
    if let Some(factors) = llama3_rope_factors(cfg) {
        g.put("rope_freqs.weight", &factors, Storage::F32); // (D/2)
    }
    for (hf, t) in weights {
        let name = llama_cpp_name(hf);
        let t = match (permute, hf.contains("q_proj"), hf.contains("k_proj")) {
            (true, true, _) => permute_qk(t, cfg.num_heads),
            (true, _, true) => permute_qk(t, cfg.num_kv_heads),
            _ => t.clone(),
        };
        g.put(&name, &t, storage);
    }
    g
}

/// gguf-py's name for an HF GPT-2 key, and whether the weight is a Conv1D (stored (in, out)).
pub fn gpt2_cpp_name(hf_key: &str) -> (String, bool) {
    let (module, leaf) = hf_key.strip_prefix("transformer.").unwrap().rsplit_once('.').unwrap();
    let (base, conv1d) = match module {
        "wte" => ("token_embd".to_string(), false),
        "wpe" => ("position_embd".to_string(), false),
        "ln_f" => ("output_norm".to_string(), false),
        _ => {
            let (i, sub) = module.strip_prefix("h.").and_then(|r| r.split_once('.')).unwrap();
            let (name, conv1d) = match sub {
                "ln_1" => ("attn_norm", false),
                "attn.c_attn" => ("attn_qkv", true),
                "attn.c_proj" => ("attn_output", true),
                "ln_2" => ("ffn_norm", false),
                "mlp.c_fc" => ("ffn_up", true),
                "mlp.c_proj" => ("ffn_down", true),
                _ => panic!("unmapped key {hf_key}"),
            };
            (format!("blk.{i}.{name}"), conv1d)
        }
    };
    (format!("{base}.{leaf}"), conv1d && leaf == "weight")
}

pub fn gpt2_gguf(cfg: &HfConfig, weights: &BTreeMap<String, Tensor>) -> GgufParts {
    let cfg = cfg.gpt2("test").unwrap();
    let mut g = GgufParts::default();
    g.set("general.architecture", Value::String("gpt2".into()));
    g.set("gpt2.block_count", Value::U32(cfg.n_layer as u32));
    g.set("gpt2.context_length", Value::U32(cfg.n_positions as u32));
    g.set("gpt2.embedding_length", Value::U32(cfg.n_embd as u32));
    g.set("gpt2.feed_forward_length", Value::U32(cfg.n_inner as u32));
    g.set("gpt2.attention.head_count", Value::U32(cfg.n_head as u32));
    g.set("gpt2.attention.layer_norm_epsilon", Value::F32(cfg.layer_norm_epsilon as f32));
    // No gpt2.vocab_size: the loader falls back to the embedding's rows, as for converter output
    // without a tokenizer.
    for (hf, t) in weights {
        let (name, conv1d) = gpt2_cpp_name(hf);
        // Conv1D (in, out) → (out, in)
        let t = if conv1d { t.t().unwrap() } else { t.clone() };
        g.put(&name, &t, Storage::F32);
    }
    g
}

/// A tiny random model of `config_json` (see [`crate::models`]) written to `path` as a GGUF file
/// in `storage`, with the architecture's llama.cpp layout; returns `path`. The file holds no
/// tokenizer: load it with `ingot_models::load`, not as a pipeline.
pub fn write_gguf(path: &Path, config_json: &str, seed: u64, storage: Storage) -> PathBuf {
    let hf = config(config_json);
    let (_, varmap) = random_model(&hf, seed);
    let weights = hf_weights(&varmap);
    let parts = match hf.model_type().as_str() {
        "gpt2" => gpt2_gguf(&hf, &weights),
        arch => {
            let cfg = hf.llama("test").unwrap_or_else(|e| panic!("bad test config: {e}"));
            // The converter permutes q/k for llama only (qwen2 keeps NeoX RoPE).
            llama_gguf(arch, &cfg, &weights, storage, arch == "llama")
        }
    };
    parts.write(path);
    path.to_path_buf()
}
