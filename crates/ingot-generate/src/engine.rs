//! The step engine: every generation in Ingot (the CLI, evaluation, the tool loop, the server)
//! is rows on one of these.
//!
//! Each row is one sequence with its own KV cache, position, sampler, stop strings, token limit
//! and cancel switch. Rows join ([`Engine::join`], [`Engine::join_group`]) and leave (they finish,
//! or are cancelled) between any two steps. A [`Engine::step`] prefills the prompts that joined
//! since the last step (together, up to [`PREFILL_TOKENS`] new tokens a pass: each fills its own
//! cache, continuing a stored prompt it begins like when [`Engine::keep_prompts`] is on), then
//! samples one token for every row (the rows in parallel) and runs one forward pass for all of
//! them together ([`Model::forward_segments`]: the weights are read once per pass for the whole
//! batch, and one attention kernel reads each row's own cache). Text is streamed per row as it
//! becomes valid UTF-8 and cannot be the start of a stop string ([`Event::Text`]); a finished
//! row reports its [`Generation`] ([`Event::Done`]) and leaves at once.
//!
//! A row whose sequence fills the model's context either slides its window, as nanoGPT does
//! (recomputing the last `context - 1` tokens without the cache at each further step), or
//! finishes with [`FinishReason::Length`] ([`FullContext`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use ingot_models::{Cache, DecodeState, Model};
use ingot_tokenizer::{TokenStream, Tokenizer};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::generate::{FinishReason, FullContext, GenerateParams, Generation, PromptCache, StopFilter};
use crate::sampling::{Sampler, SamplingParams};

/// Most new prompt tokens prefilled in one pass (llama.cpp's default batch): prompts that joined
/// together are prefilled together up to this, so the weights are expanded once for all of them;
/// a longer prompt runs alone.
pub const PREFILL_TOKENS: usize = 2048;

/// A row's handle, unique within its engine.
pub type RowId = u64;

/// What a step reports.
#[derive(Debug)]
pub enum Event<'a> {
    /// New text of a row (never part of a stop string).
    Text { row: RowId, text: &'a str },
    /// A row finished and left the engine.
    Done { row: RowId, generation: Generation },
}

struct Row<'a> {
    id: RowId,
    sampler: Sampler,
    stream: TokenStream<'a>,
    filter: StopFilter,
    /// Prompt and generated tokens.
    all: Vec<u32>,
    prompt_tokens: usize,
    cached_tokens: usize,
    out: Vec<u32>,
    max_tokens: usize,
    no_cache: bool,
    full_context: FullContext,
    cache: Cache,
    /// Logits for the next token (from the prefill or the last step).
    logits: Vec<f32>,
    cancelled: bool,
    cancel_flag: Option<&'a AtomicBool>,
    prefill_secs: f64,
    decode_start: Instant,
}

/// Rows that joined and wait for their prefill: one prompt, one or more rows.
struct Pending<'a> {
    /// Each row's id, sampling settings, and whether it was cancelled before it started.
    rows: Vec<(RowId, SamplingParams, bool)>,
    prompt: Vec<u32>,
    params: GenerateParams,
    prefix: Option<&'a PromptCache>,
    cancel_flag: Option<&'a AtomicBool>,
}

/// Many generations on one model, stepped together. `'a` borrows the model, the tokenizer,
/// shared prompt prefixes and cancel flags.
pub struct Engine<'a> {
    model: &'a Model,
    tokenizer: &'a Tokenizer,
    device: Device,
    rows: Vec<Row<'a>>,
    pending: Vec<Pending<'a>>,
    next_id: RowId,
    /// Prompts prefilled lately, most recent last (off when `store_tokens` is 0).
    store: Vec<PromptCache>,
    store_tokens: usize,
    /// Decode a row that runs alone on the model's candle-free loop ([`Model::decode_loop`]).
    use_loop: bool,
    /// The row the loop holds and its loop state; the row's own cache stays at the positions it
    /// had when the loop took it, and gets the loop's later ones before the row runs in a batch.
    lone: Option<(RowId, DecodeState)>,
}

