//! One generation ([`generate`], [`generate_until`]) or several continuations of one prompt
//! ([`generate_batch`]): rows on the step engine ([`crate::engine`]), which prefills the prompt
//! into the KV cache, then decodes one token at a time, streaming text as it becomes valid UTF-8
//! and stopping on end-of-sequence tokens, stop strings or the token limit, or when the caller's
//! cancel flag is raised (Ctrl-C in `ingot chat`). Also the settings and results they share.

use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor};
use ingot_models::{Cache, Model};
use ingot_tokenizer::Tokenizer;

use crate::engine::{Engine, Event};
use crate::error::{Error, Result};
use crate::sampling::SamplingParams;

#[derive(Clone, Debug)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Stop when the output contains any of these; the stop string itself is not returned.
    pub stop: Vec<String>,
    /// Recompute the whole sequence each step instead of using the KV cache (for checking the
    /// cache; quadratic cost).
    pub no_cache: bool,
    /// What happens when the sequence fills the model's context.
    pub full_context: FullContext,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            no_cache: false,
            full_context: FullContext::Slide,
        }
    }
}

/// When a sequence reaches the model's context length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FullContext {
    /// Go on over the last `context - 1` tokens, as nanoGPT's sampler does (each further token
    /// recomputes that window: positions restart, so the cache cannot be reused).
    #[default]
    Slide,
    /// Finish with [`FinishReason::Length`] (what an API server reports).
    Finish,
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
    /// Prompt positions taken from a cached prefix instead of computed.
    pub cached_tokens: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
}

impl Generation {
    /// A generation cancelled before it produced anything.
    pub fn cancelled(prompt_tokens: usize) -> Self {
        Self {
            text: String::new(),
            tokens: Vec::new(),
            finish_reason: FinishReason::Cancelled,
            prompt_tokens,
            cached_tokens: 0,
            prefill_secs: 0.0,
            decode_secs: 0.0,
        }
    }

    pub fn prefill_tokens_per_sec(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill_secs.max(1e-9)
    }

    /// Decode rate over the tokens after the first (the first comes from the prefill).
    pub fn decode_tokens_per_sec(&self) -> f64 {
        self.tokens.len().saturating_sub(1) as f64 / self.decode_secs.max(1e-9)
    }
}

/// Holds back streamed text that could be the start of a stop string.
pub(crate) struct StopFilter {
    stops: Vec<String>,
    emitted: usize,
    text: String,
}

impl StopFilter {
    pub(crate) fn new(stops: &[String]) -> Self {
        Self { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), emitted: 0, text: String::new() }
    }

    /// All the text so far (up to a stop string, without it).
    pub(crate) fn into_text(self) -> String {
        self.text
    }

    /// Add text; return what is safe to show now, and whether a stop string was found.
    pub(crate) fn push(&mut self, chunk: &str) -> (String, bool) {
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

    pub(crate) fn finish(&mut self) -> String {
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
    let mut engine = Engine::new(model, tokenizer, device);
    engine.join_group(prompt, params, std::slice::from_ref(&params.sampling), None, Some(cancel))?;
    let mut done = None;
    engine.run(&mut |event| match event {
        Event::Text { text, .. } => on_text(text),
        Event::Done { generation, .. } => done = Some(generation),
    })?;
    done.ok_or_else(|| Error::Input("the generation ended without a result".into()))
}

/// Several continuations of one prompt at once: the prompt is prefilled once (from the part of
/// `prefix` it shares, when given), its keys and values are copied to one row per entry of
/// `samplings`, and the rows decode together on the step engine (one forward pass for all rows
/// per step, which costs far less than one pass per row: each weight is read once per step).
/// Each row has its own sampler and seed, so row 0 can be greedy and the rest sampled
/// (self-consistency with its greedy reference in one go). A row that finishes leaves.
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
    let mut engine = Engine::new(model, tokenizer, device);
    let ids = engine.join_group(prompt, params, samplings, prefix, None)?;
    let mut done: Vec<Option<Generation>> = vec![None; ids.len()];
    engine.run(&mut |event| {
        if let Event::Done { row, generation } = event {
            if let Some(k) = ids.iter().position(|&id| id == row) {
                done[k] = Some(generation);
            }
        }
    })?;
    done.into_iter().map(|g| g.ok_or_else(|| Error::Input("a row ended without a result".into()))).collect()
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

    /// A prefix already run: `cache` holds exactly `tokens`' positions.
    pub(crate) fn from_parts(tokens: Vec<u32>, cache: Cache) -> Self {
        Self { tokens, cache }
    }

    /// The prefix's tokens.
    pub(crate) fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// A private copy of its first `len` positions to extend (the cache's buffers are written in
    /// place, so sharing them would let one prompt overwrite another's positions).
    pub(crate) fn fork(&self, len: usize) -> Result<Cache> {
        let mut c = self.cache.fork()?;
        c.truncate(len);
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::StopFilter;

    fn run(stops: &[&str], chunks: &[&str]) -> (String, bool) {
        let mut f = StopFilter::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>());
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
