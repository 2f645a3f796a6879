//! LoRA adapters on the one model code path: a fresh adapter is the identity, every adapter
//! parameter is reached by gradients through dense and quantized bases, merged equals unmerged,
//! PEFT's folder layout round-trips (including llama.cpp's q/k row order), and bad adapters are
//! refused with errors that name the module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use ingot_models::adapter::{self, RowOrder};
use ingot_models::{Hold, LoadOptions, Model};
use ingot_nn::{Adapters, LoraConfig};
use ingot_test_support::gguf::{write_gguf, Storage};
use ingot_test_support::models::{config, random_model, LLAMA, QWEN2};
use ingot_test_support::temp_dir;

/// [`LLAMA`] without its Llama 3 RoPE scaling: GGUF keeps that scaling as a tensor that
/// config.json cannot express, so exports to HF refuse it.
fn plain_llama() -> String {
    let start = LLAMA.find(r#""rope_scaling""#).unwrap();
    format!("{}}}", LLAMA[..start].trim_end().trim_end_matches(','))
}

fn all_linear(r: usize) -> LoraConfig {
    LoraConfig { r, lora_alpha: 2.0 * r as f64, target_modules: vec!["all-linear".into()], ..Default::default() }
}

fn ids() -> Tensor {
    Tensor::new(&[[3u32, 17, 42, 5, 99, 0, 64]], &Device::Cpu).unwrap()
}

fn logits(m: &Model) -> Tensor {
    m.forward(&ids(), None).unwrap().detach()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// The same random llama as a GGUF file (llama.cpp layout, q/k rows interleaved) and as an HF
/// folder (safetensors, HF order).
fn llama_files(dir: &Path, storage: Storage) -> (PathBuf, PathBuf) {
    let json = plain_llama();
    let gguf = write_gguf(&dir.join("model.gguf"), &json, 7, storage);
    let (_, varmap) = random_model(&config(&json), 7);
    let hf = dir.join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    std::fs::write(hf.join("config.json"), &json).unwrap();
    varmap.save(hf.join("model.safetensors")).unwrap();
    (gguf, hf)
}

fn with_adapters(path: &Path, hold: Hold, adapters: std::sync::Arc<Adapters>) -> Model {
    ingot_models::load_with(path, &Device::Cpu, &LoadOptions { hold, adapters: Some(adapters) }).unwrap().0
}

/// Give every lora_B random values (a fresh adapter's B is zero, which hides bugs).
fn randomize_b(vars: &VarMap, seed: u64) {
    let data = vars.data().lock().unwrap();
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    for (i, key) in keys.into_iter().enumerate() {
        if key.contains("lora_B") {
            let v = &data[key];
            let t = (Tensor::randn(0f32, 0.05, v.shape(), &Device::Cpu).unwrap()
                * (1.0 + ((seed + i as u64) % 3) as f64))
                .unwrap();
            v.set(&t).unwrap();
        }
    }
}

#[test]
fn fresh_adapter_leaves_the_model_exactly_as_it_was() {
    let dir = temp_dir("lora-identity");
    for storage in [Storage::F32, Storage::Quantized(GgmlDType::Q8_0), Storage::Quantized(GgmlDType::Q4_1)] {
        let (gguf, _) = llama_files(&dir, storage);
        let (base, _) = ingot_models::load(&gguf, &Device::Cpu).unwrap();
        let adapters = Adapters::train(all_linear(4), VarMap::new(), 1).unwrap();
        let adapted = with_adapters(&gguf, Hold::AsStored, adapters.clone());
        assert_eq!(adapters.adapted_modules().len(), 3 * 7, "every linear layer but the tied head");
        // Trainable adapters make the norms take their differentiable (composed) form, which
        // rounds differently from the fused inference kernels by ~1e-6.
        let err = max_diff(&logits(&base), &logits(&adapted));
        assert!(err < 1e-5, "{storage:?}: a fresh trainable adapter changed the logits by {err}");
        // Saved and loaded (frozen, inference kernels): exactly the base.
        let saved = dir.join("fresh-adapter");
        adapter::save(&saved, &adapters, adapted.row_order(), "tiny").unwrap();
        let loaded =
            with_adapters(&gguf, Hold::AsStored, adapter::load(&saved, RowOrder::of_model(&gguf).unwrap()).unwrap());
        assert_eq!(max_diff(&logits(&base), &logits(&loaded)), 0.0, "{storage:?}: B = 0 must be the identity");
    }
}

#[test]
fn every_adapter_parameter_gets_a_gradient_through_dense_and_quantized_bases() {
    let dir = temp_dir("lora-grads");
    for (storage, hold) in [
        (Storage::F32, Hold::Dense),
        (Storage::Quantized(GgmlDType::Q8_0), Hold::AsStored),
        (Storage::Quantized(GgmlDType::Q4_0), Hold::AsStored),
        (Storage::Quantized(GgmlDType::Q4_1), Hold::AsStored),
    ] {
        let (gguf, _) = llama_files(&dir, storage);
        let vars = VarMap::new();
        let adapters = Adapters::train(all_linear(4), vars.clone(), 3).unwrap();
        let model = with_adapters(&gguf, hold, adapters);
        randomize_b(&vars, 1);
        let loss = model.forward(&ids(), None).unwrap().sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        let data = vars.data().lock().unwrap();
        assert_eq!(data.len(), 2 * 3 * 7);
        for (name, var) in data.iter() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{storage:?}: {name} got no gradient"));
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 0.0, "{storage:?}: {name} has a zero gradient");
        }
    }
}