impl<'a> Engine<'a> {
    pub fn new(model: &'a Model, tokenizer: &'a Tokenizer, device: &Device) -> Self {
        Self {
            model,
            tokenizer,
            device: device.clone(),
            rows: Vec::new(),
            pending: Vec::new(),
            next_id: 0,
            store: Vec::new(),
            store_tokens: 0,
            use_loop: true,
            lone: None,
        }
    }

    /// Whether a row decoding alone runs on the model's candle-free decode loop (on by
    /// default; its logits equal the forward pass's to float rounding). Off: every step runs
    /// the forward pass, as batches do.
    pub fn decode_loop(mut self, on: bool) -> Self {
        self.use_loop = on;
        self
    }

    /// Keep the caches of recently prefilled prompts, up to `tokens` positions in all (least
    /// recently used out first), so a prompt that begins like one of them (a shared system
    /// prompt, the earlier turns of a chat) prefills only what differs: llama-server's prompt
    /// cache. A prompt given its own prefix ([`Engine::join_group`]) uses that instead.
    pub fn keep_prompts(mut self, tokens: usize) -> Self {
        self.store_tokens = tokens;
        self
    }

    /// Add a generation of `prompt`; it is prefilled at the next step. Errors (bad sampling
    /// settings, an empty prompt, a prompt that fills the context) are reported here.
    pub fn join(&mut self, prompt: &[u32], params: &GenerateParams) -> Result<RowId> {
        let ids = self.join_group(prompt, params, std::slice::from_ref(&params.sampling), None, None)?;
        Ok(ids[0])
    }

    /// Add one row per entry of `samplings`, all continuing `prompt`: the prompt is prefilled
    /// once (from the part of `prefix` it shares, when given) and its cache copied to each row.
    /// `cancel`, when raised, finishes every row of the group with [`FinishReason::Cancelled`]
    /// before its next token.
    pub fn join_group(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        samplings: &[SamplingParams],
        prefix: Option<&'a PromptCache>,
        cancel: Option<&'a AtomicBool>,
    ) -> Result<Vec<RowId>> {
        for s in samplings {
            s.validate()?;
        }
        if prompt.is_empty() {
            return Err(Error::Input("the prompt is empty after tokenization".into()));
        }
        let ctx = self.model.context_length();
        if prompt.len() >= ctx {
            return Err(Error::Input(format!(
                "the prompt is {} tokens but the model's context length is {ctx}; shorten the prompt",
                prompt.len()
            )));
        }
        let ids: Vec<RowId> = (0..samplings.len() as u64).map(|k| self.next_id + k).collect();
        self.next_id += samplings.len() as u64;
        if !ids.is_empty() {
            self.pending.push(Pending {
                rows: ids.iter().zip(samplings).map(|(&id, s)| (id, s.clone(), false)).collect(),
                prompt: prompt.to_vec(),
                params: params.clone(),
                prefix,
                cancel_flag: cancel,
            });
        }
        Ok(ids)
    }

    /// Finish `row` with [`FinishReason::Cancelled`] at the next step (what it generated so far
    /// is reported). False when no such row is running or waiting.
    pub fn cancel(&mut self, row: RowId) -> bool {
        if let Some(r) = self.rows.iter_mut().find(|r| r.id == row) {
            r.cancelled = true;
            return true;
        }
        for p in &mut self.pending {
            if let Some(r) = p.rows.iter_mut().find(|r| r.0 == row) {
                r.2 = true;
                return true;
            }
        }
        false
    }

