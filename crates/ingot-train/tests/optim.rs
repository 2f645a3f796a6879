//! AdamW against a plain-Rust scalar reference (f64, written from the torch.optim.AdamW
//! documentation), the decay groups, gradient clipping, and bit-exact resume from saved state.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use ingot_train::{clip_grad_norm, decays, AdamW, AdamWConfig};

/// torch.optim.AdamW for one scalar parameter, in f64. Returns the parameter after each step.
fn reference_adamw(mut p: f64, grads: &[f64], lrs: &[f64], cfg: &AdamWConfig, wd: f64) -> Vec<f64> {
    let (mut m, mut v) = (0.0, 0.0);
    let mut out = Vec::new();
    for (t, (&g, &lr)) in grads.iter().zip(lrs).enumerate() {
        let t = (t + 1) as i32;
        p *= 1.0 - lr * wd;
        m = cfg.beta1 * m + (1.0 - cfg.beta1) * g;
        v = cfg.beta2 * v + (1.0 - cfg.beta2) * g * g;
        let m_hat = m / (1.0 - cfg.beta1.powi(t));
        let v_hat = v / (1.0 - cfg.beta2.powi(t));
        p -= lr * m_hat / (v_hat.sqrt() + cfg.eps);
        out.push(p);
    }
    out
}

fn var(values: &[f32], shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).unwrap()).unwrap()
}

/// A gradient store holding `grads[i]` for `vars[i]`, built through a real backward pass:
/// loss = sum(var * g) has gradient g.
fn grads_for(vars: &[&Var], grads: &[Vec<f32>]) -> GradStore {
    let mut loss = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu).unwrap();
    for (v, g) in vars.iter().zip(grads) {
        let g = Tensor::from_vec(g.clone(), v.shape(), &Device::Cpu).unwrap();
        loss = (loss + (v.as_tensor() * g).unwrap().sum_all().unwrap()).unwrap();
    }
    loss.backward().unwrap()
}

fn values(v: &Var) -> Vec<f32> {
    v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()
}

/// Deterministic, varied gradient values (no RNG needed).
fn gradient(n: usize, step: usize, salt: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 * 1.7 + step as f32 * 0.9 + salt).sin()) * (0.5 + i as f32 * 0.1)).collect()
}

#[test]
fn decay_rule() {
    for name in [
        "model.norm.weight",
        "model.layers.0.input_layernorm.weight",
        "transformer.h.0.ln_1.weight",
        "transformer.ln_f.weight",
        "model.layers.0.self_attn.q_proj.bias",
        "model.embed_tokens.weight",
        "transformer.wte.weight",
        "transformer.wpe.weight",
    ] {
        assert!(!decays(name, &[16, 16]), "{name} should not decay");
    }
    assert!(decays("model.layers.0.self_attn.q_proj.weight", &[16, 16]));
    assert!(decays("lm_head.weight", &[100, 16]));
    assert!(decays("transformer.h.0.attn.c_attn.weight", &[16, 48]));
    assert!(!decays("some.scale", &[16]), "1-D parameters never decay (nanoGPT's rule)");
}

/// One step by hand. With m = v = 0, step 1: m_hat = g, v_hat = g^2, so the update is
/// lr * g / (|g| + eps) ~= lr * sign(g), plus decay for the matrix only.
#[test]
fn one_step_by_hand_for_both_groups() {
    let cfg = AdamWConfig::default();
    let w = var(&[1.0, -2.0, 0.5, 3.0], &[2, 2]);
    let norm = var(&[1.0, -2.0], &[2]);
    let mut opt = AdamW::new(
        vec![("model.layers.0.mlp.up_proj.weight".into(), w.clone()), ("model.norm.weight".into(), norm.clone())],
        cfg,
    )
    .unwrap();
    let g = vec![0.5f32, -0.25, 2.0, -1.0];
    let store = grads_for(&[&w, &norm], &[g.clone(), vec![0.5, -0.25]]);
    let lr = 0.01;
    let report = opt.step(&store, lr).unwrap();
    assert_eq!((report.updated, report.without_grad), (2, 0));

    let w0 = [1.0f64, -2.0, 0.5, 3.0];
    let want_w: Vec<f64> =
        w0.iter().zip(&g).map(|(&p, &g)| p * (1.0 - lr * 0.1) - lr * g as f64 / ((g as f64).abs() + 1e-8)).collect();
    let want_norm = [1.0 - lr, -2.0 + lr]; // no decay: only the sign step
    for (got, want) in values(&w).iter().zip(&want_w) {
        assert!((*got as f64 - want).abs() < 1e-6, "matrix: got {got}, want {want}");
    }
    for (got, want) in values(&norm).iter().zip(&want_norm) {
        assert!((*got as f64 - want).abs() < 1e-6, "norm: got {got}, want {want}");
    }
}