#[test]
fn merged_weights_compute_what_base_plus_adapter_computes() {
    let dir = temp_dir("lora-merge");
    let (gguf, _) = llama_files(&dir, Storage::Quantized(GgmlDType::Q8_0));
    let vars = VarMap::new();
    let model = with_adapters(&gguf, Hold::AsStored, Adapters::train(all_linear(4), vars.clone(), 5).unwrap());
    randomize_b(&vars, 2);
    let want = logits(&model);
    let Model::Llama(llama) = &model else { unreachable!() };
    // As an HF folder (q/k back in HF order), then loaded as a dense model.
    let mut tensors = model.named_weights(true).unwrap();
    ingot_models::export::llama_qk_to_hf(&mut tensors, llama.config()).unwrap();
    let ids = ingot_models::export::SpecialIds { bos: Some(1), eos: Some(2), pad: None };
    let cfg = ingot_models::export::llama_hf_config(llama.config(), &ids).unwrap();
    let out = dir.join("merged");
    ingot_models::export::write_hf_checkpoint(&out, &cfg, &tensors, b"{}", &[], false).unwrap();
    let (merged, _) = ingot_models::load(&out, &Device::Cpu).unwrap();
    let err = max_diff(&want, &logits(&merged));
    assert!(err < 1e-4, "merged HF checkpoint differs by {err}");
    // As an F32 GGUF in llama.cpp's layout.
    let tensors = model.named_weights(true).unwrap();
    let path = dir.join("merged.gguf");
    let source = ingot_core::gguf::GgufFile::open(&gguf).unwrap();
    ingot_models::export::write_gguf(
        &path,
        Some(&source),
        &Default::default(),
        &tensors,
        ingot_models::llama::gguf_name,
        ingot_models::export::ExportType::F32,
    )
    .unwrap();
    let (merged, _) = ingot_models::load(&path, &Device::Cpu).unwrap();
    let err = max_diff(&want, &logits(&merged));
    assert!(err < 1e-4, "merged GGUF differs by {err}");
}

