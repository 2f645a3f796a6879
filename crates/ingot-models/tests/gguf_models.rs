//! GGUF parity: the model code that runs an HF-layout model (a VarMap with HF key names) also
//! loads a GGUF file laid out the way llama.cpp's `convert_hf_to_gguf.py` writes it, and computes
//! the same function.
//!
//! Each test builds a tiny seeded random model from an HF config and converts its weights with
//! llama.cpp's conventions, as ingot-test-support's `gguf` module writes them from the converter
//! and gguf-py's `tensor_mapping.py`, not from Ingot's own name tables:
//!   - llama: `blk.N.attn_q.weight` etc.; q/k rows permuted within each head (the converter's
//!     `permute`), which is why Ingot runs interleaved RoPE on GGUF llama files; Llama 3 rope
//!     scaling stored as the `rope_freqs.weight` tensor; `output.weight` absent when tied.
//!   - qwen2: the same names plus q/k/v biases, q/k not permuted (NeoX RoPE).
//!   - gpt2: HF's Conv1D weights (in, out) transposed to (out, in).
//!
//! It then loads the file with `ingot_models::load` and compares logits on a fixed 11-token
//! sequence. Quantized files (Q8_0, Q4_1, Q4_0 through Ingot's fused kernel, Q4_K through
//! candle's) are compared with the f32 model and with an f32 file of the same dequantized weights;
//! broken files must load as clear errors, not panics.
//!
//! Dimension legend: T positions, C hidden size, H query heads, K key/value heads, D head dim,
//! F MLP width, V vocabulary.

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor, D};
use ingot_core::gguf::Value;
use ingot_models::{LlamaConfig, Model};
use ingot_test_support::gguf::{gpt2_gguf, llama_gguf, GgufParts, Storage};
use ingot_test_support::models::{config as parse, hf_weights, random_model, GPT2, LLAMA, LLAMA_K_QUANT, QWEN2};
use ingot_test_support::temp_dir;

// The tiny configs (ingot-test-support's `models`): LLAMA has 3 layers, 6 query heads over 2 kv
// heads (D = 16), tied embeddings and Llama 3 rope scaling, C = 96 and F = 160 (multiples of 32,
// the Q8_0/Q4_0/Q4_1 block size); LLAMA_K_QUANT has C = 256 and F = 512 for Q4_K's 256-wide
// blocks; QWEN2 has q/k/v biases and an untied head; GPT2 has 2 layers of 4 heads.

// ---------------------------------------------------------------------------------------------
// Running and comparing
// ---------------------------------------------------------------------------------------------

/// Write `g`, load it as a model, delete the file (the model holds its own copies of the data:
/// F32 tensors are dequantized, quantized ones copied into QTensor storage).
fn load_gguf(g: &GgufParts, name: &str) -> Model {
    let dir = temp_dir(name);
    let path = dir.join(format!("{name}.gguf"));
    g.write(&path);
    let loaded = ingot_models::load(&path, &Device::Cpu);
    drop(dir);
    match loaded {
        Ok((model, files)) => {
            assert!(files.gguf.is_some(), "{name}: loaded as something other than GGUF");
            model
        }
        Err(e) => panic!("{name}: loading the GGUF failed: {e}"),
    }
}

/// Write `g` and load it, expecting an error; its message.
fn load_error(g: &GgufParts, name: &str) -> String {
    let dir = temp_dir(name);
    let path = dir.join(format!("{name}.gguf"));
    g.write(&path);
    let loaded = ingot_models::load(&path, &Device::Cpu);
    drop(dir);
    match loaded {
        Ok(_) => panic!("{name}: a broken GGUF loaded without error"),
        Err(e) => {
            eprintln!("{name}: {e}");
            e.to_string()
        }
    }
}

/// The fixed 11-token test sequence.
fn test_ids(vocab: usize) -> Vec<u32> {
    (0..11).map(|i| ((i * 37 + 11) % vocab) as u32).collect()
}

