//! `ingot data prepare`: tokenize a corpus into train/validation token shards for pre-training.
//! `ingot data clean`: filter, de-duplicate, scrub and decontaminate a raw corpus first.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use ingot_data::clean::decontam::Decontaminator;
use ingot_data::clean::{CleanConfig, CleanOptions};
use ingot_data::PrepareOptions;
use ingot_tokenizer::Tokenizer;

#[derive(Args, Debug)]
pub struct DataCmd {
    #[command(subcommand)]
    pub action: DataAction,
}

#[derive(Subcommand, Debug)]
pub enum DataAction {
    /// Tokenize a corpus into shards (train_*.bin, val_*.bin, dataset.json) in --out.
    Prepare(PrepareArgs),
    /// Clean a raw corpus: quality filters, de-duplication, PII scrubbing, decontamination.
    /// Writes JSONL shards (clean_*.jsonl, which `data prepare --corpus` reads), the removed
    /// documents with their reasons (removed/), and report.{json,md,svg}.
    Clean(CleanArgs),
}

#[derive(Args, Debug)]
pub struct CleanArgs {
    /// Inputs: .txt files (one document each), .jsonl files (one document per line, a "text"
    /// field) and folders of them (walked recursively).
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<PathBuf>,
    /// Output folder; a killed run resumes when run again with the same inputs and config.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// TOML config (every field optional; see `CleanConfig` and configs/clean.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Benchmark data folder for decontamination (default: the fetched assets,
    /// `scripts/fetch-assets eval`).
    #[arg(long, value_name = "DIR")]
    pub eval_data: Option<PathBuf>,
    /// Replace --out even if it holds something else (another run, or files that are not Ingot's).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("vocabulary").args(["tokenizer", "model"]).required(true)))]
pub struct PrepareArgs {
    /// A folder of .txt / .jsonl files (one level), or one such file.
    /// Default: the Shakespeare corpus (`scripts/fetch-assets corpus`).
    #[arg(long, value_name = "PATH")]
    pub corpus: Option<PathBuf>,
    /// The tokenizer.json to use (e.g. from `ingot tokenizer train`); give this or --model.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Use a model's tokenizer instead: a GGUF file or a folder with tokenizer.json.
    #[arg(long, short = 'm', value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Fraction of documents held out for validation, in [0, 1).
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub val_fraction: f64,
    /// Seed that chooses the validation documents.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Tokens per shard file before starting the next.
    #[arg(long, default_value_t = 1 << 28, value_name = "N")]
    pub max_tokens_per_shard: u64,
    /// Write into --out even if it holds something that is not a prepared dataset.
    #[arg(long)]
    pub force: bool,
}

pub fn run(cmd: DataCmd) -> Result<()> {
    match cmd.action {
        DataAction::Prepare(args) => prepare(args),
        DataAction::Clean(args) => clean(args),
    }
}

fn prepare(args: PrepareArgs) -> Result<()> {
    // Checked here too so the message names the flags (the library names its option fields).
    anyhow::ensure!(
        (0.0..1.0).contains(&args.val_fraction),
        "--val-fraction must be in [0, 1), got {}",
        args.val_fraction
    );
    anyhow::ensure!(args.max_tokens_per_shard > 0, "--max-tokens-per-shard must be at least 1");
    let opts = PrepareOptions {
        val_fraction: args.val_fraction,
        seed: args.seed,
        max_tokens_per_shard: args.max_tokens_per_shard,
        show_progress: true,
        force: args.force,
    };
    let tokenizer = match (&args.tokenizer, &args.model) {
        (Some(path), _) => Tokenizer::from_file(path)?,
        (None, Some(model)) => model_tokenizer(model)?,
        (None, None) => bail!("give --tokenizer FILE or --model PATH"),
    };
    let corpus = match args.corpus {
        Some(path) => path,
        None => ingot_core::assets::find_asset("corpus/shakespeare", "corpus")?,
    };
    let docs = ingot_data::read_corpus(&corpus)?;
    let report = ingot_data::prepare(&docs, &tokenizer, &args.out, &opts)?;

    let m = &report.manifest;
    println!(
        "wrote {} ({} shards, {}, tokenizer {})",
        report.out_dir.display(),
        m.train.shards.len() + m.val.shards.len(),
        m.dtype.as_str(),
        m.tokenizer_hash
    );
    println!("documents:  {} ({} train, {} val)", report.n_documents, m.train.n_documents, m.val.n_documents);
    println!(
        "tokens:     {} ({} train, {} val; vocab {})",
        report.n_tokens(),
        m.train.n_tokens,
        m.val.n_tokens,
        m.vocab_size
    );
    println!(
        "time:       {:.2} s ({:.0} tokens/s, {:.1} MB/s, {:.2} bytes/token)",
        report.seconds,
        report.tokens_per_sec(),
        report.n_bytes as f64 / 1e6 / report.seconds.max(1e-9),
        report.n_bytes as f64 / report.n_tokens().max(1) as f64
    );
    Ok(())
}

fn clean(args: CleanArgs) -> Result<()> {
    let cfg = match &args.config {
        Some(path) => CleanConfig::from_toml(path)?,
        None => CleanConfig::default(),
    };
    let decontam = if cfg.decontamination.enabled {
        let root = ingot_eval::data::data_root(args.eval_data.as_deref()).map_err(|e| {
            anyhow::anyhow!(
                "{e}\ndecontamination checks the corpus against the benchmark data; fetch it with \
                 `scripts/fetch-assets eval`, or set decontamination.enabled = false in --config"
            )
        })?;
        let items = benchmark_items(&root, &cfg.decontamination.benchmarks)?;
        eprintln!("decontamination: {} benchmark items, {}-grams", items.len(), cfg.decontamination.n);
        Some(Decontaminator::new(cfg.decontamination.n, items))
    } else {
        None
    };
    let opts = CleanOptions { show_progress: true, force: args.force };
    let report = ingot_data::clean::clean(&args.inputs, &args.out, &cfg, decontam.as_ref(), &opts)?;
    let pct = |a: u64, b: u64| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    println!("wrote {} ({} shards; report.md, report.svg, removed/)", args.out.display(), report.shards);
    println!(
        "documents: {} in, {} out ({:.1}%); bytes {} in, {} out ({:.1}%)",
        report.input.docs,
        report.output.docs,
        pct(report.output.docs, report.input.docs),
        report.input.bytes,
        report.output.bytes,
        pct(report.output.bytes, report.input.bytes)
    );
    let mut removed: Vec<_> = report.removed.iter().collect();
    removed.sort_by(|a, b| b.1.docs.cmp(&a.1.docs));
    for (reason, t) in removed {
        println!("  removed {:>8}  {reason}", t.docs);
    }
    println!(
        "pii replaced: {} e-mail, {} IP, {} phone, {} card; {:.0} documents/s, {:.1} MB/s",
        report.pii.email, report.pii.ip, report.pii.phone, report.pii.card, report.docs_per_sec, report.mb_per_sec
    );
    Ok(())
}

/// Every item of the benchmarks (all of `ingot eval`'s tasks when `names` is empty) as one text:
/// its string fields joined (not the few-shot prompt a request file carries, which holds other
/// items), labelled with the task name it was asked for.
fn benchmark_items(root: &Path, names: &[String]) -> Result<Vec<(String, String)>> {
    let names: Vec<String> = if names.is_empty() {
        ingot_eval::tasks::TASKS.iter().map(|s| s.to_string()).collect()
    } else {
        names.to_vec()
    };
    let mut items = Vec::new();
    for name in &names {
        for task in ingot_eval::tasks::Task::resolve(name, root)? {
            for doc in task.documents(root)? {
                let mut text = String::new();
                strings_of(&doc, &mut text);
                items.push((name.clone(), text));
            }
        }
    }
    Ok(items)
}

fn strings_of(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::String(s) => {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(s);
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings_of(v, out)),
        serde_json::Value::Object(map) => {
            map.iter().filter(|(k, _)| k.as_str() != "request").for_each(|(_, v)| strings_of(v, out))
        }
        _ => {}
    }
}

/// The tokenizer of a GGUF file, or of a checkpoint folder's tokenizer.json.
fn model_tokenizer(path: &Path) -> Result<Tokenizer> {
    if path.is_dir() {
        let file = path.join("tokenizer.json");
        if !file.exists() {
            bail!("{} has no tokenizer.json; give --tokenizer FILE instead", path.display());
        }
        return Ok(Tokenizer::from_file(file)?);
    }
    if path.extension().is_some_and(|e| e == "gguf") {
        return Ok(Tokenizer::from_gguf(&ingot_core::gguf::GgufFile::open(path)?)?);
    }
    bail!("--model {} is neither a .gguf file nor a folder with tokenizer.json", path.display())
}
