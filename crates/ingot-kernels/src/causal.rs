//! Causal self-attention for training, forward and backward, straight from the fused qkv
//! projection: no (T, T) matrix is kept between them, and no head is copied out of qkv.
//!
//! Composed of candle ops, a GPT-2 block's attention was ~20 graph nodes (the qkv split's
//! narrows, transposes and copies, two batched matmuls, the softmax, the merge of the heads),
//! each with a tensor-sized temporary in forward and two more in backward (candle adds every
//! gradient into a fresh zero tensor, and a narrow's gradient is a zero-padded concatenation).
//! Here one op reads q, k and v in place from qkv (B, T, 3·C) and writes y (B, T, C) with the
//! heads already merged, as flash attention's recurrence does, in blocks of query rows:
//!
//! ```text
//! S = scale · Q_blk K[..end]ᵀ (masked j > i),  P = softmax(S),  Y_blk = P V[..end]
//! ```
//! Only each row's log-sum-exp is saved (B, H, T), inside the op. Backward recomputes P block by block from it:
//! ```text
//! dV += Pᵀ dY,  dP = dY Vᵀ,  dS = P ∘ (dP − rowsum(dY ∘ Y)),  dQ = scale · dS K,  dK += scale · dSᵀ Q
//! ```
//! Each (batch, head) pair is one parallel task; its products go to the `gemm` crate (the GEMM
//! under candle's CPU matmul), one thread each. f32 for training, f64 for the finite-difference
//! tests. Dimension legend: B batch, T positions, H heads, D head dim, C = H·D.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::real::{input, with_values, Real};

/// Query rows per block: a (64, T) score block is 64 KB at T = 256.
const BLOCK: usize = 64;

