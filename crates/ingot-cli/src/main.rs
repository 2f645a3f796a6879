//! `ingot`: one binary for the life of a language model. Each subcommand is a file in `cmd/`
//! that validates its flags and makes one library call.

mod args;
mod cmd;
mod tools;

use clap::{Parser, Subcommand};

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
    /// Accuracy of prompting strategies on seeded arithmetic word problems.
    UtilizationBench(cmd::utilization::UtilizationCmd),
    /// The fixed training benchmark: tokens/s and model FLOPs utilisation.
    TrainBench(cmd::train_bench::TrainBenchCmd),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("INGOT_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
        Command::TrainBench(c) => cmd::train_bench::run(c),
        Command::UtilizationBench(c) => cmd::utilization::run(c),
    };
    if let Err(e) = result {
        // One line: the outermost context and its causes, joined.
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
