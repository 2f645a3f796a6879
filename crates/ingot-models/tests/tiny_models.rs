//! Tiny random models of each architecture: the KV-cached path must match full recomputation,
//! every parameter must receive a gradient, and HF-style weights must round-trip through
//! safetensors.

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};
use ingot_models::{from_hf_config, HfConfig, Model};
use ingot_nn::Weights;
use ingot_test_support::models::{config, GPT2, LLAMA, QWEN2};
use ingot_test_support::temp_dir;

/// The shared tiny configs (ingot-test-support): llama with GQA and Llama 3 rope scaling, tied;
/// Qwen2 with q/k/v biases, untied; GPT-2.
fn tiny_config(arch: &str) -> HfConfig {
    config(match arch {
        "llama" => LLAMA,
        "qwen2" => QWEN2,
        "gpt2" => GPT2,
        other => panic!("no tiny config for {other}"),
    })
}

/// A seeded random model of `arch` (test-support's generator: norms near 1, non-zero biases).
fn random_model(arch: &str, seed: u64) -> (Model, VarMap) {
    ingot_test_support::random_model(&tiny_config(arch), seed)
}

fn ids(n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 37 + 11) % vocab) as u32).collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// Cached decoding (prefill 5 tokens, then chunks of 1 and 3) gives the same logits as one full
/// forward pass over the whole sequence, within 1e-4 (f32 sums in a different order).
fn check_cache_matches_full(model_type: &str) {
    let (model, _vars) = random_model(model_type, 1);
    let seq = ids(17, model.vocab_size());
    let dev = Device::Cpu;
    let full = model.forward(&Tensor::new(seq.as_slice(), &dev).unwrap().unsqueeze(0).unwrap(), None).unwrap();
    let mut cache = model.new_cache();
    let mut pos = 0;
    for chunk in [5, 1, 1, 3, 1, 6] {
        let input = Tensor::new(&seq[pos..pos + chunk], &dev).unwrap().unsqueeze(0).unwrap();
        let got = model.forward(&input, Some(&mut cache)).unwrap();
        let want = full.narrow(1, pos, chunk).unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-4, "{model_type}: positions {pos}..{}: cached vs full differ by {diff}", pos + chunk);
        pos += chunk;
        assert_eq!(cache.len(), pos);
    }
    // The last-position shortcut agrees too.
    let mut cache = model.new_cache();
    let last = model
        .forward_last(&Tensor::new(seq.as_slice(), &dev).unwrap().unsqueeze(0).unwrap(), Some(&mut cache))
        .unwrap();
    let want = full.narrow(1, seq.len() - 1, 1).unwrap().squeeze(1).unwrap();
    assert!(max_abs_diff(&last, &want) < 1e-4);
}

#[test]
fn kv_cache_matches_full_recompute_llama() {
    check_cache_matches_full("llama");
}

#[test]
fn kv_cache_matches_full_recompute_qwen2() {
    check_cache_matches_full("qwen2");
}

#[test]
fn kv_cache_matches_full_recompute_gpt2() {
    check_cache_matches_full("gpt2");
}

/// Causality: changing a later token must not change earlier logits.
#[test]
fn attention_is_causal() {
    for arch in ["llama", "gpt2"] {
        let (model, _vars) = random_model(arch, 2);
        let dev = Device::Cpu;
        let mut a = ids(9, model.vocab_size());
        let la = model.forward(&Tensor::new(a.as_slice(), &dev).unwrap().unsqueeze(0).unwrap(), None).unwrap();
        a[6] = (a[6] + 1) % model.vocab_size() as u32;
        let lb = model.forward(&Tensor::new(a.as_slice(), &dev).unwrap().unsqueeze(0).unwrap(), None).unwrap();
        assert!(max_abs_diff(&la.narrow(1, 0, 6).unwrap(), &lb.narrow(1, 0, 6).unwrap()) < 1e-6, "{arch}");
        assert!(max_abs_diff(&la.narrow(1, 6, 3).unwrap(), &lb.narrow(1, 6, 3).unwrap()) > 1e-4, "{arch}");
    }
}

