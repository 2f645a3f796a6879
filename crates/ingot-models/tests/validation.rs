//! Configs, weights and inputs that used to give silent garbage (empty output, NaN perplexity,
//! exit 0) or abort in the allocator are now one-line errors naming the field, the value and
//! the limit; and GPT-2's `embd_pdrop` / `attn_pdrop`, once read and ignored, now act.
//!
//! Models are ingot-test-support's tiny seeded ones (LLAMA: 3 layers, width 96, vocabulary 101;
//! GPT2: 2 layers, width 32, vocabulary 89), in memory, as checkpoint folders and as GGUF files.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use ingot_core::gguf::Value;
use ingot_models::Model;
use ingot_test_support::gguf::{llama_gguf, GgufParts, Storage};
use ingot_test_support::models::{config, hf_weights, random_model, write_model_folder, GPT2, LLAMA};
use ingot_test_support::temp_dir;

/// `base` (a JSON object) with `key` set to `value`.
fn with(base: &str, key: &str, value: serde_json::Value) -> String {
    let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
    v[key] = value;
    v.to_string()
}

/// The error's message, checked to be one line.
fn message<T>(r: ingot_core::Result<T>) -> String {
    let m = match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    assert!(!m.contains('\n'), "error spans lines: {m}");
    m
}

fn ids(tokens: &[u32]) -> Tensor {
    Tensor::new(tokens, &Device::Cpu).unwrap().unsqueeze(0).unwrap()
}

fn logits(model: &Model, tokens: &[u32]) -> Vec<f32> {
    model.forward(&ids(tokens), None).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Config time

#[test]
fn hf_llama_configs_with_impossible_numbers_are_refused() {
    use serde_json::json;
    for (key, value, needle) in [
        ("rope_theta", json!(0.0), "rope_theta = 0"),
        ("rope_theta", json!(-10000.0), "rope_theta = -10000"),
        ("rms_norm_eps", json!(-1e-5), "rms_norm_eps = -0.00001"),
        ("hidden_act", json!("gelu_foo"), "hidden_act = \"gelu_foo\" is not supported"),
        ("vocab_size", json!(0), "vocab_size = 0"),
        ("num_hidden_layers", json!(0), "num_hidden_layers = 0"),
        // 10^14 parameters: refused by the estimate, nothing allocated.
        ("num_hidden_layers", json!(1_000_000_000u64), "needs an estimated"),
    ] {
        let m = message(config(&with(LLAMA, key, value)).llama("cfg.json"));
        assert!(m.contains(needle) && m.contains("cfg.json"), "{key}: {m}");
    }
    let scaling = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16});
    let m = message(config(&with(LLAMA, "rope_scaling", scaling)).llama("cfg.json"));
    assert!(m.contains("high_freq_factor"), "{m}");
}

#[test]
fn hf_gpt2_configs_with_impossible_numbers_are_refused() {
    use serde_json::json;
    for (key, value, needle) in [
        ("layer_norm_epsilon", json!(-1e-5), "layer_norm_epsilon = -0.00001"),
        ("activation_function", json!("swishy"), "activation_function = \"swishy\" is not supported"),
        ("attn_pdrop", json!(1.5), "attn_pdrop = 1.5"),
        ("embd_pdrop", json!(-0.1), "embd_pdrop = -0.1"),
        ("resid_pdrop", json!(1.0), "resid_pdrop = 1"),
        // ingot pretrain --set model.n_embd=1000000000 aborted with rc 134 here.
        ("n_embd", json!(1_000_000_000u64), "n_embd = 1000000000"),
    ] {
        let m = message(config(&with(GPT2, key, value)).gpt2("cfg.json"));
        assert!(m.contains(needle), "{key}: {m}");
    }
    let m = message(config(&with(GPT2, "n_embd", json!(1_000_000_000u64))).gpt2("cfg.json"));
    assert!(m.contains("needs an estimated") && m.contains("over the limit of"), "{m}");
}

/// A llama GGUF of LLAMA's random weights, in `storage`, with `edit` applied before writing.
fn llama_file(dir: &Path, name: &str, storage: Storage, edit: impl FnOnce(&mut GgufParts)) -> std::path::PathBuf {
    let hf = config(LLAMA);
    let (_, varmap) = random_model(&hf, 3);
    let mut parts = llama_gguf("llama", &hf.llama("test").unwrap(), &hf_weights(&varmap), storage, true);
    edit(&mut parts);
    let path = dir.join(name);
    parts.write(&path);
    path
}

