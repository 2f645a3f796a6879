//! Perplexity and bits per byte, two ways:
//! - [`perplexity`]: a sliding window, as in HF's perplexity guide: windows of `context` tokens
//!   start every `stride` tokens; each window scores only the tokens no earlier window scored, so
//!   every token after the first is predicted once, with up to `context - stride` tokens of
//!   history beyond its own window's start.
//! - [`perplexity_chunks`]: `llama-perplexity`'s: non-overlapping chunks of `context` tokens, the
//!   first token of each replaced by BOS when the tokenizer adds one, each chunk scoring only the
//!   tokens of its second half, so the two tools' figures compare number for number.

use candle_core::{Device, Tensor};
use ingot_core::CandleContext;

use crate::Error;
use ingot_models::Model;

use crate::Result;

#[derive(Clone, Debug, PartialEq)]
pub struct Perplexity {
    /// Total negative log-likelihood (nats) of the scored tokens.
    pub nll: f64,
    /// Tokens scored (all but the first, and with stride == context all but each window's first).
    pub tokens: usize,
    /// Sum of the squared per-token negative log-likelihoods, for the standard error.
    pub nll2: f64,
}

impl Perplexity {
    pub fn mean_nll(&self) -> f64 {
        self.nll / self.tokens.max(1) as f64
    }

    /// The standard error of the perplexity, as `llama-perplexity` prints it after `+/-`: the
    /// standard error of the mean nll, times the perplexity (the delta method).
    pub fn perplexity_stderr(&self) -> f64 {
        let n = self.tokens as f64;
        let mean = self.mean_nll();
        let var = self.nll2 / n.max(1.0) - mean * mean;
        if self.tokens < 2 || var <= 0.0 {
            return 0.0;
        }
        (var / (n - 1.0)).sqrt() * self.perplexity()
    }

    pub fn perplexity(&self) -> f64 {
        self.mean_nll().exp()
    }

    /// Bits per byte of the text these tokens encode.
    pub fn bits_per_byte(&self, text_bytes: usize) -> f64 {
        self.nll / (text_bytes.max(1) as f64 * std::f64::consts::LN_2)
    }
}

/// Perplexity of `ids` under `model` with windows of `context` tokens every `stride` tokens.
pub fn perplexity(model: &Model, ids: &[u32], context: usize, stride: usize, device: &Device) -> Result<Perplexity> {
    if context < 2 || stride == 0 || stride > context {
        return Err(Error::Input(format!(
            "need context >= 2 and 1 <= stride <= context; got context {context}, stride {stride}"
        )));
    }
    if context > model.context_length() {
        return Err(Error::Input(format!(
            "context {context} exceeds the model's context length {}",
            model.context_length()
        )));
    }
    if ids.len() < 2 {
        return Err(Error::Input("perplexity needs at least two tokens".into()));
    }
    let (mut nll, mut nll2, mut tokens) = (0f64, 0f64, 0usize);
    let mut scored_to = 1; // ids[0] is never predicted
    let mut begin = 0;
    loop {
        let end = (begin + context).min(ids.len());
        let x = Tensor::new(&ids[begin..end], device).and_then(|t| t.unsqueeze(0)).context(|| "token tensor".into())?;
        let logits = model.forward(&x, None)?.squeeze(0).context(|| "squeezing logits".into())?; // (T, V)
        let rows = crate::loglik::rows(&logits)?;
        // Row r predicts ids[begin + r + 1]; score targets not scored before. A window's first
        // token has no history inside it and is skipped (stride == context), as HF's guide does.
        for target in scored_to.max(begin + 1)..end {
            let row = &rows[target - 1 - begin];
            let x = crate::loglik::log_sum_exp(row) - row[ids[target] as usize] as f64;
            (nll, nll2, tokens) = (nll + x, nll2 + x * x, tokens + 1);
        }
        scored_to = end;
        if end == ids.len() {
            break;
        }
        begin += stride;
    }
    Ok(Perplexity { nll, tokens, nll2 })
}

/// `llama-perplexity`'s perplexity of `ids` (the text's tokens, without BOS): chunk `i` is
/// `ids[i n .. (i + 1) n]` for `n = context`, its first token replaced by `bos` when given, and
/// it scores the predictions made at positions `n / 2 .. n - 1` (the last `n - n/2 - 1` tokens).
/// Only whole chunks count, at most `max_chunks`. `llama-perplexity` tokenizes with BOS in front
/// and cuts chunks from that sequence, so pass the ids with BOS prepended to match it exactly
/// (as [`chunk_ids`] does). `on_chunk` sees each chunk's running total, as the tool prints
/// `[1]12.34,[2]...`.
pub fn perplexity_chunks(
    model: &Model,
    ids: &[u32],
    context: usize,
    bos: Option<u32>,
    max_chunks: Option<usize>,
    device: &Device,
    on_chunk: &mut dyn FnMut(usize, usize, &Perplexity),
) -> Result<Perplexity> {
    if context < 4 {
        return Err(Error::Input(format!("--chunks needs a context of at least 4 tokens; got {context}")));
    }
    if context > model.context_length() {
        return Err(Error::Input(format!(
            "context {context} exceeds the model's context length {}",
            model.context_length()
        )));
    }
    if ids.len() < 2 * context {
        return Err(Error::Input(format!(
            "--chunks with a context of {context} needs at least {} tokens (two chunks, as llama-perplexity asks); the text has {}",
            2 * context,
            ids.len()
        )));
    }
    let chunks = (ids.len() / context).min(max_chunks.unwrap_or(usize::MAX)).max(1);
    let first = context / 2;
    let mut p = Perplexity { nll: 0.0, tokens: 0, nll2: 0.0 };
    let mut chunk = Vec::with_capacity(context);
    for i in 0..chunks {
        chunk.clear();
        chunk.extend_from_slice(&ids[i * context..(i + 1) * context]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        let x = Tensor::new(chunk.as_slice(), device).and_then(|t| t.unsqueeze(0)).context(|| "token tensor".into())?;
        let logits = model.forward(&x, None)?.squeeze(0).context(|| "squeezing logits".into())?; // (T, V)
        let rows = crate::loglik::rows(&logits)?;
        // Row j predicts the chunk's token j + 1 (the original token, never the BOS).
        for j in first..context - 1 {
            let target = ids[i * context + j + 1] as usize;
            let x = crate::loglik::log_sum_exp(&rows[j]) - rows[j][target] as f64;
            (p.nll, p.nll2, p.tokens) = (p.nll + x, p.nll2 + x * x, p.tokens + 1);
        }
        on_chunk(i + 1, chunks, &p);
    }
    Ok(p)
}

/// The token sequence `llama-perplexity` cuts its chunks from: BOS first when the tokenizer adds
/// one, then the text.
pub fn chunk_ids(tokenizer: &ingot_tokenizer::Tokenizer, text: &str) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    if let (true, Some(bos)) = (tokenizer.add_bos(), tokenizer.bos_id()) {
        ids.push(bos);
    }
    ids.extend(tokenizer.encode(text, false)?);
    Ok(ids)
}
