//! Perplexity and bits per byte with a sliding window, as in HF's perplexity guide: windows of
//! `context` tokens start every `stride` tokens; each window scores only the tokens no earlier
//! window scored, so every token after the first is predicted once, with up to
//! `context - stride` tokens of history beyond its own window's start.

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
}

impl Perplexity {
    pub fn mean_nll(&self) -> f64 {
        self.nll / self.tokens.max(1) as f64
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
    let (mut nll, mut tokens) = (0f64, 0usize);
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
            nll += crate::loglik::log_sum_exp(row) - row[ids[target] as usize] as f64;
            tokens += 1;
        }
        scored_to = end;
        if end == ids.len() {
            break;
        }
        begin += stride;
    }
    Ok(Perplexity { nll, tokens })
}
