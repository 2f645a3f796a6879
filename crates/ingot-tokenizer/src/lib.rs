//! Ingot's tokenizers: the HF `tokenizers` library, fed either a model's tokenizer.json or the
//! vocabulary a GGUF file carries, plus chat templates and streaming detokenization.
//!
//! Design decisions:
//! - One type, [`Tokenizer`], whatever the source. A GGUF vocabulary is turned into the HF
//!   pipeline the original tokenizer.json had (see `gguf.rs`), so encoding matches the model's
//!   training and [`Tokenizer::save`] can write a tokenizer.json for checkpoints.
//! - BOS/EOS are added by two flags on [`Tokenizer`], not by the HF post-processor, because GGUF
//!   stores them as flags; tokenizer.json files get their flags from tokenizer_config.json or by
//!   probing their post-processor.
//! - [`Tokenizer::eos_ids`] lists every token that ends a turn, since chat models stop on
//!   `<|im_end|>` or `<|eot_id|>` rather than on EOS.
//! - Chat templates are Jinja run by minijinja, configured to behave as transformers' renderer.
//! - Only a chat template's own markup may become control tokens: [`Tokenizer::encode`] reads
//!   every special-token spelling as text, and [`Tokenizer::encode_prompt`] parses them only in
//!   the markup ranges of a [`Prompt`] (from [`ChatTemplate::render_prompt`]), so user, tool and
//!   document text can never end or forge a turn.
//! - Trained tokenizers (`train.rs`) are plain HF pipelines too, so their tokenizer.json loads anywhere.
//!
//! - How tools, tool calls and tool results are written for a template lives in [`tool_format`],
//!   one definition for the agent that prompts a model and the SFT data that trains it.
//!
//! Files: `tokenizer.rs` (the type, tokenizer.json loading, saving), `gguf.rs` (building from
//! GGUF metadata), `chat.rs` (templates), `tool_format.rs` (tool prompts, calls and results),
//! `stream.rs` (incremental decoding), `train.rs` (BPE and character-level training, content
//! hash), `error.rs`.

mod chat;
mod error;
mod gguf;
mod stream;
mod tokenizer;
pub mod tool_format;
mod train;

pub use chat::{ChatTemplate, Message, Piece, Prompt};
pub use error::{Error, Result};
pub use stream::TokenStream;
pub use tokenizer::Tokenizer;
pub use train::{char_level, train_bpe, BpeOptions, CHAR_UNK, ENDOFTEXT};
