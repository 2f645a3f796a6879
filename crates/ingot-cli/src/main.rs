//! `ingot`: one binary for the life of a language model. Each subcommand is a file in `cmd/`
//! that validates its flags and makes one library call.

mod args;
mod cmd;
mod tools;

use clap::{Parser, Subcommand};
use ingot_core::text::escaped;

#[derive(Parser, Debug)]
#[command(name = "ingot", version, about = "Train, adapt, run and evaluate Transformer language models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a reply to one prompt (chat template applied for chat models).
    Generate(cmd::generate::GenerateCmd),
    /// Ask one question, optionally with few-shot, chain-of-thought or self-consistency.
    Ask(cmd::ask::AskCmd),
    /// Multi-turn chat on stdin/stdout.
    Chat(cmd::chat::ChatCmd),
    /// Describe a model file: architecture, sizes, tensor types, template.
    Inspect(cmd::inspect::InspectCmd),
    /// Measure prefill and decode speed.
    Bench(cmd::bench::BenchCmd),
    /// Train a tokenizer (byte-level BPE or character-level) on a corpus.
    Tokenizer(cmd::tokenizer::TokenizerCmd),
    /// Prepare a corpus for pre-training: token shards with a train/validation split.
    Data(cmd::data::DataCmd),
    /// Build or query a search index over local documents (for the search tool).
    Index(cmd::index::IndexCmd),
    /// Benchmarks scored as lm-evaluation-harness scores them (HellaSwag, ARC, MMLU, GSM8K, ...).
    Eval(cmd::eval::EvalCmd),
    /// Perplexity and bits per byte of a text file (sliding window).
    Perplexity(cmd::perplexity::PerplexityCmd),
    /// Pre-train a language model from scratch (see configs/*.toml).
    Pretrain(cmd::pretrain::PretrainCmd),
    /// Scaling laws: train a family of sizes, fit L(N) and L(N, D), predict the next size.
    Scaling(cmd::scaling::ScalingCmd),
    /// Serve the model over an OpenAI-compatible HTTP API, with a web chat page.
    Serve(cmd::serve::ServeCmd),
    /// Fine-tune a pretrained model on instructions (full, LoRA or QLoRA).
    Sft(cmd::sft::SftCmd),
    /// Train a reward model on preference pairs (chosen vs rejected answers).
    RewardTrain(cmd::reward_train::RewardTrainCmd),
    /// Align a model with preference pairs by DPO (or IPO), no reward model needed.
    Dpo(cmd::dpo::DpoCmd),
    /// RLHF: PPO against a trained reward model, with a KL leash to the starting model.
    Ppo(cmd::ppo::PpoCmd),
    /// Reinforce verifiable behaviour by GRPO (group-relative advantages, no value model).
    Grpo(cmd::grpo::GrpoCmd),
    /// Refusal on harmful and over-refusal on benign held-out prompts (rule and reward-model judges).
    AlignEval(cmd::align_eval::AlignEvalCmd),
    /// Fold a LoRA adapter into its base model; write an HF folder or a GGUF file.
    Merge(cmd::merge::MergeCmd),
    /// Accuracy of prompting strategies on seeded arithmetic word problems.
    UtilizationBench(cmd::utilization::UtilizationCmd),
    /// The fixed training benchmark: tokens/s and model FLOPs utilisation.
    TrainBench(cmd::train_bench::TrainBenchCmd),
}

/// Keep freed tensor buffers in the heap for reuse. glibc returns every allocation above its
/// mmap threshold (128 KiB, adapting up to 32 MiB) to the kernel on free, so each step's fresh
/// activations cost page faults and zeroing: measured on a QLoRA step of the default model, page
/// faults were a quarter of the time and these settings made training 2.4x faster (36 → 88
/// tokens/s). Memory already in use is unchanged; freed memory is kept, not returned.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

