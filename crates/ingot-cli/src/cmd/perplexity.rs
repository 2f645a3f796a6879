//! `ingot perplexity`: perplexity and bits per byte of a text file under a model, with a sliding
//! window (ingot-eval's `perplexity`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::args::ModelArgs;

#[derive(Args, Debug)]
pub struct PerplexityCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text file to score.
    #[arg(long, short = 'f')]
    pub file: PathBuf,
    /// Tokens per window (default: the model's context length, at most 1024).
    #[arg(long)]
    pub context: Option<usize>,
    /// Tokens between window starts (default: half the context).
    #[arg(long)]
    pub stride: Option<usize>,
}

pub fn run(cmd: PerplexityCmd) -> Result<()> {
    // Checked before the model loads: a 0 used to become 1 silently (stride) or fail late.
    if let Some(c) = cmd.context {
        ingot_core::limits::at_least("--context", c, 2)?;
    }
    if let Some(s) = cmd.stride {
        ingot_core::limits::at_least("--stride", s, 1)?;
    }
    let p = cmd.model.load()?;
    let text = std::fs::read_to_string(&cmd.file).with_context(|| format!("cannot read {}", cmd.file.display()))?;
    let ids = p.tokenizer.encode(&text, false)?;
    let context = cmd.context.unwrap_or_else(|| p.model.context_length().min(1024));
    let stride = cmd.stride.unwrap_or((context / 2).max(1));
    let start = Instant::now();
    let r = ingot_eval::perplexity(&p.model, &ids, context, stride, &p.device)?;
    let secs = start.elapsed().as_secs_f64();
    println!("file:           {} ({} bytes, {} tokens)", cmd.file.display(), text.len(), ids.len());
    println!("window:         context {context}, stride {stride}");
    println!("mean nll:       {:.4} nats/token over {} scored tokens", r.mean_nll(), r.tokens);
    println!("perplexity:     {:.3}", r.perplexity());
    println!("bits per byte:  {:.4}", r.bits_per_byte(text.len()));
    println!("time:           {secs:.1} s ({:.0} tokens/s)", ids.len() as f64 / secs.max(1e-9));
    Ok(())
}
