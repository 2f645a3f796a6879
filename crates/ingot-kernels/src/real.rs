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

macro_rules! real {
    ($t:ty, $variant:ident) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            fn of(v: f64) -> Self {
                v as $t
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
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
real!(f32, F32);
real!(f64, F64);

/// The contiguous `T` values of an op's input, or an error naming the op and the input.
pub fn input<'a, T: Real>(s: &'a CpuStorage, l: &Layout, op: &str, what: &str) -> Result<&'a [T]> {
    let Some(v) = T::slice(s) else { candle_core::bail!("{op}: {what} must be {:?}, got {:?}", T::DTYPE, s.dtype()) };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{op}: {what} must be contiguous"),
    }
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
