//! Ingot's foundation: the error type, model file formats (GGUF, safetensors + HF config.json),
//! device choice and where assets live.
//!
//! The GGUF reader here is Ingot's own (it checks every length against the file size, so a
//! truncated or hostile file gives an error instead of a panic or a huge allocation); tensor
//! payloads are handed to candle's quantized storage, whose kernels do the arithmetic.

pub mod assets;
pub mod atomic;
pub mod chart;
pub mod error;
pub mod gguf;
pub mod hash;
pub mod limits;
pub mod panic;
pub mod text;

pub use error::{CandleContext, Error, Result};
