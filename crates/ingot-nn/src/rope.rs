//! Rotary position embeddings (Su et al. 2021), with the frequency scalings of Llama 3 and of
//! linear position interpolation.
//!
//! Two layouts exist in the wild: HF checkpoints rotate the two halves of each head
//! (`rotate_half`, "NeoX"), while llama.cpp's converter permutes llama's q/k weights so that GGUF
//! files rotate adjacent pairs ("interleaved"). The model picks the layout from its weight source.

use candle_core::{Device, Tensor};
use ingot_core::{CandleContext, Result};

use crate::norm::needs_grad;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeLayout {
    /// Rotate (x[i], x[i + d/2]) pairs: HF transformers, GGUF for Qwen2/NeoX-style models.
    Halves,
    /// Rotate (x[2i], x[2i+1]) pairs: GGUF llama after the converter's q/k permutation.
    Interleaved,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Position interpolation: positions divided by `factor`.
    Linear {
        factor: f64,
    },
    /// Llama 3.1's wavelength-dependent frequency scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position: usize,
    },
    /// Per-frequency divisors, as llama.cpp stores Llama 3.1's scaling (`rope_freqs.weight`).
    FreqFactors(Vec<f64>),
}

/// Precomputed cos/sin tables, (max_positions, head_dim / 2).
#[derive(Clone, Debug)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    layout: RopeLayout,
}

impl Rope {
    pub fn new(
        head_dim: usize,
        max_positions: usize,
        theta: f64,
        scaling: &RopeScaling,
        layout: RopeLayout,
        device: &Device,
    ) -> Result<Self> {
        let mut inv_freq: Vec<f64> =
            (0..head_dim / 2).map(|i| 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)).collect();
        match *scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => inv_freq.iter_mut().for_each(|f| *f /= factor),
            RopeScaling::FreqFactors(ref factors) => {
                if factors.len() != inv_freq.len() {
                    return Err(ingot_core::Error::Model(format!(
                        "rope has {} frequency factors for head dim {head_dim} (expected {})",
                        factors.len(),
                        inv_freq.len()
                    )));
                }
                inv_freq.iter_mut().zip(factors).for_each(|(f, d)| *f /= d);
            }
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position } => {
                let old = original_max_position as f64;
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                for f in inv_freq.iter_mut() {
                    let wavelen = 2.0 * std::f64::consts::PI / *f;
                    if wavelen > low_wavelen {
                        *f /= factor;
                    } else if wavelen >= high_wavelen {
                        let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        *f = (1.0 - smooth) * *f / factor + smooth * *f;
                    }
                }
            }
        }
        let half = head_dim / 2;
        // Tables are materialised up front: refuse sizes no real model has rather than trying to
        // allocate them (a corrupt or hostile config could ask for 2^60 positions).
        const MAX_POSITIONS: usize = 1 << 22;
        if max_positions == 0 || max_positions > MAX_POSITIONS || head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(ingot_core::Error::Model(format!(
                "context length {max_positions} with head dim {head_dim} is not supported (context must be 1..={MAX_POSITIONS}, head dim even)"
            )));
        }
        // cos and sin, (max_positions, D/2) f32 each: built in a Vec, then copied into a tensor.
        ingot_core::limits::check_memory(
            &format!("RoPE tables for context length {max_positions} x head dim {head_dim}"),
            ingot_core::limits::product(&[2, 2, max_positions, half, 4]),
        )
        .map_err(|e| ingot_core::Error::Model(e.to_string()))?;
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for f in &inv_freq {
                let angle = p as f64 * f;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let cos = Tensor::from_vec(cos, (max_positions, half), device).context(|| "rope table".into())?;
        let sin = Tensor::from_vec(sin, (max_positions, half), device).context(|| "rope table".into())?;
        Ok(Self { cos, sin, layout })
    }

    /// The cos and sin tables, (max_positions, head_dim / 2) each, row-major: for loops that
    /// rotate in place (the decode loop).
    pub fn tables(&self) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
        Ok((self.cos.flatten_all()?.to_vec1()?, self.sin.flatten_all()?.to_vec1()?))
    }

    pub fn layout(&self) -> RopeLayout {
        self.layout
    }

    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// Rotate x (B, H, T, D) whose first position is `offset`.
    pub fn apply(&self, x: &Tensor, offset: usize) -> candle_core::Result<Tensor> {
        let (_b, _h, t, _d) = x.dims4()?;
        let cos = self.cos.narrow(0, offset, t)?.to_dtype(x.dtype())?;
        let sin = self.sin.narrow(0, offset, t)?.to_dtype(x.dtype())?;
        // The fused rope kernels have no backward; use the composed forms when training.
        let train = needs_grad(&[x]);
        match (self.layout, train) {
            (RopeLayout::Halves, false) => candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin),
            (RopeLayout::Halves, true) => candle_nn::rotary_emb::rope_slow(x, &cos, &sin),
            (RopeLayout::Interleaved, false) => candle_nn::rotary_emb::rope_i(&x.contiguous()?, &cos, &sin),
            (RopeLayout::Interleaved, true) => candle_nn::rotary_emb::rope_i_slow(x, &cos, &sin),
        }
    }

    /// Rotate x (B, H, T, D) whose T columns sit at `positions` (one each: the decode step of T
    /// sequences at their own lengths, laid side by side). Inference only (the fused kernels).
    pub fn apply_at(&self, x: &Tensor, positions: &[u32]) -> candle_core::Result<Tensor> {
        let ids = Tensor::new(positions, x.device())?;
        let cos = self.cos.index_select(&ids, 0)?.to_dtype(x.dtype())?;
        let sin = self.sin.index_select(&ids, 0)?.to_dtype(x.dtype())?;
        match self.layout {
            RopeLayout::Halves => candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin),
            RopeLayout::Interleaved => candle_nn::rotary_emb::rope_i(&x.contiguous()?, &cos, &sin),
        }
    }

    /// Rotate x (B, H, T, D) whose positions are given per row, `positions` (B, T) u32 (packed
    /// sequences restart at 0 for each example). Composed of differentiable ops.
    pub fn apply_positions(&self, x: &Tensor, positions: &Tensor) -> candle_core::Result<Tensor> {
        let (b, h, t, d) = x.dims4()?;
        let half = d / 2;
        let flat = positions.flatten_all()?;
        let cos = self.cos.index_select(&flat, 0)?.to_dtype(x.dtype())?.reshape((b, 1, t, half))?;
        let sin = self.sin.index_select(&flat, 0)?.to_dtype(x.dtype())?.reshape((b, 1, t, half))?;
        match self.layout {
            RopeLayout::Halves => {
                let cos = Tensor::cat(&[&cos, &cos], 3)?;
                let sin = Tensor::cat(&[&sin, &sin], 3)?;
                let x1 = x.narrow(3, 0, half)?;
                let x2 = x.narrow(3, half, half)?;
                let rotated = Tensor::cat(&[&x2.neg()?, &x1], 3)?;
                x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
            }
            RopeLayout::Interleaved => {
                let cos = cos.unsqueeze(4)?;
                let sin = sin.unsqueeze(4)?;
                let x = x.reshape((b, h, t, half, 2))?;
                let x0 = x.narrow(4, 0, 1)?;
                let x1 = x.narrow(4, 1, 1)?;
                let y0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
                let y1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
                Tensor::cat(&[y0, y1], 4)?.reshape((b, h, t, d))
            }
        }
    }
}
