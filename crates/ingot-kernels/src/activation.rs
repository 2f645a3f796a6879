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

use crate::real::{float_dtype, input, values, Real};

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

/// `f` over equal-length slices in parallel chunks, writing `out`.
fn map_into<T: Real>(out: &mut [T], ins: &[&[T]], f: impl Fn(&[T]) -> T + Sync) {
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(ci, oc)| {
        let base = ci * CHUNK;
        let mut args = vec![T::ZERO; ins.len()];
        for (i, o) in oc.iter_mut().enumerate() {
            for (a, s) in args.iter_mut().zip(ins) {
                *a = s[base + i];
            }
            *o = f(&args);
        }
    });
}

struct GeluTanh;

fn gelu_fwd<T: Real>(x: &[T]) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    map_into(&mut y, &[x], |a| {
        let (t, _) = gelu_inner(a[0]);
        T::of(0.5) * a[0] * (T::ONE + t)
    });
    y
}

fn gelu_bwd<T: Real>(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let (x_values, dy_values) = (values::<T>(x)?, values::<T>(dy)?);
    let mut dx = vec![T::ZERO; x_values.len()];
    map_into(&mut dx, &[&x_values, &dy_values], |a| {
        let (t, du) = gelu_inner(a[0]);
        let half = T::of(0.5);
        a[1] * (half * (T::ONE + t) + half * a[0] * (T::ONE - t * t) * du)
    });
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
    map_into(&mut y, &[g, v], |a| a[0] * sigmoid(a[0]) * a[1]);
    y
}

fn swiglu_bwd<T: Real>(g: &Tensor, v: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    let (gv, vv, dyv) = (values::<T>(g)?, values::<T>(v)?, values::<T>(dy)?);
    let (mut dg, mut dv) = (vec![T::ZERO; gv.len()], vec![T::ZERO; gv.len()]);
    map_into(&mut dg, &[&gv, &vv, &dyv], |a| {
        let s = sigmoid(a[0]);
        a[2] * a[1] * s * (T::ONE + a[0] * (T::ONE - s))
    });
    map_into(&mut dv, &[&gv, &dyv], |a| a[1] * a[0] * sigmoid(a[0]));
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
