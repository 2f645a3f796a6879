//! Tools a language model can call, and the interface they share.
//!
//! This crate owns the [`Tool`] trait (name, description, JSON schema of the arguments, call) and the
//! tools themselves ([`calculator`], [`search`], and user-defined [`command`] tools read from TOML or
//! JSON files), which depend only on serde, number crates, tantivy and the standard library. It also owns the tool-calling loop: [`calls`] reads calls out of a model's reply and
//! [`agent`] runs generate → parse → call → feed back; only [`agent`] uses the generation crate
//! (generation sits above this crate's tools, below the server and CLI that offer them).
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
//! - The [`SearchTool`] runs BM25 (tantivy) over passages of the user's .txt/.md files. Index builds
//!   are staged in a sibling folder and swapped in by rename, so a crash never leaves a half-written
//!   index, and queries are parsed leniently so no model text can make a search fail. See [`search`].
//! - A [`CommandTool`] runs a program the user named in a tool file, never a shell: model text only
//!   ever fills whole argv elements or stdin, arguments are checked against declared types first, and
//!   every run is bounded by a timeout and an output cap that is enforced while reading. See [`command`].

pub mod agent;
pub mod calculator;
pub mod calls;
pub mod command;
pub mod search;
pub mod tool;

pub use agent::{
    execute_calls, results_message, run_loop, Agent, AgentAnswer, AgentError, AgentStop, Step, ToolResult,
};
pub use calculator::{evaluate, format_value, CalcError, Calculator};
pub use calls::{parse_calls, CallError, ParsedReply, ToolCall};
pub use command::{load_tool_file, load_tool_files, CommandTool, RunError, ToolFileError};
pub use search::{BuildReport, Hit, Manifest, SearchError, SearchIndex, SearchTool};
pub use tool::{Tool, ToolError};

/// Names of the tools this crate defines; tools from a tool file may not take them.
pub const BUILTIN_TOOLS: &[&str] = &["calculator", "search"];
