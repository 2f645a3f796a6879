//! The float types the training kernels run in: f32 for training, f64 so that the same kernel
//! code can be checked against finite differences (an f32 central difference has too little
//! precision to test a backward to more than ~2 digits).

use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Tensor, WithDType};

pub trait Real:
    WithDType
    + Copy
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + AddAssign
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    fn of(v: f64) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    /// This type's slice of a CPU storage, if the storage holds this type.
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    fn storage(v: Vec<Self>) -> CpuStorage;
}

/// e^x in f32 without a libm call, so that loops over it vectorise (libm's expf was ~5% of a
/// training step, called one value at a time). Cephes' expf: x = n·ln 2 + r with |r| ≤ ln 2 / 2,
/// e^r by its degree-7 polynomial, 2ⁿ built in the exponent bits. Relative error below 2⁻²²
/// (checked against f64 in the tests); e^x for x < −87.3 is 0 and for x > 88.37 saturates at
/// e^88.37 ≈ 2.4·10³⁸ (neither matters where a softmax or tanh uses it); NaN stays NaN.
#[inline]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding and subtracting rounds to an integer
                                     // Selects, not an early return: a branch out of the loop body stops it vectorising.
    let tiny = x < -87.336_54;
    let x = if x > 88.376_26 { 88.376_26 } else { x }; // not min(): NaN must stay NaN
    let x = if tiny { -87.336_54 } else { x };
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let e = f32::from_bits(((n as i32 + 127) << 23) as u32) * y;
    if tiny {
        0.0
    } else {
        e
    }
}

macro_rules! real {
    ($t:ty, $variant:ident, $exp:path) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            fn of(v: f64) -> Self {
                v as $t
            }
            fn exp(self) -> Self {
                $exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn slice(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn storage(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(v)
            }
        }
    };
}
// f64 keeps libm's exp: the finite-difference tests need its last digits.
real!(f32, F32, exp_f32);
real!(f64, F64, f64::exp);

#[cfg(test)]
mod tests {
    #[test]
    fn exp_f32_is_accurate_over_the_range_softmax_uses() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let exact = (x as f64).exp();
            worst = worst.max(((super::exp_f32(x) as f64) - exact).abs() / exact);
            x += 0.0137;
        }
        assert!(worst < 2.4e-7, "worst relative error {worst:e}");
        assert_eq!(super::exp_f32(-100.0), 0.0);
        assert!(super::exp_f32(f32::NAN).is_nan());
        assert_eq!(super::exp_f32(0.0), 1.0);
    }
}

/// The contiguous `T` values of an op's input, or an error naming the op and the input.
pub fn input<'a, T: Real>(s: &'a CpuStorage, l: &Layout, op: &str, what: &str) -> Result<&'a [T]> {
    let Some(v) = T::slice(s) else { candle_core::bail!("{op}: {what} must be {:?}, got {:?}", T::DTYPE, s.dtype()) };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{op}: {what} must be contiguous"),
    }
}

/// max of a non-empty slice, in eight lanes so that the loop vectorises (a single running max
/// is a chain the compiler must keep in order).
pub fn max_of<T: Real>(x: &[T]) -> T {
    let mut lanes = [x[0]; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            lanes[l] = if c[l] > lanes[l] { c[l] } else { lanes[l] };
        }
    }
    let m = tail.iter().fold(lanes[0], |m, &v| if v > m { v } else { m });
    lanes.iter().fold(m, |m, &v| if v > m { v } else { m })
}

/// Σ f(x) in eight lanes (eight independent sums, so that the loop vectorises).
fn lanes_sum<T: Real>(x: &[T], f: impl Fn(T) -> T) -> T {
    let mut lanes = [T::ZERO; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(T::ZERO, |s, &v| s + f(v));
    for c in chunks {
        for l in 0..8 {
            lanes[l] += f(c[l]);
        }
    }
    lanes.iter().fold(tail, |s, &v| s + v)
}

/// Σ e^(x − shift).
pub fn sum_exp<T: Real>(x: &[T], shift: T) -> T {
    lanes_sum(x, |v| (v - shift).exp())
}

/// x ← e^(x − shift), returning the sum of the new values.
pub fn exp_in_place<T: Real>(x: &mut [T], shift: T) -> T {
    x.iter_mut().for_each(|v| *v = (*v - shift).exp());
    lanes_sum(x, |v| v)
}

/// Runs `f` on the values of each of `tensors` read in place, when all of them are contiguous
/// `T` on the CPU; None (and `f` not called) otherwise.
pub fn borrow_values<T: Real, R>(tensors: &[&Tensor], f: impl FnOnce(&[&[T]]) -> R) -> Option<R> {
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut borrowed: Vec<&[T]> = Vec::with_capacity(tensors.len());
    for (storage, layout) in &guards {
        match (&**storage, layout.contiguous_offsets()) {
            (candle_core::Storage::Cpu(s), Some((a, b))) => borrowed.push(&T::slice(s)?[a..b]),
            _ => return None,
        }
    }
    Some(f(&borrowed))
}

/// Runs `f` on the values of each of `tensors` as `T`, read in place when they are contiguous
/// `T` on the CPU (the usual case in a backward pass), else copied first.
pub fn with_values<T: Real, R>(tensors: &[&Tensor], f: impl FnOnce(&[&[T]]) -> R) -> Result<R> {
    let mut f = Some(f);
    if let Some(Some(r)) = borrow_values(tensors, |v| f.take().map(|f| f(v))) {
        return Ok(r);
    }
    let Some(f) = f else { candle_core::bail!("with_values: the closure ran but gave nothing back") };
    let copies: Vec<Vec<T>> = tensors.iter().map(|t| values::<T>(t)).collect::<Result<_>>()?;
    let refs: Vec<&[T]> = copies.iter().map(|v| v.as_slice()).collect();
    Ok(f(&refs))
}

/// A tensor's values as a flat vector of `T` (copied), for a backward pass.
pub fn values<T: Real>(t: &Tensor) -> Result<Vec<T>> {
    t.to_dtype(T::DTYPE)?.flatten_all()?.to_vec1::<T>()
}

/// f32 or f64, the types these kernels run in; anything else is an error naming the op.
pub fn float_dtype(op: &str, t: &Tensor) -> Result<DType> {
    match t.dtype() {
        d @ (DType::F32 | DType::F64) => Ok(d),
        d => candle_core::bail!("{op}: needs f32 or f64, got {d:?}"),
    }
}
