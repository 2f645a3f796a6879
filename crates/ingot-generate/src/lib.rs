//! Text generation: sampling ([`sampling`]), the KV-cached decode loop with streaming and stop
//! strings ([`generate`]), and [`Pipeline`], a model loaded with its tokenizer and chat template.

pub mod error;
pub mod generate;
pub mod pipeline;
pub mod sampling;

pub use error::{Error, Result};
pub use generate::{generate, FinishReason, GenerateParams, Generation};
pub use pipeline::Pipeline;
pub use sampling::{Sampler, SamplingParams};
