//! AdamW over a parameter in one pass, gradient clipping folded in, and the sum of squares the
//! global gradient norm is made of.
//!
//! Composed of candle ops, each parameter's update was a dozen tensor-sized temporaries (the
//! decayed weights, both moments' two terms, the square root, the quotient, ...), on one thread
//! for several of them. Here one parallel pass reads θ, m, v and g once and writes the new θ, m
//! and v, with the same f32 operations in the same order as torch's single-tensor AdamW (so a
//! step equals the composed one bit for bit):
//!
//! ```text
//! g  = g · clip
//! θ  = θ · (1 − lr·wd)
//! m  = m · β₁ + g · (1 − β₁)
//! v  = v · β₂ + g² · (1 − β₂)
//! θ  = θ − m / (√v / √(1 − β₂ᵗ) + ε) · lr / (1 − β₁ᵗ)
//! ```

use rayon::prelude::*;

/// One step's constants (the caller folds in the step count's bias corrections).
#[derive(Clone, Copy, Debug)]
pub struct AdamWStep {
    /// 1 − lr · weight decay.
    pub decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// lr / (1 − β₁ᵗ).
    pub step_size: f64,
    /// √(1 − β₂ᵗ).
    pub bias_correction2_sqrt: f64,
    /// The gradient clipping coefficient (1 when not clipping).
    pub grad_scale: f64,
}

const CHUNK: usize = 1 << 14;

/// The new (θ, m, v) after one AdamW step with gradient `g`. All four slices the same length.
pub fn adamw_update(theta: &[f32], m: &[f32], v: &[f32], g: &[f32], s: &AdamWStep) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(theta.len() == m.len() && m.len() == v.len() && v.len() == g.len(), "adamw: slices of different lengths");
    // Each constant rounded to f32 once, as candle's affine and scalar ops do.
    let decay = s.decay as f32;
    let (b1, one_b1) = (s.beta1 as f32, (1.0 - s.beta1) as f32);
    let (b2, one_b2) = (s.beta2 as f32, (1.0 - s.beta2) as f32);
    let inv_bc2 = (1.0 / s.bias_correction2_sqrt) as f32;
    let (eps, step, clip) = (s.eps as f32, s.step_size as f32, s.grad_scale as f32);
    // Collected (not zero-filled, then overwritten): each output is written once.
    let (t2, (m2, v2)): (Vec<f32>, (Vec<f32>, Vec<f32>)) = theta
        .par_iter()
        .zip(m.par_iter().zip(v.par_iter().zip(g.par_iter())))
        .with_min_len(CHUNK)
        .map(|(&th, (&mi, (&vi, &gi)))| {
            let g = if clip == 1.0 { gi } else { gi * clip + 0.0 };
            let t = th * decay + 0.0;
            let m = (mi * b1 + 0.0) + (g * one_b1 + 0.0);
            let v = (vi * b2 + 0.0) + ((g * g) * one_b2 + 0.0);
            let denom = v.sqrt() * inv_bc2 + eps;
            (t - ((m / denom) * step + 0.0), (m, v))
        })
        .unzip();
    (t2, m2, v2)
}

/// Σ x² in f64, in parallel.
pub fn sum_squares(x: &[f32]) -> f64 {
    x.par_chunks(CHUNK).map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()).sum()
}
