//! Text generation: sampling ([`sampling`]), the step engine that runs every generation as rows
//! with their own positions, streaming and stop strings ([`engine`]), one-off and batched
//! generation on it ([`generate`]), [`Pipeline`] (a model loaded with its tokenizer and chat template),
//! and prompting strategies ([`prompting`]: few-shot, chain-of-thought, self-consistency).

pub mod engine;
pub mod error;
pub mod generate;
pub mod pipeline;
pub mod prompting;
pub mod sampling;

pub use engine::{Engine, Event, RowId};
pub use error::{Error, Result};
pub use generate::{generate, generate_batch, FinishReason, FullContext, GenerateParams, Generation, PromptCache};
pub use pipeline::Pipeline;
pub use sampling::{Sampler, SamplingParams};
