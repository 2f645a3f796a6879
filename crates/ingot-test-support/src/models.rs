//! Tiny random models of each architecture, in memory and as the files Ingot loads: a checkpoint
//! folder (`config.json`, `model.safetensors`, `tokenizer.json`) and, through [`crate::gguf`], a
//! GGUF file laid out as llama.cpp's converter writes it.
//!
//! The weights come from a seeded generator (candle's CPU generator cannot be seeded), uniform in
//! ±0.15, with norm weights near 1 and non-zero biases: a layer wired to the wrong tensor, or
//! skipped, changes the output. Tests that quote measured numbers (gguf_models.rs) depend on these
//! exact values; change the generator and those measurements must be redone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ingot_models::{from_hf_config, HfConfig, Model};
use ingot_nn::Weights;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::tokenizer::{ascii_text, char_tokenizer};

/// Llama: 3 layers, 6 query heads over 2 kv heads (D = 16), tied embeddings, Llama 3 rope
/// scaling. C = 96 and F = 160 are multiples of 32, the Q8_0/Q4_0/Q4_1 block size.
pub const LLAMA: &str = r#"{"model_type":"llama","vocab_size":101,"hidden_size":96,"intermediate_size":160,
    "num_hidden_layers":3,"num_attention_heads":6,"num_key_value_heads":2,"rms_norm_eps":1e-5,
    "rope_theta":500000.0,"max_position_embeddings":64,"tie_word_embeddings":true,
    "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
    "original_max_position_embeddings":16}}"#;

/// Llama for K-quants: Q4_K blocks are 256 wide, so C and F are multiples of 256; 4 heads over 2
/// kv heads (D = 64), tied, no rope scaling.
pub const LLAMA_K_QUANT: &str = r#"{"model_type":"llama","vocab_size":101,"hidden_size":256,"intermediate_size":512,
    "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-5,
    "rope_theta":10000.0,"max_position_embeddings":64,"tie_word_embeddings":true}"#;

/// Qwen2: q/k/v biases, untied output head, 4 query heads over 2 kv heads (D = 16).
pub const QWEN2: &str = r#"{"model_type":"qwen2","vocab_size":97,"hidden_size":64,"intermediate_size":96,
    "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-6,
    "rope_theta":10000.0,"max_position_embeddings":64,"tie_word_embeddings":false}"#;

/// GPT-2: 2 layers, 4 heads (D = 8), MLP width 4C = 128, context 64.
pub const GPT2: &str = r#"{"model_type":"gpt2","vocab_size":89,"n_positions":64,"n_embd":32,"n_layer":2,"n_head":4}"#;

/// Parse one of the configs above (or any HF config.json text).
pub fn config(json: &str) -> HfConfig {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("a test config does not parse: {e}"))
}

/// A model over fresh VarMap variables (the HF key tree), every variable overwritten from a
/// generator seeded with `seed`. The VarMap holds the weights by HF key, for saving or converting.
pub fn random_model(cfg: &HfConfig, seed: u64) -> (Model, VarMap) {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let model = from_hf_config(cfg, &Weights::from_var_builder(vb), "test")
        .unwrap_or_else(|e| panic!("a tiny test model does not build: {e}"));
    let mut rng = StdRng::seed_from_u64(seed);
    let data = varmap.data().lock().expect("the VarMap lock is not poisoned");
    // Sorted, so the values each variable gets do not depend on the map's order.
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let is_norm = name.contains("norm") || name.contains("ln_");
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| {
                let noise = rng.random::<f32>() * 2.0 - 1.0;
                if is_norm && name.ends_with("weight") {
                    1.0 + 0.1 * noise
                } else {
                    0.15 * noise
                }
            })
            .collect();
        let t = Tensor::from_vec(values, var.shape(), &dev).expect("as many values as elements");
        var.set(&t).expect("same shape and dtype");
    }
    drop(data);
    (model, varmap)
}

/// The VarMap's values by HF key.
pub fn hf_weights(varmap: &VarMap) -> BTreeMap<String, Tensor> {
    let data = varmap.data().lock().expect("the VarMap lock is not poisoned");
    data.iter().map(|(k, v)| (k.clone(), v.as_tensor().detach())).collect()
}

/// A checkpoint folder at `dir`, as a training run leaves one: `config.json` (`config` with its
/// vocabulary set to the tokenizer's), `model.safetensors` ([`random_model`]'s weights under HF
/// key names), `tokenizer.json` and `tokenizer_config.json` (a character tokenizer of
/// [`ascii_text`]). Returns `dir`.
pub fn write_model_folder(dir: &Path, config_json: &str, seed: u64) -> PathBuf {
    let tok = char_tokenizer([ascii_text()]);
    let mut value: serde_json::Value =
        serde_json::from_str(config_json).unwrap_or_else(|e| panic!("a test config does not parse: {e}"));
    value["vocab_size"] = serde_json::json!(tok.vocab_size());
    let cfg: HfConfig = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("bad test config: {e}"));
    let (_, varmap) = random_model(&cfg, seed);
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, value.to_string())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
    varmap.save(dir.join("model.safetensors")).unwrap_or_else(|e| panic!("cannot save the weights: {e}"));
    tok.save(dir.join("tokenizer.json")).unwrap_or_else(|e| panic!("cannot save the tokenizer: {e}"));
    tok.save_config(dir.join("tokenizer_config.json"))
        .unwrap_or_else(|e| panic!("cannot save the tokenizer config: {e}"));
    dir.to_path_buf()
}
