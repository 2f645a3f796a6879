//! The error type of the training crate.
//!
//! Each message names the file or the operation, and for a checkpoint that cannot be used, why
//! and what to do (pick another checkpoint, start afresh). Errors from the crates below
//! (file formats, tokenizer, data, generation) pass through unchanged; OS, JSON and candle errors
//! are ingot-core's, so candle errors always carry what Ingot was doing when they happened.

use std::path::PathBuf;

/// Everything that can go wrong while setting up or running training, or saving and loading
/// checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From Ingot's file-format and model code (model config, weights, atomic writes).
    #[error(transparent)]
    Core(#[from] ingot_core::Error),

    /// From the tokenizer crate (saving or loading tokenizer.json).
    #[error(transparent)]
    Tokenizer(#[from] ingot_tokenizer::Error),

    /// A file a checkpoint must have is absent.
    #[error("checkpoint {dir} has no {file} (the folder is incomplete or not an Ingot checkpoint; pick another checkpoint or start afresh)")]
    MissingFile { dir: PathBuf, file: &'static str },

    /// A file ends before the data it describes (a copy or a save that did not finish).
    #[error("{path} is truncated: {detail} (the file is incomplete; use an earlier checkpoint)")]
    Truncated { path: PathBuf, detail: String },

    /// A file is structurally invalid in some other way.
    #[error("{path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    /// The `latest` pointer of an output folder names a checkpoint that is not there.
    #[error("{pointer} names checkpoint '{name}', but {missing} does not exist (was it deleted? edit or remove {pointer} to resume from another checkpoint)")]
    DanglingLatest { pointer: PathBuf, name: String, missing: PathBuf },

    /// A training setting is out of range or inconsistent (learning rates, betas, schedule).
    #[error("invalid training configuration: {0}")]
    Config(String),

    /// Training produced a non-finite loss or gradient norm.
    #[error("training diverged at step {step} (loss or gradient norm {loss}); lower train.lr or raise train.warmup_steps, then resume from the last checkpoint")]
    Diverged { step: u64, loss: f64 },

    /// From the data crate (corpus, shards, batches).
    #[error(transparent)]
    Data(#[from] ingot_data::Error),

    /// From generation (samples during training).
    #[error(transparent)]
    Generate(#[from] ingot_generate::Error),

    /// A scaling law cannot be fitted to the runs given (too few sizes or budgets, a bad loss).
    #[error("cannot fit the scaling law: {0}")]
    Fit(String),

    /// Saved optimizer state does not fit the optimizer's parameters (missing moment, wrong
    /// shape, unknown parameter).
    #[error("optimizer state does not match the model: {0}")]
    OptimizerState(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach "what we were doing" to a candle error: ingot-core's, whose error converts into this
/// crate's with `?`.
pub use ingot_core::CandleContext as Context;

impl Error {
    /// A closure for `map_err` on an `io::Result`: "cannot `op` `path`: cause" (ingot-core's `Io`).
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let wrap = ingot_core::Error::io(op, path);
        move |source| Error::Core(wrap(source))
    }

    /// A JSON file that failed to parse (ingot-core's `Json`).
    pub(crate) fn json(path: impl Into<PathBuf>) -> impl FnOnce(serde_json::Error) -> Error {
        let path = path.into();
        move |source| Error::Core(ingot_core::Error::Json { path, cause: source })
    }
}
