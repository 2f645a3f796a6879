//! Parity of Ingot's llama on the real default model (SmolLM2-135M-Instruct, Q4_1 GGUF) with an
//! independent float64 numpy forward pass (scripts/reference/llama_gguf_reference.py): ggml's own
//! Python dequantizer, HF's rotate-half RoPE on un-permuted q/k, no code shared with Ingot.
//!
//! Both sides use the same quantized weights, so the only differences are f32 vs f64 arithmetic
//! (Ingot keeps activations in f32, see ingot-kernels/src/qmatmul.rs). Measured: at most 5.2e-5 on
//! logits of magnitude ~30. The tolerance, 2e-3, leaves 40x headroom for summation order on other
//! CPUs and still fails on any real change (candle's 8-bit-activation path is off by ~0.8).

use candle_core::{Device, Tensor};
use ingot_test_support::real_model;

#[derive(serde::Deserialize)]
struct Reference {
    ids: Vec<u32>,
    /// Per position, the 10 highest (token id, logit) pairs.
    top: Vec<Vec<(u32, f64)>>,
}

const TOLERANCE: f64 = 2e-3;

#[test]
fn logits_match_numpy_reference() {
    let Some(path) = real_model() else { return };
    let reference: Reference =
        serde_json::from_str(include_str!("data/smollm2_reference.json")).expect("reference fixture parses");
    let (model, _) = ingot_models::load(&path, &Device::Cpu).unwrap();
    let input = Tensor::new(reference.ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let logits = model.forward(&input, None).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    let mut worst = 0f64;
    for (pos, top) in reference.top.iter().enumerate() {
        for &(id, want) in top {
            let got = logits[pos][id as usize] as f64;
            worst = worst.max((got - want).abs());
            assert!((got - want).abs() < TOLERANCE, "position {pos}, token {id}: ingot {got}, reference {want}");
        }
        // Same greedy choice wherever the reference's top two are not a near tie.
        let (best, second) = (top[0], top[1]);
        if best.1 - second.1 > 2.0 * TOLERANCE {
            let ours = logits[pos].iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
            assert_eq!(ours as u32, best.0, "position {pos}: argmax differs");
        }
    }
    eprintln!("max |logit difference| vs numpy float64: {worst:.2e}");

    // The KV-cached path (prefill then one token at a time) gives the same last-position logits.
    let mut cache = model.new_cache();
    let n = reference.ids.len();
    let prefix = Tensor::new(&reference.ids[..n - 3], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    model.forward(&prefix, Some(&mut cache)).unwrap();
    let mut last = None;
    for &id in &reference.ids[n - 3..] {
        let t = Tensor::new(&[id], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        last = Some(model.forward_last(&t, Some(&mut cache)).unwrap());
    }
    let last = last.unwrap().squeeze(0).unwrap().to_vec1::<f32>().unwrap();
    for &(id, want) in &reference.top[n - 1] {
        let got = last[id as usize] as f64;
        assert!((got - want).abs() < TOLERANCE, "cached decode, token {id}: ingot {got}, reference {want}");
    }
}