#[test]
fn saved_adapters_are_peft_adapters_in_hf_row_order() {
    let dir = temp_dir("lora-peft");
    let (gguf, hf) = llama_files(&dir, Storage::F32);
    let vars = VarMap::new();
    let cfg = LoraConfig { target_modules: vec!["q_proj".into(), "k_proj".into(), "v_proj".into()], ..all_linear(4) };
    let trained = with_adapters(&gguf, Hold::AsStored, Adapters::train(cfg, vars.clone(), 9).unwrap());
    randomize_b(&vars, 3);
    let want = logits(&trained);
    let saved = dir.join("adapter");
    adapter::save(&saved, trained.adapters().unwrap(), trained.row_order(), "tiny").unwrap();
    assert!(matches!(trained.row_order(), RowOrder::Interleaved { .. }));
    // Back onto the same GGUF file.
    let again =
        with_adapters(&gguf, Hold::AsStored, adapter::load(&saved, RowOrder::of_model(&gguf).unwrap()).unwrap());
    assert!(max_diff(&want, &logits(&again)) < 1e-5);
    // Onto the HF checkpoint of the same weights: only right if q/k rows were saved in HF order.
    let on_hf = with_adapters(&hf, Hold::AsStored, adapter::load(&saved, RowOrder::of_model(&hf).unwrap()).unwrap());
    let err = max_diff(&want, &logits(&on_hf));
    assert!(err < 1e-4, "the adapter applied to the HF checkpoint differs by {err}");
    // A training checkpoint keeps the tensors in the model's own (interleaved) order and says so.
    let ck = dir.join("checkpoint");
    std::fs::create_dir_all(&ck).unwrap();
    let raw: HashMap<String, Tensor> =
        vars.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().detach())).collect();
    candle_core::safetensors::save(&raw, ck.join("adapter_model.safetensors")).unwrap();
    let ck_config = adapter::checkpoint_config(trained.adapters().unwrap().config(), "tiny", trained.row_order());
    std::fs::write(ck.join("adapter_config.json"), ck_config.to_string()).unwrap();
    let from_ck = with_adapters(&gguf, Hold::AsStored, adapter::load(&ck, RowOrder::of_model(&gguf).unwrap()).unwrap());
    assert!(max_diff(&want, &logits(&from_ck)) < 1e-5, "a checkpoint's adapter read back wrong");
    let err = adapter::load(&ck, RowOrder::of_model(&hf).unwrap())
        .err()
        .expect("interleaved rows onto an HF model")
        .to_string();
    assert!(err.contains("row order"), "{err}");
    // The config is PEFT's.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    assert_eq!(config["target_modules"], serde_json::json!(["q_proj", "k_proj", "v_proj"]));
}

#[test]
fn an_adapter_written_in_pefts_own_layout_loads_and_equals_the_hand_merged_weights() {
    let dir = temp_dir("lora-peft-built");
    let (_, hf) = llama_files(&dir, Storage::F32);
    // PEFT's save_pretrained for r = 2, alpha 4 on every v_proj (C = 96 in, K·D = 32 out).
    let peft = dir.join("peft");
    std::fs::create_dir_all(&peft).unwrap();
    let mut tensors = HashMap::new();
    let mut weights = candle_core::safetensors::load(hf.join("model.safetensors"), &Device::Cpu).unwrap();
    for layer in 0..3 {
        let a = Tensor::randn(0f32, 0.3, (2, 96), &Device::Cpu).unwrap();
        let b = Tensor::randn(0f32, 0.3, (32, 2), &Device::Cpu).unwrap();
        let key = format!("model.layers.{layer}.self_attn.v_proj");
        let w = &weights[&format!("{key}.weight")];
        let merged = (w + (b.matmul(&a).unwrap() * 2.0).unwrap()).unwrap();
        weights.insert(format!("{key}.weight"), merged);
        tensors.insert(format!("base_model.model.{key}.lora_A.weight"), a);
        tensors.insert(format!("base_model.model.{key}.lora_B.weight"), b);
    }
    candle_core::safetensors::save(&tensors, peft.join("adapter_model.safetensors")).unwrap();
    std::fs::write(
        peft.join("adapter_config.json"),
        r#"{"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "tiny", "bias": "none",
            "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true, "layer_replication": null,
            "layers_pattern": null, "layers_to_transform": null, "loftq_config": {}, "lora_alpha": 4,
            "lora_dropout": 0.1, "megatron_config": null, "megatron_core": "megatron.core", "modules_to_save": null,
            "peft_type": "LORA", "r": 2, "rank_pattern": {}, "revision": null, "target_modules": ["v_proj"],
            "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": false}"#,
    )
    .unwrap();
    let loaded = adapter::load(&peft, RowOrder::Hf).unwrap_or_else(|e| panic!("{e}"));
    let adapted = with_adapters(&hf, Hold::AsStored, loaded);
    let by_hand = dir.join("by-hand");
    std::fs::create_dir_all(&by_hand).unwrap();
    std::fs::write(by_hand.join("config.json"), plain_llama()).unwrap();
    candle_core::safetensors::save(&weights, by_hand.join("model.safetensors")).unwrap();
    let (merged, _) = ingot_models::load(&by_hand, &Device::Cpu).unwrap();
    let err = max_diff(&logits(&adapted), &logits(&merged));
    assert!(err < 1e-4, "PEFT adapter vs hand-merged weights: {err}");
}

