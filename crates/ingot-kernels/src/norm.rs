//! LayerNorm and RMSNorm over the last dimension, each one pass forward and one pass backward.
//!
//! Composed of candle ops, a LayerNorm is 9 tensors forward and ~20 backward, each a fresh
//! allocation and several run on one thread; candle's own fused norms have no backward at all
//! (../shared/CANDLE-NOTES.md, trap 1). Here forward writes y and backward recomputes each row's
//! mean and 1/std from x (cheaper than storing them) and writes dx, with dw and db summed over
//! rows in per-thread partials (llm.c's `layernorm_backward`):
//!
//! ```text
//! LayerNorm: x̂ = (x − mean) · r, r = 1 / sqrt(var + eps), y = x̂ · w + b
//!            g = dy · w;  dx = r · (g − mean(g) − x̂ · mean(g · x̂));  dw = Σ dy · x̂;  db = Σ dy
//! RMSNorm:   x̂ = x · r, r = 1 / sqrt(mean(x²) + eps), y = x̂ · w
//!            dx = r · (g − x̂ · mean(g · x̂));  dw = Σ dy · x̂
//! ```
//! Dimension legend: N rows (every leading dimension), C the normalised dimension.
//! f32 for training, f64 for the finite-difference tests.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::real::{float_dtype, input, with_values, Real};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Layer,
    Rms,
}

/// Rows per parallel task: enough work per task, and a few tasks per thread for balance.
fn chunk_rows(n: usize) -> usize {
    n.div_ceil(4 * rayon::current_num_threads()).clamp(1, 256)
}

/// (mean, 1/std) of one row; the mean is 0 for RMSNorm.
fn row_stats<T: Real>(kind: Kind, x: &[T], eps: f64) -> (T, T) {
    let c = T::of(x.len() as f64);
    let mean = match kind {
        Kind::Layer => x.iter().fold(T::ZERO, |s, &v| s + v) / c,
        Kind::Rms => T::ZERO,
    };
    let var = x.iter().fold(T::ZERO, |s, &v| s + (v - mean) * (v - mean)) / c;
    (mean, T::ONE / (var + T::of(eps)).sqrt())
}

/// y (N, C) from x (N, C), w (C) and b (C, LayerNorm only).
fn forward<T: Real>(kind: Kind, x: &[T], w: &[T], b: Option<&[T]>, eps: f64) -> Vec<T> {
    let c = w.len();
    let mut y = vec![T::ZERO; x.len()];
    y.par_chunks_mut(c).zip(x.par_chunks(c)).for_each(|(yr, xr)| {
        let (mean, r) = row_stats(kind, xr, eps);
        for j in 0..c {
            let v = (xr[j] - mean) * r * w[j];
            yr[j] = match b {
                Some(b) => v + b[j],
                None => v,
            };
        }
    });
    y
}

/// (dx (N, C), dw (C), db (C)) from x, w and dy (N, C).
fn backward<T: Real>(kind: Kind, x: &[T], w: &[T], dy: &[T], eps: f64) -> (Vec<T>, Vec<T>, Vec<T>) {
    let c = w.len();
    let span = chunk_rows(x.len() / c.max(1)) * c;
    let mut dx = vec![T::ZERO; x.len()];
    let partials: Vec<(Vec<T>, Vec<T>)> = dx
        .par_chunks_mut(span)
        .zip(x.par_chunks(span).zip(dy.par_chunks(span)))
        .map(|(dxc, (xc, dyc))| {
            let (mut dw, mut db) = (vec![T::ZERO; c], vec![T::ZERO; c]);
            for ((dxr, xr), dyr) in dxc.chunks_mut(c).zip(xc.chunks(c)).zip(dyc.chunks(c)) {
                let (mean, r) = row_stats(kind, xr, eps);
                let (mut mg, mut mgx) = (T::ZERO, T::ZERO);
                for j in 0..c {
                    let g = dyr[j] * w[j];
                    mg += g;
                    mgx += g * (xr[j] - mean) * r;
                }
                let n = T::of(c as f64);
                let (mg, mgx) = (if kind == Kind::Layer { mg / n } else { T::ZERO }, mgx / n);
                for j in 0..c {
                    let xhat = (xr[j] - mean) * r;
                    dxr[j] = r * (dyr[j] * w[j] - mg - xhat * mgx);
                    dw[j] += dyr[j] * xhat;
                    db[j] += dyr[j];
                }
            }
            (dw, db)
        })
        .collect();
    let (mut dw, mut db) = (vec![T::ZERO; c], vec![T::ZERO; c]);
    for (pw, pb) in partials {
        for j in 0..c {
            dw[j] += pw[j];
            db[j] += pb[j];
        }
    }
    (dx, dw, db)
}

