//! Checkpoints: round trip, loading as a model, pruning, crash safety and clear errors for
//! damaged files.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ingot_models::{from_hf_config, HfConfig};
use ingot_nn::Weights;
use ingot_test_support::temp_dir;
use ingot_tokenizer::Tokenizer;
use ingot_train::checkpoint::{self, weights_of, CheckpointContents};
use ingot_train::{AdamW, AdamWConfig, Error};
use serde_json::{json, Value};

fn config() -> Value {
    json!({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 8, "hidden_size": 16,
        "intermediate_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
        "rms_norm_eps": 1e-5, "max_position_embeddings": 32, "tie_word_embeddings": true
    })
}

/// A word-level tokenizer small enough to write inline.
fn tokenizer(dir: &Path) -> Tokenizer {
    let path = dir.join("src-tokenizer").join("tokenizer.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let json = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "unk_token": "<unk>",
                  "vocab": {"<unk>": 0, "to": 1, "be": 2, "or": 3, "not": 4, "that": 5, "is": 6, "the": 7}}
    });
    std::fs::write(&path, json.to_string()).unwrap();
    Tokenizer::from_file(&path).unwrap()
}

/// A tiny llama's VarMap (HF key names) and an optimizer over it.
fn model() -> (VarMap, AdamW) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let cfg: HfConfig = serde_json::from_value(config()).unwrap();
    from_hf_config(&cfg, &Weights::from_var_builder(vb), "test").unwrap();
    let vars: Vec<(String, candle_core::Var)> =
        varmap.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let opt = AdamW::new(vars, AdamWConfig::default()).unwrap();
    (varmap, opt)
}

fn save(out: &Path, step: u64, varmap: &VarMap, opt: &AdamW, tok: &Tokenizer, keep: usize) -> PathBuf {
    let weights = weights_of(varmap);
    let optimizer = opt.state_tensors();
    let state = json!({"step": step, "optimizer_steps": opt.step_count(), "tokens_seen": step * 1024});
    let contents = CheckpointContents {
        weights: &weights,
        config: &config(),
        tokenizer: tok,
        optimizer: &optimizer,
        trainer_state: &state,
        adapter_config: None,
    };
    checkpoint::save(out, step, &contents, keep).unwrap()
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    let (a, b): (Vec<f32>, Vec<f32>) =
        (a.flatten_all().unwrap().to_vec1().unwrap(), b.flatten_all().unwrap().to_vec1().unwrap());
    a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn round_trip_and_loads_as_a_model() {
    let tmp = temp_dir("ckpt-roundtrip");
    let out = tmp.join("run");
    let tok = tokenizer(tmp.path());
    let (varmap, opt) = model();
    assert!(checkpoint::latest(&out).unwrap().is_none(), "no checkpoint yet");
    let dir = save(&out, 1200, &varmap, &opt, &tok, 3);
    assert_eq!(dir.file_name().unwrap(), "step-00001200");
    assert_eq!(checkpoint::latest(&out).unwrap().as_deref(), Some(dir.as_path()));
    // transformers only loads safetensors whose header metadata says {"format": "pt"}.
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert_eq!(header["__metadata__"]["format"], "pt", "header: {header}");

    let ckpt = checkpoint::load_latest(&out, &Device::Cpu).unwrap().unwrap();
    let weights = weights_of(&varmap);
    assert_eq!(ckpt.weights.len(), weights.len());
    for (name, t) in &weights {
        assert!(same(&ckpt.weights[name], t), "weight {name} changed");
    }
    for (name, t) in opt.state_tensors() {
        assert!(same(&ckpt.optimizer[&name], &t), "optimizer tensor {name} changed");
    }
    assert_eq!(ckpt.config, config());
    assert_eq!(ckpt.trainer_state["tokens_seen"], 1200 * 1024);
    assert_eq!(ckpt.tokenizer().unwrap().encode("to be or not", false).unwrap(), vec![1, 2, 3, 4]);

    // The checkpoint folder is a model folder.
    let (model, _) = ingot_models::load(&dir, &Device::Cpu).unwrap();
    assert_eq!((model.architecture(), model.vocab_size()), ("llama", 8));
    let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    assert_eq!(model.forward(&ids, None).unwrap().dims(), &[1, 3, 8]);

    // Saving the same step again replaces it.
    let again = save(&out, 1200, &varmap, &opt, &tok, 3);
    assert_eq!(again, dir);
    assert_eq!(checkpoint::list(&out).unwrap().len(), 1);
}

#[test]
fn keep_last_deletes_older_checkpoints() {
    let tmp = temp_dir("ckpt-keep");
    let out = tmp.join("run");
    let tok = tokenizer(tmp.path());
    let (varmap, opt) = model();
    for step in [100, 200, 300, 400] {
        save(&out, step, &varmap, &opt, &tok, 2);
    }
    let steps: Vec<u64> = checkpoint::list(&out).unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps, vec![300, 400]);

    // A run restarted from an earlier step: the new, lower-numbered checkpoint is what `latest`
    // names, so it survives pruning even though higher-numbered ones are "newer".
    let dir = save(&out, 50, &varmap, &opt, &tok, 1);
    assert_eq!(checkpoint::latest(&out).unwrap().unwrap(), dir);
    assert!(dir.exists());
    // keep_last = 0 keeps everything.
    save(&out, 60, &varmap, &opt, &tok, 0);
    assert_eq!(checkpoint::list(&out).unwrap().len(), 2 + 1);
}

