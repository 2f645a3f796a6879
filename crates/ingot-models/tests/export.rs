//! Model export (`ingot_models::export`): HF config.json, the llama q/k permutation, HF
//! checkpoint folders and GGUF files, each read back by Ingot's own loaders.
//!
//! Where the expected values come from: ingot-test-support's `gguf` module writes llama.cpp's
//! layout from the converter (`convert_hf_to_gguf.py`) and gguf-py, independently of the code
//! under test, with candle's port of ggml's reference quantizers. An exported GGUF must hold the
//! same bytes as that module's file of the same weights, and so compute bit-identical logits; HF
//! folders must load into the same function as the model they were written from.
//!
//! Dimension legend: T positions, V vocabulary, H query heads, K key/value heads, D head dim,
//! C hidden size.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use ingot_core::gguf::{GgmlType, GgufFile, Value};
use ingot_models::export::{
    gguf_to_hf_rows, hf_to_gguf_rows, llama_config_from_gguf, llama_hf_config, llama_qk_to_gguf, llama_qk_to_hf,
    with_special_ids, write_gguf, write_hf_checkpoint, ArchMetadata, ExportType, SpecialIds, EXPORT_MARKER,
};
use ingot_models::{llama, read_hf_config, HfConfig, LlamaConfig, Model};
use ingot_test_support::gguf::{llama_gguf, permute_qk, Storage};
use ingot_test_support::models::{config as parse, hf_weights, random_model, GPT2, LLAMA, QWEN2};
use ingot_test_support::tokenizer::ascii_text;
use ingot_test_support::{char_tokenizer, temp_dir};

// Tolerance for f32-vs-f32 logits of the same weights through different code paths (a VarMap
// model runs candle's composed ops, a loaded one its fused kernels; GGUF llama files rotate
// q/k in the other order). As in gguf_models.rs: differences measure ~1e-6 on O(1) logits; any
// wiring mistake (an unpermuted q/k) is above 1e-2.
const F32_TOL: f32 = 1e-4;

const IDS: SpecialIds = SpecialIds { bos: Some(1), eos: Some(2), pad: Some(0) };

/// The fixed 11-token test sequence.
fn test_ids(vocab: usize) -> Vec<u32> {
    (0..11).map(|i| ((i * 37 + 11) % vocab) as u32).collect()
}

