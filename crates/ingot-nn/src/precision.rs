//! Mixed precision: the arithmetic of the dense linear layers' products.
//!
//! Like PyTorch's CPU autocast, the setting is ambient rather than threaded through every
//! forward: a trainer sets it for the length of a run ([`Precision::enter`]), and every dense
//! f32 [`crate::Linear`] (and the fused head loss) then multiplies in bf16 with f32
//! accumulation ([`ingot_kernels::linear_bf16`]). Weights, optimizer state, norms, softmax and
//! the loss stay f32: the "master weights" are the f32 parameters themselves.

use std::sync::atomic::{AtomicU8, Ordering};

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

static CURRENT: AtomicU8 = AtomicU8::new(0);

impl Precision {
    /// The precision in effect now (process-wide).
    pub fn current() -> Self {
        match CURRENT.load(Ordering::Relaxed) {
            1 => Self::Bf16,
            _ => Self::F32,
        }
    }

    /// Make this the precision until the guard drops (the previous one comes back then).
    #[must_use = "the precision reverts when the guard drops"]
    pub fn enter(self) -> PrecisionGuard {
        let previous = CURRENT.swap(self as u8, Ordering::Relaxed);
        PrecisionGuard { previous }
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

/// Restores the previous precision when dropped.
pub struct PrecisionGuard {
    previous: u8,
}

impl Drop for PrecisionGuard {
    fn drop(&mut self) {
        CURRENT.store(self.previous, Ordering::Relaxed);
    }
}

/// True when the dense product of `x` and `w` should run in bf16 now.
pub fn bf16_product(x: &candle_core::Tensor, w: &candle_core::Tensor) -> bool {
    Precision::current() == Precision::Bf16
        && crate::norm::kernel_dtype(&[x, w])
        && x.dtype() == candle_core::DType::F32
}
