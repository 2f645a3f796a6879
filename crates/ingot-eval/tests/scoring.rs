//! Log-likelihood and perplexity on tiny random models, against plain forward passes.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use ingot_eval::loglik::{score_continuations, score_continuations_naive, score_requests};
use ingot_eval::perplexity;
use ingot_models::Model;
use ingot_nn::{SeededVarMap, Weights};

fn tiny(kind: &str, seed: u64) -> Model {
    let json = match kind {
        "gpt2" => r#"{"model_type":"gpt2","vocab_size":41,"n_positions":48,"n_embd":16,"n_layer":2,"n_head":2}"#,
        _ => {
            r#"{"model_type":"llama","vocab_size":41,"hidden_size":16,"intermediate_size":24,"num_hidden_layers":2,
               "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":48}"#
        }
    };
    let cfg: ingot_models::HfConfig = serde_json::from_str(json).unwrap();
    let seeded = SeededVarMap::new(VarMap::new(), seed);
    let w = Weights::from_var_builder(seeded.var_builder(&Device::Cpu));
    let model = ingot_models::from_hf_config(&cfg, &w, "test").unwrap();
    // Larger weights than the 0.02 init, so the predictions are far from uniform.
    for var in seeded.var_map().all_vars() {
        let scaled = (var.as_tensor() * 8.0).unwrap();
        var.set(&scaled).unwrap();
    }
    model
}

fn ids(n: usize, mul: usize, add: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * mul + add) % 41) as u32).collect()
}