#[test]
fn gguf_metadata_with_impossible_numbers_is_refused() {
    let dir = temp_dir("validation-gguf-meta");
    for (key, value, needle) in [
        ("llama.rope.freq_base", Value::F32(0.0), "rope_theta = 0"),
        ("llama.rope.freq_base", Value::F32(-1.0), "rope_theta = -1"),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(-1e-5), "rms_norm_eps = -0.0000"),
    ] {
        let path = llama_file(dir.path(), "m.gguf", Storage::F32, |g| g.set(key, value));
        let m = message(ingot_models::load(&path, &Device::Cpu));
        assert!(m.contains(needle), "{key}: {m}");
    }
    // The same file with sane values loads.
    let path = llama_file(dir.path(), "ok.gguf", Storage::F32, |_| {});
    ingot_models::load(&path, &Device::Cpu).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Load time: non-finite weights

/// Replace tensor `name` of `g` with `t` stored as `storage`.
fn replace(g: &mut GgufParts, name: &str, t: &Tensor, storage: Storage) {
    g.remove_tensor(name);
    g.put(name, t, storage);
}

#[test]
fn gguf_weights_holding_nan_or_infinity_are_refused() {
    let dir = temp_dir("validation-gguf-nan");
    let dev = Device::Cpu;
    // F32: a NaN in a norm weight (96 values).
    let mut norm = vec![1f32; 96];
    norm[17] = f32::NAN;
    let norm = Tensor::from_vec(norm, 96, &dev).unwrap();
    let path =
        llama_file(dir.path(), "f32.gguf", Storage::F32, |g| replace(g, "blk.1.attn_norm.weight", &norm, Storage::F32));
    let m = message(ingot_models::load(&path, &dev));
    assert!(m.contains("blk.1.attn_norm.weight") && m.contains("NaN or infinity") && m.contains("element 17"), "{m}");

    // Q8_0: an infinity in a weight makes its block's scale infinite. Rows of 96 are 3 blocks
    // of 32, so element 100 (row 1, column 4) is in block 3.
    let mut up = vec![0.01f32; 160 * 96];
    up[100] = f32::INFINITY;
    let up = Tensor::from_vec(up, (160, 96), &dev).unwrap();
    let path = llama_file(dir.path(), "q8.gguf", Storage::Quantized(GgmlDType::Q8_0), |g| {
        replace(g, "blk.0.ffn_up.weight", &up, Storage::Quantized(GgmlDType::Q8_0))
    });
    let m = message(ingot_models::load(&path, &dev));
    assert!(m.contains("blk.0.ffn_up.weight") && m.contains("the scale of block 3"), "{m}");

    // The clean quantized file loads.
    let path = llama_file(dir.path(), "q8-ok.gguf", Storage::Quantized(GgmlDType::Q8_0), |_| {});
    ingot_models::load(&path, &dev).unwrap();
}

/// Rewrite the checkpoint folder's model.safetensors with `edit` applied to its tensors.
fn edit_safetensors(dir: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let file = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, &file).unwrap();
}

#[test]
fn checkpoint_weights_holding_nan_are_refused() {
    let dir = temp_dir("validation-st-nan");
    let folder = write_model_folder(&dir.join("m"), LLAMA, 5);
    ingot_models::load(&folder, &Device::Cpu).unwrap();
    edit_safetensors(&folder, |t| {
        let w = &t["model.layers.2.mlp.down_proj.weight"];
        let mut v: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        v[5] = f32::NAN;
        let poisoned = Tensor::from_vec(v, w.shape(), &Device::Cpu).unwrap();
        t.insert("model.layers.2.mlp.down_proj.weight".into(), poisoned);
    });
    let m = message(ingot_models::load(&folder, &Device::Cpu));
    assert!(m.contains("model.layers.2.mlp.down_proj.weight") && m.contains("NaN or infinity"), "{m}");
}

// ---------------------------------------------------------------------------------------------
// Run time

#[test]
fn token_ids_beyond_the_vocabulary_are_an_error() {
    let dev = Device::Cpu;
    let (dense, _) = random_model(&config(LLAMA), 1);
    let dir = temp_dir("validation-ids");
    let path = llama_file(dir.path(), "q.gguf", Storage::Quantized(GgmlDType::Q8_0), |_| {});
    let (quantized, _) = ingot_models::load(&path, &dev).unwrap();
    for model in [&dense, &quantized] {
        let m = message(model.forward(&ids(&[1, 101, 2]), None));
        assert!(m.contains("token id 101 is outside the model's vocabulary of 101"), "{m}");
        let m = message(model.forward_last(&ids(&[100_000]), None));
        assert!(m.contains("token id 100000"), "{m}");
        model.forward(&ids(&[1, 100, 2]), None).unwrap();
    }
}