/// c (m, n) = a (m, k) · b, each a strided view given as (pointer, column stride, row stride);
/// `accumulate` adds to c instead of overwriting it.
#[allow(clippy::too_many_arguments)]
fn product<T: Real>(
    (m, n, k): (usize, usize, usize),
    c: (*mut T, isize, isize),
    a: (*const T, isize, isize),
    b: (*const T, isize, isize),
    scale: T,
    accumulate: bool,
) {
    // Safety: every caller passes views that lie inside live slices of the sizes given.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.0,
            c.1,
            c.2,
            accumulate,
            a.0,
            a.1,
            a.2,
            b.0,
            b.1,
            b.2,
            T::ONE,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

struct CausalAttention {
    heads: usize,
    /// The forward's log-sum-exps (B·H·T), for its backward.
    lse: std::sync::Mutex<Option<CpuStorage>>,
}

/// (B, T, C, D) of a qkv (B, T, 3·C) input, checked.
fn dims(heads: usize, shape: &Shape) -> Result<(usize, usize, usize, usize)> {
    match shape.dims() {
        &[b, t, c3] if c3 % 3 == 0 && heads > 0 && (c3 / 3) % heads == 0 && t > 0 => Ok((b, t, c3 / 3, c3 / 3 / heads)),
        d => candle_core::bail!("causal attention: qkv {d:?} must be (B, T, 3·C) with C divisible by {heads} heads"),
    }
}

/// One head's forward: y_h (T, D) contiguous and the rows' log-sum-exp (T).
fn head_forward<T: Real>(qkv: &[T], (t, c, d): (usize, usize, usize), h: usize) -> (Vec<T>, Vec<T>) {
    let row = 3 * c as isize;
    let scale = T::of(1.0 / (d as f64).sqrt());
    let (q, k, v) = (qkv[h * d..].as_ptr(), qkv[c + h * d..].as_ptr(), qkv[2 * c + h * d..].as_ptr());
    let mut y = vec![T::ZERO; t * d];
    let mut lse = vec![T::ZERO; t];
    let mut s = vec![T::ZERO; BLOCK * t];
    for i0 in (0..t).step_by(BLOCK) {
        let rows = BLOCK.min(t - i0);
        let end = i0 + rows; // keys 0..end are visible to some row of the block
                             // S = scale · Q_blk · Kᵀ: (rows, end), row stride `end`.
        product(
            (rows, end, d),
            (s.as_mut_ptr(), 1, end as isize),
            (unsafe { q.offset(i0 as isize * row) }, 1, row),
            (k, row, 1),
            scale,
            false,
        );
        for r in 0..rows {
            let i = i0 + r;
            let sr = &mut s[r * end..(r + 1) * end];
            let max = crate::real::max_of(&sr[..=i]);
            let sum = crate::real::exp_in_place(&mut sr[..=i], max);
            let inv = T::ONE / sum;
            for x in sr[..=i].iter_mut() {
                *x = *x * inv;
            }
            for x in sr[i + 1..].iter_mut() {
                *x = T::ZERO;
            }
            lse[i] = max + sum.ln();
        }
        // Y_blk = P · V[..end]
        product(
            (rows, d, end),
            (y[i0 * d..].as_mut_ptr(), 1, d as isize),
            (s.as_ptr(), 1, end as isize),
            (v, 1, row),
            T::ONE,
            false,
        );
    }
    (y, lse)
}

/// One head's backward: dq, dk, dv (T, D) contiguous each.
fn head_backward<T: Real>(
    qkv: &[T],
    y: &[T],
    dy: &[T],
    lse: &[T],
    (t, c, d): (usize, usize, usize),
    h: usize,
) -> [Vec<T>; 3] {
    let row = 3 * c as isize;
    let scale = T::of(1.0 / (d as f64).sqrt());
    let (q, k, v) = (qkv[h * d..].as_ptr(), qkv[c + h * d..].as_ptr(), qkv[2 * c + h * d..].as_ptr());
    let (dyh, yh) = (dy[h * d..].as_ptr(), &y[h * d..]);
    let (mut dq, mut dk, mut dv) = (vec![T::ZERO; t * d], vec![T::ZERO; t * d], vec![T::ZERO; t * d]);
    let mut p = vec![T::ZERO; BLOCK * t];
    let mut dp = vec![T::ZERO; BLOCK * t];
    for i0 in (0..t).step_by(BLOCK) {
        let rows = BLOCK.min(t - i0);
        let end = i0 + rows;
        let q_blk = unsafe { q.offset(i0 as isize * c as isize * 3) };
        let dy_blk = unsafe { dyh.offset((i0 * c) as isize) };
        // P from the saved log-sum-exp.
        product((rows, end, d), (p.as_mut_ptr(), 1, end as isize), (q_blk, 1, row), (k, row, 1), scale, false);
        // dP = dY_blk · Vᵀ
        product(
            (rows, end, d),
            (dp.as_mut_ptr(), 1, end as isize),
            (dy_blk, 1, c as isize),
            (v, row, 1),
            T::ONE,
            false,
        );
        for r in 0..rows {
            let i = i0 + r;
            // rowsum(dY ∘ Y) for row i of this head.
            let (dyi, yi) = (&dy[i * c + h * d..][..d], &yh[i * c..][..d]);
            let delta = dyi.iter().zip(yi).fold(T::ZERO, |acc, (&a, &b)| acc + a * b);
            let (pr, dpr) = (&mut p[r * end..(r + 1) * end], &mut dp[r * end..(r + 1) * end]);
            let l = lse[i];
            for (p, dp) in pr[..=i].iter_mut().zip(dpr[..=i].iter_mut()) {
                *p = (*p - l).exp();
                *dp = *p * (*dp - delta); // dS
            }
            pr[i + 1..].iter_mut().for_each(|p| *p = T::ZERO);
            dpr[i + 1..].iter_mut().for_each(|p| *p = T::ZERO);
        }
        // dV[..end] += Pᵀ · dY_blk
        product(
            (end, d, rows),
            (dv.as_mut_ptr(), 1, d as isize),
            (p.as_ptr(), end as isize, 1),
            (dy_blk, 1, c as isize),
            T::ONE,
            true,
        );
        // dQ_blk = scale · dS · K[..end]
        product(
            (rows, d, end),
            (dq[i0 * d..].as_mut_ptr(), 1, d as isize),
            (dp.as_ptr(), 1, end as isize),
            (k, 1, row),
            scale,
            false,
        );
        // dK[..end] += scale · dSᵀ · Q_blk
        product(
            (end, d, rows),
            (dk.as_mut_ptr(), 1, d as isize),
            (dp.as_ptr(), end as isize, 1),
            (q_blk, 1, row),
            scale,
            true,
        );
    }
    [dq, dk, dv]
}

impl CausalAttention {
    fn forward<T: Real>(&self, qkv: &[T], (b, t, c, d): (usize, usize, usize, usize)) -> (Vec<T>, Vec<T>) {
        let h = self.heads;
        let per: Vec<(Vec<T>, Vec<T>)> = (0..b * h)
            .into_par_iter()
            .map(|bh| head_forward(&qkv[(bh / h) * t * 3 * c..][..t * 3 * c], (t, c, d), bh % h))
            .collect();
        // Merge the heads, row by row in parallel.
        let mut y = vec![T::ZERO; b * t * c];
        y.par_chunks_mut(c).enumerate().for_each(|(row, out)| {
            let (bi, i) = (row / t, row % t);
            for hi in 0..h {
                out[hi * d..][..d].copy_from_slice(&per[bi * h + hi].0[i * d..][..d]);
            }
        });
        let lse = per.into_iter().flat_map(|(_, l)| l).collect();
        (y, lse)
    }
}

impl CustomOp1 for CausalAttention {
    fn name(&self) -> &'static str {
        "ingot-causal-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = dims(self.heads, l.shape())?;
        let (b, t, c, _) = dims;
        let op = self.name();
        let (y, lse) = match s {
            CpuStorage::F64(_) => {
                let (y, lse) = self.forward(input::<f64>(s, l, op, "qkv")?, dims);
                (f64::storage(y), f64::storage(lse))
            }
            _ => {
                let (y, lse) = self.forward(input::<f32>(s, l, op, "qkv")?, dims);
                (f32::storage(y), f32::storage(lse))
            }
        };
        if let Ok(mut saved) = self.lse.lock() {
            *saved = Some(lse);
        }
        Ok((y, Shape::from((b, t, c))))
    }

    fn bwd(&self, qkv: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let dims = dims(self.heads, qkv.shape())?;
        let d = match qkv.dtype() {
            candle_core::DType::F64 => self.backward::<f64>(qkv, y, g, dims)?,
            _ => self.backward::<f32>(qkv, y, g, dims)?,
        };
        Ok(Some(d))
    }
}

