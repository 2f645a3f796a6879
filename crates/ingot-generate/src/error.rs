//! Errors from loading a model with its tokenizer and from generating.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Model files, formats and model-level checks (context length, shapes).
    #[error(transparent)]
    Core(#[from] ingot_core::Error),
    /// Tokenizer or chat-template failure.
    #[error(transparent)]
    Tokenizer(#[from] ingot_tokenizer::Error),
    /// A generation setting is out of range; the message names the flag.
    #[error("{0}")]
    Params(String),
    /// The request cannot be served as asked (empty prompt, no chat template, ...).
    #[error("{0}")]
    Input(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<candle_core::Error> for Error {
    fn from(source: candle_core::Error) -> Self {
        Error::Core(ingot_core::Error::Candle {
            context: "generation".into(),
            source: ingot_core::error::strip_backtrace(source),
        })
    }
}
