//! Whole training steps on Ingot's fused kernels against the same steps composed of candle ops
//! (the kernels switched off), for GPT-2 and llama: losses within 1e-5 relative over three
//! AdamW steps, first-step gradients within 1e-5 of each tensor's scale; every parameter gets a
//! gradient; one bf16 step against
//! f32 (gradients point the same way: cosine ≥ 0.99, norms within 5%; loss within 1%).
//!
//! Its own test binary, and one test at a time (SERIAL): the kernel switch and the precision
//! are process-wide.

use candle_core::{Device, Tensor};
use ingot_nn::norm::set_fused_kernels;
use ingot_nn::Precision;
use ingot_test_support::models::{config, random_model, GPT2, LLAMA};
use ingot_train::recipes::pretrain::lm_loss;
use ingot_train::trainer::named_vars;
use ingot_train::{clip_coefficient, grad_norm, AdamW, AdamWConfig};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const B: usize = 2;
const T: usize = 16;

fn batch(vocab: u32, seed: u32) -> (Vec<u32>, Vec<u32>) {
    let ids: Vec<u32> = (0..(B * (T + 1)) as u32).map(|i| (i * 37 + seed * 11 + i * i) % vocab).collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for row in ids.chunks(T + 1) {
        x.extend_from_slice(&row[..T]);
        y.extend_from_slice(&row[1..]);
    }
    (x, y)
}

struct Run {
    losses: Vec<f32>,
    weights: Vec<(String, Vec<f32>)>,
    /// The first step's gradients, by parameter name.
    grads: Vec<(String, Vec<f32>)>,
}

fn train(json: &str, vocab: u32, fused: bool, precision: Precision, steps: u32) -> Run {
    set_fused_kernels(fused);
    let _precision = precision.enter();
    let (model, varmap) = random_model(&config(json), 7);
    let vars = named_vars(&varmap).unwrap();
    let mut opt =
        AdamW::new(vars.clone(), AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 }).unwrap();
    let (mut losses, mut first) = (Vec::new(), Vec::new());
    for step in 0..steps {
        let (x, y) = batch(vocab, step);
        let loss = lm_loss(&model, &x, &y, B, T, &Device::Cpu).unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        let grads = loss.backward().unwrap();
        if step == 0 {
            for (name, var) in &vars {
                let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name} got no gradient (fused {fused})"));
                first.push((name.clone(), g.flatten_all().unwrap().to_vec1().unwrap()));
            }
        }
        let norm = grad_norm(&grads, opt.vars()).unwrap();
        opt.step_scaled(&grads, 1e-3, clip_coefficient(norm, 1.0)).unwrap();
    }
    let weights =
        vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())).collect();
    set_fused_kernels(true);
    Run { losses, weights, grads: first }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn fused_steps_equal_the_composed_steps() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (name, json, vocab) in [("gpt2", GPT2, 89), ("llama", LLAMA, 101)] {
        let fused = train(json, vocab, true, Precision::F32, 3);
        let composed = train(json, vocab, false, Precision::F32, 3);
        for (a, b) in fused.losses.iter().zip(&composed.losses) {
            assert!((a - b).abs() <= 1e-5 * b.abs(), "{name}: loss {a} fused vs {b} composed");
        }
        // Gradients of the first step, each tensor against its own scale (with a floor: the
        // keys' bias gets a zero gradient in exact arithmetic, so both paths hold rounding
        // noise there, which AdamW's normalisation would blow up to ±lr if weights were
        // compared instead).
        assert_eq!(fused.grads.len(), composed.grads.len());
        for ((n, a), (_, b)) in fused.grads.iter().zip(&composed.grads) {
            let (d, scale) = (max_abs_diff(a, b), b.iter().fold(0f32, |m, v| m.max(v.abs())));
            assert!(d <= 1e-5 * scale.max(1e-3), "{name}: gradient of {n} differs by {d:e} (scale {scale:e})");
        }
        assert_eq!(fused.weights.len(), composed.weights.len());
        // The two paths really are different code (the comparison above can fail).
        let bits = |r: &Run| r.grads.iter().flat_map(|(_, g)| g.iter().map(|v| v.to_bits())).collect::<Vec<_>>();
        assert_ne!(bits(&fused), bits(&composed), "{name}: fused and composed gradients are bit-identical");
    }
}

