//! Helpers shared by Ingot's tests, and only by tests (every crate takes it as a dev-dependency).
//!
//! - [`TempDir`]: a fresh folder per test, removed when dropped (kept when `INGOT_KEEP_TEST_DIRS`
//!   is set, to look at after a failure).
//! - [`assets`]: the real model, corpus and benchmark data fetched by `scripts/fetch-assets`, with
//!   one rule for when they are missing: under CI (`$CI` set, where the assets are fetched before
//!   the tests) that is a failure; locally the test prints why it is skipped and passes.
//! - [`cli`]: running the `ingot` binary as a user would and keeping what it printed.
//! - [`guard`]: a hang guard for bounded work, in place of speed assertions.
//! - [`corpus`]: small corpora in memory, written as a folder of `.txt` files or as `.jsonl`.
//! - [`models`] and [`gguf`] (feature `models`): tiny seeded random models of each architecture
//!   (llama, Qwen2 with q/k/v biases, GPT-2), as checkpoint folders and as llama.cpp-layout GGUF
//!   files. Behind a feature so that crates low in the stack can use the rest without compiling
//!   candle and the model code.
//! - [`tokenizer`] (feature `tokenizer`, implied by `models`): a character tokenizer.
//!
//! Integration tests of the crates this one depends on (ingot-models, ingot-tokenizer, ...) may
//! use it too: a dev-dependency cycle is allowed, and an integration test links the same library
//! that this crate does.

pub mod assets;
pub mod cli;
pub mod corpus;
#[cfg(feature = "models")]
pub mod gguf;
pub mod guard;
#[cfg(feature = "models")]
pub mod models;
pub mod svg;
mod temp;
#[cfg(feature = "tokenizer")]
pub mod tokenizer;

pub use assets::{corpus_dir, eval_data, real_model, require_asset};
pub use cli::Run;
pub use corpus::{dialogue_corpus, mercy_corpus, small_corpus, tiny_pretrain_toml, write_jsonl, write_txt, Doc};
pub use guard::finishes;
#[cfg(feature = "models")]
pub use models::{random_model, write_model_folder};
pub use temp::{temp_dir, TempDir};
#[cfg(feature = "tokenizer")]
pub use tokenizer::char_tokenizer;
