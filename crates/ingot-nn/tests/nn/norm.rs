//! RMSNorm and LayerNorm: the fused kernel (inference) and the composed ops (training) both match
//! a per-row formula in f64, and gradients reach the input and the weights through the composed
//! path (a fused kernel has no backward, so they would stop there). Softmax likewise.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use ingot_nn::norm::{needs_grad, softmax_last_dim};
use ingot_nn::{LayerNorm, RmsNorm, Weights};

use crate::{assert_close, random, tensor, values};

// 15 rows of an odd width.
const DIMS: [usize; 3] = [3, 5, 13];
const DIM: usize = 13;
const EPS: f64 = 1e-5;
/// f32 against the f64 formula: values are O(1), so a few ulps of f32 plus the rsqrt rounding.
const F32_TOL: f64 = 2e-5;
/// f64 analytic gradients against central differences (h = 1e-6): truncation error ~h².
const GRAD_TOL: f64 = 1e-7;

fn rms_row(x: &[f64], w: &[f64]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms + EPS).sqrt();
    x.iter().zip(w).map(|(v, w)| v * inv * w).collect()
}

fn layer_row(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let inv = 1.0 / (var + EPS).sqrt();
    x.iter().zip(w).zip(b).map(|((v, w), b)| (v - mean) * inv * w + b).collect()
}

/// Apply a per-row formula to every row of width DIM.
fn rows(x: &[f64], f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    x.chunks(DIM).flat_map(f).collect()
}

/// Weights for a norm from plain tensors (nothing tracked: the fused path).
fn plain(named: &[(&str, &[f64])], dtype: DType) -> Weights {
    let map: HashMap<String, Tensor> = named
        .iter()
        .map(|(k, v)| (k.to_string(), Tensor::from_vec(v.to_vec(), DIM, &Device::Cpu).expect("weight")))
        .collect();
    Weights::from_var_builder(VarBuilder::from_tensors(map, dtype, &Device::Cpu))
}

/// Trainable f64 weights: the norm creates its variables in `vars` (see [`set_vars`]).
fn trainable(vars: &VarMap) -> Weights {
    Weights::from_var_builder(VarBuilder::from_varmap(vars, DType::F64, &Device::Cpu))
}

/// Set the variables a layer created to the given values, and return them by name.
fn set_vars(vars: &VarMap, named: &[(&str, &[f64])]) -> HashMap<String, Var> {
    let data = vars.data().lock().expect("var map");
    named
        .iter()
        .map(|(k, v)| {
            let var = data.get(*k).unwrap_or_else(|| panic!("the norm did not create '{k}'")).clone();
            var.set(&Tensor::from_vec(v.to_vec(), DIM, &Device::Cpu).expect("weight")).expect("set weight");
            (k.to_string(), var)
        })
        .collect()
}

/// d(sum c·f(x))/dx_i by central differences, for each i.
fn numeric_grad(x: &[f64], c: &[f64], f: &dyn Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let h = 1e-6;
    let loss = |x: &[f64]| f(x).iter().zip(c).map(|(y, c)| y * c).sum::<f64>();
    (0..x.len())
        .map(|i| {
            let (mut up, mut down) = (x.to_vec(), x.to_vec());
            up[i] += h;
            down[i] -= h;
            (loss(&up) - loss(&down)) / (2.0 * h)
        })
        .collect()
}

#[test]
fn rms_norm_fused_and_composed_match_the_formula() {
    let (x, w) = (random(DIMS.iter().product(), 1), random(DIM, 2));
    let want = rows(&x, |r| rms_row(r, &w));
    let norm = RmsNorm::load(&plain(&[("weight", &w)], DType::F32), DIM, EPS).expect("load");

    let xt = tensor(&DIMS, 1, DType::F32);
    assert!(!needs_grad(&[&xt]));
    let fused = norm.forward(&xt).expect("fused forward");
    assert_eq!(fused.dims(), DIMS);
    assert_close(&values(&fused), &want, F32_TOL, "fused RMSNorm");

    // A Var input takes the composed ops.
    let xv = Var::from_tensor(&xt).expect("var");
    assert!(needs_grad(&[xv.as_tensor()]));
    let composed = norm.forward(xv.as_tensor()).expect("composed forward");
    assert_close(&values(&composed), &want, F32_TOL, "composed RMSNorm");
    assert_close(&values(&composed), &values(&fused), F32_TOL, "composed vs fused RMSNorm");
}

