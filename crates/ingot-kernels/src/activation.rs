//! GELU (tanh form) and SwiGLU, elementwise in one pass each way.
//!
//! candle's `gelu` backward is composed of ~12 tensor ops (two `powf`, a `tanh`, affines), most
//! on one thread: in the training benchmark GELU's forward and backward were ~20% of a step.
//! Here forward writes y and backward recomputes the inner terms from the input:
//!
//! ```text
//! GELU:   u = c·(x + a·x³), c = sqrt(2/π), a = 0.044715;  y = ½·x·(1 + tanh u)
//!         dy/dx = ½·(1 + tanh u) + ½·x·(1 − tanh² u)·c·(1 + 3a·x²)
//! SwiGLU: y = silu(g)·v = g·σ(g)·v
//!         dg = dy·v·σ(g)·(1 + g·(1 − σ(g)));  dv = dy·g·σ(g)
//! ```
//! tanh u is computed as 1 − 2 / (exp(2u) + 1), which saturates cleanly at ±1 (exp overflows
//! to inf or underflows to 0) and costs one exp. f32 for training, f64 for the tests.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::real::{float_dtype, input, with_values, Real};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

fn tanh<T: Real>(u: T) -> T {
    T::ONE - T::of(2.0) / ((u + u).exp() + T::ONE)
}

/// (tanh u, du/dx) at x.
fn gelu_inner<T: Real>(x: T) -> (T, T) {
    let (c, a) = (T::of((2.0 / std::f64::consts::PI).sqrt()), T::of(0.044715));
    let x2 = x * x;
    (tanh(c * (x + a * x2 * x)), c * (T::ONE + T::of(3.0) * a * x2))
}

fn sigmoid<T: Real>(x: T) -> T {
    T::ONE / (T::ONE + (-x).exp())
}

/// out[i] = f(a[i]) in parallel chunks (a plain zip, so the loop vectorises).
fn map1<T: Real>(out: &mut [T], a: &[T], f: impl Fn(T) -> T + Sync) {
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).for_each(|(o, a)| {
        o.iter_mut().zip(a).for_each(|(o, &a)| *o = f(a));
    });
}

/// out[i] = f(a[i], b[i]).
fn map2<T: Real>(out: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) {
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(|((o, a), b)| {
        o.iter_mut().zip(a).zip(b).for_each(|((o, &a), &b)| *o = f(a, b));
    });
}

/// (out1[i], out2[i]) = f(a[i], b[i], c[i]).
fn map3x2<T: Real>(o1: &mut [T], o2: &mut [T], a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> (T, T) + Sync) {
    o1.par_chunks_mut(CHUNK)
        .zip(o2.par_chunks_mut(CHUNK))
        .zip(a.par_chunks(CHUNK))
        .zip(b.par_chunks(CHUNK).zip(c.par_chunks(CHUNK)))
        .for_each(|(((o1, o2), a), (b, c))| {
            for i in 0..o1.len() {
                (o1[i], o2[i]) = f(a[i], b[i], c[i]);
            }
        });
}

struct GeluTanh;

fn gelu_fwd<T: Real>(x: &[T]) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    map1(&mut y, x, |x| {
        let (t, _) = gelu_inner(x);
        T::of(0.5) * x * (T::ONE + t)
    });
    y
}

fn gelu_bwd<T: Real>(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let dx = with_values::<T, _>(&[x, dy], |v| {
        let mut dx = vec![T::ZERO; v[0].len()];
        map2(&mut dx, v[0], v[1], |x, dy| {
            let (t, du) = gelu_inner(x);
            let half = T::of(0.5);
            dy * (half * (T::ONE + t) + half * x * (T::ONE - t * t) * du)
        });
        dx
    })?;
    Tensor::from_vec(dx, x.shape(), x.device())
}

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "ingot-gelu-tanh"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = match xs {
            CpuStorage::F64(_) => f64::storage(gelu_fwd(input::<f64>(xs, xl, self.name(), "x")?)),
            _ => f32::storage(gelu_fwd(input::<f32>(xs, xl, self.name(), "x")?)),
        };
        Ok((y, xl.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(match x.dtype() {
            candle_core::DType::F64 => gelu_bwd::<f64>(x, dy)?,
            _ => gelu_bwd::<f32>(x, dy)?,
        }))
    }
}

/// GELU, tanh approximation (GPT-2's `gelu_new`), f32 or f64, differentiable.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    float_dtype("gelu", x)?;
    let x = x.contiguous()?;
    if x.track_op() {
        x.apply_op1(GeluTanh)
    } else {
        x.apply_op1_no_bwd(&GeluTanh)
    }
}

struct SwiGlu;

fn swiglu_fwd<T: Real>(g: &[T], v: &[T]) -> Vec<T> {
    let mut y = vec![T::ZERO; g.len()];
    map2(&mut y, g, v, |g, v| g * sigmoid(g) * v);
    y
}

fn swiglu_bwd<T: Real>(g: &Tensor, v: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    let (dg, dv) = with_values::<T, _>(&[g, v, dy], |x| {
        let (mut dg, mut dv) = (vec![T::ZERO; x[0].len()], vec![T::ZERO; x[0].len()]);
        map3x2(&mut dg, &mut dv, x[0], x[1], x[2], |g, v, dy| {
            let s = sigmoid(g);
            (dy * v * s * (T::ONE + g * (T::ONE - s)), dy * g * s)
        });
        (dg, dv)
    })?;
    Ok((Tensor::from_vec(dg, g.shape(), g.device())?, Tensor::from_vec(dv, g.shape(), g.device())?))
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "ingot-swiglu"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, vs: &CpuStorage, vl: &Layout) -> Result<(CpuStorage, Shape)> {
        if gl.shape() != vl.shape() {
            candle_core::bail!("swiglu: gate {:?} and up {:?} differ in shape", gl.shape().dims(), vl.shape().dims())
        }
        let op = self.name();
        let y = match gs {
            CpuStorage::F64(_) => f64::storage(swiglu_fwd(input(gs, gl, op, "gate")?, input(vs, vl, op, "up")?)),
            _ => f32::storage(swiglu_fwd(input(gs, gl, op, "gate")?, input(vs, vl, op, "up")?)),
        };
        Ok((y, gl.shape().clone()))
    }

    fn bwd(&self, g: &Tensor, v: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dg, dv) = match g.dtype() {
            candle_core::DType::F64 => swiglu_bwd::<f64>(g, v, dy)?,
            _ => swiglu_bwd::<f32>(g, v, dy)?,
        };
        Ok((Some(dg), Some(dv)))
    }
}

/// silu(gate) · up (the llama family's MLP), f32 or f64, differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let d = float_dtype("swiglu", gate)?;
    if up.dtype() != d {
        candle_core::bail!("swiglu: gate is {d:?} but up is {:?}", up.dtype())
    }
    let (g, v) = (gate.contiguous()?, up.contiguous()?);
    if g.track_op() || v.track_op() {
        g.apply_op2(&v, SwiGlu)
    } else {
        g.apply_op2_no_bwd(&v, &SwiGlu)
    }
}
