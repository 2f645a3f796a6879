//! The fused masked softmax against its composed reference (scale, add the mask, softmax from
//! candle's primitive ops), forward and backward, for shared and per-batch masks and odd sizes;
//! and against finite differences.

use candle_core::{DType, Device, Tensor, Var, D};
use ingot_kernels::masked_softmax;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(shape: &[usize], rng: &mut StdRng) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.random_range(-3.0f32..3.0)).collect::<Vec<_>>(), shape, &Device::Cpu).unwrap()
}

/// Per-batch masks: random keys hidden, every row keeping at least its own position.
fn mask(mb: usize, t: usize, s: usize, rng: &mut StdRng) -> Tensor {
    let v: Vec<f32> = (0..mb * t * s)
        .map(|i| {
            let (row, j) = ((i / s) % t, i % s);
            if j == s - t + row || rng.random_bool(0.6) {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    Tensor::from_vec(v, (mb, t, s), &Device::Cpu).unwrap()
}

/// The composed reference: broadcast the mask over heads, then a plain softmax.
fn reference(x: &Tensor, mask: &Tensor, scale: f64, t: usize) -> Tensor {
    let (b, k, rt, s) = x.dims4().unwrap();
    let mb = mask.dim(0).unwrap();
    let m = mask.reshape((mb, 1, 1, t, s)).unwrap();
    let z = (x * scale).unwrap().reshape((b, k, rt / t, t, s)).unwrap().broadcast_add(&m).unwrap();
    candle_nn::ops::softmax(&z, D::Minus1).unwrap().reshape((b, k, rt, s)).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn forward_and_backward_match_the_composed_softmax() {
    let mut rng = StdRng::seed_from_u64(1);
    // (B, K, R, T, S, per-batch mask)
    for (b, k, r, t, s, per_batch) in
        [(1, 1, 1, 1, 5, false), (2, 3, 2, 7, 7, true), (1, 2, 3, 4, 9, false), (3, 1, 1, 13, 13, true)]
    {
        let x0 = random(&[b, k, r * t, s], &mut rng);
        let m = mask(if per_batch { b } else { 1 }, t, s, &mut rng);
        let dy = random(&[b, k, r * t, s], &mut rng);
        let scale = 0.37;
        let x = Var::from_tensor(&x0).unwrap();
        let got = masked_softmax(x.as_tensor(), &m, scale as f32, t).unwrap();
        let want = reference(x.as_tensor(), &m, scale, t);
        assert!(max_diff(&got, &want) < 1e-6, "forward ({b},{k},{r},{t},{s})");
        let g1 = (got * &dy).unwrap().sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone();
        let g2 = (want * &dy).unwrap().sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone();
        assert!(max_diff(&g1, &g2) < 1e-5, "backward ({b},{k},{r},{t},{s}): {}", max_diff(&g1, &g2));
    }
}

#[test]
fn backward_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(2);
    let (t, s) = (3, 6);
    let x0 = random(&[1, 2, t, s], &mut rng);
    let m = mask(1, t, s, &mut rng);
    let dy = random(&[1, 2, t, s], &mut rng);
    let f = |x: &Tensor| -> f64 {
        (masked_softmax(x, &m, 0.5, t).unwrap() * &dy)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let x = Var::from_tensor(&x0).unwrap();
    let l = (masked_softmax(x.as_tensor(), &m, 0.5, t).unwrap() * &dy).unwrap().sum_all().unwrap();
    let g = l.backward().unwrap().get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let base = x0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for i in 0..base.len() {
        let at = |d: f32| {
            let mut v = base.clone();
            v[i] += d;
            f(&Tensor::from_vec(v, (1, 2, t, s), &Device::Cpu).unwrap())
        };
        let fd = (at(1e-2) - at(-1e-2)) / 2e-2;
        assert!((fd - g[i] as f64).abs() < 2e-3, "element {i}: fd {fd} vs {}", g[i]);
    }
}

#[test]
fn a_row_with_every_key_masked_gives_zeros_and_bad_shapes_are_refused() {
    let x = Tensor::ones((1, 1, 2, 3), DType::F32, &Device::Cpu).unwrap();
    let m = Tensor::new(&[[[0f32, f32::NEG_INFINITY, 0.0], [f32::NEG_INFINITY; 3]]], &Device::Cpu).unwrap();
    let y = masked_softmax(&x, &m, 1.0, 2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(y, vec![0.5, 0.0, 0.5, 0.0, 0.0, 0.0]);
    let wrong = Tensor::zeros((1, 2, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(masked_softmax(&x, &wrong, 1.0, 2).is_err());
}
