//! Named model sizes for training from scratch, as HF-style `config.json` values so that a
//! checkpoint's config is the same document HF tooling reads.
//!
//! A training config names a preset and may override any of its fields by their HF names
//! (`n_layer`, `hidden_size`, ...); the vocabulary size always comes from the tokenizer.

use serde_json::{json, Value};

use ingot_core::{Error, Result};

/// (name, description) of every preset.
pub const PRESETS: &[(&str, &str)] = &[
    ("char-baby", "GPT-2, 4 layers, 4 heads, width 128, context 64 (nanoGPT's CPU Shakespeare config, 0.8 M params)"),
    ("tiny", "GPT-2, 6 layers, 6 heads, width 384, context 256 (nanoGPT's shakespeare-char, 10.7 M params)"),
    ("small", "GPT-2 124M: 12 layers, 12 heads, width 768, context 1024"),
    ("llama-tiny", "llama: 6 layers, 6 heads / 2 kv heads, width 384, SwiGLU 1024, context 256"),
    ("llama-small", "llama: 12 layers, 12 heads / 4 kv heads, width 768, SwiGLU 2048, context 1024"),
];

fn gpt2(n_layer: usize, n_head: usize, n_embd: usize, ctx: usize, vocab: usize) -> Value {
    json!({
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": vocab,
        "n_positions": ctx,
        "n_ctx": ctx,
        "n_embd": n_embd,
        "n_layer": n_layer,
        "n_head": n_head,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "tie_word_embeddings": true,
    })
}

fn llama(layers: usize, heads: usize, kv_heads: usize, hidden: usize, mlp: usize, ctx: usize, vocab: usize) -> Value {
    json!({
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": mlp,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": ctx,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": true,
        "hidden_act": "silu",
    })
}

/// The HF config of preset `name` for a vocabulary of `vocab_size` tokens.
pub fn preset(name: &str, vocab_size: usize) -> Result<Value> {
    Ok(match name {
        "char-baby" => gpt2(4, 4, 128, 64, vocab_size),
        "tiny" => gpt2(6, 6, 384, 256, vocab_size),
        "small" => gpt2(12, 12, 768, 1024, vocab_size),
        "llama-tiny" => llama(6, 6, 2, 384, 1024, 256, vocab_size),
        "llama-small" => llama(12, 12, 4, 768, 2048, 1024, vocab_size),
        other => {
            let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
            return Err(Error::Model(format!("unknown model preset '{other}'; presets: {}", names.join(", "))));
        }
    })
}

/// Apply `overrides` (HF field names) on top of `config`; unknown fields are an error so typos
/// don't silently train the wrong model.
pub fn apply_overrides(config: &mut Value, overrides: &serde_json::Map<String, Value>) -> Result<()> {
    let obj = config.as_object_mut().ok_or_else(|| Error::Model("model config is not an object".into()))?;
    for (k, v) in overrides {
        if !obj.contains_key(k) {
            let mut known: Vec<&String> = obj.keys().collect();
            known.sort();
            return Err(Error::Model(format!(
                "model field {} is not part of a {} config; known fields: {}",
                ingot_core::text::quoted(k),
                obj.get("model_type").and_then(Value::as_str).unwrap_or("?"),
                known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        obj.insert(k.clone(), v.clone());
    }
    // Keep GPT-2's two names for the context length in step.
    if let Some(n) = overrides.get("n_positions") {
        obj.insert("n_ctx".into(), n.clone());
    }
    Ok(())
}
