//! `ingot tokenizer train`: a byte-level BPE or character-level tokenizer from a corpus, saved
//! as tokenizer.json (with tokenizer_config.json beside it, naming the EOS token).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use ingot_tokenizer::{BpeOptions, Tokenizer, ENDOFTEXT};

#[derive(Args, Debug)]
pub struct TokenizerCmd {
    #[command(subcommand)]
    pub action: TokenizerAction,
}

#[derive(Subcommand, Debug)]
pub enum TokenizerAction {
    /// Train a tokenizer on a corpus and save it as tokenizer.json.
    Train(TrainArgs),
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A folder of .txt / .jsonl files (one level), or one such file.
    /// Default: the Shakespeare corpus (`scripts/fetch-assets corpus`).
    #[arg(long, value_name = "PATH")]
    pub corpus: Option<PathBuf>,
    /// Where to write tokenizer.json; tokenizer_config.json is written beside it.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// bpe: GPT-2 style byte-level BPE; char: one token per character (tiny experiments).
    #[arg(long, value_enum, default_value_t = Kind::Bpe)]
    pub kind: Kind,
    /// Vocabulary size for BPE, special tokens and the 256 byte tokens included.
    #[arg(long, default_value_t = 4096, allow_negative_numbers = true)]
    pub vocab_size: usize,
    /// BPE: merge only pairs seen at least this often.
    #[arg(long, default_value_t = 2, allow_negative_numbers = true)]
    pub min_frequency: u64,
    /// Special tokens, ids 0, 1, ... in order (repeatable; default <|endoftext|>, the EOS).
    #[arg(long = "special", value_name = "TOKEN")]
    pub special: Vec<String>,
    /// Replace --out even if the file there is not a tokenizer.json.
    #[arg(long)]
    pub force: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bpe,
    Char,
}

pub fn run(cmd: TokenizerCmd) -> Result<()> {
    match cmd.action {
        TokenizerAction::Train(args) => train(args),
    }
}

fn train(args: TrainArgs) -> Result<()> {
    let corpus = match args.corpus {
        Some(path) => path,
        None => ingot_core::assets::find_asset("corpus/shakespeare", "corpus")?,
    };
    // Before the (slow) training: an existing file at --out must be a tokenizer to be replaced.
    let is_tokenizer = |p: &std::path::Path| Tokenizer::from_file(p).is_ok();
    ingot_core::atomic::check_output_file(&args.out, "tokenizer.json", is_tokenizer, args.force)?;
    let specials = if args.special.is_empty() { vec![ENDOFTEXT.to_string()] } else { args.special };

    let started = Instant::now();
    let docs = ingot_data::read_corpus(&corpus)?;
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    eprintln!(
        "training a {} tokenizer on {} documents ({:.1} MB)...",
        kind_name(args.kind),
        docs.len(),
        bytes as f64 / 1e6
    );
    let texts = docs.iter().map(|d| d.text.as_str());
    let tokenizer = match args.kind {
        Kind::Bpe => {
            let opts = BpeOptions {
                vocab_size: args.vocab_size,
                min_frequency: args.min_frequency,
                special_tokens: specials,
                show_progress: false,
            };
            ingot_tokenizer::train_bpe(texts, &opts)?
        }
        Kind::Char => ingot_tokenizer::char_level(texts, &specials)?,
    };
    let seconds = started.elapsed().as_secs_f64();
    save(&tokenizer, &args.out)?;

    let eos = tokenizer.eos_id().and_then(|id| tokenizer.id_to_token(id).map(|t| format!("{t} = {id}")));
    println!("wrote {} ({} tokenizer)", args.out.display(), kind_name(args.kind));
    println!("vocab size:  {}", tokenizer.vocab_size());
    println!("eos:         {}", eos.unwrap_or_else(|| "none".into()));
    println!("hash:        {}", tokenizer.content_hash()?);
    println!("time:        {seconds:.2} s");
    if args.kind == Kind::Bpe && tokenizer.vocab_size() < args.vocab_size {
        eprintln!(
            "note: the corpus allowed only {} tokens (no pair occurs --min-frequency {} times beyond that)",
            tokenizer.vocab_size(),
            args.min_frequency
        );
    }
    Ok(())
}

/// tokenizer.json at `out`, tokenizer_config.json beside it (so the EOS survives reloading).
fn save(tokenizer: &Tokenizer, out: &std::path::Path) -> Result<()> {
    tokenizer.save(out).with_context(|| format!("saving {}", out.display()))?;
    let config = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join("tokenizer_config.json");
    tokenizer.save_config(&config).with_context(|| format!("saving {}", config.display()))?;
    Ok(())
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Bpe => "byte-level BPE",
        Kind::Char => "character-level",
    }
}