#[test]
fn a_bf16_step_tracks_the_f32_step() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (name, json, vocab) in [("gpt2", GPT2, 89), ("llama", LLAMA, 101)] {
        let f32_run = train(json, vocab, true, Precision::F32, 1);
        let bf16_run = train(json, vocab, true, Precision::Bf16, 1);
        let (a, b) = (bf16_run.losses[0], f32_run.losses[0]);
        assert!((a - b).abs() <= 1e-2 * b.abs(), "{name}: bf16 loss {a} vs f32 {b}");
        assert_ne!(a, b, "{name}: the bf16 step rounded nothing");
        for ((n, g16), (_, g32)) in bf16_run.grads.iter().zip(&f32_run.grads) {
            let dot: f64 = g16.iter().zip(g32).map(|(&x, &y)| x as f64 * y as f64).sum();
            let n16: f64 = g16.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
            let n32: f64 = g32.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
            if n32 < 1e-7 {
                continue; // rows of tokens absent from the batch
            }
            let cosine = dot / (n16 * n32);
            assert!(cosine >= 0.99, "{name}: {n} gradient cosine {cosine:.4} between bf16 and f32");
            assert!((n16 / n32 - 1.0).abs() <= 0.05, "{name}: {n} gradient norm {n16:e} (bf16) vs {n32:e} (f32)");
        }
    }
}

/// Fused kernels and bf16 under the trainer: the plain tensor ops above are what it runs, and
/// every parameter must still see a gradient with the head fused into the loss.
#[test]
fn the_fused_loss_equals_the_logits_loss() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (model, _) = random_model(&config(GPT2), 3);
    let (x, y) = batch(89, 0);
    let fused = lm_loss(&model, &x, &y, B, T, &Device::Cpu).unwrap().to_scalar::<f32>().unwrap();
    let ids = Tensor::from_slice(&x, (B, T), &Device::Cpu).unwrap();
    let logits = model.forward(&ids, None).unwrap().reshape((B * T, 89)).unwrap();
    let targets = Tensor::from_slice(&y, B * T, &Device::Cpu).unwrap();
    let plain = ingot_train::loss::cross_entropy(&logits, &targets).unwrap().to_scalar::<f32>().unwrap();
    assert!((fused - plain).abs() <= 1e-5 * plain, "fused head loss {fused} vs logits loss {plain}");
}

/// AdamW in one pass per parameter (clipping folded in) is the composed update, bit for bit.
#[test]
fn adamw_in_one_pass_equals_the_composed_update_bit_for_bit() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = |fused: bool| {
        set_fused_kernels(fused);
        let (model, varmap) = random_model(&config(GPT2), 11);
        let vars = named_vars(&varmap).unwrap();
        let mut opt =
            AdamW::new(vars.clone(), AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 }).unwrap();
        for step in 0..3 {
            let (x, y) = batch(89, step);
            // The kernels on for the gradients in both runs: only the update differs.
            set_fused_kernels(true);
            let grads = lm_loss(&model, &x, &y, B, T, &Device::Cpu).unwrap().backward().unwrap();
            set_fused_kernels(fused);
            let norm = grad_norm(&grads, opt.vars()).unwrap();
            opt.step_scaled(&grads, 3e-3, clip_coefficient(norm, 0.5)).unwrap();
        }
        set_fused_kernels(true);
        let bits: Vec<u32> = vars
            .iter()
            .flat_map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .map(f32::to_bits)
            .collect();
        let moments: Vec<u32> = opt
            .state_tensors()
            .iter()
            .flat_map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .map(f32::to_bits)
            .collect();
        (bits, moments)
    };
    let (fused, composed) = (run(true), run(false));
    assert!(fused.0 == composed.0, "weights differ between the one-pass and the composed AdamW");
    assert!(fused.1 == composed.1, "moments differ between the one-pass and the composed AdamW");
}
