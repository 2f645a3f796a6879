//! The generation loop: prefill the prompt into the KV cache, then decode one token at a time,
//! streaming text as it becomes valid UTF-8 and stopping on end-of-sequence tokens, stop strings
//! or the token limit, or when the caller's cancel flag is raised (Ctrl-C in `ingot chat`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use ingot_models::{Cache, Model};
use ingot_tokenizer::{TokenStream, Tokenizer};

use crate::error::{Error, Result};
use crate::sampling::{Sampler, SamplingParams};

#[derive(Clone, Debug)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Stop when the output contains any of these; the stop string itself is not returned.
    pub stop: Vec<String>,
    /// Recompute the whole sequence each step instead of using the KV cache (for checking the
    /// cache; quadratic cost).
    pub no_cache: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self { max_tokens: 256, sampling: SamplingParams::default(), stop: Vec::new(), no_cache: false }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-sequence token.
    Eos,
    /// A stop string appeared.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The caller's cancel flag was raised ([`generate_until`]).
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Eos | FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// The result of one generation, with timings.
#[derive(Clone, Debug)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
}

impl Generation {
    pub fn prefill_tokens_per_sec(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill_secs.max(1e-9)
    }

    /// Decode rate over the tokens after the first (the first comes from the prefill).
    pub fn decode_tokens_per_sec(&self) -> f64 {
        self.tokens.len().saturating_sub(1) as f64 / self.decode_secs.max(1e-9)
    }
}

/// Holds back streamed text that could be the start of a stop string.
struct StopFilter {
    stops: Vec<String>,
    emitted: usize,
    text: String,
}

impl StopFilter {
    /// Add text; return what is safe to show now, and whether a stop string was found.
    fn push(&mut self, chunk: &str) -> (String, bool) {
        self.text.push_str(chunk);
        // A stop string can only end inside the new chunk; search from where it could begin.
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut from = self.text.len().saturating_sub(chunk.len() + longest);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let hit = self.stops.iter().filter_map(|s| self.text[from..].find(s.as_str()).map(|i| from + i)).min();
        if let Some(at) = hit {
            self.text.truncate(at);
            let out = self.text[self.emitted.min(at)..].to_string();
            self.emitted = at;
            return (out, true);
        }
        // Keep back the longest suffix that is a proper prefix of some stop string.
        let mut keep = 0;
        for s in &self.stops {
            for k in (1..s.len()).rev() {
                if k <= self.text.len() && s.is_char_boundary(k) && self.text.ends_with(&s[..k]) {
                    keep = keep.max(k);
                    break;
                }
            }
        }
        let safe = self.text.len() - keep;
        let out = self.text[self.emitted.min(safe)..safe].to_string();
        self.emitted = self.emitted.max(safe);
        (out, false)
    }

    fn finish(&mut self) -> String {
        let out = self.text[self.emitted..].to_string();
        self.emitted = self.text.len();
        out
    }
}

/// Generate a continuation of `prompt` (token ids), calling `on_text` with each new piece of text.
pub fn generate(
    model: &Model,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    params: &GenerateParams,
    device: &Device,
    on_text: impl FnMut(&str),
) -> Result<Generation> {
    generate_until(model, tokenizer, prompt, params, device, &AtomicBool::new(false), on_text)
}