    /// Rows running or waiting for their prefill.
    pub fn len(&self) -> usize {
        self.rows.len() + self.pending.iter().map(|p| p.rows.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Prefill the rows that joined, sample one token for every row, run one forward pass for
    /// the rows that go on; report text and finished rows through `on_event`.
    pub fn step(&mut self, on_event: &mut dyn FnMut(Event<'_>)) -> Result<()> {
        self.prefill(on_event)?;
        let ctx = self.model.context_length();
        let eos = self.tokenizer.eos_ids();
        let mut finished: Vec<(usize, FinishReason)> = Vec::new();
        let mut go_on: Vec<usize> = Vec::new();
        // Every row's next token, the rows in parallel (a draw reads the whole vocabulary).
        let nexts: Vec<u32> = self.rows.par_iter_mut().map(|row| row.sampler.sample(&row.logits, &row.all)).collect();
        for ((i, row), next) in self.rows.iter_mut().enumerate().zip(nexts) {
            if row.cancelled || row.cancel_flag.is_some_and(|f| f.load(Ordering::Relaxed)) {
                finished.push((i, FinishReason::Cancelled));
                continue;
            }
            if eos.contains(&next) {
                finished.push((i, FinishReason::Eos));
                continue;
            }
            row.out.push(next);
            row.all.push(next);
            if let Some(piece) = row.stream.push(next)? {
                let (shown, stopped) = row.filter.push(&piece);
                if !shown.is_empty() {
                    on_event(Event::Text { row: row.id, text: &shown });
                }
                if stopped {
                    finished.push((i, FinishReason::Stop));
                    continue;
                }
            }
            if row.out.len() >= row.max_tokens || (row.all.len() >= ctx && row.full_context == FullContext::Finish) {
                finished.push((i, FinishReason::Length));
                continue;
            }
            go_on.push(i);
        }
        self.forward(&go_on, ctx)?;
        // Finished rows leave, latest first so the earlier indices stay valid.
        for &(i, reason) in finished.iter().rev() {
            let row = self.rows.remove(i);
            if self.lone.as_ref().is_some_and(|l| l.0 == row.id) {
                self.lone = None;
            }
            finish(row, reason, on_event)?;
        }
        Ok(())
    }

    /// Step until every row has finished.
    pub fn run(&mut self, on_event: &mut dyn FnMut(Event<'_>)) -> Result<()> {
        while !self.is_empty() {
            self.step(on_event)?;
        }
        Ok(())
    }

    fn prefill(&mut self, on_event: &mut dyn FnMut(Event<'_>)) -> Result<()> {
        // Each prompt that runs with a cache, the cache it continues, and how much of the prompt
        // that cache already holds.
        let mut cached: Vec<(Pending<'a>, Cache, usize)> = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            if p.rows.iter().all(|r| r.2) {
                // Cancelled before it started: nothing to compute.
                for (id, _, _) in p.rows {
                    on_event(Event::Done { row: id, generation: Generation::cancelled(p.prompt.len()) });
                }
                continue;
            }
            if p.params.no_cache {
                let start = Instant::now();
                let x = Tensor::new(p.prompt.as_slice(), &self.device)?.unsqueeze(0)?;
                let logits = self.model.forward_last(&x, None)?.squeeze(0)?.to_dtype(DType::F32)?.to_vec1()?;
                self.admit(p, logits, Cache::default(), 0, start.elapsed().as_secs_f64(), on_event)?;
                continue;
            }
            // Reuse the cached prefix as far as the prompt's tokens agree with it (few-shot
            // examples shared by every question). Agreement can stop short of the whole prefix:
            // BPE merges across the seam, e.g. a trailing "\n\n" is one token alone but two
            // before "Question".
            let agree = |c: &PromptCache| c.tokens().iter().zip(&p.prompt).take_while(|(a, b)| a == b).count();
            let (prefix, shared) = match p.prefix {
                Some(c) => (Some(c), agree(c)),
                None => match self.store.iter().enumerate().map(|(i, c)| (agree(c), i)).max() {
                    Some((n, i)) if n > 0 => {
                        // Most recently used last.
                        let entry = self.store.remove(i);
                        self.store.push(entry);
                        (self.store.last(), n)
                    }
                    _ => (None, 0),
                },
            };
            let shared = shared.min(p.prompt.len() - 1);
            let (cache, done) = match prefix {
                Some(c) if shared > 0 => (c.fork(shared)?, shared),
                _ => (self.model.new_cache(), 0),
            };
            cached.push((p, cache, done));
        }
        // Passes of up to PREFILL_TOKENS new tokens, in joining order.
        while !cached.is_empty() {
            let mut take = 0;
            let mut tokens = 0;
            for (p, _, done) in &cached {
                let new = p.prompt.len() - done;
                if take > 0 && tokens + new > PREFILL_TOKENS {
                    break;
                }
                take += 1;
                tokens += new;
            }
            let mut pass: Vec<(Pending<'a>, Cache, usize)> = cached.drain(..take).collect();
            let start = Instant::now();
            let logits: Vec<Vec<f32>> = if let [(p, cache, done)] = pass.as_mut_slice() {
                // One prompt: the plain cached pass, exactly what a lone generation runs.
                let x = Tensor::new(&p.prompt[*done..], &self.device)?.unsqueeze(0)?;
                vec![self.model.forward_last(&x, Some(cache))?.squeeze(0)?.to_dtype(DType::F32)?.to_vec1()?]
            } else {
                let ids: Vec<u32> = pass.iter().flat_map(|(p, _, done)| p.prompt[*done..].iter().copied()).collect();
                let lens: Vec<usize> = pass.iter().map(|(p, _, done)| p.prompt.len() - done).collect();
                let mut refs: Vec<&mut Cache> = pass.iter_mut().map(|(_, c, _)| c).collect();
                self.model.forward_segments(&ids, &lens, &mut refs)?.to_dtype(DType::F32)?.to_vec2()?
            };
            let secs = start.elapsed().as_secs_f64();
            for ((p, cache, done), logits) in pass.into_iter().zip(logits) {
                self.remember(&p.prompt, &cache)?;
                self.admit(p, logits, cache, done, secs, on_event)?;
            }
        }
        Ok(())
    }

    /// Keep a copy of a prefilled prompt's cache (see [`Engine::keep_prompts`]); entries it
    /// extends are dropped, then the least recently used until the store fits.
    fn remember(&mut self, prompt: &[u32], cache: &Cache) -> Result<()> {
        if prompt.len() > self.store_tokens {
            return Ok(());
        }
        self.store.retain(|c| !prompt.starts_with(c.tokens()));
        self.store.push(PromptCache::from_parts(prompt.to_vec(), cache.fork()?));
        let mut total: usize = self.store.iter().map(|c| c.tokens().len()).sum();
        while total > self.store_tokens {
            total -= self.store.remove(0).tokens().len();
        }
        Ok(())
    }

    /// The rows of a prefilled prompt start: each gets the prompt's next-token logits and a cache
    /// (the last row takes `cache`, the others a private copy).
    fn admit(
        &mut self,
        p: Pending<'a>,
        logits: Vec<f32>,
        mut cache: Cache,
        cached_tokens: usize,
        prefill_secs: f64,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<()> {
        let n = p.rows.len();
        for (k, (id, sampling, cancelled)) in p.rows.into_iter().enumerate() {
            let row = Row {
                id,
                sampler: Sampler::new(sampling),
                stream: TokenStream::new(self.tokenizer, true),
                filter: StopFilter::new(&p.params.stop),
                all: p.prompt.clone(),
                prompt_tokens: p.prompt.len(),
                cached_tokens,
                out: Vec::new(),
                max_tokens: p.params.max_tokens,
                no_cache: p.params.no_cache,
                full_context: p.params.full_context,
                cache: if k + 1 == n { std::mem::take(&mut cache) } else { cache.fork()? },
                logits: logits.clone(),
                cancelled,
                cancel_flag: p.cancel_flag,
                prefill_secs,
                decode_start: Instant::now(),
            };
            if row.max_tokens == 0 {
                finish(row, FinishReason::Length, on_event)?;
            } else {
                self.rows.push(row);
            }
        }
        Ok(())
    }

    /// Logits of the next token for rows `go_on` (indices into `self.rows`): cached rows as one
    /// batch, rows without a cache (or whose window slides) one by one.
    fn forward(&mut self, go_on: &[usize], ctx: usize) -> Result<()> {
        let (mut batched, mut alone) = (Vec::new(), Vec::new());
        for &i in go_on {
            let row = &self.rows[i];
            if row.no_cache || row.all.len() >= ctx {
                alone.push(i);
            } else {
                batched.push(i);
            }
        }
        let fast = if self.use_loop { self.model.decode_loop() } else { None };
        if let (Some(fast), [i]) = (fast, batched.as_slice()) {
            let row = &mut self.rows[*i];
            if self.lone.as_ref().map(|l| l.0) != Some(row.id) {
                // Another row held the loop: its positions go back into its own cache first.
                if let Some((id, state)) = self.lone.take() {
                    if let Some(other) = self.rows.iter_mut().find(|r| r.id == id) {
                        fast.export(&state, &mut other.cache).map_err(Error::Input)?;
                    }
                }
                let row = &mut self.rows[*i];
                let capacity = ctx.min(row.all.len() + row.max_tokens.saturating_sub(row.out.len()) + 1);
                let mut state = fast.state(capacity);
                fast.import(&mut state, &row.cache).map_err(Error::Input)?;
                self.lone = Some((row.id, state));
            }
            let row = &mut self.rows[*i];
            let token = *row.all.last().unwrap_or(&0);
            if let Some((_, state)) = self.lone.as_mut() {
                row.logits = fast.step(state, token).map_err(Error::Input)?.to_vec();
            }
        } else if !batched.is_empty() {
            // The loop's row joins a batch: its positions go back into its own cache.
            if let (Some(fast), Some((id, state))) = (fast, self.lone.take()) {
                if let Some(row) = self.rows.iter_mut().find(|r| r.id == id) {
                    fast.export(&state, &mut row.cache).map_err(Error::Input)?;
                }
            }
            let feed: Vec<u32> = batched.iter().map(|&i| *self.rows[i].all.last().unwrap_or(&0)).collect();
            // The chosen rows' caches, lent out for the pass and put back after it.
            let mut caches: Vec<Cache> = batched.iter().map(|&i| std::mem::take(&mut self.rows[i].cache)).collect();
            let result = if caches.len() == 1 {
                // One row: the plain cached pass, exactly what a lone generation runs.
                Tensor::new(&feed[..1], &self.device)
                    .and_then(|x| x.unsqueeze(0))
                    .map_err(Error::from)
                    .and_then(|x| Ok(self.model.forward_last(&x, Some(&mut caches[0]))?))
            } else {
                let mut refs: Vec<&mut Cache> = caches.iter_mut().collect();
                self.model.forward_rows(&feed, &mut refs).map_err(Error::from)
            };
            for (&i, cache) in batched.iter().zip(caches) {
                self.rows[i].cache = cache;
            }
            let logits: Vec<Vec<f32>> = result?.to_dtype(DType::F32)?.to_vec2()?;
            for (&i, l) in batched.iter().zip(logits) {
                self.rows[i].logits = l;
            }
        }
        for i in alone {
            let row = &mut self.rows[i];
            // The whole sequence, or (a full context) its last context - 1 tokens: positions
            // restart, so the cache cannot be reused.
            let window = &row.all[row.all.len().saturating_sub(ctx - 1)..];
            let x = Tensor::new(window, &self.device)?.unsqueeze(0)?;
            row.logits = self.model.forward_last(&x, None)?.squeeze(0)?.to_dtype(DType::F32)?.to_vec1()?;
        }
        Ok(())
    }
}

/// Flush a finished row's text and report its generation.
fn finish(mut row: Row<'_>, mut reason: FinishReason, on_event: &mut dyn FnMut(Event<'_>)) -> Result<()> {
    if reason != FinishReason::Stop {
        if let Some(rest) = row.stream.finish() {
            let (shown, stopped) = row.filter.push(&rest);
            if !shown.is_empty() {
                on_event(Event::Text { row: row.id, text: &shown });
            }
            if stopped {
                reason = FinishReason::Stop;
            }
        }
        let tail = row.filter.finish();
        if !tail.is_empty() {
            on_event(Event::Text { row: row.id, text: &tail });
        }
    }
    let generation = Generation {
        text: row.filter.into_text(),
        tokens: row.out,
        finish_reason: reason,
        prompt_tokens: row.prompt_tokens,
        cached_tokens: row.cached_tokens,
        prefill_secs: row.prefill_secs,
        decode_secs: row.decode_start.elapsed().as_secs_f64(),
    };
    on_event(Event::Done { row: row.id, generation });
    Ok(())
}
