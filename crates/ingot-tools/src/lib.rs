//! Tools a language model can call, and the interface they share.
//!
//! This crate owns the [`Tool`] trait (name, description, JSON schema of the arguments, call) and the
//! tools themselves; the tool-calling loop that routes a model's calls to them will live here too. It
//! depends only on serde_json and number crates, never on models or generation, so any layer above
//! (generation, serving, evaluation) can offer tools to a model.
//!
//! Design decisions:
//! - Tools take and return plain JSON / text, the shape OpenAI-style function calling uses, and every
//!   error message is written to be read by the model: it names the argument, the position or the
//!   limit, so the model can correct its next call.
//! - The [`Calculator`] is exact: it evaluates on big rationals (`0.1 + 0.2` is `0.3`, `2^100` has
//!   all 31 digits) because an LLM reaches for a calculator exactly when it cannot trust its own
//!   arithmetic. It is a hand-written parser for arithmetic only, not an `eval`, so no input can do
//!   anything but compute, and its input length, nesting depth, exponents and result sizes are bounded
//!   so hostile input fails fast instead of hanging or exhausting memory. See [`calculator`].

pub mod calculator;
pub mod tool;

pub use calculator::{evaluate, format_value, CalcError, Calculator};
pub use tool::{Tool, ToolError};
