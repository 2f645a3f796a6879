//! Attention's masked softmax in one pass, with its backward: y = softmax(scale·x + mask) over
//! the last dimension.
//!
//! Composed from candle ops, this step of attention made about eight score-sized tensors per
//! layer (scaled, masked, max, shifted, exp, sum, quotient, and the same again in backward), each
//! a fresh allocation: on 600-token SFT rows the scores are ~12 MB per layer, and those copies were
//! most of a training step's memory and page faults. Here forward writes one tensor (y, kept for
//! backward) and backward one (dx):
//!   dx = scale · y ⊙ (dy − Σⱼ dyⱼ yⱼ)
//! The mask gets no gradient.
//!
//! Layout: x (B, K, R·T, S) as grouped-query attention folds R query heads per key head into the
//! rows; mask (MB, T, S) with MB = 1 (shared, e.g. causal) or B (per row: packed sequences).
//! A row whose every key is masked yields zeros (nothing to attend to) rather than NaN.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

#[derive(Clone, Debug)]
pub struct MaskedSoftmax {
    pub scale: f32,
    /// Query positions per head (T): rows of x cycle through them.
    pub t: usize,
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        (CpuStorage::F32(_), None) => candle_core::bail!("masked softmax: {what} must be contiguous"),
        _ => candle_core::bail!("masked softmax: {what} must be f32"),
    }
}

impl MaskedSoftmax {
    /// (rows per batch, batch) of x, checked against the mask.
    fn dims(&self, x: &Layout, mask: &Layout) -> Result<(usize, usize, usize)> {
        let xd = x.shape().dims();
        let md = mask.shape().dims();
        if xd.len() != 4 || md.len() != 3 {
            candle_core::bail!("masked softmax: x {xd:?} must be (B, K, R·T, S) and mask {md:?} (MB, T, S)")
        }
        let (b, s) = (xd[0], xd[3]);
        if md[1] != self.t || md[2] != s || !(md[0] == 1 || md[0] == b) || xd[2] % self.t != 0 {
            candle_core::bail!("masked softmax: mask {md:?} does not fit x {xd:?} with T = {}", self.t)
        }
        Ok((xd[1] * xd[2], s, md[0]))
    }
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "ingot-masked-softmax"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ms: &CpuStorage, ml: &Layout) -> Result<(CpuStorage, Shape)> {
        let (rows_per_batch, s, mb) = self.dims(xl, ml)?;
        let (x, mask) = (slice(xs, xl, "x")?, slice(ms, ml, "mask")?);
        let (t, scale) = (self.t, self.scale);
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(s).zip(x.par_chunks(s)).enumerate().for_each(|(row, (yr, xr))| {
            let batch = row / rows_per_batch;
            let m0 = ((if mb == 1 { 0 } else { batch }) * t + row % t) * s;
            let mr = &mask[m0..m0 + s];
            let mut max = f32::NEG_INFINITY;
            for j in 0..s {
                let v = xr[j] * scale + mr[j];
                yr[j] = v;
                max = max.max(v);
            }
            if max == f32::NEG_INFINITY {
                yr.iter_mut().for_each(|v| *v = 0.0);
                return;
            }
            let mut sum = 0f32;
            for v in yr.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            let inv = 1.0 / sum;
            yr.iter_mut().for_each(|v| *v *= inv);
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let s = res.dim(candle_core::D::Minus1)?;
        let y = res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let dy = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut dx = vec![0f32; y.len()];
        let scale = self.scale;
        dx.par_chunks_mut(s).zip(y.par_chunks(s).zip(dy.par_chunks(s))).for_each(|(dxr, (yr, dyr))| {
            let dot: f32 = yr.iter().zip(dyr).map(|(a, b)| a * b).sum();
            for j in 0..s {
                dxr[j] = scale * yr[j] * (dyr[j] - dot);
            }
        });
        Ok((Some(Tensor::from_vec(dx, res.shape(), res.device())?), None))
    }
}

/// softmax(scale·x + mask) over the last dim; x (B, K, R·T, S) f32, mask (1 or B, T, S) f32.
/// Differentiable with respect to x.
pub fn masked_softmax(x: &Tensor, mask: &Tensor, scale: f32, t: usize) -> Result<Tensor> {
    let op = MaskedSoftmax { scale, t };
    let (x, mask) = (x.contiguous()?, mask.contiguous()?);
    if x.track_op() {
        x.apply_op2(&mask, op)
    } else {
        x.apply_op2_no_bwd(&mask, &op)
    }
}
