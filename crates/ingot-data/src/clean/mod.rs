//! `ingot data clean`: the pipeline in front of `data prepare`.
//!
//! Files: `filters.rs` (Gopher quality and repetition, C4 line rules, with datatrove's defaults),
//! `minhash.rs` (exact and near-duplicate detection, memory bounded), `pii.rs` (e-mail, IP, phone,
//! card numbers), `decontam.rs` (13-gram overlap with the evaluation sets), `pipeline.rs` (the run:
//! inputs in chunks, resume, shards, the report).

pub mod decontam;
pub mod filters;
pub mod minhash;
pub mod pii;
pub mod pipeline;
pub mod words;

pub use pipeline::{clean, list_inputs, CleanConfig, CleanOptions, CleanReport, Tally, MARKER};
