//! One file per subcommand.

pub mod align_eval;
pub mod ask;
pub mod bench;
pub mod chat;
pub mod data;
pub mod dpo;
pub mod eval;
pub mod generate;
pub mod grpo;
pub mod index;
pub mod inspect;
pub mod merge;
pub mod perplexity;
pub mod ppo;
pub mod pretrain;
pub mod reward_train;
pub mod scaling;
pub mod serve;
pub mod sft;
pub mod tokenizer;
pub mod train_bench;
pub mod utilization;