/// As [`generate`], stopping before the next token once `cancel` is set (from another thread or
/// a signal handler); what was generated so far is returned with [`FinishReason::Cancelled`].
pub fn generate_until(
    model: &Model,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    params: &GenerateParams,
    device: &Device,
    cancel: &AtomicBool,
    mut on_text: impl FnMut(&str),
) -> Result<Generation> {
    params.sampling.validate()?;
    if prompt.is_empty() {
        return Err(Error::Input("the prompt is empty after tokenization".into()));
    }
    let ctx = model.context_length();
    if prompt.len() >= ctx {
        return Err(Error::Input(format!(
            "the prompt is {} tokens but the model's context length is {ctx}; shorten the prompt",
            prompt.len()
        )));
    }
    let eos = tokenizer.eos_ids();
    let mut sampler = Sampler::new(params.sampling.clone());
    let mut stream = TokenStream::new(tokenizer, true);
    let mut filter = StopFilter {
        stops: params.stop.iter().filter(|s| !s.is_empty()).cloned().collect(),
        emitted: 0,
        text: String::new(),
    };
    let mut cache = model.new_cache();
    let mut all: Vec<u32> = prompt.to_vec();
    let mut out_tokens = Vec::new();
    let to_input = |ids: &[u32]| Tensor::new(ids, device).and_then(|t| t.unsqueeze(0));

    let start = Instant::now();
    let mut logits = next_logits(model, &to_input(prompt)?, &mut cache, params.no_cache, &all)?;
    let prefill_secs = start.elapsed().as_secs_f64();
    let decode_start = Instant::now();
    let mut finish_reason = FinishReason::Length;
    while out_tokens.len() < params.max_tokens {
        if cancel.load(Ordering::Relaxed) {
            finish_reason = FinishReason::Cancelled;
            break;
        }
        let next = sampler.sample(&logits, &all);
        if eos.contains(&next) {
            finish_reason = FinishReason::Eos;
            break;
        }
        out_tokens.push(next);
        all.push(next);
        if let Some(piece) = stream.push(next)? {
            let (shown, stopped) = filter.push(&piece);
            if !shown.is_empty() {
                on_text(&shown);
            }
            if stopped {
                finish_reason = FinishReason::Stop;
                break;
            }
        }
        if out_tokens.len() >= params.max_tokens {
            break;
        }
        logits = if all.len() >= ctx {
            // The window is full: slide it, as nanoGPT does, recomputing the last ctx - 1 tokens
            // from scratch (positions restart, so the cache cannot be reused).
            let window = &all[all.len() + 1 - ctx..];
            next_logits(model, &to_input(window)?, &mut cache, true, window)?
        } else {
            next_logits(model, &to_input(&[next])?, &mut cache, params.no_cache, &all)?
        };
    }
    if finish_reason != FinishReason::Stop {
        if let Some(rest) = stream.finish() {
            let (shown, stopped) = filter.push(&rest);
            if !shown.is_empty() {
                on_text(&shown);
            }
            if stopped {
                finish_reason = FinishReason::Stop;
            }
        }
        let tail = filter.finish();
        if !tail.is_empty() {
            on_text(&tail);
        }
    }
    Ok(Generation {
        text: filter.text,
        tokens: out_tokens,
        finish_reason,
        prompt_tokens: prompt.len(),
        prefill_secs,
        decode_secs: decode_start.elapsed().as_secs_f64(),
    })
}

/// Several continuations of one prompt at once: the prompt is prefilled once, its keys and values
/// are copied to one batch row per entry of `samplings`, and the rows decode in lockstep (one
/// forward pass of batch B per step, which costs far less than B passes: each weight is read once
/// per step for all rows). Each row has its own sampler and seed, so row 0 can be greedy and the
/// rest sampled (self-consistency with its greedy reference in one go). A row that finishes
/// leaves the batch and its rows of the KV cache.
///
/// Each row's text equals what [`generate`] returns with the same sampling settings, up to
/// float differences between batched and single-row kernels.
pub fn generate_batch(
    model: &Model,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    params: &GenerateParams,
    samplings: &[SamplingParams],
    prefix: Option<&PromptCache>,
    device: &Device,
) -> Result<Vec<Generation>> {
    for s in samplings {
        s.validate()?;
    }
    let rows = samplings.len();
    if rows == 0 {
        return Ok(Vec::new());
    }
    if prompt.is_empty() {
        return Err(Error::Input("the prompt is empty after tokenization".into()));
    }
    let ctx = model.context_length();
    if prompt.len() + params.max_tokens > ctx {
        return Err(Error::Input(format!(
            "the prompt ({} tokens) plus --max-tokens {} exceeds the model's context length {ctx}",
            prompt.len(),
            params.max_tokens
        )));
    }
    let eos = tokenizer.eos_ids();
    let start = Instant::now();
    // Reuse the cached prefix as far as the prompt's tokens agree with it (few-shot examples shared
    // by every question). Agreement can stop short of the whole prefix: BPE merges across the
    // seam, e.g. a trailing "\n\n" is one token alone but two before "Question".
    let shared = prefix.map_or(0, |p| p.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count());
    let shared = shared.min(prompt.len() - 1);
    let (mut cache, done) = match prefix {
        Some(p) if shared > 0 => {
            let mut c = p.fork()?;
            c.truncate(shared);
            (c, shared)
        }
        _ => (model.new_cache(), 0),
    };
    let first = model.forward_last(&Tensor::new(&prompt[done..], device)?.unsqueeze(0)?, Some(&mut cache))?;
    let first: Vec<f32> = first.squeeze(0)?.to_dtype(DType::F32)?.to_vec1()?;
    let prefill_secs = start.elapsed().as_secs_f64();
    let decode_start = Instant::now();
    cache.repeat_batch(rows)?;

    struct Row<'a> {
        sampler: Sampler,
        stream: TokenStream<'a>,
        filter: StopFilter,
        all: Vec<u32>,
        out: Vec<u32>,
        finish: Option<FinishReason>,
    }
    let mut state: Vec<Row> = samplings
        .iter()
        .map(|s| Row {
            sampler: Sampler::new(s.clone()),
            stream: TokenStream::new(tokenizer, true),
            filter: StopFilter {
                stops: params.stop.iter().filter(|s| !s.is_empty()).cloned().collect(),
                emitted: 0,
                text: String::new(),
            },
            all: prompt.to_vec(),
            out: Vec::new(),
            finish: None,
        })
        .collect();
    let mut logits: Vec<Vec<f32>> = vec![first; rows];
    // Rows still generating, in batch order; a finished row leaves the batch (and the cache).
    let mut active: Vec<usize> = (0..rows).collect();
    for step in 0..params.max_tokens {
        let mut feed = Vec::with_capacity(active.len());
        let mut still = Vec::with_capacity(active.len());
        for (slot, (&r, l)) in active.iter().zip(&logits).enumerate() {
            let row = &mut state[r];
            let next = row.sampler.sample(l, &row.all);
            if eos.contains(&next) {
                row.finish = Some(FinishReason::Eos);
                continue;
            }
            row.out.push(next);
            row.all.push(next);
            if let Some(piece) = row.stream.push(next)? {
                if row.filter.push(&piece).1 {
                    row.finish = Some(FinishReason::Stop);
                    continue;
                }
            }
            feed.push(next);
            still.push((slot, r));
        }
        if still.is_empty() || step + 1 == params.max_tokens {
            break;
        }
        if still.len() < active.len() {
            let keep: Vec<u32> = still.iter().map(|&(slot, _)| slot as u32).collect();
            cache.select_batch(&keep)?;
        }
        active = still.into_iter().map(|(_, r)| r).collect();
        let x = Tensor::from_vec(feed, (active.len(), 1), device)?;
        let l = model.forward_last(&x, Some(&mut cache))?; // (active, V)
        logits = l.to_dtype(DType::F32)?.to_vec2()?;
    }
    let decode_secs = decode_start.elapsed().as_secs_f64();
    state
        .into_iter()
        .map(|mut row| {
            if row.finish != Some(FinishReason::Stop) {
                if let Some(rest) = row.stream.finish() {
                    if row.filter.push(&rest).1 {
                        row.finish = Some(FinishReason::Stop);
                    }
                }
            }
            Ok(Generation {
                text: row.filter.text,
                tokens: row.out,
                finish_reason: row.finish.unwrap_or(FinishReason::Length),
                prompt_tokens: prompt.len(),
                prefill_secs,
                decode_secs,
            })
        })
        .collect()
}

