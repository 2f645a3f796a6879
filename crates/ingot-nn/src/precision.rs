//! Mixed precision: the arithmetic of the dense linear layers' products.
//!
//! Like PyTorch's CPU autocast, the setting is ambient rather than threaded through every
//! forward, and per thread (the thread that builds the graph and runs its backward; the kernels'
//! worker threads never read it): a trainer sets it for the length of a run
//! ([`Precision::enter`]), so two runs on two threads keep their own, and every dense
//! f32 [`crate::Linear`] (and the fused head loss) then multiplies in bf16 with f32
//! accumulation ([`ingot_kernels::linear_bf16`]). Weights, optimizer state, norms, softmax and
//! the loss stay f32: the "master weights" are the f32 parameters themselves.

use std::cell::Cell;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Every product in f32.
    #[default]
    F32,
    /// Linear layers' products in bf16, accumulated in f32 (AMX where the CPU has it).
    Bf16,
}

thread_local! {
    static CURRENT: Cell<u8> = const { Cell::new(0) };
}

impl Precision {
    /// The precision in effect now on this thread.
    pub fn current() -> Self {
        match CURRENT.with(Cell::get) {
            1 => Self::Bf16,
            _ => Self::F32,
        }
    }

    /// Make this the precision on this thread until the guard drops (the previous one comes
    /// back then).
    #[must_use = "the precision reverts when the guard drops"]
    pub fn enter(self) -> PrecisionGuard {
        let previous = CURRENT.with(|c| c.replace(self as u8));
        PrecisionGuard { previous, _this_thread: std::marker::PhantomData }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            other => Err(format!("precision {other:?} is not one of f32, bf16")),
        }
    }
}

/// Restores the previous precision when dropped, on the thread that entered it (so it is not
/// `Send`).
pub struct PrecisionGuard {
    previous: u8,
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl Drop for PrecisionGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// True when the dense product of `x` and `w` should run in bf16 now.
pub fn bf16_product(x: &candle_core::Tensor, w: &candle_core::Tensor) -> bool {
    Precision::current() == Precision::Bf16
        && crate::norm::kernel_dtype(&[x, w])
        && x.dtype() == candle_core::DType::F32
}

#[cfg(test)]
mod tests {
    use super::Precision;

    #[test]
    fn precision_is_per_thread_and_restored_by_its_guard() {
        assert_eq!(Precision::current(), Precision::F32);
        {
            let _bf16 = Precision::Bf16.enter();
            assert_eq!(Precision::current(), Precision::Bf16);
            let other = std::thread::spawn(Precision::current).join().unwrap();
            assert_eq!(other, Precision::F32, "another thread keeps its own precision");
            {
                let _f32 = Precision::F32.enter();
                assert_eq!(Precision::current(), Precision::F32);
            }
            assert_eq!(Precision::current(), Precision::Bf16, "the inner guard restores bf16");
        }
        assert_eq!(Precision::current(), Precision::F32);
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert!("fp16".parse::<Precision>().unwrap_err().contains("f32, bf16"));
    }
}