/// ids (T) → logits (1, T, V)
fn logits(model: &Model, ids: &[u32]) -> Tensor {
    let input = Tensor::new(ids, &Device::Cpu).unwrap().unsqueeze(0).unwrap(); // (1, T)
    model.forward(&input, None).unwrap()
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// Positions (of T) whose most likely next token is the same in both (1, T, V) logits.
fn argmax_agreement(a: &Tensor, b: &Tensor) -> usize {
    let am = a.argmax(D::Minus1).unwrap().flatten_all().unwrap().to_vec1::<u32>().unwrap();
    let bm = b.argmax(D::Minus1).unwrap().flatten_all().unwrap().to_vec1::<u32>().unwrap();
    am.iter().zip(&bm).filter(|(x, y)| x == y).count()
}

/// Cached decoding (prefill 4 tokens, then one at a time) against the model's own full forward
/// `full` (1, T, V); returns the largest difference.
fn cached_decode_diff(model: &Model, ids: &[u32], full: &Tensor) -> f32 {
    let mut cache = model.new_cache();
    let mut worst = 0f32;
    let mut pos = 0;
    for chunk in std::iter::once(4).chain(std::iter::repeat_n(1, ids.len() - 4)) {
        let input = Tensor::new(&ids[pos..pos + chunk], &Device::Cpu).unwrap().unsqueeze(0).unwrap(); // (1, chunk)
        let got = model.forward(&input, Some(&mut cache)).unwrap(); // (1, chunk, V)
        worst = worst.max(max_abs_diff(&got, &full.narrow(1, pos, chunk).unwrap()));
        pos += chunk;
        assert_eq!(cache.len(), pos);
    }
    worst
}

/// Storage of the output head ("F32", "Q8_0 (ingot kernel)", "Q4K", ...), to check which kernel
/// a test exercised.
fn head_storage(model: &Model) -> String {
    match model {
        Model::Llama(m) => m.lm_head().storage_name(),
        Model::Gpt2(m) => m.lm_head().storage_name(),
    }
}

// Tolerance for f32-vs-f32 comparisons. The VarMap model tracks gradients and so runs candle's
// composed norm/softmax/RoPE, the GGUF model its fused kernels, with q/k rows in another order:
// the same maths with sums in a different order. Logits are O(1) here; measured differences are
// around 1e-6, so 1e-4 is loose for rounding but far below any wiring mistake (the unpermuted
// llama file below is off by more than 0.01).
const F32_TOL: f32 = 1e-4;

// ---------------------------------------------------------------------------------------------
// 1. f32 GGUF files compute the HF model's function
// ---------------------------------------------------------------------------------------------

#[test]
fn llama_f32_gguf_matches_hf_model() {
    let hf = parse(LLAMA);
    let cfg = hf.llama("test").unwrap();
    let (reference, varmap) = random_model(&hf, 1);
    let weights = hf_weights(&varmap);
    let ids = test_ids(cfg.vocab_size);
    let want = logits(&reference, &ids); // (1, T, V)

    let parts = llama_gguf("llama", &cfg, &weights, Storage::F32, true);
    assert!(!parts.tensors.iter().any(|(n, _)| n == "output.weight"), "tied model: no output.weight");
    assert!(parts.tensors.iter().any(|(n, _)| n == "rope_freqs.weight"), "Llama 3 scaling is stored as rope_freqs");
    let model = load_gguf(&parts, "llama-f32");
    let got = logits(&model, &ids);
    let diff = max_abs_diff(&got, &want);
    eprintln!("llama f32: GGUF vs HF max |Δlogit| = {diff:.2e} (max |logit| {:.2})", max_abs(&want));
    assert!(diff < F32_TOL, "llama: GGUF and HF-layout logits differ by {diff}");

    let cached = cached_decode_diff(&model, &ids, &got);
    assert!(cached < F32_TOL, "llama GGUF: cached decode differs from full forward by {cached}");

    // Not vacuous: without the converter's permutation the file is a different model (RoPE
    // pairs the wrong dimensions), so the comparison above really checks the layout.
    let unpermuted = load_gguf(&llama_gguf("llama", &cfg, &weights, Storage::F32, false), "llama-unpermuted");
    let wrong = max_abs_diff(&logits(&unpermuted, &ids), &want);
    eprintln!("llama f32, q/k not permuted: max |Δlogit| = {wrong:.2e}");
    assert!(wrong > 1e-2, "unpermuted q/k should change the logits, changed them by only {wrong}");
}

#[test]
fn qwen2_f32_gguf_matches_hf_model() {
    let hf = parse(QWEN2);
    let cfg = hf.llama("test").unwrap();
    assert!(cfg.attention_bias && !cfg.tie_word_embeddings);
    let (reference, varmap) = random_model(&hf, 2);
    let weights = hf_weights(&varmap);
    let ids = test_ids(cfg.vocab_size);
    let want = logits(&reference, &ids);

    let parts = llama_gguf("qwen2", &cfg, &weights, Storage::F32, false);
    for name in ["output.weight", "blk.1.attn_q.bias", "blk.1.attn_k.bias", "blk.1.attn_v.bias"] {
        assert!(parts.tensors.iter().any(|(n, _)| n == name), "qwen2 file should hold {name}");
    }
    let model = load_gguf(&parts, "qwen2-f32");
    let got = logits(&model, &ids);
    let diff = max_abs_diff(&got, &want);
    eprintln!("qwen2 f32: GGUF vs HF max |Δlogit| = {diff:.2e} (max |logit| {:.2})", max_abs(&want));
    assert!(diff < F32_TOL, "qwen2: GGUF and HF-layout logits differ by {diff}");

    let cached = cached_decode_diff(&model, &ids, &got);
    assert!(cached < F32_TOL, "qwen2 GGUF: cached decode differs from full forward by {cached}");
}

#[test]
fn gpt2_f32_gguf_matches_hf_model() {
    let hf = parse(GPT2);
    let (reference, varmap) = random_model(&hf, 3);
    let weights = hf_weights(&varmap);
    let ids = test_ids(reference.vocab_size());
    let want = logits(&reference, &ids);

    let parts = gpt2_gguf(&hf, &weights);
    assert_eq!(parts.tensors.len(), weights.len(), "every HF weight has a GGUF tensor");
    let model = load_gguf(&parts, "gpt2-f32");
    assert_eq!(model.vocab_size(), 89, "vocabulary size from token_embd's rows");
    let got = logits(&model, &ids);
    let diff = max_abs_diff(&got, &want);
    eprintln!("gpt2 f32: GGUF vs HF max |Δlogit| = {diff:.2e} (max |logit| {:.2})", max_abs(&want));
    assert!(diff < F32_TOL, "gpt2: GGUF and HF-layout logits differ by {diff}");

    let cached = cached_decode_diff(&model, &ids, &got);
    assert!(cached < F32_TOL, "gpt2 GGUF: cached decode differs from full forward by {cached}");
}

// ---------------------------------------------------------------------------------------------
// 2. Quantized llama files
// ---------------------------------------------------------------------------------------------

/// What a quantized file must satisfy.
struct QuantCheck {
    dtype: GgmlDType,
    config: &'static str,
    /// Expected `storage_name` of the output head: which kernel runs.
    head_storage: &'static str,
    /// Against an f32 file of the same dequantized weights: only kernel arithmetic differs.
    kernel_tol: f32,
    /// Against the f32 HF model, as a fraction of max |logit|: the weights' quantization error.
    rel_tol: f32,
    /// Positions (of 11) whose argmax must agree with the f32 HF model.
    min_argmax_agree: usize,
}

fn check_quantized(c: QuantCheck) {
    let hf = parse(c.config);
    let cfg = hf.llama("test").unwrap();
    let (reference, varmap) = random_model(&hf, 4);
    let weights = hf_weights(&varmap);
    let ids = test_ids(cfg.vocab_size);
    let want = logits(&reference, &ids); // (1, T, V)
    let scale = max_abs(&want);

    let name = format!("{:?}", c.dtype);
    let quant = load_gguf(&llama_gguf("llama", &cfg, &weights, Storage::Quantized(c.dtype), true), &name);
    assert_eq!(head_storage(&quant), c.head_storage, "{name}: unexpected kernel for the tied output head");
    let dequant = load_gguf(
        &llama_gguf("llama", &cfg, &weights, Storage::Dequantized(c.dtype), true),
        &format!("{name}-dequant"),
    );
    let got = logits(&quant, &ids);

    let kernel = max_abs_diff(&got, &logits(&dequant, &ids));
    let rel = max_abs_diff(&got, &want) / scale;
    let agree = argmax_agreement(&got, &want);
    // Prefill of 4 and single tokens run the fused kernel (≤ 8 rows); the 11-token forward
    // dequantizes and runs a GEMM: the two must agree as closely as two f32 paths do.
    let cached = cached_decode_diff(&quant, &ids, &got);
    eprintln!(
        "{name}: vs dequantized f32 {kernel:.2e}; vs HF f32 {rel:.4} of max |logit| {scale:.2}; argmax {agree}/11; cached vs full {cached:.2e}"
    );
    assert!(
        kernel < c.kernel_tol,
        "{name}: quantized vs dequantized-f32 logits differ by {kernel} (tolerance {})",
        c.kernel_tol
    );
    assert!(
        rel < c.rel_tol,
        "{name}: logits differ from the f32 model by {rel} of max |logit| (tolerance {})",
        c.rel_tol
    );
    assert!(agree >= c.min_argmax_agree, "{name}: argmax agrees with the f32 model at only {agree} of 11 positions");
    assert!(cached < c.kernel_tol, "{name}: cached decode differs from full forward by {cached}");
}

// Tolerances, from the quantization error and checked against measurement (seeded data, so the
// numbers below are reproducible; only summation order can vary across CPUs).
//
// Weights are uniform in ±0.15 (RMS 0.087). Each block of 32 is rounded with a step of
// max|w|/127 for Q8_0 (≈0.0012), max|w|/8 for Q4_0 and (max-min)/15 for Q4_1 (≈0.019 and 0.020);
// rounding error is uniform, RMS step/√12: ≈0.4% of the weights' RMS for Q8_0, ≈6.5% for the
// 4-bit formats, a ratio of ~17. Those relative errors pass through each matmul and accumulate over
// 3 layers; the largest of the 11·101 logit errors is several times the typical one.
//
// rel_tol (max |Δlogit| against the f32 HF model, over max |logit|): measured 0.019 for Q8_0,
// 0.26 / 0.34 for Q4_1 / Q4_0 (ratio 13-18, as predicted), 0.28 for Q4_K (C = 256). Tolerances
// are ~2x those. The 4-bit bounds are loose by nature (q/k left unpermuted moves logits by ~0.5 of
// max |logit|, within them); what pins those files down is the chain: quantized file = f32 file of
// its dequantized weights (kernel_tol, below), and f32 files = HF model (test 1, F32_TOL).
//
// kernel_tol (max |Δlogit| against an f32 file of the same dequantized weights): Ingot's kernel
// keeps activations in f32, so only rounding differs. Measured: exactly 0 for the 11-token
// forward (it dequantizes and runs the same GEMM) and ~3e-6 for the fused decode path (checked by
// the cached-decode comparison), so F32_TOL. For contrast, candle's path, which rounds the
// activations to 8 bits first, is off by 0.04-0.05 on these Q8_0/Q4 files
// (INGOT_CANDLE_QMATMUL=1), so this tolerance tells the two kernels apart. Q4_K has no Ingot
// kernel and goes through candle: measured 0.15 on max |logit| 5.0 (8-bit Q8_K activations with
// one scale per 256 values); tolerance 0.3.

#[test]
fn llama_q8_0_gguf_is_close_to_hf_model() {
    check_quantized(QuantCheck {
        dtype: GgmlDType::Q8_0,
        config: LLAMA,
        head_storage: "Q8_0 (ingot kernel)",
        kernel_tol: F32_TOL,
        rel_tol: 0.04,
        min_argmax_agree: 10, // measured 11/11
    });
}

#[test]
fn llama_q4_1_gguf_is_close_to_hf_model() {
    check_quantized(QuantCheck {
        dtype: GgmlDType::Q4_1,
        config: LLAMA,
        head_storage: "Q4_1 (ingot kernel)",
        kernel_tol: F32_TOL,
        rel_tol: 0.5,
        min_argmax_agree: 6, // measured 8/11: random logits have close runners-up
    });
}

#[test]
fn llama_q4_0_gguf_is_close_to_hf_model() {
    check_quantized(QuantCheck {
        dtype: GgmlDType::Q4_0,
        config: LLAMA,
        head_storage: "Q4_0 (ingot kernel)",
        kernel_tol: F32_TOL,
        rel_tol: 0.6,
        min_argmax_agree: 6, // measured 7/11
    });
}

#[test]
fn llama_q4_k_gguf_is_close_to_hf_model() {
    check_quantized(QuantCheck {
        dtype: GgmlDType::Q4K,
        config: LLAMA_K_QUANT,
        head_storage: "Q4K",
        kernel_tol: 0.3,
        rel_tol: 0.5,
        min_argmax_agree: 6, // measured 7/11
    });
}

// ---------------------------------------------------------------------------------------------
// 3. Broken files are errors that say what is wrong
// ---------------------------------------------------------------------------------------------

/// A valid tiny llama GGUF's parts, to break.
fn llama_parts() -> (GgufParts, LlamaConfig) {
    let hf = parse(LLAMA);
    let cfg = hf.llama("test").unwrap();
    let (_, varmap) = random_model(&hf, 5);
    (llama_gguf("llama", &cfg, &hf_weights(&varmap), Storage::F32, true), cfg)
}

#[test]
fn wrong_embedding_length_names_tensor_and_both_shapes() {
    let (mut parts, cfg) = llama_parts();
    // Metadata says C = 64 while the tensors are C = 96. Keep D = 16 so the heads stay consistent.
    parts.set("llama.embedding_length", Value::U32(64));
    let err = load_error(&parts, "wrong-embedding-length");
    let (v, c) = (cfg.vocab_size, cfg.hidden_size);
    for needle in ["token_embd.weight", &format!("[{v}, {c}]"), &format!("[{v}, 64]")] {
        assert!(err.contains(needle), "error should mention {needle}: {err}");
    }
}

#[test]
fn wrong_feed_forward_length_names_tensor_and_both_shapes() {
    let (mut parts, cfg) = llama_parts();
    parts.set("llama.feed_forward_length", Value::U32(128));
    let err = load_error(&parts, "wrong-ffn-length");
    let c = cfg.hidden_size;
    for needle in ["blk.0.ffn_gate.weight", &format!("[{}, {c}]", cfg.intermediate_size), &format!("[128, {c}]")] {
        assert!(err.contains(needle), "error should mention {needle}: {err}");
    }
}

#[test]
fn missing_tensor_is_named() {
    let (mut parts, _) = llama_parts();
    parts.remove_tensor("blk.0.ffn_up.weight");
    let err = load_error(&parts, "missing-ffn-up");
    assert!(err.contains("blk.0.ffn_up.weight"), "error should name the missing tensor: {err}");
}

#[test]
fn zero_heads_is_an_error() {
    let (mut parts, _) = llama_parts();
    parts.set("llama.attention.head_count", Value::U32(0));
    let err = load_error(&parts, "zero-heads");
    assert!(err.contains("0 attention heads"), "error should give the head count: {err}");
}

#[test]
fn kv_heads_not_dividing_heads_is_an_error() {
    let (mut parts, _) = llama_parts();
    // 6 query heads cannot be shared evenly by 4 kv heads.
    parts.set("llama.attention.head_count_kv", Value::U32(4));
    let err = load_error(&parts, "kv-heads-not-dividing");
    assert!(
        err.contains("6 attention heads") && err.contains("4 key/value heads"),
        "error should give both counts: {err}"
    );

    parts.set("llama.attention.head_count_kv", Value::U32(0));
    let err = load_error(&parts, "zero-kv-heads");
    assert!(err.contains("0 key/value heads"), "error should give the kv head count: {err}");
}

#[test]
fn gpt2_zero_heads_is_an_error() {
    let hf = parse(GPT2);
    let (_, varmap) = random_model(&hf, 6);
    let mut parts = gpt2_gguf(&hf, &hf_weights(&varmap));
    parts.set("gpt2.attention.head_count", Value::U32(0));
    let err = load_error(&parts, "gpt2-zero-heads");
    assert!(err.contains("0 attention heads"), "error should give the head count: {err}");
}

/// A corrupt or hostile context_length must be an error. Today `Rope::new` sizes its cos/sin tables
/// as context_length × D/2 up front and panics ("capacity overflow"); smaller absurd values
/// (~2^32) abort the process on allocation failure instead, so this uses 2^60 to stay catchable.
#[test]

fn huge_context_length_is_an_error() {
    let (mut parts, _) = llama_parts();
    parts.set("llama.context_length", Value::U64(1 << 60));
    let err = load_error(&parts, "huge-context-length");
    assert!(err.contains("context"), "error should name the context length: {err}");
}