/// Twenty steps with a changing learning rate track the f64 scalar reference within 1e-6
/// (the f32 arithmetic's rounding; the parameters are O(1)).
#[test]
fn many_steps_match_scalar_reference() {
    let cfg = AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
    let init_w: Vec<f32> = (0..6).map(|i| 0.3 * i as f32 - 0.7).collect();
    let init_b: Vec<f32> = vec![0.2, -0.1, 0.05];
    let w = var(&init_w, &[2, 3]);
    let b = var(&init_b, &[3]);
    let mut opt =
        AdamW::new(vec![("attn.c_proj.weight".into(), w.clone()), ("attn.c_proj.bias".into(), b.clone())], cfg)
            .unwrap();
    let steps = 20;
    let lrs: Vec<f64> = (0..steps).map(|s| 1e-2 * (1.0 - s as f64 / 40.0)).collect();
    let gw: Vec<Vec<f32>> = (0..steps).map(|s| gradient(6, s, 0.0)).collect();
    let gb: Vec<Vec<f32>> = (0..steps).map(|s| gradient(3, s, 1.3)).collect();
    for s in 0..steps {
        let store = grads_for(&[&w, &b], &[gw[s].clone(), gb[s].clone()]);
        opt.step(&store, lrs[s]).unwrap();
    }
    assert_eq!(opt.step_count(), steps as u64);
    let check = |got: Vec<f32>, init: &[f32], grads: &[Vec<f32>], wd: f64, what: &str| {
        for i in 0..init.len() {
            let g: Vec<f64> = grads.iter().map(|g| g[i] as f64).collect();
            let want = *reference_adamw(init[i] as f64, &g, &lrs, &cfg, wd).last().unwrap();
            let diff = (got[i] as f64 - want).abs();
            assert!(diff < 1e-6, "{what}[{i}]: got {}, reference {want}, diff {diff}", got[i]);
        }
    };
    check(values(&w), &init_w, &gw, 0.1, "weight (decayed)");
    check(values(&b), &init_b, &gb, 0.0, "bias (not decayed)");
}

/// Weight decay alone: a zero gradient leaves no-decay parameters exactly unchanged and shrinks
/// the others by (1 - lr * wd).
#[test]
fn weight_decay_only_on_decay_group() {
    let cfg = AdamWConfig::default();
    let names = [
        "model.norm.weight",
        "model.layers.0.self_attn.o_proj.bias",
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.o_proj.weight",
    ];
    let vars: Vec<Var> = names.iter().map(|_| var(&[1.0, 2.0, -3.0, 4.0], &[2, 2])).collect();
    let mut opt = AdamW::new(names.iter().map(|n| n.to_string()).zip(vars.iter().cloned()).collect(), cfg).unwrap();
    let refs: Vec<&Var> = vars.iter().collect();
    let store = grads_for(&refs, &vec![vec![0.0; 4]; 4]);
    opt.step(&store, 0.5).unwrap();
    for (name, v) in names.iter().zip(&vars) {
        let got = values(v);
        if name.ends_with("o_proj.weight") {
            let want: Vec<f32> = [1.0f32, 2.0, -3.0, 4.0].iter().map(|x| x * (1.0 - 0.5 * 0.1)).collect();
            assert_eq!(got, want, "{name} should decay by lr * wd");
        } else {
            assert_eq!(got, vec![1.0, 2.0, -3.0, 4.0], "{name} must not decay");
        }
    }
    let groups = opt.groups();
    assert_eq!(groups.iter().filter(|(_, d)| *d).count(), 1, "{groups:?}");
}

#[test]
fn parameters_without_gradient_are_skipped_and_counted() {
    let a = var(&[1.0, 2.0], &[1, 2]);
    let b = var(&[3.0, 4.0], &[1, 2]);
    let mut opt =
        AdamW::new(vec![("a.weight".into(), a.clone()), ("b.weight".into(), b.clone())], AdamWConfig::default())
            .unwrap();
    let store = grads_for(&[&a], &[vec![1.0, 1.0]]);
    let report = opt.step(&store, 0.1).unwrap();
    assert_eq!((report.updated, report.without_grad), (1, 1));
    assert_eq!(values(&b), vec![3.0, 4.0]);
}