#[test]
fn adapters_for_another_model_or_missing_modules_are_refused_by_name() {
    let dir = temp_dir("lora-bad");
    let (gguf, _) = llama_files(&dir, Storage::F32);
    // A target module the model does not have.
    let cfg = LoraConfig { target_modules: vec!["q_proj".into(), "qkv_proj".into()], ..all_linear(2) };
    let err = ingot_models::load_with(
        &gguf,
        &Device::Cpu,
        &LoadOptions { adapters: Some(Adapters::train(cfg, VarMap::new(), 1).unwrap()), ..Default::default() },
    )
    .err()
    .expect("an unknown target module must fail")
    .to_string();
    assert!(err.contains("'qkv_proj'") && err.contains("q_proj, "), "{err}");
    // An adapter saved for the llama loaded onto a Qwen2 model of other shapes.
    let vars = VarMap::new();
    let model = with_adapters(&gguf, Hold::AsStored, Adapters::train(all_linear(2), vars, 1).unwrap());
    let saved = dir.join("adapter");
    adapter::save(&saved, model.adapters().unwrap(), model.row_order(), "tiny").unwrap();
    let qwen = write_gguf(&dir.join("qwen.gguf"), QWEN2, 1, Storage::F32);
    let loaded = adapter::load(&saved, RowOrder::of_model(&qwen).unwrap()).unwrap();
    let err =
        ingot_models::load_with(&qwen, &Device::Cpu, &LoadOptions { adapters: Some(loaded), ..Default::default() })
            .err()
            .expect("an adapter of other shapes must fail")
            .to_string();
    assert!(err.contains("another model") && err.contains("model.layers.0"), "{err}");
    // Not an adapter folder.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = adapter::load(&empty, RowOrder::Hf).err().unwrap().to_string();
    assert!(err.contains("adapter_config.json"), "{err}");
}

#[test]
fn recorded_base_is_the_adapters_model_file_only_when_that_file_exists() {
    let dir = temp_dir("lora-recorded-base");
    let model = dir.join("base.gguf");
    std::fs::write(&model, b"GGUF").unwrap();
    let write = |base: &str| {
        let config = serde_json::json!({"peft_type": "LORA", "r": 2, "base_model_name_or_path": base});
        std::fs::write(dir.join("adapter_config.json"), config.to_string()).unwrap();
    };
    write(model.to_str().unwrap());
    assert_eq!(adapter::recorded_base(&dir), Some(model.clone()));
    write(dir.join("gone.gguf").to_str().unwrap());
    assert_eq!(adapter::recorded_base(&dir), None, "a recorded file that is not there");
    write("HuggingFaceTB/SmolLM2-135M-Instruct");
    assert_eq!(adapter::recorded_base(&dir), None, "a hub name, not a file");
    std::fs::remove_file(dir.join("adapter_config.json")).unwrap();
    assert_eq!(adapter::recorded_base(&dir), None, "no adapter_config.json");
}
