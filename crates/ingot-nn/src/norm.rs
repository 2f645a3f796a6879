//! RMSNorm and LayerNorm.
//!
//! candle's fused norm kernels are fast but have no backward: gradients silently stop at them
//! (../shared/CANDLE-NOTES.md, trap 1). Each norm here takes the fused kernel only when nothing
//! upstream needs a gradient; a gradient goes through Ingot's own kernels (`ingot_kernels`'s
//! norms, forward and backward in one pass each) for f32 and f64 on the CPU, and through a
//! composition of primitive ops otherwise (half precision, other devices).

use candle_core::{DType, Tensor, D};
use candle_nn::Init;
use ingot_core::Result;

use crate::weights::Weights;

/// True when a gradient must flow through an op on these tensors.
pub fn needs_grad(xs: &[&Tensor]) -> bool {
    xs.iter().any(|t| t.track_op())
}

/// Process-wide switch for Ingot's fused kernels on the training path (norms, activations,
/// attention, linear layers, the head's loss): on unless `INGOT_FUSED_KERNELS=0`, or until
/// [`set_fused_kernels`] says otherwise. Off, every layer takes candle's composed ops (and bf16
/// products fall back to f32): the reference the fused step is tested against, and an A/B
/// switch for a suspected kernel bug.
static FUSED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(UNSET);
const UNSET: u8 = 2;

pub fn fused_kernels() -> bool {
    use std::sync::atomic::Ordering;
    match FUSED.load(Ordering::Relaxed) {
        UNSET => {
            let on = std::env::var("INGOT_FUSED_KERNELS").map_or(true, |v| v != "0");
            FUSED.store(on as u8, Ordering::Relaxed);
            on
        }
        v => v == 1,
    }
}

/// Turn the fused kernels on or off for the whole process (see [`fused_kernels`]).
pub fn set_fused_kernels(on: bool) {
    FUSED.store(on as u8, std::sync::atomic::Ordering::Relaxed);
}

/// True when Ingot's training kernels take these tensors: on the CPU, all f32 or all f64, and
/// the kernels are on ([`fused_kernels`]).
pub fn kernel_dtype(xs: &[&Tensor]) -> bool {
    let Some(first) = xs.first() else { return false };
    if !fused_kernels() {
        return false;
    }
    matches!(first.dtype(), DType::F32 | DType::F64)
        && xs.iter().all(|t| t.device().is_cpu() && t.dtype() == first.dtype())
}

/// y = x / sqrt(mean(x²) + eps) * w
#[derive(Clone, Debug)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self { weight: w.get(&[dim], "weight", Init::Const(1.0))?, eps })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn eps(&self) -> f64 {
        self.eps
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if needs_grad(&[x, &self.weight]) && kernel_dtype(&[x, &self.weight]) {
            ingot_kernels::rms_norm(x, &self.weight, self.eps)
        } else if needs_grad(&[x, &self.weight]) {
            // Half-precision inputs are normalised in f32; f32 and f64 stay as they are.
            let xf = if x.dtype() == DType::F64 { x.clone() } else { x.to_dtype(DType::F32)? };
            let rms = (xf.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?.sqrt()?;
            xf.broadcast_div(&rms)?.to_dtype(x.dtype())?.broadcast_mul(&self.weight)
        } else {
            candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps as f32)
        }
    }
}

/// y = (x - mean) / sqrt(var + eps) * w + b
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: w.get(&[dim], "weight", Init::Const(1.0))?,
            bias: w.get(&[dim], "bias", Init::Const(0.0))?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if needs_grad(&[x, &self.weight, &self.bias]) && kernel_dtype(&[x, &self.weight, &self.bias]) {
            ingot_kernels::layer_norm(x, &self.weight, &self.bias, self.eps)
        } else if needs_grad(&[x, &self.weight, &self.bias]) {
            let mean = x.mean_keepdim(D::Minus1)?;
            let centered = x.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
            let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
            normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
        } else {
            candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps as f32)
        }
    }
}

/// Softmax over the last dimension: fused kernel for inference, composition for training.
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    if needs_grad(&[x]) {
        candle_nn::ops::softmax(x, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}
