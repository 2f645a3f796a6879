//! `ingot generate`: one prompt in, the model's answer streamed out.

use std::io::Write;

use anyhow::Result;
use clap::Args;

use crate::args::{GenArgs, ModelArgs};

#[derive(Args, Debug)]
pub struct GenerateCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub gen: GenArgs,
    /// The prompt text.
    #[arg(long, short = 'p')]
    pub prompt: String,
    /// Send the prompt as plain text, without the model's chat template.
    #[arg(long)]
    pub raw: bool,
    /// Recompute the whole sequence at each step instead of using the KV cache (slow; for checks).
    #[arg(long)]
    pub no_cache: bool,
    /// Don't print timing statistics to stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn run(cmd: GenerateCmd) -> Result<()> {
    let mut params = cmd.gen.params()?;
    params.no_cache = cmd.no_cache;
    let p = cmd.model.load()?;
    let chat = !cmd.raw && p.is_chat();
    let prompt = p.encode_prompt(&cmd.prompt, chat)?;
    let mut stdout = std::io::stdout().lock();
    let g = ingot_generate::generate(&p.model, &p.tokenizer, &prompt, &params, &p.device, |piece| {
        let _ = stdout.write_all(piece.as_bytes());
        let _ = stdout.flush();
    })?;
    writeln!(stdout)?;
    if !cmd.quiet {
        eprintln!(
            "[{} prompt tokens at {:.1} tok/s; {} generated at {:.1} tok/s; finish: {}]",
            g.prompt_tokens,
            g.prefill_tokens_per_sec(),
            g.tokens.len(),
            g.decode_tokens_per_sec(),
            g.finish_reason.as_str()
        );
    }
    Ok(())
}