/// Checks x (..., C) against w (C) and b (C): the op's error names all three shapes.
fn check(op: &str, x: &Layout, w: &Layout, b: Option<&Layout>) -> Result<()> {
    let c = x.shape().dims().last().copied().unwrap_or(0);
    let fits = |l: &Layout| l.shape().dims() == [c];
    if x.shape().rank() == 0 || !fits(w) || !b.is_none_or(fits) {
        candle_core::bail!(
            "{op}: x {:?} needs weight and bias of shape [{c}], got {:?} and {:?}",
            x.shape().dims(),
            w.shape().dims(),
            b.map(|b| b.shape().dims())
        )
    }
    Ok(())
}

fn storage_fwd<T: Real>(
    kind: Kind,
    eps: f64,
    op: &str,
    (xs, xl): (&CpuStorage, &Layout),
    (ws, wl): (&CpuStorage, &Layout),
    b: Option<(&CpuStorage, &Layout)>,
) -> Result<(CpuStorage, Shape)> {
    check(op, xl, wl, b.map(|b| b.1))?;
    let x = input::<T>(xs, xl, op, "x")?;
    let w = input::<T>(ws, wl, op, "weight")?;
    let b = match b {
        Some((bs, bl)) => Some(input::<T>(bs, bl, op, "bias")?),
        None => None,
    };
    Ok((T::storage(forward(kind, x, w, b, eps)), xl.shape().clone()))
}

fn tensor_bwd<T: Real>(kind: Kind, eps: f64, x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let (dx, dw, db) = with_values::<T, _>(&[x, w, dy], |v| backward(kind, v[0], v[1], v[2], eps))?;
    let dev = x.device();
    Ok((
        Tensor::from_vec(dx, x.shape(), dev)?,
        Tensor::from_vec(dw, w.shape(), dev)?,
        Tensor::from_vec(db, w.shape(), dev)?,
    ))
}

struct LayerNormOp {
    eps: f64,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "ingot-layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        match xs {
            CpuStorage::F64(_) => storage_fwd::<f64>(Kind::Layer, self.eps, op, (xs, xl), (ws, wl), Some((bs, bl))),
            _ => storage_fwd::<f32>(Kind::Layer, self.eps, op, (xs, xl), (ws, wl), Some((bs, bl))),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = match x.dtype() {
            candle_core::DType::F64 => tensor_bwd::<f64>(Kind::Layer, self.eps, x, w, dy)?,
            _ => tensor_bwd::<f32>(Kind::Layer, self.eps, x, w, dy)?,
        };
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

struct RmsNormOp {
    eps: f64,
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "ingot-rms-norm"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        match xs {
            CpuStorage::F64(_) => storage_fwd::<f64>(Kind::Rms, self.eps, op, (xs, xl), (ws, wl), None),
            _ => storage_fwd::<f32>(Kind::Rms, self.eps, op, (xs, xl), (ws, wl), None),
        }
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = match x.dtype() {
            candle_core::DType::F64 => tensor_bwd::<f64>(Kind::Rms, self.eps, x, w, dy)?,
            _ => tensor_bwd::<f32>(Kind::Rms, self.eps, x, w, dy)?,
        };
        Ok((Some(dx), Some(dw)))
    }
}

/// The one dtype of x and the norm's parameters (f32 or f64).
fn same_dtype(op: &str, ts: &[&Tensor]) -> Result<()> {
    let d = float_dtype(op, ts[0])?;
    if let Some(t) = ts.iter().find(|t| t.dtype() != d) {
        candle_core::bail!("{op}: x is {d:?} but a parameter is {:?}", t.dtype())
    }
    Ok(())
}

/// LayerNorm of x (..., C) with weight and bias (C); f32 or f64, differentiable in all three.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    same_dtype("layer norm", &[x, w, b])?;
    let (x, w, b) = (x.contiguous()?, w.contiguous()?, b.contiguous()?);
    let op = LayerNormOp { eps };
    if x.track_op() || w.track_op() || b.track_op() {
        x.apply_op3(&w, &b, op)
    } else {
        x.apply_op3_no_bwd(&w, &b, &op)
    }
}

/// RMSNorm of x (..., C) with weight (C); f32 or f64, differentiable in both.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    same_dtype("rms norm", &[x, w])?;
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    let op = RmsNormOp { eps };
    if x.track_op() || w.track_op() {
        x.apply_op2(&w, op)
    } else {
        x.apply_op2_no_bwd(&w, &op)
    }
}
