//! Next-token cross-entropy fused with the output head, in chunks of rows: the (N, V) logits
//! are never kept, neither for the loss nor for its backward.
//!
//! Composed of candle ops, the loss of the training benchmark's 2,048 rows over a 4,096-word
//! vocabulary made ~10 logits-sized tensors (32 MB each: the logits, max, shifted, exp, sums,
//! log-softmax, and their gradients). Here forward computes each chunk's logits, reduces every
//! row to its log-sum-exp and the target's logit, and drops the chunk; backward recomputes the
//! chunk's logits (one more head product, ~1/6 of the head's cost in a step) and turns them into
//! the gradient in place:
//!
//! ```text
//! nll_i = lse(z_i) − z_i[t_i],  z = h Wᵀ
//! dz_i  = g_i · (softmax(z_i) − onehot(t_i)),  dh = dz W,  dW = Σ_chunks dzᵀ h
//! ```
//! softmax(z_i) is exp(z_i − lse_i), and lse_i = nll_i + z_i[t_i] is read back from the output,
//! so nothing but the per-row losses is stored. A target outside the vocabulary is an error.
//!
//! Dimension legend: N rows (positions), C width, V vocabulary.

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::real::{input, values, with_values, Real};

/// Rows per chunk: a (256, V) logits chunk is 4 MB at V = 4,096 and 50 MB at 49k.
const CHUNK_ROWS: usize = 256;

/// The product of a chunk of rows with the head: (rows, C) · (V, C)ᵀ.
pub type HeadProduct = fn(&Tensor, &Tensor) -> Result<Tensor>;

fn f32_product(h: &Tensor, w: &Tensor) -> Result<Tensor> {
    h.matmul(&w.t()?)
}

struct HeadCrossEntropy {
    /// How a chunk's logits are computed (f32, or bf16 under mixed precision).
    product: HeadProduct,
}

/// Per row of z (rows, V): log-sum-exp.
fn row_lse<T: Real>(z: &[T]) -> T {
    let max = crate::real::max_of(z);
    max + crate::real::sum_exp(z, max).ln()
}

fn targets(t: &Tensor, n: usize, v: usize) -> Result<Vec<u32>> {
    let t = t.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
    if t.len() != n {
        candle_core::bail!("head cross-entropy: {} targets for {n} rows", t.len())
    }
    if let Some(bad) = t.iter().find(|&&id| id as usize >= v) {
        candle_core::bail!("head cross-entropy: target id {bad} is outside the vocabulary of {v}")
    }
    Ok(t)
}

impl HeadCrossEntropy {
    /// (N, C, V), checked.
    fn dims(&self, h: &Shape, w: &Shape, t: &Shape) -> Result<(usize, usize, usize)> {
        match (h.dims(), w.dims(), t.dims()) {
            (&[n, c], &[v, c2], &[n2]) if c == c2 && n == n2 && v > 0 => Ok((n, c, v)),
            (h, w, t) => candle_core::bail!(
                "head cross-entropy: hidden {h:?} must be (N, C), head {w:?} (V, C) and targets {t:?} (N)"
            ),
        }
    }

    fn forward<T: Real>(&self, h: &[T], w: &[T], t: &[u32], (n, c, v): (usize, usize, usize)) -> Result<Vec<T>> {
        let dev = Device::Cpu;
        let w = Tensor::from_slice(w, (v, c), &dev)?;
        let mut nll = vec![T::ZERO; n];
        for start in (0..n).step_by(CHUNK_ROWS) {
            let rows = CHUNK_ROWS.min(n - start);
            let hc = Tensor::from_slice(&h[start * c..(start + rows) * c], (rows, c), &dev)?;
            let z = (self.product)(&hc, &w)?;
            with_values::<T, _>(&[&z], |z| {
                nll[start..start + rows].par_iter_mut().zip(z[0].par_chunks(v)).enumerate().for_each(
                    |(i, (out, zr))| {
                        *out = row_lse(zr) - zr[t[start + i] as usize];
                    },
                )
            })?;
        }
        Ok(nll)
    }

