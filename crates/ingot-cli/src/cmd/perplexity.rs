//! `ingot perplexity`: perplexity and bits per byte of a text file under a model, with a sliding
//! window (ingot-eval's `perplexity`), or in `llama-perplexity`'s chunks (`--chunks`,
//! ingot-eval's `perplexity_chunks`).

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
    #[arg(long, conflicts_with = "chunks")]
    pub stride: Option<usize>,
    /// Score as `llama-perplexity -c CONTEXT` does, number for number: non-overlapping chunks of
    /// --context tokens (default 512), BOS in front of each, only each chunk's second half scored.
    #[arg(long)]
    pub chunks: bool,
    /// With --chunks: score at most this many chunks (`llama-perplexity --chunks N`).
    #[arg(long, requires = "chunks")]
    pub max_chunks: Option<usize>,
}

pub fn run(cmd: PerplexityCmd) -> Result<()> {
    // Checked before the model loads: a 0 used to become 1 silently (stride) or fail late.
    if let Some(c) = cmd.context {
        ingot_core::limits::at_least("--context", c, 2)?;
    }
    if let Some(s) = cmd.stride {
        ingot_core::limits::at_least("--stride", s, 1)?;
    }
    if let Some(n) = cmd.max_chunks {
        ingot_core::limits::at_least("--max-chunks", n, 1)?;
    }
    let p = cmd.model.load()?;
    let text = std::fs::read_to_string(&cmd.file).with_context(|| format!("cannot read {}", cmd.file.display()))?;
    if cmd.chunks {
        return run_chunks(&cmd, &p, &text);
    }
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

/// `--chunks`: `llama-perplexity`'s chunks, its running `[i]ppl` line and final estimate.
fn run_chunks(cmd: &PerplexityCmd, p: &ingot_generate::Pipeline, text: &str) -> Result<()> {
    let ids = ingot_eval::perplexity::chunk_ids(&p.tokenizer, text)?;
    let context = cmd.context.unwrap_or(512);
    let bos = if p.tokenizer.add_bos() { p.tokenizer.bos_id() } else { None };
    let start = Instant::now();
    let mut running = String::new();
    let mut show = |i: usize, n: usize, r: &ingot_eval::Perplexity| {
        running.push_str(&format!("[{i}]{:.4},", r.perplexity()));
        let per_chunk = start.elapsed().as_secs_f64() / i as f64;
        eprint!(
            "\rchunk {i}/{n}: ppl {:.4}; {per_chunk:.2} s a chunk, ETA {:.0} s  ",
            r.perplexity(),
            per_chunk * (n - i) as f64
        );
    };
    let r =
        ingot_eval::perplexity::perplexity_chunks(&p.model, &ids, context, bos, cmd.max_chunks, &p.device, &mut show)?;
    eprintln!();
    let secs = start.elapsed().as_secs_f64();
    let chunks = r.tokens / (context - context / 2 - 1);
    println!("file:           {} ({} bytes, {} tokens with BOS)", cmd.file.display(), text.len(), ids.len());
    println!(
        "chunks:         {chunks} of {context} tokens, each scoring its last {} (llama-perplexity's)",
        context - context / 2 - 1
    );
    println!("running:        {running}");
    println!("mean nll:       {:.4} nats/token over {} scored tokens", r.mean_nll(), r.tokens);
    println!("perplexity:     {:.4} +/- {:.5}", r.perplexity(), r.perplexity_stderr());
    println!("time:           {secs:.1} s ({:.0} tokens/s)", (chunks * context) as f64 / secs.max(1e-9));
    Ok(())
}