#[test]
fn a_nan_at_run_time_names_the_layer_it_came_from() {
    // rms_norm_eps = 0 is allowed (>= 0), but then an all-zero embedding row normalises as 0/0.
    let dir = temp_dir("validation-runtime-nan");
    let folder = write_model_folder(&dir.join("m"), &with(LLAMA, "rms_norm_eps", serde_json::json!(0.0)), 9);
    edit_safetensors(&folder, |t| {
        let w = &t["model.embed_tokens.weight"]; // (V, C)
        let (v, c) = w.dims2().unwrap();
        let mut rows: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        rows[7 * c..8 * c].iter_mut().for_each(|x| *x = 0.0);
        t.insert("model.embed_tokens.weight".into(), Tensor::from_vec(rows, (v, c), &Device::Cpu).unwrap());
    });
    let (model, _) = ingot_models::load(&folder, &Device::Cpu).unwrap();
    logits(&model, &[3, 4, 5]); // other tokens are fine
    let m = message(model.forward(&ids(&[3, 7, 5]), None));
    assert!(m.contains("NaN or infinity") && m.contains("first in layer 0"), "{m}");
    let m = message(model.forward_last(&ids(&[7]), None));
    assert!(m.contains("first in layer 0"), "{m}");
}

// ---------------------------------------------------------------------------------------------
// GPT-2 dropout and activations: fields that are read must act

/// GPT2 with the three dropout probabilities.
fn gpt2_dropout(resid: f64, embd: f64, attn: f64) -> Model {
    let json =
        with(&with(&with(GPT2, "resid_pdrop", resid.into()), "embd_pdrop", embd.into()), "attn_pdrop", attn.into());
    random_model(&config(&json), 11).0
}

/// Logits in training mode with dropout masks from `seed`, then back in evaluation mode.
fn train_logits(model: &Model, seed: u64, tokens: &[u32]) -> Vec<f32> {
    let state = model.dropout_state().unwrap();
    state.train(seed);
    let out = logits(model, tokens);
    state.eval();
    out
}

#[test]
fn gpt2_embd_pdrop_and_attn_pdrop_each_act_and_are_seeded() {
    let tokens = [5u32, 9, 2, 40, 7, 7, 1];
    // No dropout: training mode computes what evaluation does.
    let none = gpt2_dropout(0.0, 0.0, 0.0);
    assert_eq!(train_logits(&none, 1, &tokens), logits(&none, &tokens));
    for (name, model) in [("embd_pdrop", gpt2_dropout(0.0, 0.5, 0.0)), ("attn_pdrop", gpt2_dropout(0.0, 0.0, 0.5))] {
        let eval = logits(&model, &tokens);
        let a = train_logits(&model, 1, &tokens);
        assert_ne!(a, eval, "{name} = 0.5 alone must change the training forward pass");
        assert_eq!(a, train_logits(&model, 1, &tokens), "{name}: the same seed draws the same masks");
        assert_ne!(a, train_logits(&model, 2, &tokens), "{name}: another seed draws other masks");
        assert_eq!(logits(&model, &tokens), eval, "{name}: evaluation mode has no dropout");
    }
}

#[test]
fn the_configured_activation_is_the_one_computed() {
    let tokens = [5u32, 9, 2, 40];
    let gelu = logits(&random_model(&config(GPT2), 4).0, &tokens);
    let same =
        logits(&random_model(&config(&with(GPT2, "activation_function", "gelu_pytorch_tanh".into())), 4).0, &tokens);
    assert_eq!(gelu, same, "gelu_new and gelu_pytorch_tanh are one function");
    let relu = logits(&random_model(&config(&with(GPT2, "activation_function", "relu".into())), 4).0, &tokens);
    assert_ne!(gelu, relu);
    let silu = logits(&random_model(&config(LLAMA), 4).0, &tokens);
    let gelu = logits(&random_model(&config(&with(LLAMA, "hidden_act", "gelu".into())), 4).0, &tokens);
    assert_ne!(silu, gelu);
}
