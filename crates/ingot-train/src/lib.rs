//! Training: the optimizer, learning-rate schedules, checkpoints and loss plots, and the trainer
//! loop and recipes built on them.
//!
//! Design decisions:
//!
//! - **Our own AdamW** ([`optim`]), not `candle_nn::AdamW`: candle's decays every parameter and has
//!   no parameter groups, no gradient clipping and no way to save its moments. Ours follows
//!   `torch.optim.AdamW` step for step (decoupled decay, bias correction, eps outside the square
//!   root), puts norms, biases and embeddings in a no-decay group by name ([`optim::decays`]),
//!   and saves its moments by parameter name so a resumed run continues bit for bit. It is
//!   written with plain candle tensor ops in f32; the tests compare it with a scalar reference.
//! - **nanoGPT's schedule** ([`schedule`]): linear warmup then cosine decay, the same formula, so
//!   runs can be compared with nanoGPT's step for step.
//! - **A checkpoint is a model folder** ([`checkpoint`]): `step-<N>/` holds HF-named
//!   `model.safetensors`, `config.json` and `tokenizer.json`, so `ingot_models::load` (and any
//!   tool that reads HF folders) opens it directly; optimizer and trainer state sit beside them.
//!   Saves are atomic (temporary folder, fsync, rename, then the `latest` pointer), so a run
//!   killed mid-save resumes from the previous checkpoint.
//! - **Plots without dependencies** ([`plot`]): loss curves are small hand-written SVGs that any
//!   browser opens, written atomically next to the checkpoints.
//! - **One error enum** ([`Error`]) whose messages name the file or operation; candle errors
//!   always carry what was being done.
//!
//! candle's CPU random generator cannot be seeded, so nothing here draws random numbers from
//! candle; see `CANDLE-NOTES.md` for the other traps this crate works around.

// The error enum carries the lower crates' errors by value; they are rare and off the hot path,
// so boxing them would buy nothing measurable.
#![allow(clippy::result_large_err)]

pub mod bench;
pub mod checkpoint;
pub mod collective;
pub mod ddp;
pub mod error;
pub mod loss;
pub mod optim;
pub mod plot;
pub mod recipes;
pub mod scaling_fit;
pub mod scaling_report;
pub mod schedule;
pub mod trainer;

pub use checkpoint::{Checkpoint, CheckpointContents};
pub use collective::{Collective, SingleProcess};
pub use error::{Error, Result};
pub use optim::{clip_coefficient, clip_grad_norm, decays, grad_norm, AdamW, AdamWConfig, StepReport};
pub use plot::{line_chart_svg, loss_curve_svg, write_svg, ChartOptions};
pub use schedule::{Decay, LrSchedule};
pub use trainer::{Objective, TrainConfig, TrainReport, Trainer};