impl CausalAttention {
    fn backward<T: Real>(
        &self,
        qkv: &Tensor,
        y: &Tensor,
        g: &Tensor,
        (b, t, c, d): (usize, usize, usize, usize),
    ) -> Result<Tensor> {
        with_values::<T, _>(&[qkv, y, g], |v| self.backward_values(v[0], v[1], v[2], (b, t, c, d), qkv.device()))?
    }

    fn backward_values<T: Real>(
        &self,
        qkv_v: &[T],
        y_v: &[T],
        g_v: &[T],
        (b, t, c, d): (usize, usize, usize, usize),
        device: &candle_core::Device,
    ) -> Result<Tensor> {
        let h = self.heads;
        // Kept (not taken): a second backward through the same graph reads it again.
        let saved = self.lse.lock().ok();
        let Some(lse) = saved.as_ref().and_then(|s| s.as_ref()).and_then(T::slice).filter(|l| l.len() == b * h * t)
        else {
            candle_core::bail!("causal attention: a backward without its forward's log-sum-exps")
        };
        let per: Vec<[Vec<T>; 3]> = (0..b * h)
            .into_par_iter()
            .map(|bh| {
                let bi = bh / h;
                head_backward(
                    &qkv_v[bi * t * 3 * c..][..t * 3 * c],
                    &y_v[bi * t * c..][..t * c],
                    &g_v[bi * t * c..][..t * c],
                    &lse[bh * t..][..t],
                    (t, c, d),
                    bh % h,
                )
            })
            .collect();
        let mut dqkv = vec![T::ZERO; b * t * 3 * c];
        dqkv.par_chunks_mut(3 * c).enumerate().for_each(|(row, out)| {
            let (bi, i) = (row / t, row % t);
            for hi in 0..h {
                for (which, part) in per[bi * h + hi].iter().enumerate() {
                    out[which * c + hi * d..][..d].copy_from_slice(&part[i * d..][..d]);
                }
            }
        });
        Tensor::from_vec(dqkv, (b, t, 3 * c), device)
    }
}

/// Causal multi-head self-attention of a fused projection: qkv (B, T, 3·C) holding q, k and v
/// side by side (each C = heads · D wide, head-major) → y (B, T, C) with the heads merged, as
/// softmax(q kᵀ / √D + causal mask) v. f32 or f64, differentiable in qkv.
pub fn causal_attention_qkv(qkv: &Tensor, heads: usize) -> Result<Tensor> {
    crate::real::float_dtype("causal attention", qkv)?;
    dims(heads, qkv.shape())?;
    let qkv = qkv.contiguous()?;
    let op = CausalAttention { heads, lse: std::sync::Mutex::new(None) };
    if qkv.track_op() {
        qkv.apply_op1(op)
    } else {
        qkv.apply_op1_no_bwd(&op)
    }
}