#[test]
fn crash_mid_save_leaves_previous_checkpoint() {
    let tmp = temp_dir("ckpt-crash");
    let out = tmp.join("run");
    let tok = tokenizer(tmp.path());
    let (varmap, opt) = model();
    let first = save(&out, 10, &varmap, &opt, &tok, 3);

    // A save killed after writing everything but before the rename...
    let weights = weights_of(&varmap);
    let optimizer = opt.state_tensors();
    let state = json!({"step": 20});
    let contents = CheckpointContents {
        weights: &weights,
        config: &config(),
        tokenizer: &tok,
        optimizer: &optimizer,
        trainer_state: &state,
        adapter_config: None,
    };
    let staged = checkpoint::stage(&out, 20, &contents).unwrap();
    let staged_dir = staged.path().to_path_buf();
    assert!(staged_dir.join("model.safetensors").is_file(), "staged in full");
    drop(staged); // a save abandoned on an error removes its own temporary folder at once
    assert!(!staged_dir.exists());
    // ...and one from another (dead) process killed half-way through writing model.safetensors.
    let dead = out.join(".step-00000030.tmp-999999999");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join("model.safetensors"), b"\x10\x00\x00").unwrap();

    assert_eq!(checkpoint::latest(&out).unwrap().unwrap(), first);
    let ckpt = checkpoint::load_latest(&out, &Device::Cpu).unwrap().unwrap();
    assert_eq!(ckpt.trainer_state["step"], 10);
    assert_eq!(checkpoint::list(&out).unwrap().len(), 1, "temporary folders are not checkpoints");

    // The next save clears both leftovers.
    save(&out, 40, &varmap, &opt, &tok, 3);
    assert!(!staged_dir.exists() && !dead.exists(), "stale temporary folders remain");
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn damaged_files_give_clear_errors() {
    let tmp = temp_dir("ckpt-damaged");
    let out = tmp.join("run");
    let tok = tokenizer(tmp.path());
    let (varmap, opt) = model();
    let dir = save(&out, 5, &varmap, &opt, &tok, 3);

    // Truncated weights: the message says so and names the file.
    let model_file = dir.join("model.safetensors");
    let bytes = std::fs::read(&model_file).unwrap();
    std::fs::write(&model_file, &bytes[..bytes.len() / 2]).unwrap();
    let err = checkpoint::load(&dir, &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Truncated { .. }), "{msg}");
    assert!(msg.contains("truncated") && msg.contains("model.safetensors"), "{msg}");
    // Cut inside the header too.
    std::fs::write(&model_file, &bytes[..20]).unwrap();
    let msg = checkpoint::load(&dir, &Device::Cpu).unwrap_err().to_string();
    assert!(msg.contains("truncated") && msg.contains("model.safetensors"), "{msg}");
    // Garbage.
    std::fs::write(&model_file, b"this is not a safetensors file at all").unwrap();
    let msg = checkpoint::load(&dir, &Device::Cpu).unwrap_err().to_string();
    assert!((msg.contains("corrupt") || msg.contains("truncated")) && msg.contains("model.safetensors"), "{msg}");

    // A missing file is named.
    std::fs::remove_file(dir.join("optimizer.safetensors")).unwrap();
    std::fs::write(&model_file, &bytes).unwrap();
    let msg = checkpoint::load(&dir, &Device::Cpu).unwrap_err().to_string();
    assert!(msg.contains("optimizer.safetensors"), "{msg}");

    // Bad JSON is named.
    let state_dir = save(&out, 6, &varmap, &opt, &tok, 3);
    std::fs::write(state_dir.join("trainer_state.json"), "{\"step\": ").unwrap();
    let msg = checkpoint::load(&state_dir, &Device::Cpu).unwrap_err().to_string();
    assert!(msg.contains("trainer_state.json"), "{msg}");

    // `latest` naming a folder that is gone.
    std::fs::remove_dir_all(&state_dir).unwrap();
    let err = checkpoint::latest(&out).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::DanglingLatest { .. }) && msg.contains("step-00000006"), "{msg}");
}
