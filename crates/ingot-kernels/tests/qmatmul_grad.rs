//! The quantized matmuls' backward to their input (what QLoRA trains through): against the
//! autograd of the dense matmul on the dequantized weights, and against finite differences, for
//! every format, both kernels, odd shapes and both the fused (few rows) and GEMM (many rows) paths.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor, Var};
use ingot_kernels::qmatmul::QFormat;
use ingot_kernels::{candle_qmatmul, qmatmul};
mod common;

use common::random_matrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(shape: &[usize], rng: &mut StdRng) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<_>>(), shape, &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// grad of sum(f(x) * r) with respect to x.
fn grad_of(x: &Var, f: impl Fn(&Tensor) -> Tensor, r: &Tensor) -> Tensor {
    let loss = (f(x.as_tensor()) * r).unwrap().sum_all().unwrap();
    loss.backward().unwrap().get(x.as_tensor()).expect("the input got no gradient").clone()
}

#[test]
fn fused_backward_equals_dense_autograd() {
    let mut rng = StdRng::seed_from_u64(7);
    for format in [QFormat::Q4_0, QFormat::Q4_1, QFormat::Q8_0] {
        // (leading dims of x, n, k): decode-sized (fused kernel) and prefill-sized (GEMM) inputs.
        for (lead, n, k) in [(vec![1, 1], 7, 32), (vec![3], 13, 96), (vec![2, 9], 5, 64), (vec![1, 17], 33, 160)] {
            let w = random_matrix(format, n, k, &mut rng);
            let dense = Tensor::from_vec(w.dequantize(), (n, k), &Device::Cpu).unwrap();
            let mut xs = lead.clone();
            xs.push(k);
            let x = Var::from_tensor(&random(&xs, &mut rng)).unwrap();
            let mut ys = lead.clone();
            ys.push(n);
            let r = random(&ys, &mut rng);
            let got = grad_of(&x, |x| qmatmul(x, &w).unwrap(), &r);
            let want = grad_of(&x, |x| x.broadcast_matmul(&dense.t().unwrap()).unwrap(), &r);
            assert_eq!(got.dims(), x.dims());
            let err = max_abs_diff(&got, &want);
            assert!(err < 1e-4, "{format:?} x {xs:?} W ({n}, {k}): grad differs by {err}");
        }
    }
}

#[test]
fn fused_backward_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(11);
    for format in [QFormat::Q4_0, QFormat::Q4_1, QFormat::Q8_0] {
        let (m, n, k) = (3, 9, 64);
        let w = random_matrix(format, n, k, &mut rng);
        let x0 = random(&[m, k], &mut rng);
        let r = random(&[m, n], &mut rng);
        let loss = |x: &Tensor| -> f64 {
            (qmatmul(x, &w).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_dtype(candle_core::DType::F64)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let x = Var::from_tensor(&x0).unwrap();
        let g = grad_of(&x, |x| qmatmul(x, &w).unwrap(), &r).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let base = x0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let eps = 1e-2f32;
        for i in [0, 5, 63, 64, 100, m * k - 1] {
            let at = |delta: f32| {
                let mut v = base.clone();
                v[i] += delta;
                loss(&Tensor::from_vec(v, (m, k), &Device::Cpu).unwrap())
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            let tol = 1e-2 * fd.abs().max(1.0);
            assert!((fd - g[i] as f64).abs() < tol, "{format:?} element {i}: fd {fd} vs grad {}", g[i]);
        }
    }
}

#[test]
fn candle_kernel_backward_equals_dense_autograd_for_k_quants() {
    let mut rng = StdRng::seed_from_u64(3);
    for dtype in [GgmlDType::Q4K, GgmlDType::Q6K, GgmlDType::Q5_0, GgmlDType::Q8_0] {
        let (n, k) = (11, 256);
        let q = Arc::new(QTensor::quantize(&random(&[n, k], &mut rng), dtype).unwrap());
        let dense = q.dequantize(&Device::Cpu).unwrap();
        for lead in [vec![1, 1], vec![2, 5]] {
            let mut xs = lead.clone();
            xs.push(k);
            let x = Var::from_tensor(&random(&xs, &mut rng)).unwrap();
            let mut ys = lead.clone();
            ys.push(n);
            let r = random(&ys, &mut rng);
            let got = grad_of(&x, |x| candle_qmatmul(x, &q).unwrap(), &r);
            let want = grad_of(&x, |x| x.broadcast_matmul(&dense.t().unwrap()).unwrap(), &r);
            let err = max_abs_diff(&got, &want);
            assert!(err < 1e-4, "{dtype:?} x {xs:?}: grad differs by {err}");
        }
    }
}

#[test]
fn no_graph_is_built_when_nothing_needs_a_gradient() {
    let mut rng = StdRng::seed_from_u64(5);
    let w = random_matrix(QFormat::Q4_1, 4, 32, &mut rng);
    let y = qmatmul(&random(&[2, 32], &mut rng), &w).unwrap();
    assert!(!y.track_op(), "inference must not record a backward graph");
}
