//! Text generation: sampling ([`sampling`]), the KV-cached decode loop with streaming and stop
//! strings ([`generate`]), [`Pipeline`] (a model loaded with its tokenizer and chat template),
//! and prompting strategies ([`prompting`]: few-shot, chain-of-thought, self-consistency).

pub mod error;
pub mod generate;
pub mod pipeline;
pub mod prompting;
pub mod sampling;

pub use error::{Error, Result};
pub use generate::{generate, generate_batch, FinishReason, GenerateParams, Generation, PromptCache};
pub use pipeline::Pipeline;
pub use sampling::{Sampler, SamplingParams};