/// The keys and values of a prompt prefix that many prompts share (few-shot examples), computed
/// once; [`generate_batch`] starts from a copy, cut to the tokens its prompt shares with it.
pub struct PromptCache {
    tokens: Vec<u32>,
    cache: Cache,
}

impl PromptCache {
    pub fn new(model: &Model, tokens: &[u32], device: &Device) -> Result<Self> {
        let mut cache = model.new_cache();
        if !tokens.is_empty() {
            model.forward_hidden(&Tensor::new(tokens, device)?.unsqueeze(0)?, Some(&mut cache))?;
        }
        Ok(Self { tokens: tokens.to_vec(), cache })
    }

    /// A private copy to extend (the cache's buffers are written in place, so sharing them would
    /// let one prompt overwrite another's positions).
    fn fork(&self) -> Result<Cache> {
        let mut c = self.cache.clone();
        c.repeat_batch(1)?;
        Ok(c)
    }
}

/// Logits (V) for the position after `input`; `all` is the whole sequence for the no-cache path.
fn next_logits(model: &Model, input: &Tensor, cache: &mut Cache, no_cache: bool, all: &[u32]) -> Result<Vec<f32>> {
    let logits = if no_cache {
        let full = Tensor::new(all, input.device())?.unsqueeze(0)?;
        model.forward_last(&full, None)?
    } else {
        model.forward_last(input, Some(cache))?
    };
    Ok(logits.squeeze(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::StopFilter;

    fn run(stops: &[&str], chunks: &[&str]) -> (String, bool) {
        let mut f =
            StopFilter { stops: stops.iter().map(|s| s.to_string()).collect(), emitted: 0, text: String::new() };
        let mut shown = String::new();
        for c in chunks {
            let (s, stopped) = f.push(c);
            shown.push_str(&s);
            if stopped {
                return (shown, true);
            }
        }
        shown.push_str(&f.finish());
        (shown, false)
    }

    #[test]
    fn stop_string_split_across_chunks_is_never_shown() {
        assert_eq!(run(&["\n\nUser:"], &["Paris.", "\n", "\nUs", "er:", " more"]), ("Paris.".into(), true));
    }

    #[test]
    fn partial_match_that_fails_is_released() {
        assert_eq!(run(&["END"], &["the E", "ND", "x"]), ("the ".into(), true));
        assert_eq!(run(&["END"], &["the E", "nd"]), ("the End".into(), false));
    }

    #[test]
    fn multibyte_text_and_stops() {
        assert_eq!(run(&["。"], &["東京", "です", "。", "次"]), ("東京です".into(), true));
    }
}
