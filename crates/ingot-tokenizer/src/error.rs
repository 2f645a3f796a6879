//! The error type of the tokenizer crate.
//!
//! Each message names the file (or template) and what was wrong with it, so that a user who
//! points Ingot at the wrong model learns which key or token to look at.

use std::path::PathBuf;

use ingot_core::text::{escaped, quoted};

/// Everything that can go wrong while building a tokenizer, encoding, decoding or rendering a
/// chat template.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the GGUF file or a JSON file failed (I/O, bad format, wrong metadata type).
    #[error(transparent)]
    Core(#[from] ingot_core::Error),

    /// The GGUF names a tokenizer model this crate cannot build.
    #[error(
        "{path}: tokenizer model {} (tokenizer.ggml.model) is not supported; supported: \
         'gpt2' (byte-level BPE: GPT-2, Llama 3, Qwen2, SmolLM) and 'llama' (SentencePiece BPE: Llama 2, Mistral)",
        quoted(.model)
    )]
    UnsupportedModel { path: PathBuf, model: String },

    /// The GGUF names a pre-tokenizer (how text is split before BPE) this crate does not know.
    #[error("{path}: pre-tokenizer {} (tokenizer.ggml.pre) is not supported; supported: {supported}", quoted(.pre))]
    UnsupportedPreTokenizer { path: PathBuf, pre: String, supported: String },

    /// A metadata key the tokenizer needs is absent.
    #[error("{path}: missing '{key}', {why}")]
    Missing { path: PathBuf, key: &'static str, why: &'static str },

    /// The vocabulary metadata is present but inconsistent (lengths differ, bad merge, bad id).
    #[error("{path}: invalid tokenizer metadata: {detail}")]
    InvalidVocab { path: PathBuf, detail: String },

    /// The HF `tokenizers` library refused an operation.
    /// (The library's message can quote tokens from the file: escaped and capped.)
    /// (`cause`, not `source`: a cause chain would print the message again, unescaped.)
    #[error("{what}: {}", escaped(&.cause.to_string(), 300))]
    Hf { what: String, cause: tokenizers::Error },

    /// A token id outside the vocabulary was given to `decode`.
    #[error("token id {id} is outside the vocabulary (size {vocab_size})")]
    UnknownId { id: u32, vocab_size: usize },

    /// The chat template failed to compile or to render.
    #[error("chat template: {}", escaped(.detail, 400))]
    Template { detail: String },

    /// The chat template itself rejected the conversation with `raise_exception(...)`.
    #[error("chat template rejected the conversation: {}", quoted(.message))]
    TemplateRaised { message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wrap an error from the `tokenizers` library with what Ingot was doing.
    pub(crate) fn hf(what: impl Into<String>) -> impl FnOnce(tokenizers::Error) -> Error {
        let what = what.into();
        move |cause| Error::Hf { what, cause }
    }
}