/// torch's rule: total norm over all gradients; scale by max_norm / (norm + 1e-6) when above.
#[test]
fn clip_scales_to_max_norm() {
    let a = var(&[0.0; 3], &[3]);
    let b = var(&[0.0; 2], &[2]);
    // Gradient norm sqrt(9 + 16 + 0 + 144 + 0) = 13.
    let mut store = grads_for(&[&a, &b], &[vec![3.0, 4.0, 0.0], vec![12.0, 0.0]]);
    let norm = clip_grad_norm(&mut store, [&a, &b], 1.0).unwrap();
    assert!((norm - 13.0).abs() < 1e-9, "pre-clip norm {norm}");
    let after: f64 = [&a, &b]
        .iter()
        .flat_map(|v| store.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap())
        .map(|g| (g as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((after - 1.0).abs() < 1e-6, "post-clip norm {after}");
    let ga: Vec<f32> = store.get(a.as_tensor()).unwrap().to_vec1().unwrap();
    assert!((ga[0] as f64 - 3.0 / 13.0).abs() < 1e-6, "direction kept: {ga:?}");

    // Below the limit: untouched, bit for bit.
    let mut store = grads_for(&[&a], &[vec![0.3, 0.4, 0.0]]);
    let norm = clip_grad_norm(&mut store, [&a], 1.0).unwrap();
    assert!((norm - 0.5).abs() < 1e-6);
    assert_eq!(store.get(a.as_tensor()).unwrap().to_vec1::<f32>().unwrap(), vec![0.3, 0.4, 0.0]);

    // A NaN gradient: the norm says so and nothing is scaled.
    let mut store = grads_for(&[&a], &[vec![f32::NAN, 1.0, 0.0]]);
    assert!(clip_grad_norm(&mut store, [&a], 1.0).unwrap().is_nan());
}

fn model_vars() -> Vec<(String, Var)> {
    vec![
        ("model.embed_tokens.weight".into(), var(&gradient(12, 0, 0.2), &[4, 3])),
        ("model.layers.0.mlp.down_proj.weight".into(), var(&gradient(6, 0, 0.7), &[3, 2])),
        ("model.norm.weight".into(), var(&[1.0, 1.0, 1.0], &[3])),
    ]
}

fn run_steps(opt: &mut AdamW, vars: &[(String, Var)], steps: std::ops::Range<usize>) {
    let refs: Vec<&Var> = vars.iter().map(|(_, v)| v).collect();
    for s in steps {
        let grads: Vec<Vec<f32>> =
            refs.iter().enumerate().map(|(i, v)| gradient(v.elem_count(), s, i as f32)).collect();
        let mut store = grads_for(&refs, &grads);
        opt.clip_grad_norm(&mut store, 1.0).unwrap();
        opt.step(&store, 3e-3).unwrap();
    }
}

/// Four uninterrupted steps == two steps, save the state, a fresh optimizer loads it, two more.
#[test]
fn resume_from_saved_state_is_bit_identical() {
    let cfg = AdamWConfig::default();
    let straight = model_vars();
    let mut opt = AdamW::new(straight.clone(), cfg).unwrap();
    run_steps(&mut opt, &straight, 0..4);

    let resumed = model_vars();
    let mut first = AdamW::new(resumed.clone(), cfg).unwrap();
    run_steps(&mut first, &resumed, 0..2);
    // Through safetensors bytes, as a checkpoint does.
    let state: HashMap<String, Tensor> = first.state_tensors().into_iter().collect();
    let dir = ingot_test_support::temp_dir("optim-state");
    let path = dir.join("optimizer.safetensors");
    candle_core::safetensors::save(&state, &path).unwrap();
    let loaded = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let step_count = first.step_count();
    drop(first);

    let mut second = AdamW::new(resumed.clone(), cfg).unwrap();
    second.load_state(loaded, step_count).unwrap();
    run_steps(&mut second, &resumed, 2..4);
    for ((name, a), (_, b)) in straight.iter().zip(&resumed) {
        let (a, b) = (values(a), values(b));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{name}: {a:?} vs {b:?}");
    }
}

#[test]
fn load_state_names_missing_and_mismatched_tensors() {
    let vars = model_vars();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig::default()).unwrap();
    let mut state: HashMap<String, Tensor> = opt.state_tensors().into_iter().collect();

    let mut missing = state.clone();
    missing.remove("v.model.norm.weight");
    let err = opt.load_state(missing, 2).unwrap_err().to_string();
    assert!(err.contains("v.model.norm.weight"), "{err}");
    assert_eq!(opt.step_count(), 0, "a failed load must change nothing");

    let mut wrong = state.clone();
    wrong.insert("m.model.norm.weight".into(), Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap());
    let err = opt.load_state(wrong, 2).unwrap_err().to_string();
    assert!(err.contains("m.model.norm.weight") && err.contains("[4]") && err.contains("[3]"), "{err}");

    state.insert("m.lm_head.weight".into(), Tensor::zeros(4, candle_core::DType::F32, &Device::Cpu).unwrap());
    let err = opt.load_state(state, 2).unwrap_err().to_string();
    assert!(err.contains("m.lm_head.weight"), "{err}");
}

#[test]
fn bad_settings_are_rejected() {
    let bad = AdamWConfig { beta2: 1.0, ..AdamWConfig::default() };
    let err = AdamW::new(model_vars(), bad).err().unwrap().to_string();
    assert!(err.contains("beta2 1"), "{err}");
    let mut dup = model_vars();
    dup.push(dup[0].clone());
    let err = AdamW::new(dup, AdamWConfig::default()).err().unwrap().to_string();
    assert!(err.contains("twice"), "{err}");
}