#[test]
fn layer_norm_fused_and_composed_match_the_formula() {
    let (x, w, b) = (random(DIMS.iter().product(), 3), random(DIM, 4), random(DIM, 5));
    let want = rows(&x, |r| layer_row(r, &w, &b));
    let norm = LayerNorm::load(&plain(&[("weight", &w), ("bias", &b)], DType::F32), DIM, EPS).expect("load");

    let xt = tensor(&DIMS, 3, DType::F32);
    let fused = norm.forward(&xt).expect("fused forward");
    assert_close(&values(&fused), &want, F32_TOL, "fused LayerNorm");
    let xv = Var::from_tensor(&xt).expect("var");
    let composed = norm.forward(xv.as_tensor()).expect("composed forward");
    assert_close(&values(&composed), &want, F32_TOL, "composed LayerNorm");
    assert_close(&values(&composed), &values(&fused), F32_TOL, "composed vs fused LayerNorm");
}

#[test]
fn rms_norm_gradients_reach_input_and_weight() {
    let n = DIMS.iter().product();
    let (x, w, c) = (random(n, 6), random(DIM, 7), random(n, 8));
    let vars = VarMap::new();
    let norm = RmsNorm::load(&trainable(&vars), DIM, EPS).expect("load");
    let weights = set_vars(&vars, &[("weight", &w)]);

    let xv = Var::from_tensor(&tensor(&DIMS, 6, DType::F64)).expect("var");
    let ct = tensor(&DIMS, 8, DType::F64);
    let loss = (norm.forward(xv.as_tensor()).expect("forward") * &ct).and_then(|t| t.sum_all()).expect("loss");
    let grads = loss.backward().expect("backward");

    let dx = grads.get(xv.as_tensor()).expect("no gradient reached the input: a fused op without backward?");
    let want_dx = numeric_grad(&x, &c, &|x| rows(x, |r| rms_row(r, &w)));
    assert_close(&values(dx), &want_dx, GRAD_TOL, "RMSNorm dL/dx");

    let dw = grads.get(weights["weight"].as_tensor()).expect("no gradient reached the weight");
    let want_dw = numeric_grad(&w, &c, &|w| rows(&x, |r| rms_row(r, w)));
    assert_close(&values(dw), &want_dw, GRAD_TOL, "RMSNorm dL/dw");
}

#[test]
fn layer_norm_gradients_reach_input_weight_and_bias() {
    let n = DIMS.iter().product();
    let (x, w, b, c) = (random(n, 9), random(DIM, 10), random(DIM, 11), random(n, 12));
    let vars = VarMap::new();
    let norm = LayerNorm::load(&trainable(&vars), DIM, EPS).expect("load");
    let params = set_vars(&vars, &[("weight", &w), ("bias", &b)]);

    let xv = Var::from_tensor(&tensor(&DIMS, 9, DType::F64)).expect("var");
    let ct = tensor(&DIMS, 12, DType::F64);
    let loss = (norm.forward(xv.as_tensor()).expect("forward") * &ct).and_then(|t| t.sum_all()).expect("loss");
    let grads = loss.backward().expect("backward");

    let dx = grads.get(xv.as_tensor()).expect("no gradient reached the input");
    assert_close(&values(dx), &numeric_grad(&x, &c, &|x| rows(x, |r| layer_row(r, &w, &b))), GRAD_TOL, "dL/dx");
    let dw = grads.get(params["weight"].as_tensor()).expect("no gradient reached the weight");
    assert_close(&values(dw), &numeric_grad(&w, &c, &|w| rows(&x, |r| layer_row(r, w, &b))), GRAD_TOL, "dL/dw");
    let db = grads.get(params["bias"].as_tensor()).expect("no gradient reached the bias");
    assert_close(&values(db), &numeric_grad(&b, &c, &|b| rows(&x, |r| layer_row(r, &w, b))), GRAD_TOL, "dL/db");
}

#[test]
fn softmax_fused_and_composed_match_the_formula() {
    // Spread the logits so the max subtraction matters.
    let x: Vec<f64> = random(DIMS.iter().product(), 13).iter().map(|v| 30.0 * v).collect();
    let want = rows(&x, |r| {
        let m = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = r.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    });
    let xt = Tensor::from_vec(x, &DIMS, &Device::Cpu).and_then(|t| t.to_dtype(DType::F32)).expect("logits");
    assert_close(&values(&softmax_last_dim(&xt).expect("fused")), &want, 1e-6, "fused softmax");
    let xv = Var::from_tensor(&xt).expect("var");
    assert_close(&values(&softmax_last_dim(xv.as_tensor()).expect("composed")), &want, 1e-6, "composed softmax");
}
