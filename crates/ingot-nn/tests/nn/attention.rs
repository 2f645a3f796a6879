//! Causal attention against softmax(q kᵀ / sqrt(D) + causal mask) v written as f64 loops:
//! multi-head and grouped-query heads, a prompt (T = S), a chunk after a cached prefix
//! (S > T) and a single decode step (T = 1, where no mask is built).

use candle_core::{DType, Var};
use ingot_nn::attention::{causal_attention, causal_mask};

use crate::{assert_close, tensor, values};

const B: usize = 2;
const D: usize = 7;
/// f32 matmuls over D = 7 and S <= 9 terms of O(1) values, softmax in f32.
const F32_TOL: f64 = 2e-6;
const F64_TOL: f64 = 1e-12;

/// The reference: q (B, H, T, D), k and v (B, K, S, D) flattened; query head h reads key/value
/// head h / (H / K); query i (at absolute position S - T + i) sees keys 0..=S - T + i.
fn naive(q: &[f64], k: &[f64], v: &[f64], h: usize, kh: usize, t: usize, s: usize) -> Vec<f64> {
    let r = h / kh;
    let past = s - t;
    let mut out = vec![0.0; B * h * t * D];
    for b in 0..B {
        for hq in 0..h {
            let g = hq / r;
            for i in 0..t {
                let qi = &q[((b * h + hq) * t + i) * D..][..D];
                let visible = past + i + 1;
                let scores: Vec<f64> = (0..visible)
                    .map(|j| {
                        let kj = &k[((b * kh + g) * s + j) * D..][..D];
                        qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>() / (D as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                let o = &mut out[((b * h + hq) * t + i) * D..][..D];
                for (j, p) in e.iter().enumerate() {
                    let vj = &v[((b * kh + g) * s + j) * D..][..D];
                    for (od, vd) in o.iter_mut().zip(vj) {
                        *od += p / z * vd;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn matches_the_naive_loops() {
    // (query heads, key/value heads, new positions, positions attended to)
    let cases = [
        (3, 3, 5, 5), // multi-head, a prompt
        (6, 2, 5, 5), // grouped-query (3 queries per key head)
        (6, 2, 3, 8), // a chunk after 5 cached positions
        (6, 3, 1, 9), // one decode step
        (5, 1, 4, 4), // multi-query
    ];
    for (n, &(h, kh, t, s)) in cases.iter().enumerate() {
        let seed = 100 + 10 * n as u64;
        for (dtype, tol) in [(DType::F32, F32_TOL), (DType::F64, F64_TOL)] {
            let q = tensor(&[B, h, t, D], seed, dtype);
            let k = tensor(&[B, kh, s, D], seed + 1, dtype);
            let v = tensor(&[B, kh, s, D], seed + 2, dtype);
            let got = causal_attention(&q, &k, &v).expect("attention");
            assert_eq!(got.dims(), [B, h, t, D]);
            let want = naive(&values(&q), &values(&k), &values(&v), h, kh, t, s);
            assert_close(&values(&got), &want, tol, &format!("H={h} K={kh} T={t} S={s} {dtype:?}"));
        }
    }
}

#[test]
fn keys_are_read_from_a_strided_cache_view() {
    // The KV cache hands attention a narrow of a larger buffer; the result must not change.
    let (h, kh, t, s) = (4, 2, 3, 6);
    let q = tensor(&[B, h, t, D], 200, DType::F32);
    let kbuf = tensor(&[B, kh, 11, D], 201, DType::F32);
    let vbuf = tensor(&[B, kh, 11, D], 202, DType::F32);
    let (k, v) = (kbuf.narrow(2, 0, s).expect("k view"), vbuf.narrow(2, 0, s).expect("v view"));
    let got = causal_attention(&q, &k, &v).expect("attention");
    let want = naive(&values(&q), &values(&k), &values(&v), h, kh, t, s);
    assert_close(&values(&got), &want, F32_TOL, "strided k/v");
}

#[test]
fn the_mask_hides_the_future() {
    let m = values(&causal_mask(2, 4, &candle_core::Device::Cpu).expect("mask"));
    let inf = f64::NEG_INFINITY;
    assert_eq!(m, [0.0, 0.0, 0.0, inf, 0.0, 0.0, 0.0, 0.0]);
    // Changing a future key or value must not change earlier outputs.
    let (h, t) = (2, 4);
    let q = tensor(&[B, h, t, D], 300, DType::F64);
    let k = tensor(&[B, h, t, D], 301, DType::F64);
    let v = tensor(&[B, h, t, D], 302, DType::F64);
    let late = tensor(&[B, h, 1, D], 303, DType::F64);
    let k2 = k.slice_assign(&[0..B, 0..h, t - 1..t, 0..D], &late).expect("k");
    let v2 = v.slice_assign(&[0..B, 0..h, t - 1..t, 0..D], &late).expect("v");
    let early = |k, v| values(&causal_attention(&q, k, v).expect("attention").narrow(2, 0, t - 1).expect("early"));
    assert_close(&early(&k, &v), &early(&k2, &v2), 0.0, "outputs before the changed position");
}

#[test]
fn gradients_reach_q_k_and_v() {
    // (q, k, v are inputs 0, 1, 2)
    let (h, kh, t, s) = (4, 2, 3, 5);
    let q = Var::from_tensor(&tensor(&[B, h, t, D], 400, DType::F64)).expect("q");
    let k = Var::from_tensor(&tensor(&[B, kh, s, D], 401, DType::F64)).expect("k");
    let v = Var::from_tensor(&tensor(&[B, kh, s, D], 402, DType::F64)).expect("v");
    let loss = causal_attention(q.as_tensor(), k.as_tensor(), v.as_tensor())
        .and_then(|y| y.sqr())
        .and_then(|y| y.sum_all())
        .expect("loss");
    let grads = loss.backward().expect("backward");
    // Against central differences of the naive loops, at a few elements of each input.
    let (qs, ks, vs) = (values(q.as_tensor()), values(k.as_tensor()), values(v.as_tensor()));
    let loss_of = |q: &[f64], k: &[f64], v: &[f64]| naive(q, k, v, h, kh, t, s).iter().map(|y| y * y).sum::<f64>();
    for (which, var) in [0, 1, 2].into_iter().zip([&q, &k, &v]) {
        let g = values(grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient reached input {which}")));
        for i in [0, g.len() / 2, g.len() - 1] {
            let h_ = 1e-6;
            let mut ins = [qs.clone(), ks.clone(), vs.clone()];
            ins[which][i] += h_;
            let up = loss_of(&ins[0], &ins[1], &ins[2]);
            ins[which][i] -= 2.0 * h_;
            let down = loss_of(&ins[0], &ins[1], &ins[2]);
            let want = (up - down) / (2.0 * h_);
            assert!((g[i] - want).abs() < 1e-7, "input {which} element {i}: {} vs {want}", g[i]);
        }
    }
}

#[test]
fn heads_that_do_not_group_are_an_error() {
    let q = tensor(&[1, 5, 2, D], 500, DType::F32);
    let k = tensor(&[1, 2, 2, D], 501, DType::F32);
    let err = causal_attention(&q, &k, &k).expect_err("5 query heads over 2 key heads");
    assert!(err.to_string().contains("5 query heads do not divide into 2"), "{err}");
}