fn main() {
    tune_allocator();
    ingot_core::panic::install_hook();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("INGOT_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let job = join_mpi_job();
    let result = match cli.command {
        Command::Generate(c) => cmd::generate::run(c),
        Command::Ask(c) => cmd::ask::run(c),
        Command::Chat(c) => cmd::chat::run(c),
        Command::Inspect(c) => cmd::inspect::run(c),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Tokenizer(c) => cmd::tokenizer::run(c),
        Command::Data(c) => cmd::data::run(c),
        Command::Index(c) => cmd::index::run(c),
        Command::Eval(c) => cmd::eval::run(c),
        Command::Perplexity(c) => cmd::perplexity::run(c),
        Command::Pretrain(c) => cmd::pretrain::run(c),
        Command::Scaling(c) => cmd::scaling::run(c),
        Command::Sft(c) => cmd::sft::run(c),
        Command::Serve(c) => cmd::serve::run(c),
        Command::RewardTrain(c) => cmd::reward_train::run(c),
        Command::Dpo(c) => cmd::dpo::run(c),
        Command::AlignEval(c) => cmd::align_eval::run(c),
        Command::Grpo(c) => cmd::grpo::run(c),
        Command::Ppo(c) => cmd::ppo::run(c),
        Command::Merge(c) => cmd::merge::run(c),
        Command::TrainBench(c) => cmd::train_bench::run(c),
        Command::UtilizationBench(c) => cmd::utilization::run(c),
    };
    if let Err(e) = result {
        match &job {
            Some(Job { rank, size, .. }) if *size > 1 => {
                eprintln!("error: rank {rank} of {size}: {}", one_line(&e));
                abort_job(1);
            }
            _ => {
                eprintln!("error: {}", one_line(&e));
                std::process::exit(1);
            }
        }
    }
}

/// This process's place in an MPI job: rank, world size, and (with the `mpi` feature) the
/// initialised MPI library, finalised when this is dropped at the end of `main`.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
struct Job {
    rank: usize,
    size: usize,
    #[cfg(feature = "mpi")]
    _mpi: ingot_train::collective::mpi::MpiJob,
}

/// Under `mpirun` (an Ingot built with `--features mpi`): join the MPI job, so every training
/// recipe runs data-parallel over its ranks. Rank 0 alone prints results (the others' standard
/// output is discarded; errors still reach standard error), and an error or a panic on any rank
/// ends the whole job (MPI_Abort) instead of leaving the others waiting in a collective.
#[cfg(feature = "mpi")]
fn join_mpi_job() -> Option<Job> {
    let mpi = match ingot_train::collective::mpi::init_from_env() {
        Ok(Some(job)) => job,
        Ok(None) => return None,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let (rank, size) = (mpi.rank(), mpi.world_size());
    if rank > 0 {
        silence_stdout();
    }
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        hook(info);
        if !ingot_core::panic::is_quiet() {
            eprintln!("error: rank {rank} of {size} panicked; ending the job");
            abort_job(101);
        }
    }));
    Some(Job { rank, size, _mpi: mpi })
}

#[cfg(not(feature = "mpi"))]
fn join_mpi_job() -> Option<Job> {
    None
}

#[cfg(feature = "mpi")]
fn abort_job(code: i32) -> ! {
    ingot_train::collective::mpi::abort(code)
}

#[cfg(not(feature = "mpi"))]
fn abort_job(code: i32) -> ! {
    std::process::exit(code)
}

/// Point standard output at /dev/null (ranks other than 0 under MPI).
#[cfg(feature = "mpi")]
fn silence_stdout() {
    use std::os::fd::AsRawFd;
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1 replaces standard output; `null` stays open until then.
        unsafe {
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

/// The longest error line printed, in bytes (a message is a sentence, not a dump).
const MAX_ERROR_BYTES: usize = 900;

/// An error as the one line a user sees: the message, then each cause that it does not already
/// show. Ingot's errors write their cause into their own message ("cannot read X: No such file
/// (os error 2)") and also report it as `source()`, so printing the whole chain would say it
/// twice; the rule is that a cause is added only when its text is not yet in the line. candle
/// errors are shown without the backtrace they carry when RUST_BACKTRACE is set (anyhow's own
/// backtrace is never printed: only `{:?}` shows it). Whatever got this far is escaped (no
/// control characters reach the terminal) and capped.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<candle_core::Error>() {
            Some(c) => ingot_core::error::candle_message(c),
            None => cause.to_string(),
        };
        let text = escaped(&text.replace('\n', " "), usize::MAX).to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    if line.len() <= MAX_ERROR_BYTES {
        return line;
    }
    // Room for the elision note; the line is escaped already, so every character shows as itself.
    let keep = line.char_indices().take_while(|(i, c)| i + c.len_utf8() <= MAX_ERROR_BYTES - 40).count();
    escaped(&line, keep).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use clap::CommandFactory;

    /// Every flag and argument of every subcommand says what it is for in `--help`.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (the subcommand itself)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "ingot", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
        Cli::command().debug_assert();
    }

    #[test]
    fn causes_are_not_repeated_and_lines_are_capped() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        let e = anyhow::Error::new(ingot_core::Error::Io { op: "read", path: "/x".into(), source: io });
        assert_eq!(one_line(&e), "cannot read /x: No such file or directory (os error 2)");
        // An anyhow context adds itself in front of the cause.
        let e = Err::<(), _>(e).context("loading the tokenizer").unwrap_err();
        assert_eq!(one_line(&e), "loading the tokenizer: cannot read /x: No such file or directory (os error 2)");
        let e = anyhow::anyhow!("bad \u{1b}[2J{}", "x".repeat(5000));
        let line = one_line(&e);
        assert!(line.len() < 1000 && !line.contains('\u{1b}') && line.ends_with("more characters)"), "{line}");
    }
}
