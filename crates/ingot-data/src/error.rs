//! The error type of the data crate.
//!
//! Messages name the file (and line, for JSONL), the numbers that disagree, and what to do next:
//! most shard problems are fixed by running `ingot data prepare` again.

use std::path::PathBuf;

/// Everything that can go wrong while reading a corpus, writing or reading token shards, and
/// sampling batches.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-format or asset error from ingot-core.
    #[error(transparent)]
    Core(#[from] ingot_core::Error),

    /// Tokenizing, or hashing the tokenizer, failed.
    #[error(transparent)]
    Tokenizer(#[from] ingot_tokenizer::Error),

    /// The corpus path does not exist.
    #[error("corpus not found at {path}; give a folder of .txt/.jsonl files or one such file (the default corpus is fetched by `scripts/fetch-assets corpus`)")]
    CorpusNotFound { path: PathBuf },

    /// The corpus path exists but holds no document.
    #[error("{path}: no documents found ({detail})")]
    EmptyCorpus { path: PathBuf, detail: String },

    /// A corpus file is not what its extension says (not UTF-8, unknown extension).
    #[error("{path}: {detail}")]
    BadCorpusFile { path: PathBuf, detail: String },

    /// One line of a JSONL corpus is not an object with a string `text` field.
    #[error("{path}:{line}: {detail}")]
    BadJsonLine { path: PathBuf, line: usize, detail: String },

    /// A token shard is not an Ingot shard, or its header is inconsistent.
    #[error("{path} is not a valid Ingot token shard: {detail}; re-run `ingot data prepare`")]
    BadShard { path: PathBuf, detail: String },

    /// A token shard is shorter than its header says.
    #[error(
        "{path} is truncated: its header promises {n_tokens} {dtype} tokens = {expected} bytes after byte {offset}, \
         but only {actual} are there; re-run `ingot data prepare`"
    )]
    TruncatedShard { path: PathBuf, n_tokens: u64, dtype: &'static str, offset: u64, expected: u64, actual: u64 },

    /// dataset.json is missing, unreadable, or disagrees with its shards.
    #[error("{path}: {detail}")]
    BadManifest { path: PathBuf, detail: String },

    /// A token id does not fit the vocabulary or the shard's integer width.
    #[error("{path}: token id {id} is outside the vocabulary (size {vocab_size})")]
    TokenOutOfRange { path: PathBuf, id: u32, vocab_size: u64 },

    /// A split has too few tokens for one training example.
    #[error(
        "the {split} split has {n_tokens} tokens, but one example of context {context} needs {needed}; \
         use a shorter context, a larger corpus or (for val) a larger --val-fraction"
    )]
    TooFewTokens { split: String, n_tokens: u64, context: usize, needed: u64 },

    /// A setting is out of range (val fraction, shard size, batch shape, window bounds).
    #[error("{0}")]
    Invalid(String),

    /// A spilled dedup run file (`ingot data clean`'s MinHash index) is truncated or not one.
    #[error("{path} is not a valid dedup run: {detail}; delete it (or its folder) and run `ingot data clean` again")]
    BadSpill { path: PathBuf, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wrap an `io::Error` with the operation and the file (as ingot-core's `Io` error).
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let wrap = ingot_core::Error::io(op, path);
        move |source| Error::Core(wrap(source))
    }
}
