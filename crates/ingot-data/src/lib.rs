//! Ingot's data for pre-training: corpora in, memory-mapped token shards out, batches drawn.
//!
//! ```text
//! read_corpus(path)                    .txt / .jsonl  ->  Vec<Document>
//! prepare(docs, tokenizer, dir, opts)  Documents      ->  dir/{train,val}_NNNNN.bin, dataset.json,
//!                                                         tokenizer.json, tokenizer_config.json
//! TokenDataset::open(dir, split)       shards (mmap)  ->  one token sequence per split
//! BatchSampler::batch(ds, step, ..)    (seed, step)   ->  (inputs, targets), B x T each
//! ```
//!
//! Design decisions:
//! - Shards are flat little-endian u16 (vocab <= 65536) or u32 ids after a small JSON header
//!   (`shards.rs`), nanoGPT's `train.bin` with enough metadata to refuse the wrong tokenizer,
//!   a truncated file or a stale folder. Training memory-maps them, so a corpus larger than
//!   RAM costs nothing to open.
//! - The train/validation split is by document and chosen by a seed; which documents went to
//!   validation is recorded in `dataset.json`.
//! - Every document ends with one separator token (`<|endoftext|>`), so a model learns where
//!   documents end and windows that cross a boundary say so.
//! - Batches are a pure function of (seed, step, micro-step): resuming needs no sampler state.
//! - Everything a user can get wrong (paths, bad JSONL lines, truncated shards, too-small
//!   splits) is an [`Error`] that names the file and numbers, never a panic.
//! - SFT data (`sft`) is small enough to hold in memory: JSONL conversations or prompt/completion
//!   pairs are encoded at load with a per-token loss mask, and packed into rows for training.
//!   Preference pairs and prompt-only sets (`preference`, TRL's formats) are encoded by the same
//!   encoder, one SFT example per side.
//!
//! Files: `corpus.rs` (reading text), `shards.rs` (the binary format), `manifest.rs`
//! (dataset.json), `prepare.rs` (tokenize and write), `loader.rs` (mmap and sample), `sft.rs`
//! (instruction-tuning examples, loss masks, packing), `preference.rs` (chosen/rejected pairs,
//! prompts for RL), `error.rs`.

pub mod clean;
mod corpus;
mod error;
mod loader;
mod manifest;
pub mod preference;
mod prepare;
pub mod sft;
mod shards;

pub use corpus::{read_corpus, Document};
pub use error::{Error, Result};
pub use loader::{BatchSampler, TokenDataset};
pub use manifest::{Manifest, ShardEntry, Split, SplitManifest, MANIFEST_FILE};
pub use prepare::{choose_val, prepare, separator_id, PrepareOptions, PrepareReport};
pub use shards::{Dtype, ShardHeader, ShardWriter, TokenShard, FORMAT_VERSION, MAGIC};
