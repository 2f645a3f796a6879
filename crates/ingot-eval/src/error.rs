//! Errors from evaluation: the layers below (model, tokenizer, generation), bad settings, and
//! benchmark data that is missing or not in the expected shape.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] ingot_core::Error),
    // Boxed: these two are large, and every Result in this crate would carry their size.
    #[error(transparent)]
    Tokenizer(Box<ingot_tokenizer::Error>),
    #[error(transparent)]
    Generate(Box<ingot_generate::Error>),
    /// A setting or request that cannot be run as asked; the message says what to change.
    #[error("{0}")]
    Input(String),
    /// Benchmark data that does not have the fields or values its task needs.
    #[error("benchmark data: {0}")]
    Corrupt(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<ingot_tokenizer::Error> for Error {
    fn from(e: ingot_tokenizer::Error) -> Self {
        Error::Tokenizer(Box::new(e))
    }
}

impl From<ingot_generate::Error> for Error {
    fn from(e: ingot_generate::Error) -> Self {
        Error::Generate(Box::new(e))
    }
}