/// ids (T) → logits (1, T, V)
fn logits(model: &Model, ids: &[u32]) -> Tensor {
    let input = Tensor::new(ids, &Device::Cpu).unwrap().unsqueeze(0).unwrap(); // (1, T)
    model.forward(&input, None).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn load(path: &Path) -> Model {
    ingot_models::load(path, &Device::Cpu).unwrap_or_else(|e| panic!("loading {}: {e}", path.display())).0
}

/// A tiny random model of `json`: its config, the model, and its weights by HF key (HF layout).
fn tiny(json: &str, seed: u64) -> (LlamaConfig, Model, Vec<(String, Tensor)>) {
    let hf = parse(json);
    let cfg = hf.llama("test").unwrap();
    let (model, varmap) = random_model(&hf, seed);
    (cfg, model, hf_weights(&varmap).into_iter().collect())
}

/// LLAMA without its Llama 3 rope scaling: a GGUF of it has no rope_freqs.weight, so it exports
/// to an HF config.
fn llama_unscaled() -> String {
    let mut v: serde_json::Value = serde_json::from_str(LLAMA).unwrap();
    v.as_object_mut().unwrap().remove("rope_scaling");
    v.to_string()
}

fn tokenizer_json(dir: &Path) -> Vec<u8> {
    let path = dir.join("tokenizer-source.json");
    char_tokenizer([ascii_text()]).save(&path).unwrap();
    std::fs::read(&path).unwrap()
}

fn as_map(tensors: &[(String, Tensor)]) -> BTreeMap<String, Tensor> {
    tensors.iter().cloned().collect()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
}

// ---------------------------------------------------------------------------------------------
// config.json

#[test]
fn hf_config_reads_back_to_the_same_llama_config() {
    let mut variants: Vec<(&str, String)> =
        vec![("llama3 scaling, tied", LLAMA.to_string()), ("qwen2 biases, untied", QWEN2.to_string())];
    // Linear scaling, a head dim other than C/H, a tanh-GELU gate, untied.
    let mut v: serde_json::Value = serde_json::from_str(LLAMA).unwrap();
    v["rope_scaling"] = serde_json::json!({"type": "linear", "factor": 2.5});
    v["head_dim"] = serde_json::json!(32);
    v["hidden_act"] = serde_json::json!("gelu_pytorch_tanh");
    v["tie_word_embeddings"] = serde_json::json!(false);
    v["rms_norm_eps"] = serde_json::json!(1.2345e-6);
    variants.push(("linear scaling, head_dim 32", v.to_string()));
    let dir = temp_dir("export-config");
    for (what, json) in variants {
        let cfg = parse(&json).llama("test").unwrap();
        let written = llama_hf_config(&cfg, &IDS).unwrap();
        let path = dir.write("config.json", serde_json::to_string_pretty(&written).unwrap());
        let back = read_hf_config(&path).unwrap().llama("exported").unwrap();
        assert_eq!(back, cfg, "{what}: config.json does not read back to the same config");
        let expect_type = if cfg.attention_bias { "qwen2" } else { "llama" };
        assert_eq!(written["model_type"], expect_type, "{what}");
        let arch = if cfg.attention_bias { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" };
        assert_eq!(written["architectures"], serde_json::json!([arch]), "{what}");
        assert_eq!(written["torch_dtype"], "float32");
        assert_eq!(
            (&written["bos_token_id"], &written["eos_token_id"], &written["pad_token_id"]),
            (&1.into(), &2.into(), &0.into())
        );
    }
}

#[test]
fn rope_frequency_factors_have_no_config_json_form() {
    let mut cfg = parse(LLAMA).llama("test").unwrap();
    cfg.rope_scaling = ingot_nn::RopeScaling::FreqFactors(vec![1.0; cfg.head_dim / 2]);
    let e = llama_hf_config(&cfg, &IDS).unwrap_err().to_string();
    assert!(e.contains("rope_freqs.weight") && e.contains("GGUF"), "{e}");
}

#[test]
fn special_ids_go_into_any_config() {
    let mut gpt2: serde_json::Value = serde_json::from_str(GPT2).unwrap();
    with_special_ids(&mut gpt2, &SpecialIds { bos: Some(0), eos: Some(0), pad: None });
    assert_eq!(gpt2["bos_token_id"], 0);
    assert_eq!(gpt2["eos_token_id"], 0);
    assert!(gpt2["pad_token_id"].is_null(), "an unknown id is null");
    // Still a GPT-2 config Ingot reads, with everything else unchanged.
    let hf: HfConfig = serde_json::from_value(gpt2.clone()).unwrap();
    assert_eq!(hf.gpt2("test").unwrap(), parse(GPT2).gpt2("test").unwrap());
    // Replacing ids already there.
    with_special_ids(&mut gpt2, &SpecialIds { bos: Some(5), eos: None, pad: Some(7) });
    assert_eq!(
        (&gpt2["bos_token_id"], gpt2["eos_token_id"].is_null(), &gpt2["pad_token_id"]),
        (&5.into(), true, &7.into())
    );
    let mut not_an_object = serde_json::json!([1, 2]);
    with_special_ids(&mut not_an_object, &IDS);
    assert_eq!(not_an_object, serde_json::json!([1, 2]));
}

// ---------------------------------------------------------------------------------------------
// The q/k permutation

#[test]
fn qk_permutation_is_the_converters_and_inverts() {
    // One head of D = 4 rows: HF pairs (0, 2) and (1, 3); GGUF puts each pair side by side.
    let rows = Tensor::new(&[[0f32, 0.5], [1.0, 1.5], [2.0, 2.5], [3.0, 3.5]], &Device::Cpu).unwrap(); // (4, 2)
    let g = hf_to_gguf_rows(&rows, 1).unwrap();
    assert_eq!(g.to_vec2::<f32>().unwrap(), [[0.0, 0.5], [2.0, 2.5], [1.0, 1.5], [3.0, 3.5]]);

    let (cfg, _, weights) = tiny(LLAMA, 4);
    let w = as_map(&weights);
    for (key, heads) in [
        ("model.layers.1.self_attn.q_proj.weight", cfg.num_heads),
        ("model.layers.1.self_attn.k_proj.weight", cfg.num_kv_heads),
    ] {
        let t = &w[key]; // (heads·D, C)
        let g = hf_to_gguf_rows(t, heads).unwrap();
        assert_eq!(bits(&g), bits(&permute_qk(t, heads)), "{key}: not the converter's permute");
        assert_eq!(bits(&gguf_to_hf_rows(&g, heads).unwrap()), bits(t), "{key}: not inverted");
        assert_ne!(bits(&g), bits(t));
        // 1-d (a bias): the same row order.
        let bias = t.narrow(1, 0, 1).unwrap().squeeze(1).unwrap(); // (heads·D)
        let gb = hf_to_gguf_rows(&bias, heads).unwrap();
        assert_eq!(bits(&gb), bits(&g.narrow(1, 0, 1).unwrap().squeeze(1).unwrap()), "{key}: bias rows");
        assert_eq!(bits(&gguf_to_hf_rows(&gb, heads).unwrap()), bits(&bias));
    }
    // Whole models: only q_proj/k_proj change, and back again.
    let mut all = weights.clone();
    llama_qk_to_gguf(&mut all, &cfg).unwrap();
    for ((k, a), (_, b)) in all.iter().zip(&weights) {
        assert_eq!(bits(a) == bits(b), !(k.contains("q_proj") || k.contains("k_proj")), "{k}");
    }
    llama_qk_to_hf(&mut all, &cfg).unwrap();
    assert!(all.iter().zip(&weights).all(|((_, a), (_, b))| bits(a) == bits(b)));

    let e = hf_to_gguf_rows(&Tensor::zeros((6, 3), candle_core::DType::F32, &Device::Cpu).unwrap(), 2).unwrap_err();
    assert!(e.to_string().contains("[6, 3]") && e.to_string().contains("2 heads"), "{e}");
    let mut odd = vec![(
        "model.layers.0.self_attn.k_proj.weight".to_string(),
        Tensor::zeros((6, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
    )];
    let e = llama_qk_to_hf(&mut odd, &cfg).unwrap_err().to_string();
    assert!(e.starts_with("invalid model: model.layers.0.self_attn.k_proj.weight: cannot permute"), "{e}");
}

/// A llama GGUF (test-support, llama.cpp's layout) and an HF folder of the same weights read
/// from it, q/k un-permuted, are the same model.
#[test]
fn gguf_source_exports_to_an_hf_folder_of_the_same_model() {
    let json = llama_unscaled();
    let (cfg, reference, weights) = tiny(&json, 5);
    let dir = temp_dir("export-gguf-to-hf");
    let gguf_path = dir.join("source.gguf");
    llama_gguf("llama", &cfg, &as_map(&weights), Storage::F32, true).write(&gguf_path);
    let file = GgufFile::open(&gguf_path).unwrap();
    let gguf_cfg = llama_config_from_gguf(&file).unwrap();

    // The model's tensors by HF key, as stored (GGUF layout), then q/k back to HF's.
    let mut tensors: Vec<(String, Tensor)> = weights
        .iter()
        .map(|(k, _)| (k.clone(), file.tensor(&llama::gguf_name(k).unwrap(), &Device::Cpu).unwrap()))
        .collect();
    llama_qk_to_hf(&mut tensors, &gguf_cfg).unwrap();
    for ((k, got), (_, want)) in tensors.iter().zip(&weights) {
        assert_eq!(bits(got), bits(want), "{k}: the un-permuted tensor is not the HF original");
    }
    let config = llama_hf_config(&gguf_cfg, &IDS).unwrap();
    let out = dir.join("hf");
    write_hf_checkpoint(&out, &config, &tensors, &tokenizer_json(&dir), &[], false).unwrap();

    let ids = test_ids(cfg.vocab_size);
    let from_gguf = logits(&load(&gguf_path), &ids);
    let from_hf = logits(&load(&out), &ids);
    let want = logits(&reference, &ids);
    let diff = max_abs_diff(&from_hf, &from_gguf);
    eprintln!("GGUF vs exported HF folder: max |Δlogit| = {diff:.2e}");
    assert!(diff < F32_TOL, "the exported HF folder differs from its GGUF source by {diff}");
    assert!(max_abs_diff(&from_hf, &want) < F32_TOL);

    // Not vacuous: without the un-permutation the folder is another model.
    let raw: Vec<(String, Tensor)> = weights
        .iter()
        .map(|(k, _)| (k.clone(), file.tensor(&llama::gguf_name(k).unwrap(), &Device::Cpu).unwrap()))
        .collect();
    let wrong_dir = dir.join("hf-unpermuted");
    write_hf_checkpoint(&wrong_dir, &config, &raw, b"{}", &[], false).unwrap();
    let wrong = max_abs_diff(&logits(&load(&wrong_dir), &ids), &from_gguf);
    assert!(wrong > 1e-2, "q/k left in GGUF order should change the logits, changed them by {wrong}");
}

#[test]
fn gguf_with_rope_factors_refuses_hf_export() {
    let (cfg, _, weights) = tiny(LLAMA, 6);
    let dir = temp_dir("export-rope-freqs");
    let path = dir.join("scaled.gguf");
    llama_gguf("llama", &cfg, &as_map(&weights), Storage::F32, true).write(&path);
    let gguf_cfg = llama_config_from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert!(matches!(gguf_cfg.rope_scaling, ingot_nn::RopeScaling::FreqFactors(ref f) if f.len() == cfg.head_dim / 2));
    let e = llama_hf_config(&gguf_cfg, &IDS).unwrap_err().to_string();
    assert!(e.contains("rope_freqs.weight"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// HF checkpoint folders

/// HF's llama key tree for `layers` layers (plus q/k/v biases, plus the head when untied).
fn hf_llama_keys(layers: usize, biases: bool, tied: bool) -> Vec<String> {
    let mut keys = vec!["model.embed_tokens.weight".to_string(), "model.norm.weight".to_string()];
    if !tied {
        keys.push("lm_head.weight".into());
    }
    for i in 0..layers {
        for leaf in [
            "input_layernorm.weight",
            "self_attn.q_proj.weight",
            "self_attn.k_proj.weight",
            "self_attn.v_proj.weight",
            "self_attn.o_proj.weight",
            "post_attention_layernorm.weight",
            "mlp.gate_proj.weight",
            "mlp.up_proj.weight",
            "mlp.down_proj.weight",
        ] {
            keys.push(format!("model.layers.{i}.{leaf}"));
        }
        if biases {
            for p in ["q", "k", "v"] {
                keys.push(format!("model.layers.{i}.self_attn.{p}_proj.bias"));
            }
        }
    }
    keys.sort();
    keys
}

#[test]
fn hf_checkpoint_follows_hf_naming_and_loads_as_the_same_model() {
    let dir = temp_dir("export-hf");
    let tokenizer = tokenizer_json(&dir);
    for (what, json, layers, seed) in [("llama", LLAMA, 3, 7), ("qwen2", QWEN2, 2, 8)] {
        let (cfg, reference, weights) = tiny(json, seed);
        let config = llama_hf_config(&cfg, &IDS).unwrap();
        let out = dir.join(what);
        let extra: [(&str, &[u8]); 1] = [("tokenizer_config.json", br#"{"bos_token": "<|endoftext|>"}"#)];
        write_hf_checkpoint(&out, &config, &weights, &tokenizer, &extra, false).unwrap();

        let mut files: Vec<String> =
            std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        assert_eq!(
            files,
            ["config.json", EXPORT_MARKER, "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
        );
        assert_eq!(std::fs::read(out.join("tokenizer.json")).unwrap(), tokenizer);

        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut keys: Vec<String> = st.names().into_iter().map(String::from).collect();
        keys.sort();
        assert_eq!(keys, hf_llama_keys(layers, cfg.attention_bias, cfg.tie_word_embeddings), "{what}: keys");
        assert!(st.tensors().iter().all(|(_, v)| v.dtype() == safetensors::Dtype::F32), "{what}: f32 weights");
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(header.metadata().as_ref().and_then(|m| m.get("format")).map(String::as_str), Some("pt"));

        let on_disk: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(on_disk, config);
        for (key, id) in [("bos_token_id", 1), ("eos_token_id", 2), ("pad_token_id", 0)] {
            assert_eq!(on_disk[key], id, "{what}: {key}");
        }

        let ids = test_ids(cfg.vocab_size);
        let diff = max_abs_diff(&logits(&load(&out), &ids), &logits(&reference, &ids));
        eprintln!("{what}: exported HF folder vs source model: max |Δlogit| = {diff:.2e}");
        assert!(diff < F32_TOL, "{what}: the exported folder computes another function ({diff})");
    }
}

#[test]
fn hf_checkpoint_refuses_what_it_should() {
    let dir = temp_dir("export-hf-policy");
    let (cfg, _, weights) = tiny(LLAMA, 9);
    let config = llama_hf_config(&cfg, &IDS).unwrap();

    // A user's folder is replaced only with force; an earlier export is replaced freely.
    let theirs = dir.join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("notes.txt"), "mine").unwrap();
    let e = write_hf_checkpoint(&theirs, &config, &weights, b"{}", &[], false).unwrap_err().to_string();
    assert!(e.contains("--force") && e.contains(EXPORT_MARKER), "{e}");
    assert!(theirs.join("notes.txt").exists(), "a refused export must not touch the folder");
    write_hf_checkpoint(&theirs, &config, &weights, b"{}", &[], true).unwrap();
    assert!(!theirs.join("notes.txt").exists() && theirs.join(EXPORT_MARKER).exists());
    write_hf_checkpoint(&theirs, &config, &weights, b"{}", &[], false).unwrap();

    // A head that contradicts tie_word_embeddings.
    let mut with_head = weights.clone();
    with_head.push(("lm_head.weight".into(), weights[0].1.clone()));
    let e = write_hf_checkpoint(&dir.join("a"), &config, &with_head, b"{}", &[], false).unwrap_err().to_string();
    assert!(e.contains("tie_word_embeddings = true") && e.contains("include"), "{e}");
    // Duplicate keys, and extra files that would clobber ours or leave the folder.
    let mut twice = weights.clone();
    twice.push(weights[1].clone());
    let e = write_hf_checkpoint(&dir.join("b"), &config, &twice, b"{}", &[], false).unwrap_err().to_string();
    assert!(e.contains("twice"), "{e}");
    for name in ["config.json", "../escape.json", "sub/x.json", ".hidden", "model-2.safetensors"] {
        let e = write_hf_checkpoint(&dir.join("c"), &config, &weights, b"{}", &[(name, b"x")], false).unwrap_err();
        assert!(e.to_string().contains("extra files"), "{name}: {e}");
    }
    for name in ["a", "b", "c"] {
        assert!(!dir.join(name).exists(), "a refused export left {name} behind");
    }
}

// ---------------------------------------------------------------------------------------------
// GGUF files

/// test-support's storage for an export type (the same bytes, from candle's quantizers).
fn storage_of(ty: ExportType) -> Storage {
    match ty {
        ExportType::F32 => Storage::F32,
        ExportType::F16 => Storage::Quantized(GgmlDType::F16),
        ExportType::Q8_0 => Storage::Quantized(GgmlDType::Q8_0),
        ExportType::Q4_1 => Storage::Quantized(GgmlDType::Q4_1),
        ExportType::Q4_0 => Storage::Quantized(GgmlDType::Q4_0),
    }
}

fn ggml_type_of(ty: ExportType) -> GgmlType {
    match ty {
        ExportType::F32 => GgmlType::F32,
        ExportType::F16 => GgmlType::F16,
        ExportType::Q8_0 => GgmlType::Q8_0,
        ExportType::Q4_1 => GgmlType::Q4_1,
        ExportType::Q4_0 => GgmlType::Q4_0,
    }
}

/// The largest error a stored value may have, per block of 32 of `x` (a row-major slice whose
/// rows are whole blocks): the quantization step (Q8_0 amax/127, Q4_1 (max-min)/15, Q4_0 amax/8)
/// once, which covers rounding to the nearest level (half a step), Q4_0's clamped top level (a
/// whole step) and the f16 scale's rounding (≤ 2⁻¹¹ relative per unit of q); f16 2⁻¹¹ relative.
fn error_bound(ty: ExportType, x: &[f32]) -> Vec<f32> {
    x.chunks(32)
        .flat_map(|b| {
            let amax = b.iter().fold(0f32, |a, v| a.max(v.abs()));
            let (min, max) = b.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let step = match ty {
                ExportType::F32 | ExportType::F16 => 0.0,
                ExportType::Q8_0 => amax / 127.0,
                ExportType::Q4_1 => (max - min) / 15.0 + min.abs() / 2048.0,
                ExportType::Q4_0 => amax / 8.0 * (1.0 + 8.0 / 2048.0),
            };
            b.iter()
                .map(move |v| if ty == ExportType::F16 { v.abs() / 2048.0 + 6e-8 } else { step })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn gguf_export_in_every_type_reads_back_and_matches_llama_cpp_layout() {
    let (cfg, reference, weights) = tiny(LLAMA, 10);
    let ids = test_ids(cfg.vocab_size);
    let want = logits(&reference, &ids);
    let mut gguf_layout = weights.clone();
    llama_qk_to_gguf(&mut gguf_layout, &cfg).unwrap();
    let dir = temp_dir("export-gguf");
    for ty in ExportType::ALL {
        let path = dir.join(format!("{}.gguf", ty.name()));
        let arch = ArchMetadata::llama("llama", &cfg).unwrap().with_special_ids(&IDS);
        write_gguf(&path, None, &arch, &gguf_layout, llama::gguf_name, ty).unwrap();
        let file = GgufFile::open(&path).unwrap();

        // Names, shapes, types, values.
        let mut expected: Vec<String> = weights.iter().map(|(k, _)| llama::gguf_name(k).unwrap()).collect();
        expected.push("rope_freqs.weight".into());
        expected.sort();
        let mut names: Vec<String> = file.tensors().iter().map(|t| t.name.clone()).collect();
        names.sort();
        assert_eq!(names, expected, "{ty:?}: tensor names");
        for (key, t) in &gguf_layout {
            let info = file.tensor_info(&llama::gguf_name(key).unwrap()).unwrap();
            assert_eq!(info.shape, t.dims(), "{ty:?} {key}: shape");
            let stored_as = if t.rank() == 1 { GgmlType::F32 } else { ggml_type_of(ty) };
            assert_eq!(info.ggml_type, stored_as, "{ty:?} {key}: type");
            let x = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let back = file.tensor(&info.name, &Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let bound = if t.rank() == 1 { vec![0.0; x.len()] } else { error_bound(ty, &x) };
            for (i, ((a, b), e)) in x.iter().zip(&back).zip(&bound).enumerate() {
                assert!((a - b).abs() <= *e, "{ty:?} {key}[{i}]: {a} stored as {b} (bound {e})");
            }
        }
        let meta = |k: &str| file.get(k).cloned();
        assert_eq!(meta("general.file_type"), Some(Value::U32(ty.file_type())));
        assert_eq!(meta("tokenizer.ggml.bos_token_id"), Some(Value::U32(1)));
        assert_eq!(meta("tokenizer.ggml.padding_token_id"), Some(Value::U32(0)));

        // The same bytes and hyperparameters as llama.cpp's layout written independently, so
        // the same logits, bit for bit.
        let reference_path = dir.join(format!("{}-reference.gguf", ty.name()));
        let parts = llama_gguf("llama", &cfg, &as_map(&weights), storage_of(ty), true);
        parts.write(&reference_path);
        let reference_file = GgufFile::open(&reference_path).unwrap();
        for info in reference_file.tensors() {
            let ours = file.tensor_info(&info.name).unwrap();
            assert_eq!((ours.ggml_type, &ours.shape), (info.ggml_type, &info.shape), "{ty:?} {}", info.name);
            assert!(file.tensor_bytes(ours) == reference_file.tensor_bytes(info), "{ty:?} {}: bytes differ", info.name);
        }
        for (k, v) in reference_file.metadata() {
            if k != "general.file_type" {
                assert_eq!(file.get(k), Some(v), "{ty:?}: metadata {k}");
            }
        }
        let got = logits(&load(&path), &ids);
        assert_eq!(
            bits(&got),
            bits(&logits(&load(&reference_path), &ids)),
            "{ty:?}: logits differ from the reference file"
        );
        let diff = max_abs_diff(&got, &want);
        eprintln!("{ty:?}: exported GGUF vs HF model: max |Δlogit| = {diff:.2e}");
        if ty == ExportType::F32 {
            assert!(diff < F32_TOL, "F32 export computes another function ({diff})");
        }
    }
}

#[test]
fn gguf_re_export_copies_the_source_metadata_and_tensors() {
    let (cfg, _, weights) = tiny(LLAMA, 11);
    let dir = temp_dir("export-gguf-source");
    let src_path = dir.join("source.gguf");
    let mut parts = llama_gguf("llama", &cfg, &as_map(&weights), Storage::F32, true);
    parts.set("tokenizer.ggml.model", Value::String("gpt2".into()));
    parts.set(
        "tokenizer.ggml.tokens",
        Value::Array((0..cfg.vocab_size).map(|i| Value::String(format!("t{i}"))).collect()),
    );
    parts.set("tokenizer.chat_template", Value::String("{{ messages }}".into()));
    parts.set("general.name", Value::String("tiny".into()));
    parts.write(&src_path);
    let src = GgufFile::open(&src_path).unwrap();
    // The model's tensors as the source stores them (GGUF layout), by HF key.
    let tensors: Vec<(String, Tensor)> = weights
        .iter()
        .map(|(k, _)| (k.clone(), src.tensor(&llama::gguf_name(k).unwrap(), &Device::Cpu).unwrap()))
        .collect();
    let ids = test_ids(cfg.vocab_size);
    let want = logits(&load(&src_path), &ids);
    for ty in [ExportType::F32, ExportType::Q8_0] {
        let out = dir.join(format!("out-{}.gguf", ty.name()));
        write_gguf(&out, Some(&src), &ArchMetadata::default(), &tensors, llama::gguf_name, ty).unwrap();
        let file = GgufFile::open(&out).unwrap();
        for (k, v) in src.metadata() {
            if k != "general.file_type" {
                assert_eq!(file.get(k), Some(v), "{ty:?}: metadata {k} not copied");
            }
        }
        assert_eq!(file.get("general.file_type"), Some(&Value::U32(ty.file_type())));
        // rope_freqs.weight is not among the given tensors: copied as stored.
        let rope = file.tensor_info("rope_freqs.weight").unwrap();
        assert_eq!(file.tensor_bytes(rope), src.tensor_bytes(src.tensor_info("rope_freqs.weight").unwrap()));
        assert_eq!(file.tensors().len(), src.tensors().len());
        let got = logits(&load(&out), &ids);
        if ty == ExportType::F32 {
            for info in src.tensors() {
                assert!(
                    file.tensor_bytes(file.tensor_info(&info.name).unwrap()) == src.tensor_bytes(info),
                    "{}",
                    info.name
                );
            }
            assert_eq!(bits(&got), bits(&want), "an F32 re-export must compute exactly what its source does");
        } else {
            // Relative to max |logit|, as gguf_models.rs measures Q8_0 (0.019 there, tolerance 0.04).
            let max_logit = max_abs_diff(&want, &want.zeros_like().unwrap());
            let rel = max_abs_diff(&got, &want) / max_logit;
            eprintln!("Q8_0 re-export vs F32 source: max |Δlogit| = {rel:.3} of max |logit| {max_logit:.2}");
            assert!(rel < 0.04, "Q8_0 re-export is far from its source ({rel} of max |logit|)");
        }
    }
    // Metadata given on top replaces the source's.
    let mut arch = ArchMetadata::default().with_special_ids(&IDS);
    arch.set("general.name", Value::String("merged".into()));
    let out = dir.join("renamed.gguf");
    write_gguf(&out, Some(&src), &arch, &tensors, llama::gguf_name, ExportType::F32).unwrap();
    let file = GgufFile::open(&out).unwrap();
    assert_eq!(file.get_str("general.name").unwrap(), Some("merged"));
    assert_eq!(file.get_u64("tokenizer.ggml.eos_token_id").unwrap(), Some(2));
}

#[test]
fn gguf_export_falls_back_and_refuses_as_documented() {
    let dir = temp_dir("export-gguf-edges");
    let (cfg, _, weights) = tiny(LLAMA, 12);
    let arch = ArchMetadata::llama("llama", &cfg).unwrap();
    // Rows that are not whole 32-wide blocks fall back to F16, as llama.cpp's converter does.
    let odd = Tensor::ones((3, 40), candle_core::DType::F32, &Device::Cpu).unwrap();
    let path = dir.join("odd.gguf");
    write_gguf(
        &path,
        None,
        &arch,
        &[("model.layers.0.mlp.down_proj.weight".into(), odd)],
        llama::gguf_name,
        ExportType::Q4_0,
    )
    .unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.tensor_info("blk.0.ffn_down.weight").unwrap().ggml_type, GgmlType::F16);

    let err = |tensors: &[(String, Tensor)], arch: &ArchMetadata| {
        write_gguf(&dir.join("bad.gguf"), None, arch, tensors, llama::gguf_name, ExportType::Q8_0)
            .unwrap_err()
            .to_string()
    };
    let mut nan = weights.clone();
    nan[3].1 = (&nan[3].1 * f64::NAN).unwrap();
    let e = err(&nan, &arch);
    assert!(e.contains(&llama::gguf_name(&nan[3].0).unwrap()) && e.contains("NaN"), "{e}");
    let e = err(&[("model.layers.0.mystery.weight".into(), weights[0].1.clone())], &arch);
    assert!(e.contains("mystery") && e.contains("no GGUF name"), "{e}");
    let e = err(&weights, &ArchMetadata::default());
    assert!(e.contains("general.architecture"), "{e}");
    let mut twice = weights.clone();
    twice.push(weights[0].clone());
    assert!(err(&twice, &arch).contains("twice"));
    assert!(!dir.join("bad.gguf").exists(), "a refused export left a file behind");

    assert_eq!(ExportType::from_name("Q4_1"), Some(ExportType::Q4_1));
    assert_eq!(ExportType::from_name("q5_k"), None);
}
