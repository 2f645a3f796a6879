//! ingot-nn's layers against plain f64 loops written here from the formulas: norms (fused and
//! composed, forward and gradients), rotary embeddings (both layouts, offsets, scalings),
//! causal attention with grouped-query heads, and the KV cache's append / trim / select / repeat.
//!
//! One test binary (four modules) so the workspace links candle once for all of them. Sizes are
//! odd on purpose, inputs are seeded random, and every comparison states its tolerance.

mod attention;
mod kv_cache;
mod norm;
mod rope;

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` values uniform in [-1, 1) from a generator seeded by `seed`.
pub fn random(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// A seeded random tensor of `dims` in `dtype` on the CPU.
pub fn tensor(dims: &[usize], seed: u64, dtype: DType) -> Tensor {
    let n = dims.iter().product();
    Tensor::from_vec(random(n, seed), dims, &Device::Cpu).and_then(|t| t.to_dtype(dtype)).expect("random tensor")
}

/// A tensor's values as f64, flattened in row-major order.
pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f64>()).expect("tensor values")
}

/// The largest |a - b| over two equally long lists.
pub fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared lists differ in length");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Assert `got` is within `tol` of `want` everywhere, naming the worst element.
pub fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    let d = max_diff(got, want);
    assert!(d <= tol, "{what}: max |got - want| = {d:e} > {tol:e}");
}