/// Fused candle kernels have no backward (CANDLE-NOTES trap 1): every trainable parameter must
/// get a non-zero gradient from a cross-entropy loss.
#[test]
fn every_parameter_gets_a_gradient() {
    for arch in ["llama", "qwen2", "gpt2"] {
        let (model, varmap) = random_model(arch, 3);
        let dev = Device::Cpu;
        let seq = ids(12, model.vocab_size());
        let input = Tensor::new(&seq[..11], &dev).unwrap().unsqueeze(0).unwrap();
        let target = Tensor::new(&seq[1..], &dev).unwrap();
        let logits = model.forward(&input, None).unwrap().squeeze(0).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &target).unwrap();
        let grads = loss.backward().unwrap();
        let data = varmap.data().lock().unwrap();
        assert!(!data.is_empty());
        for (name, var) in data.iter() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{arch}: no gradient for {name}"));
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 0.0 && norm.is_finite(), "{arch}: gradient of {name} has norm {norm}");
        }
    }
}

/// An untrained model predicts roughly uniformly: loss ≈ ln(vocab).
#[test]
fn untrained_loss_is_about_ln_vocab() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let model = from_hf_config(&tiny_config("gpt2"), &Weights::from_var_builder(vb), "test").unwrap();
    let seq = ids(33, model.vocab_size());
    let logits = model.forward(&Tensor::new(&seq[..32], &dev).unwrap().unsqueeze(0).unwrap(), None).unwrap();
    let loss =
        candle_nn::loss::cross_entropy(&logits.squeeze(0).unwrap(), &Tensor::new(&seq[1..], &dev).unwrap()).unwrap();
    let loss = loss.to_scalar::<f32>().unwrap();
    let expected = (model.vocab_size() as f32).ln();
    assert!((loss - expected).abs() < 0.15, "loss {loss}, ln(vocab) {expected}");
}

/// Weights saved as safetensors with HF key names load back into an identical model.
#[test]
fn safetensors_round_trip() {
    let (model, varmap) = random_model("llama", 4);
    let dir = temp_dir("safetensors-round-trip");
    varmap.save(dir.join("model.safetensors")).unwrap();
    let w = Weights::from_safetensors(&[dir.join("model.safetensors")], &Device::Cpu).unwrap();
    let loaded = from_hf_config(&tiny_config("llama"), &w, "test").unwrap();
    let input = Tensor::new(ids(7, 101).as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let a = model.forward(&input, None).unwrap();
    let b = loaded.forward(&input, None).unwrap();
    // The VarMap model tracks gradients and so runs the composed norm/softmax/rope; the loaded one
    // runs candle's fused kernels. Same maths, different summation order: agree to 1e-5.
    let diff = max_abs_diff(&a, &b);
    assert!(diff < 1e-5, "fused vs composed paths differ by {diff}");
    assert!(a.max_keepdim(D::Minus1).is_ok());
    // A checkpoint missing a weight is a clear error naming it.
    let missing = VarMap::new();
    let _ = Var::zeros(1, DType::F32, &Device::Cpu);
    missing.save(dir.join("model.safetensors")).unwrap();
    let w = Weights::from_safetensors(&[dir.join("model.safetensors")], &Device::Cpu).unwrap();
    let err = from_hf_config(&tiny_config("llama"), &w, "test").err().unwrap().to_string();
    assert!(err.contains("model.embed_tokens.weight"), "{err}");
}

/// Prompt longer than the context is an input error, not a panic.
#[test]
fn too_long_input_is_an_error() {
    let (model, _vars) = random_model("gpt2", 6);
    let seq = ids(65, model.vocab_size());
    let err =
        model.forward(&Tensor::new(seq.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap(), None).err().unwrap();
    assert!(err.to_string().contains("exceeds the model's context length of 64"), "{err}");
}
