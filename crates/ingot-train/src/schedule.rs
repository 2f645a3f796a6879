//! Learning-rate schedules: linear warmup, then cosine, linear or no decay.
//!
//! The cosine schedule is nanoGPT's `get_lr` exactly (train.py), so a run here and a nanoGPT run
//! with the same numbers see the same learning rate at every step:
//!
//! ```text
//! step < warmup:            max_lr * (step + 1) / (warmup + 1)
//! step >= decay_steps:      min_lr
//! otherwise:                min_lr + 0.5 * (1 + cos(pi * r)) * (max_lr - min_lr),
//!                           r = (step - warmup) / (decay_steps - warmup)
//! ```
//!
//! Warmup starts just above zero rather than at zero (nanoGPT's `+ 1`), so step 0 already moves
//! the weights. `decay_steps` counts from step 0, not from the end of warmup (as nanoGPT's
//! `lr_decay_iters`); nanoGPT sets it to the total number of steps.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the learning rate falls from `max_lr` to `min_lr` after warmup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Half a cosine period: slow at first, fastest midway, slow at the end (nanoGPT, Llama).
    #[default]
    Cosine,
    /// A straight line.
    Linear,
    /// No decay: `max_lr` after warmup; `min_lr` and `decay_steps` are ignored.
    Constant,
}

/// A learning rate for every optimizer step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Peak learning rate, reached at the end of warmup.
    pub max_lr: f64,
    /// Floor after decay; nanoGPT's rule of thumb is max_lr / 10 (Chinchilla).
    pub min_lr: f64,
    /// Steps of linear warmup; 0 for none.
    pub warmup_steps: usize,
    /// The step (counted from 0) at which decay reaches `min_lr`; usually the total step count.
    pub decay_steps: usize,
    #[serde(default)]
    pub decay: Decay,
}

impl LrSchedule {
    /// nanoGPT's schedule: warmup, then cosine decay to `min_lr` at `decay_steps`.
    pub fn cosine(max_lr: f64, min_lr: f64, warmup_steps: usize, decay_steps: usize) -> Self {
        Self { max_lr, min_lr, warmup_steps, decay_steps, decay: Decay::Cosine }
    }

    /// Warmup, then a straight line down to `min_lr` at `decay_steps`.
    pub fn linear(max_lr: f64, min_lr: f64, warmup_steps: usize, decay_steps: usize) -> Self {
        Self { max_lr, min_lr, warmup_steps, decay_steps, decay: Decay::Linear }
    }

    /// Warmup, then `lr` for ever (fine-tuning runs often want this).
    pub fn constant(lr: f64, warmup_steps: usize) -> Self {
        Self { max_lr: lr, min_lr: lr, warmup_steps, decay_steps: warmup_steps, decay: Decay::Constant }
    }

    /// Check the numbers make sense: finite, `0 <= min_lr <= max_lr`, and for a decaying
    /// schedule, decay ending after warmup.
    pub fn validate(&self) -> Result<()> {
        let (max, min) = (self.max_lr, self.min_lr);
        if !(max.is_finite() && min.is_finite() && min >= 0.0 && max > 0.0) {
            return Err(Error::Config(format!(
                "learning rates must be finite with max_lr > 0 and min_lr >= 0; got max_lr {max}, min_lr {min}"
            )));
        }
        if self.decay != Decay::Constant {
            if min > max {
                return Err(Error::Config(format!("min_lr {min} is above max_lr {max}")));
            }
            if self.decay_steps <= self.warmup_steps {
                return Err(Error::Config(format!(
                    "decay_steps {} must be greater than warmup_steps {} (decay_steps counts from step 0, \
                     like nanoGPT's lr_decay_iters; it is usually the total number of steps)",
                    self.decay_steps, self.warmup_steps
                )));
            }
        }
        Ok(())
    }

    /// The learning rate for optimizer step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        let (warmup, decay_steps) = (self.warmup_steps, self.decay_steps);
        if step < warmup {
            return self.max_lr * (step + 1) as f64 / (warmup + 1) as f64;
        }
        if self.decay == Decay::Constant {
            return self.max_lr;
        }
        // Also covers decay_steps <= warmup (which `validate` rejects): no division by zero below.
        if step >= decay_steps {
            return self.min_lr;
        }
        let ratio = (step - warmup) as f64 / (decay_steps - warmup) as f64; // in [0, 1)
        let coeff = match self.decay {
            Decay::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos()),
            Decay::Linear => 1.0 - ratio,
            Decay::Constant => 1.0,
        };
        self.min_lr + coeff * (self.max_lr - self.min_lr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values are nanoGPT's get_lr evaluated by hand with these numbers.
    const MAX: f64 = 6e-4;
    const MIN: f64 = 6e-5;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-15 + 1e-12 * b.abs()
    }

    #[test]
    fn cosine_matches_nanogpt() {
        let s = LrSchedule::cosine(MAX, MIN, 10, 110);
        s.validate().unwrap();
        assert!(close(s.lr(0), MAX / 11.0), "step 0: {}", s.lr(0));
        assert!(close(s.lr(9), MAX * 10.0 / 11.0), "last warmup step: {}", s.lr(9));
        assert!(close(s.lr(10), MAX), "end of warmup: {}", s.lr(10));
        // Midway through decay the cosine is exactly 0: the mean of max and min.
        assert!(close(s.lr(60), (MAX + MIN) / 2.0), "mid-decay: {}", s.lr(60));
        assert!(close(s.lr(110), MIN), "end: {}", s.lr(110));
        assert!(close(s.lr(1_000_000), MIN), "after end: {}", s.lr(1_000_000));
        // Monotone non-increasing after warmup.
        for step in 10..200 {
            assert!(s.lr(step + 1) <= s.lr(step) + 1e-18, "rises at step {step}");
        }
    }

    #[test]
    fn linear_and_constant() {
        let s = LrSchedule::linear(MAX, MIN, 0, 100);
        assert!(close(s.lr(0), MAX));
        assert!(close(s.lr(50), (MAX + MIN) / 2.0));
        assert!(close(s.lr(100), MIN));
        let c = LrSchedule::constant(1e-4, 4);
        c.validate().unwrap();
        assert!(close(c.lr(0), 1e-4 / 5.0));
        assert!(close(c.lr(4), 1e-4));
        assert!(close(c.lr(1_000_000), 1e-4));
    }

    #[test]
    fn no_warmup_and_degenerate_settings() {
        let s = LrSchedule::cosine(MAX, MIN, 0, 10);
        assert!(close(s.lr(0), MAX));
        // Rejected by validate, but lr() still answers without NaN.
        let bad = LrSchedule::cosine(MAX, MIN, 10, 10);
        assert!(bad.validate().is_err());
        assert!(close(bad.lr(10), MIN));
        assert!(LrSchedule::cosine(MIN, MAX, 0, 10).validate().is_err());
        assert!(LrSchedule::cosine(f64::NAN, MIN, 0, 10).validate().is_err());
    }

    #[test]
    fn deserializes_with_default_decay() {
        let s: LrSchedule =
            toml::from_str("max_lr = 1e-3\nmin_lr = 1e-4\nwarmup_steps = 5\ndecay_steps = 50\n").unwrap();
        assert_eq!(s.decay, Decay::Cosine);
        let s: LrSchedule =
            toml::from_str("max_lr = 1e-3\nmin_lr = 1e-4\nwarmup_steps = 5\ndecay_steps = 50\ndecay = \"linear\"\n")
                .unwrap();
        assert_eq!(s.decay, Decay::Linear);
    }
}
