//! Dropout (Srivastava et al. 2014) with masks drawn from a seeded generator, so that a resumed
//! training run reproduces the masks of an uninterrupted one (candle's own dropout draws from an
//! unseedable generator).
//!
//! All dropout layers of a model share one [`DropoutState`]: the trainer switches it to training
//! mode and reseeds it at every step; in evaluation mode dropout is the identity.

use std::sync::{Arc, Mutex};

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug)]
pub struct DropoutState {
    rng: Mutex<Option<StdRng>>,
}

impl DropoutState {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { rng: Mutex::new(None) })
    }

    /// Training mode with masks from `seed` (call once per step with a step-derived seed).
    pub fn train(&self, seed: u64) {
        if let Ok(mut rng) = self.rng.lock() {
            *rng = Some(StdRng::seed_from_u64(seed));
        }
    }

    /// Evaluation mode: dropout off.
    pub fn eval(&self) {
        if let Ok(mut rng) = self.rng.lock() {
            *rng = None;
        }
    }

    /// The mode and generator position now, to draw the same masks again later (activation
    /// checkpointing recomputes a block with the masks of its forward).
    pub fn snapshot(&self) -> DropoutSnapshot {
        DropoutSnapshot(self.rng.lock().ok().and_then(|rng| rng.clone()))
    }

    /// Back to a [`Self::snapshot`].
    pub fn restore(&self, snapshot: DropoutSnapshot) {
        if let Ok(mut rng) = self.rng.lock() {
            *rng = snapshot.0;
        }
    }
}

/// A [`DropoutState`]'s mode and generator position.
#[derive(Clone, Debug)]
pub struct DropoutSnapshot(Option<StdRng>);

/// Zero each element with probability p and scale the rest by 1/(1-p) (training mode only).
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f32,
    state: Arc<DropoutState>,
}

impl Dropout {
    pub fn new(p: f32, state: Arc<DropoutState>) -> Self {
        Self { p, state }
    }

    /// False when [`Self::forward`] is the identity now (p = 0, or evaluation mode): a fused
    /// kernel without dropout may then stand in for the composed ops.
    pub fn is_active(&self) -> bool {
        self.p > 0.0 && self.state.rng.lock().is_ok_and(|rng| rng.is_some())
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.p <= 0.0 {
            return Ok(x.clone());
        }
        let mut guard = self.state.rng.lock().map_err(|_| candle_core::Error::Msg("dropout lock poisoned".into()))?;
        let Some(rng) = guard.as_mut() else { return Ok(x.clone()) };
        let keep = 1.0 - self.p;
        let mask: Vec<f32> =
            (0..x.elem_count()).map(|_| if rng.random::<f32>() < keep { 1.0 / keep } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
    }
}
