//! Log-likelihood of continuations, sharing the context's pass between choices.
//!
//! For a context c (n tokens) and a continuation x (m tokens), the score is
//! Σⱼ log p(xⱼ | c, x₍<ⱼ₎): the logits at position n-1+j predict xⱼ. The context is run once into
//! the KV cache; its last logits predict every continuation's first token; each continuation then
//! runs on top of the cached context, and the cache is cut back to the context before the next.

use candle_core::{DType, Device, Tensor};
use ingot_core::{CandleContext, Error};
use ingot_models::Model;

use crate::Result;

/// The score of one continuation.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// Σ log p(token), natural log.
    pub logprob: f64,
    /// Every continuation token was the argmax of its logits (lm-evaluation-harness `is_greedy`).
    pub is_greedy: bool,
    pub n_tokens: usize,
}

/// log Σ exp(logits), accumulated in f64.
pub(crate) fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + logits.iter().map(|&l| (l as f64 - max).exp()).sum::<f64>().ln()
}

/// Log-softmax of logits (V) at `token`, and whether `token` is the argmax.
fn token_logprob(logits: &[f32], token: u32) -> Result<(f64, bool)> {
    let t = token as usize;
    if t >= logits.len() {
        return Err(Error::Input(format!("token id {token} is outside the vocabulary of {}", logits.len())));
    }
    let greedy = logits.iter().all(|&l| l <= logits[t]);
    Ok((logits[t] as f64 - log_sum_exp(logits), greedy))
}

pub(crate) fn rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    logits.to_dtype(DType::F32).and_then(|l| l.to_vec2::<f32>()).context(|| "reading logits".into())
}

/// Scores of `continuations` after `context` (token ids; the context must not be empty).
pub fn score_continuations(
    model: &Model,
    context: &[u32],
    continuations: &[Vec<u32>],
    device: &Device,
) -> Result<Vec<Score>> {
    if context.is_empty() {
        return Err(Error::Input("log-likelihood needs at least one context token".into()));
    }
    let input = |ids: &[u32]| Tensor::new(ids, device).and_then(|t| t.unsqueeze(0)).context(|| "token tensor".into());
    let mut cache = model.new_cache();
    let ctx_logits = model.forward_last(&input(context)?, Some(&mut cache))?; // (1, V)
    let last = rows(&ctx_logits)?.pop().unwrap_or_default();
    let mut scores = Vec::with_capacity(continuations.len());
    for cont in continuations {
        let Some((&first, rest)) = cont.split_first() else {
            return Err(Error::Input("a continuation has no tokens".into()));
        };
        let (mut logprob, mut greedy) = token_logprob(&last, first)?;
        if !rest.is_empty() {
            // Feed all but the last continuation token; row j predicts cont[j + 1].
            let h = model.forward_hidden(&input(&cont[..cont.len() - 1])?, Some(&mut cache))?;
            let logits = model.logits(&h)?.squeeze(0).context(|| "squeezing logits".into())?; // (m-1, V)
            for (row, &tok) in rows(&logits)?.iter().zip(rest) {
                let (lp, g) = token_logprob(row, tok)?;
                logprob += lp;
                greedy &= g;
            }
            cache.truncate(context.len());
        }
        scores.push(Score { logprob, is_greedy: greedy, n_tokens: cont.len() });
    }
    Ok(scores)
}

/// The plain reference: one full forward pass over context + continuation per choice.
pub fn score_continuations_naive(
    model: &Model,
    context: &[u32],
    continuations: &[Vec<u32>],
    device: &Device,
) -> Result<Vec<Score>> {
    continuations
        .iter()
        .map(|cont| {
            let all: Vec<u32> = context.iter().chain(cont).copied().collect();
            let x =
                Tensor::new(all.as_slice(), device).and_then(|t| t.unsqueeze(0)).context(|| "token tensor".into())?;
            let logits = model.forward(&x, None)?.squeeze(0).context(|| "squeezing logits".into())?;
            let logits = logits.narrow(0, context.len() - 1, cont.len()).context(|| "selecting positions".into())?;
            let (mut logprob, mut greedy) = (0.0, true);
            for (row, &tok) in rows(&logits)?.iter().zip(cont) {
                let (lp, g) = token_logprob(row, tok)?;
                logprob += lp;
                greedy &= g;
            }
            Ok(Score { logprob, is_greedy: greedy, n_tokens: cont.len() })
        })
        .collect()
}
