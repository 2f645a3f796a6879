//! Capacity evaluation. So far the scoring core that every benchmark stands on:
//!
//! - [`loglik`]: the log-likelihood of continuations given a context, as lm-evaluation-harness
//!   computes it for multiple-choice tasks (sum of the continuation tokens' log-probabilities,
//!   and whether each token was the greedy choice). All choices of an item share one pass over
//!   the context: its keys and values stay in the KV cache and each continuation runs on top.
//! - [`perplexity`]: perplexity and bits per byte of a token sequence with a sliding window
//!   (context and stride), as the HF perplexity guide does it.
//!
//! Tasks, prompt formats, metrics and reports build on these (issue 4).

pub mod loglik;
pub mod perplexity;
pub mod problems;
pub mod utilization;

pub use loglik::{score_continuations, Score};
pub use perplexity::{perplexity, Perplexity};

pub type Result<T> = std::result::Result<T, ingot_core::Error>;
