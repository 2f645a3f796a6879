//! The error type shared by Ingot's file-format and asset code.

use std::path::PathBuf;

use crate::text::quoted;

/// Everything that can go wrong while finding, opening or decoding a model file.
///
/// Each message names the file and the operation, and where there is something the user can do
/// about it (fetch an asset, pick another file), says what.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed at the OS level; `op` says which ("read", "write", "rename ...").
    #[error("cannot {op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },

    /// An output path holds something Ingot will not replace (see `atomic::check_output`).
    #[error("will not write to {path}: {detail}")]
    OutputExists { path: PathBuf, detail: String },

    /// A file or folder the user pointed at (or a default asset) does not exist.
    #[error("{what} not found at {path}{hint}")]
    NotFound { what: String, path: PathBuf, hint: String },

    /// The file is not a GGUF file at all.
    #[error("{path} is not a GGUF file (it starts with \"{}\", expected \"GGUF\")", found.escape_ascii())]
    BadMagic { path: PathBuf, found: [u8; 4] },

    /// The file ends before the structure it describes.
    #[error("{path} is truncated: {detail} (the file may be incomplete; fetch it again)")]
    Truncated { path: PathBuf, detail: String },

    /// The file is structurally invalid in some other way.
    #[error("{path} is not a valid {format} file: {detail}")]
    Corrupt { path: PathBuf, format: &'static str, detail: String },

    /// A tensor is stored in a type this build cannot decode.
    #[error("{path}: tensor {} has GGML type {type_id} ({name}), which Ingot does not support; supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K", quoted(.tensor))]
    UnsupportedTensorType { path: PathBuf, tensor: String, type_id: u32, name: &'static str },

    /// A required metadata key or tensor is absent.
    #[error("{path}: missing {what} {}", quoted(.key))]
    Missing { path: PathBuf, what: &'static str, key: String },

    /// A metadata value has the wrong type.
    #[error("{path}: metadata {} should be {expected}, found {found}", quoted(.key))]
    WrongType { path: PathBuf, key: String, expected: &'static str, found: String },

    /// A JSON file (config.json, tokenizer.json) failed to parse.
    /// serde's message can quote a whole offending string from the file: escaped and capped, and
    /// not exposed as the error's source (a cause chain would print it again, uncapped).
    #[error("cannot parse {path}: {}", crate::text::escaped(&.cause.to_string(), 300))]
    Json { path: PathBuf, cause: serde_json::Error },

    /// A model's configuration names an architecture Ingot does not implement.
    #[error("unknown architecture {} in {source_name}; Ingot supports: {supported}", quoted(.arch))]
    UnknownArchitecture { arch: String, source_name: String, supported: &'static str },

    /// A model configuration or checkpoint is inconsistent (wrong shape, impossible sizes).
    #[error("invalid model: {0}")]
    Model(String),

    /// A request does not fit the model (for example a prompt longer than the context window).
    #[error("{0}")]
    Input(String),

    /// An error from candle's tensor code, with what Ingot was doing when it happened.
    #[error("{context}: {}", candle_message(.source))]
    Candle { context: String, source: candle_core::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A closure for `map_err` on an `io::Result`: "cannot `op` `path`: cause".
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// candle attaches a backtrace to its errors when RUST_BACKTRACE is set; users get one-line
/// messages, so drop it (nested ones too).
pub fn strip_backtrace(e: candle_core::Error) -> candle_core::Error {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => strip_backtrace(*inner),
        candle_core::Error::Context { inner, context } => {
            candle_core::Error::Context { inner: Box::new(strip_backtrace(*inner)), context }
        }
        candle_core::Error::WithPath { inner, path } => {
            candle_core::Error::WithPath { inner: Box::new(strip_backtrace(*inner)), path }
        }
        other => other,
    }
}

/// A candle error as one line, without the backtrace candle attaches when RUST_BACKTRACE is set
/// (however deeply it is nested) and with its context and path written as "context: error".
pub fn candle_message(e: &candle_core::Error) -> String {
    use candle_core::Error as E;
    let line = match e {
        E::WithBacktrace { inner, .. } => return candle_message(inner),
        E::Context { inner, context } => format!("{context}: {}", candle_message(inner)),
        E::WithPath { inner, path } => format!("{}: {}", path.display(), candle_message(inner)),
        E::WrappedContext { wrapped, context } => format!("{context}: {wrapped}"),
        other => other.to_string(),
    };
    line.replace('\n', " ")
}

/// Attach "what we were doing" to a candle error.
pub trait CandleContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> CandleContext<T> for candle_core::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Candle { context: what(), source: strip_backtrace(source) })
    }
}