/// Σ log_softmax(forward(context ++ cont))[positions] with candle's own log_softmax.
fn reference(model: &Model, context: &[u32], cont: &[u32]) -> f64 {
    let all: Vec<u32> = context.iter().chain(cont).copied().collect();
    let x = Tensor::new(all.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let logits = model.forward(&x, None).unwrap().squeeze(0).unwrap().to_dtype(DType::F64).unwrap();
    let logp = candle_nn::ops::log_softmax(&logits, 1).unwrap().to_vec2::<f64>().unwrap();
    cont.iter().enumerate().map(|(j, &t)| logp[context.len() - 1 + j][t as usize]).sum()
}

#[test]
fn shared_prefix_scores_equal_plain_forward_passes() {
    for kind in ["gpt2", "llama"] {
        let model = tiny(kind, 11);
        let context = ids(13, 7, 3);
        let conts = vec![ids(1, 1, 5), ids(4, 3, 1), ids(7, 5, 2), ids(2, 9, 9)];
        let fast = score_continuations(&model, &context, &conts, &Device::Cpu).unwrap();
        let naive = score_continuations_naive(&model, &context, &conts, &Device::Cpu).unwrap();
        for ((f, n), c) in fast.iter().zip(&naive).zip(&conts) {
            let r = reference(&model, &context, c);
            // f32 logits, f64 sums: agreement to f32 rounding, 1e-5 of the score (at least 1e-4):
            // the paths run different kernels (a cached prefix takes the composed attention, a
            // whole sequence the fused one), and these random weights make logits of ~30.
            let tol = 1e-5 * r.abs().max(10.0);
            assert!((f.logprob - n.logprob).abs() < tol, "{kind}: shared {} vs naive {}", f.logprob, n.logprob);
            assert!((f.logprob - r).abs() < tol, "{kind}: shared {} vs log_softmax reference {r}", f.logprob);
            assert_eq!(f.is_greedy, n.is_greedy);
            assert_eq!(f.n_tokens, c.len());
        }
        // Different continuations score differently (the comparison above can fail).
        assert!((fast[1].logprob - fast[2].logprob).abs() > 1e-3);
    }
}

/// Requests with different contexts (WinoGrande's partial scoring: the option is in the context)
/// and different lengths: the shared token prefix runs once and the rest as a right-padded batch.
/// Each score must equal its own plain forward pass.
#[test]
fn batched_requests_with_different_contexts_equal_plain_forward_passes() {
    for kind in ["gpt2", "llama"] {
        let model = tiny(kind, 5);
        let stem = ids(9, 7, 3);
        let with = |tail: &[u32]| stem.iter().chain(tail).copied().collect::<Vec<u32>>();
        let requests = vec![
            (with(&[4]), ids(6, 3, 1)),
            (with(&[8, 9, 10]), ids(6, 3, 1)),
            (with(&[]), ids(1, 1, 2)),    // context = the shared prefix, one-token continuation
            (ids(5, 2, 7), ids(3, 5, 5)), // starts with another token: no common prefix at all
        ];
        assert_ne!(requests[3].0[0], stem[0]);
        // With no common prefix every request runs on its own.
        let scores = score_requests(&model, &requests, &Device::Cpu).unwrap();
        for ((ctx, cont), s) in requests.iter().zip(&scores) {
            let r = reference(&model, ctx, cont);
            // As above: f32 rounding, 1e-5 of the score (at least 1e-4).
            assert!((s.logprob - r).abs() < 1e-5 * r.abs().max(10.0), "{kind}: batched {} vs reference {r}", s.logprob);
        }
        // Without the unrelated request the prefix of 9 tokens is shared.
        let scores = score_requests(&model, &requests[..3], &Device::Cpu).unwrap();
        for ((ctx, cont), s) in requests.iter().zip(&scores) {
            let r = reference(&model, ctx, cont);
            // As above: f32 rounding, 1e-5 of the score (at least 1e-4).
            assert!((s.logprob - r).abs() < 1e-5 * r.abs().max(10.0), "{kind}: batched {} vs reference {r}", s.logprob);
        }
        assert!((scores[0].logprob - scores[1].logprob).abs() > 1e-3);
    }
}

/// The same on the real default model (quantized weights, fused kernels, 30 layers).
#[test]
fn shared_prefix_on_the_default_model() {
    let Some(path) = ingot_test_support::real_model() else { return };
    let (model, _) = ingot_models::load(&path, &Device::Cpu).unwrap();
    // "The capital of France is" + four endings (ids from the model's own vocabulary).
    let context = vec![504, 3575, 282, 4649, 314];
    let conts = vec![vec![7042], vec![4649, 30], vec![260, 1015, 282], vec![43, 50, 30, 44]];
    let fast = score_continuations(&model, &context, &conts, &Device::Cpu).unwrap();
    let naive = score_continuations_naive(&model, &context, &conts, &Device::Cpu).unwrap();
    for (f, n) in fast.iter().zip(&naive) {
        // Prefill of 5+ tokens and decode take the same f32 kernels: agreement to 1e-3.
        assert!((f.logprob - n.logprob).abs() < 1e-3, "shared {} vs naive {}", f.logprob, n.logprob);
        assert_eq!(f.is_greedy, n.is_greedy);
    }
}

#[test]
fn greedy_continuation_is_flagged() {
    let model = tiny("llama", 4);
    let context = ids(6, 5, 1);
    // Build the greedy continuation token by token from plain forwards.
    let mut cont = Vec::new();
    for _ in 0..3 {
        let all: Vec<u32> = context.iter().chain(&cont).copied().collect();
        let x = Tensor::new(all.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let last = model.forward_last(&x, None).unwrap().squeeze(0).unwrap();
        cont.push(last.argmax(0).unwrap().to_scalar::<u32>().unwrap());
    }
    let other: Vec<u32> = cont.iter().map(|t| (t + 1) % 41).collect();
    let s = score_continuations(&model, &context, &[cont, other], &Device::Cpu).unwrap();
    assert!(s[0].is_greedy && !s[1].is_greedy);
    assert!(s[0].logprob > s[1].logprob);
}

#[test]
fn perplexity_matches_cross_entropy_and_slides() {
    let model = tiny("gpt2", 9);
    let seq = ids(40, 11, 4);
    // One window covering everything: nll = (n - 1) · cross-entropy of a plain forward.
    let x = Tensor::new(seq.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let logits = model.forward(&x, None).unwrap().squeeze(0).unwrap();
    let y = Tensor::new(&seq[1..], &Device::Cpu).unwrap();
    let ce = candle_nn::loss::cross_entropy(&logits.narrow(0, 0, seq.len() - 1).unwrap(), &y)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    let p = perplexity(&model, &seq, 48, 48, &Device::Cpu).unwrap();
    assert_eq!(p.tokens, seq.len() - 1);
    assert!((p.mean_nll() - ce).abs() < 1e-5, "{} vs {ce}", p.mean_nll());
    assert!((p.perplexity() - ce.exp()).abs() < 1e-4 * ce.exp());
    // Sliding windows score every token once (stride < context) ...
    let s = perplexity(&model, &seq, 16, 8, &Device::Cpu).unwrap();
    assert_eq!(s.tokens, seq.len() - 1);
    // ... with less history than one window, so a different (here: any) value.
    assert!((s.mean_nll() - p.mean_nll()).abs() > 1e-6);
    // stride == context skips each window's first token.
    let d = perplexity(&model, &seq, 16, 16, &Device::Cpu).unwrap();
    assert_eq!(d.tokens, seq.len() - 3);
    // Bits per byte: nll / (bytes · ln 2).
    assert!((p.bits_per_byte(100) - p.nll / (100.0 * std::f64::consts::LN_2)).abs() < 1e-12);
    assert!(perplexity(&model, &seq, 64, 8, &Device::Cpu).is_err(), "context beyond the model's must be an error");
    assert!(perplexity(&model, &seq, 16, 0, &Device::Cpu).is_err());
    assert!(perplexity(&model, &seq[..1], 16, 8, &Device::Cpu).is_err());
}

/// `llama-perplexity`'s chunks against the naive scorer: chunk i is ids[i n .. (i+1) n] with BOS
/// in front, and it scores its tokens n/2 + 1 .. n - 1 given everything before them in the chunk.
#[test]
fn chunked_perplexity_is_llama_perplexity_s() {
    use ingot_eval::perplexity::perplexity_chunks;
    let model = tiny("llama", 5);
    let (n, bos) = (16, 40u32);
    let seq = ids(16 * 3 + 5, 7, 2); // three whole chunks and a remainder that is never scored
    let mut seen = Vec::new();
    let p =
        perplexity_chunks(&model, &seq, n, Some(bos), None, &Device::Cpu, &mut |i, of, r| seen.push((i, of, r.tokens)))
            .unwrap();
    assert_eq!(seen, [(1, 3, 7), (2, 3, 14), (3, 3, 21)], "n - n/2 - 1 tokens a chunk, three chunks");
    // Each scored token on its own, given everything before it in its chunk.
    let mut per_token = Vec::new();
    for c in 0..3 {
        let mut chunk = seq[c * n..(c + 1) * n].to_vec();
        chunk[0] = bos;
        for t in n / 2 + 1..n {
            let s = score_continuations_naive(&model, &chunk[..t], &[vec![chunk[t]]], &Device::Cpu).unwrap();
            per_token.push(-s[0].logprob);
        }
    }
    let nll: f64 = per_token.iter().sum();
    assert_eq!(p.tokens, per_token.len());
    assert!((p.nll - nll).abs() < 1e-3, "chunks {} vs naive {nll}", p.nll);
    // The standard error, as llama-perplexity computes it: sqrt(var / (n - 1)) x ppl.
    let k = per_token.len() as f64;
    let mean = nll / k;
    let var = per_token.iter().map(|x| x * x).sum::<f64>() / k - mean * mean;
    let want = (var / (k - 1.0)).sqrt() * mean.exp();
    assert!((p.perplexity_stderr() - want).abs() < 1e-3 * want, "{} vs {want}", p.perplexity_stderr());
    // At most max_chunks; without BOS the first token stays.
    let one = perplexity_chunks(&model, &seq, n, None, Some(1), &Device::Cpu, &mut |_, _, _| {}).unwrap();
    assert_eq!(one.tokens, 7);
    // Fewer than two chunks of tokens, as llama-perplexity refuses; a context past the model's.
    let short = perplexity_chunks(&model, &seq[..31], n, None, None, &Device::Cpu, &mut |_, _, _| {});
    assert!(short.unwrap_err().to_string().contains("at least 32 tokens"));
    assert!(perplexity_chunks(&model, &seq, 4096, None, None, &Device::Cpu, &mut |_, _, _| {}).is_err());
}