    fn backward<T: Real>(
        &self,
        h: &Tensor,
        w: &Tensor,
        t: &Tensor,
        nll: &Tensor,
        g: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (h, w) = (h.detach(), w.detach());
        let (n, c) = h.dims2()?;
        let v = w.dim(0)?;
        let t = targets(t, n, v)?;
        let (nll, g) = (values::<T>(nll)?, values::<T>(g)?);
        let mut dh = Vec::with_capacity(n.div_ceil(CHUNK_ROWS));
        let mut dw = Tensor::zeros((v, c), T::DTYPE, h.device())?;
        let wt = w.t()?; // (C, V): dh = dz · (Wᵀ)ᵀ
        for start in (0..n).step_by(CHUNK_ROWS) {
            let rows = CHUNK_ROWS.min(n - start);
            let hc = h.narrow(0, start, rows)?;
            let mut z = values::<T>(&(self.product)(&hc, &w)?)?;
            z.par_chunks_mut(v).enumerate().for_each(|(i, zr)| {
                let row = start + i;
                let target = t[row] as usize;
                let lse = nll[row] + zr[target];
                for value in zr.iter_mut() {
                    *value = g[row] * (*value - lse).exp();
                }
                zr[target] = zr[target] - g[row];
            });
            let dz = Tensor::from_vec(z, (rows, v), h.device())?;
            dh.push((self.product)(&dz, &wt)?);
            dw = (dw + (self.product)(&dz.t()?, &hc.t()?)?)?; // dzᵀ · hc
        }
        Ok((Tensor::cat(&dh, 0)?, dw))
    }
}

impl CustomOp3 for HeadCrossEntropy {
    fn name(&self) -> &'static str {
        "ingot-head-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        hs: &CpuStorage,
        hl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = self.dims(hl.shape(), wl.shape(), tl.shape())?;
        let t = match (ts, tl.contiguous_offsets()) {
            (CpuStorage::U32(t), Some((a, b))) => &t[a..b],
            _ => candle_core::bail!("head cross-entropy: targets must be contiguous u32 ids"),
        };
        if let Some(bad) = t.iter().find(|&&id| id as usize >= dims.2) {
            candle_core::bail!("head cross-entropy: target id {bad} is outside the vocabulary of {}", dims.2)
        }
        let op = self.name();
        let nll = match hs {
            CpuStorage::F64(_) => {
                f64::storage(self.forward(input(hs, hl, op, "hidden")?, input(ws, wl, op, "head")?, t, dims)?)
            }
            _ => f32::storage(self.forward(input(hs, hl, op, "hidden")?, input(ws, wl, op, "head")?, t, dims)?),
        };
        Ok((nll, Shape::from(dims.0)))
    }

    fn bwd(
        &self,
        h: &Tensor,
        w: &Tensor,
        t: &Tensor,
        nll: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dh, dw) = match h.dtype() {
            DType::F64 => self.backward::<f64>(h, w, t, nll, g)?,
            _ => self.backward::<f32>(h, w, t, nll, g)?,
        };
        Ok((Some(dh), Some(dw), None))
    }
}

/// Per-row cross-entropy of the next-token predictions `hidden · headᵀ`: hidden (N, C), head
/// (V, C), targets (N) u32 → nll (N), without keeping the (N, V) logits. f32 or f64 (hidden
/// and head the same), differentiable in hidden and head.
pub fn head_cross_entropy(hidden: &Tensor, head: &Tensor, targets: &Tensor) -> Result<Tensor> {
    head_cross_entropy_with(hidden, head, targets, f32_product)
}

/// [`head_cross_entropy`] with the chunks' products computed by `product` (a bf16 kernel
/// under mixed precision); `product(a, b)` = a · bᵀ for a (rows, K), b (cols, K), either of
/// which may be a transposed view.
pub fn head_cross_entropy_with(
    hidden: &Tensor,
    head: &Tensor,
    targets: &Tensor,
    product: HeadProduct,
) -> Result<Tensor> {
    let d = crate::real::float_dtype("head cross-entropy", hidden)?;
    if head.dtype() != d {
        candle_core::bail!("head cross-entropy: hidden is {d:?} but the head is {:?}", head.dtype())
    }
    let (h, w, t) = (hidden.contiguous()?, head.contiguous()?, targets.to_dtype(DType::U32)?.contiguous()?);
    let op = HeadCrossEntropy { product };
    if h.track_op() || w.track_op() {
        h.apply_op3(&w, &t, op)
    } else {
        h.apply_op3_no_bwd(&w, &t, &op)
    }
}
