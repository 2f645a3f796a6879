//! `ingot serve`: the OpenAI-compatible server and web chat (`ingot-serve`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::args::ModelArgs;

#[derive(Args, Debug)]
pub struct ServeCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to bind. Anything but loopback without an API key is warned about.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Rows decoded together: how many requests are served at once (continuous batching).
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Requests that may wait for a free row; more are refused with 503 and Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Require `Authorization: Bearer KEY` on the API.
    #[arg(long, value_name = "KEY", conflicts_with = "api_key_file")]
    pub api_key: Option<String>,
    /// Read the API key from a file (its first line).
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Default and largest max_tokens of a request.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Cap on prompt + completion tokens (default: the model's context length).
    #[arg(long, value_name = "N")]
    pub ctx: Option<usize>,
    /// Positions of recent prompts whose cache is kept, so a prompt that begins like one of them
    /// (the system prompt, a chat's earlier turns) computes only the rest (0 = off; SmolLM2-135M
    /// holds 46 KB a position).
    #[arg(long, value_name = "TOKENS", default_value_t = 4096)]
    pub prompt_cache: usize,
}

pub fn run(cmd: ServeCmd) -> Result<()> {
    ingot_core::limits::at_least("--parallel", cmd.parallel, 1)?;
    ingot_core::limits::at_least("--max-tokens", cmd.max_tokens, 1)?;
    let api_key = match (&cmd.api_key, &cmd.api_key_file) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the API key from {}", path.display()))?;
            let key = text.lines().next().unwrap_or("").trim().to_string();
            anyhow::ensure!(!key.is_empty(), "{} holds no API key on its first line", path.display());
            Some(key)
        }
        (None, None) => None,
    };
    let loopback = matches!(cmd.host.as_str(), "127.0.0.1" | "localhost" | "::1");
    if !loopback && api_key.is_none() {
        eprintln!("warning: serving on {} without an API key: anyone who can reach this port can use the model (add --api-key)", cmd.host);
    }
    let path = cmd.model.model_path()?;
    let model_name = path.file_stem().map_or_else(|| "ingot".to_string(), |s| s.to_string_lossy().into_owned());
    let pipeline = cmd.model.load()?;
    let cfg = ingot_serve::ServeConfig {
        host: cmd.host.clone(),
        port: cmd.port,
        parallel: cmd.parallel,
        queue: cmd.queue,
        api_key,
        model_name,
        max_tokens: cmd.max_tokens,
        body_limit: 4 << 20,
        ctx: cmd.ctx,
        prompt_cache: cmd.prompt_cache,
    };
    ingot_serve::serve_blocking(pipeline, cfg, |addr| {
        println!("serving {} on http://{addr} (chat page at /, API at /v1)", path.display());
    })
    .with_context(|| format!("serving on {}:{}", cmd.host, cmd.port))?;
    eprintln!("server stopped");
    Ok(())
}
