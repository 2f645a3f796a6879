//! Log-likelihood of continuations, sharing the context's pass between choices.
//!
//! For a context c (n tokens) and a continuation x (m tokens), the score is
//! Σⱼ log p(xⱼ | c, x₍<ⱼ₎): the logits at position n-1+j predict xⱼ. The context is run once into
//! the KV cache; its last logits predict every continuation's first token; each continuation then
//! runs on top of the cached context, and the cache is cut back to the context before the next.

use candle_core::{DType, Device, Tensor};
use ingot_core::CandleContext;

use crate::Error;
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
    Ok(logits.to_dtype(DType::F32).and_then(|l| l.to_vec2::<f32>()).context(|| "reading logits".into())?)
}

/// Scores of `continuations` after `context` (token ids; the context must not be empty).
pub fn score_continuations(
    model: &Model,
    context: &[u32],
    continuations: &[Vec<u32>],
    device: &Device,
) -> Result<Vec<Score>> {
    let requests: Vec<(Vec<u32>, Vec<u32>)> = continuations.iter().map(|c| (context.to_vec(), c.clone())).collect();
    score_requests(model, &requests, device)
}

/// Scores of (context, continuation) requests that belong together (the choices of one item).
///
/// The longest token prefix shared by all contexts runs once; then every request's remainder
/// (the rest of its context and all but the last continuation token) runs as one row of a batch
/// on top of that prefix's keys and values, right-padded to the longest row. Padding sits after
/// every real token, so causal attention keeps it invisible; its logits are never read.
pub fn score_requests(model: &Model, requests: &[(Vec<u32>, Vec<u32>)], device: &Device) -> Result<Vec<Score>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    for (ctx, cont) in requests {
        if ctx.is_empty() {
            return Err(Error::Input("log-likelihood needs at least one context token".into()));
        }
        if cont.is_empty() {
            return Err(Error::Input("a continuation has no tokens".into()));
        }
    }
    let shared = requests[1..].iter().fold(requests[0].0.len(), |p, (ctx, _)| {
        p.min(requests[0].0.iter().zip(ctx).take_while(|(a, b)| a == b).count())
    });
    if shared == 0 {
        // Nothing in common (contexts start differently): each request alone.
        return requests
            .iter()
            .map(|r| score_requests(model, std::slice::from_ref(r), device).map(|mut s| s.remove(0)))
            .collect();
    }
    let input = |ids: &[u32]| Tensor::new(ids, device).and_then(|t| t.unsqueeze(0)).context(|| "token tensor".into());
    let mut cache = model.new_cache();
    let prefix_last = rows(&model.forward_last(&input(&requests[0].0[..shared])?, Some(&mut cache))?)?.remove(0);

    // Row r of a remainder predicts the token after it: absolute position shared + r + 1.
    let rests: Vec<Vec<u32>> = requests
        .iter()
        .map(|(ctx, cont)| ctx[shared..].iter().chain(&cont[..cont.len() - 1]).copied().collect())
        .collect();
    let width = rests.iter().map(Vec::len).max().unwrap_or(0);
    let rest_rows: Vec<Vec<Vec<f32>>> = if width == 0 {
        vec![Vec::new(); requests.len()]
    } else {
        let n = requests.len();
        let padded: Vec<u32> =
            rests.iter().flat_map(|r| r.iter().copied().chain(std::iter::repeat_n(0, width - r.len()))).collect();
        let x = Tensor::from_vec(padded, (n, width), device).context(|| "token batch".into())?;
        cache.repeat_batch(n)?;
        let logits = model.logits(&model.forward_hidden(&x, Some(&mut cache))?)?; // (n, width, V)
        (0..n)
            .map(|i| {
                let row = logits
                    .get(i)
                    .and_then(|l| l.narrow(0, 0, rests[i].len().max(1)))
                    .context(|| "logits row".into())?;
                rows(&row)
            })
            .collect::<Result<_>>()?
    };
    requests
        .iter()
        .zip(rest_rows)
        .map(|((ctx, cont), rest)| {
            let (mut logprob, mut greedy) = (0.0, true);
            for (j, &tok) in cont.iter().enumerate() {
                // Continuation token j sits at position ctx.len() + j; the logits predicting it
                // come from position ctx.len() + j - 1, i.e. remainder row ctx.len() + j - 1 - shared.
                let at = ctx.len() + j;
                let logits = if at == shared { &prefix_last } else { &rest[at - shared - 1] };
                let (lp, g) = token_logprob(logits, tok)?;
                logprob += lp;
                greedy &= g;
            }
            Ok(Score { logprob, is_greedy: greedy, n_tokens: cont.len() })
        })
        .collect()
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
