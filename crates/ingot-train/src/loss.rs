//! The loss maths every recipe uses, in one place.
//!
//! - [`cross_entropy`]: mean next-token cross-entropy (pre-training, the training benchmark).
//! - [`masked_cross_entropy`]: the same over the positions a 0/1 mask selects (SFT: assistant or
//!   completion tokens only); masked positions contribute nothing, not even gradient.
//! - [`token_logprobs`]: log p(target) per position, differentiable (DPO, PPO, GRPO and the
//!   reward model's inputs).
//! - [`lm_head_loss`]: the output head applied only to the trained positions, then the loss: with
//!   SFT's prompts mostly masked, most of a (B·T, V) logits tensor would be computed for nothing.
//!
//! All take logits as (N, V) and targets as N u32 ids; reductions are in f32.

use candle_core::{DType, Tensor, D};

/// log_softmax over the last dim, composed of differentiable ops (candle's fused softmax has no
/// backward).
fn log_softmax(logits: &Tensor) -> candle_core::Result<Tensor> {
    let logits = if logits.dtype() == DType::F64 { logits.clone() } else { logits.to_dtype(DType::F32)? };
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// log p(targets[i]) under logits[i]: (N, V), N → (N).
pub fn token_logprobs(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let n = targets.dim(0)?;
    log_softmax(logits)?.gather(&targets.reshape((n, 1))?, 1)?.reshape(n)
}

/// Mean cross-entropy of logits (N, V) against targets (N).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    token_logprobs(logits, targets)?.mean_all()?.neg()
}

/// Mean cross-entropy over the positions where `mask` (N, f32 0/1) is 1. A mask with no 1 is an
/// error: its mean is undefined, and a silent 0 would hide an empty batch.
pub fn masked_cross_entropy(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?;
    let count = mask.sum_all()?.to_scalar::<f32>()?;
    if count <= 0.0 {
        candle_core::bail!("masked cross-entropy over a batch with no trained positions")
    }
    let nll = token_logprobs(logits, targets)?.neg()?;
    // where() rather than a product: a masked position's NaN or inf logit must not leak in.
    let zeros = nll.zeros_like()?;
    let kept = mask.ne(0f32)?.where_cond(&nll, &zeros)?;
    kept.sum_all()? / count as f64
}

/// Cross-entropy of the next-token predictions at the positions `rows` of hidden states
/// (N, C), through `head` (hidden → logits): only those rows reach the output head.
/// `targets` holds one id per row. Returns the mean loss.
pub fn lm_head_loss(
    hidden: &Tensor,
    rows: &[u32],
    targets: &[u32],
    head: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    if rows.is_empty() || rows.len() != targets.len() {
        candle_core::bail!("{} trained rows with {} targets", rows.len(), targets.len())
    }
    let device = hidden.device();
    let picked = hidden.index_select(&Tensor::from_slice(rows, rows.len(), device)?, 0)?;
    let logits = head(&picked)?;
    cross_entropy(&logits, &Tensor::from_slice(targets, targets.len(), device)?)
}

/// Mean next-token cross-entropy of a model on (B, T) inputs against (B·T) targets.
pub fn lm_loss(
    model: &ingot_models::Model,
    inputs: &[u32],
    targets: &[u32],
    b: usize,
    t: usize,
    device: &candle_core::Device,
) -> crate::Result<Tensor> {
    use crate::error::Context;
    let x = Tensor::from_slice(inputs, (b, t), device).context(|| "input ids".into())?;
    let y = Tensor::from_slice(targets, b * t, device).context(|| "target ids".into())?;
    let logits = model.forward(&x, None)?; // (B, T, V)
    let ce = || -> candle_core::Result<Tensor> {
        let v = logits.dim(2)?;
        cross_entropy(&logits.reshape((b * t, v))?, &y)
    };
    Ok(ce().context(|| "language-model loss".into())?)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn logits() -> Tensor {
        Tensor::new(&[[1.0f32, 2.0, 0.5], [0.1, -1.0, 3.0], [2.0, 2.0, 2.0], [0.0, 5.0, -2.0]], &Device::Cpu).unwrap()
    }

    #[test]
    fn matches_candle_cross_entropy() {
        let t = Tensor::new(&[1u32, 2, 0, 1], &Device::Cpu).unwrap();
        let ours = cross_entropy(&logits(), &t).unwrap().to_scalar::<f32>().unwrap();
        let theirs = candle_nn::loss::cross_entropy(&logits(), &t).unwrap().to_scalar::<f32>().unwrap();
        assert!((ours - theirs).abs() < 1e-6, "{ours} vs {theirs}");
    }

    #[test]
    fn masked_positions_get_no_gradient_and_do_not_count() {
        let x = Var::from_tensor(&logits()).unwrap();
        let t = Tensor::new(&[1u32, 2, 0, 1], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[0f32, 1.0, 0.0, 1.0], &Device::Cpu).unwrap();
        let loss = masked_cross_entropy(x.as_tensor(), &t, &mask).unwrap();
        // Equals the plain loss over the kept rows only.
        let kept = cross_entropy(
            &logits().index_select(&Tensor::new(&[1u32, 3], &Device::Cpu).unwrap(), 0).unwrap(),
            &Tensor::new(&[2u32, 1], &Device::Cpu).unwrap(),
        )
        .unwrap();
        assert!((loss.to_scalar::<f32>().unwrap() - kept.to_scalar::<f32>().unwrap()).abs() < 1e-6);
        let g = loss.backward().unwrap().get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        assert!(g[0].iter().chain(&g[2]).all(|&v| v == 0.0), "masked rows got gradient: {g:?}");
        assert!(g[1].iter().chain(&g[3]).any(|&v| v != 0.0));
    }

    #[test]
    fn masked_loss_ignores_non_finite_masked_logits() {
        let mut rows = logits().to_vec2::<f32>().unwrap();
        rows[0][0] = f32::NAN;
        let x = Tensor::new(rows, &Device::Cpu).unwrap();
        let t = Tensor::new(&[1u32, 2, 0, 1], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[0f32, 1.0, 1.0, 1.0], &Device::Cpu).unwrap();
        assert!(masked_cross_entropy(&x, &t, &mask).unwrap().to_scalar::<f32>().unwrap().is_finite());
        assert!(masked_cross_entropy(&x, &t, &mask.zeros_like().unwrap()).is_err());
    }

    #[test]
    fn token_logprobs_gradient_matches_finite_differences() {
        let base = logits().to_dtype(DType::F64).unwrap();
        let t = Tensor::new(&[1u32, 2, 0, 1], &Device::Cpu).unwrap();
        let x = Var::from_tensor(&base).unwrap();
        let f = |x: &Tensor| token_logprobs(x, &t).unwrap().sum_all().unwrap();
        let g = f(x.as_tensor()).backward().unwrap().get(x.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
        let v = base.to_vec2::<f64>().unwrap();
        for i in 0..4 {
            for j in 0..3 {
                let at = |d: f64| {
                    let mut w = v.clone();
                    w[i][j] += d;
                    f(&Tensor::new(w, &Device::Cpu).unwrap()).to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
                };
                let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
                assert!((fd - g[i][j]).abs() < 1e-5, "({i},{j}): fd {fd} vs {}", g[i][j]);
            }
        }
    }
}
