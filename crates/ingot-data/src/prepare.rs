//! `prepare`: documents in, a folder of token shards out.
//!
//! Steps: choose the validation documents from the seed, tokenize documents in parallel (in
//! chunks, so memory stays bounded, and in corpus order, so the bytes are reproducible), append
//! the separator token after each document, stream the ids into `train_NNNNN.bin` /
//! `val_NNNNN.bin` shards, save the tokenizer beside them, and write `dataset.json` last, all in a
//! temporary folder that then replaces the output folder whole (`ingot_core::atomic::StagedDir`).
//!
//! The split is by document, so no validation text leaks into training through a shared
//! document. The exception is a corpus of exactly one document (a single `input.txt`, as in
//! nanoGPT's Shakespeare): it is split by position instead, the last `val_fraction` of its
//! tokens going to validation, since a by-document split would leave validation empty.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ingot_core::atomic::StagedDir;
use ingot_tokenizer::{Tokenizer, ENDOFTEXT};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use crate::corpus::Document;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ShardEntry, Split, SplitManifest, MANIFEST_VERSION};
use crate::shards::{Dtype, ShardWriter};

/// Text tokenized per parallel batch: large enough to keep every core busy, small enough that
/// the ids of one batch (4 bytes per token) stay a modest amount of memory.
const CHUNK_BYTES: usize = 32 << 20;

/// Settings of [`prepare`].
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// Fraction of documents held out for validation, in [0, 1). With more than one document
    /// and a fraction above 0, at least one document goes to each split.
    pub val_fraction: f64,
    /// Chooses the validation documents.
    pub seed: u64,
    /// A shard is closed when it holds this many tokens (2^28 = 512 MiB of u16).
    pub max_tokens_per_shard: u64,
    /// Draw a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub show_progress: bool,
    /// Write into an output folder even if it holds something that is not a prepared dataset
    /// (`--force`); without it such a folder is refused.
    pub force: bool,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        // 1337: nanoGPT's seed.
        Self { val_fraction: 0.1, seed: 1337, max_tokens_per_shard: 1 << 28, show_progress: false, force: false }
    }
}

/// What [`prepare`] wrote and how long it took.
#[derive(Debug, Clone)]
pub struct PrepareReport {
    pub out_dir: PathBuf,
    /// The manifest as written: per-split documents, tokens and shards.
    pub manifest: Manifest,
    pub n_documents: usize,
    /// Bytes of text tokenized.
    pub n_bytes: u64,
    pub seconds: f64,
}

impl PrepareReport {
    /// Tokens in both splits, separators included.
    pub fn n_tokens(&self) -> u64 {
        self.manifest.train.n_tokens + self.manifest.val.n_tokens
    }

    pub fn tokens_per_sec(&self) -> f64 {
        self.n_tokens() as f64 / self.seconds.max(1e-9)
    }
}

/// Tokenize `docs` with `tokenizer` into shards under `out_dir` (created if needed).
pub fn prepare(
    docs: &[Document],
    tokenizer: &Tokenizer,
    out_dir: &Path,
    opts: &PrepareOptions,
) -> Result<PrepareReport> {
    let started = Instant::now();
    if !(0.0..1.0).contains(&opts.val_fraction) {
        return Err(Error::Invalid(format!("val fraction must be in [0, 1), got {}", opts.val_fraction)));
    }
    if opts.max_tokens_per_shard == 0 {
        return Err(Error::Invalid("max tokens per shard must be at least 1".into()));
    }
    if docs.is_empty() {
        return Err(Error::Invalid("no documents to prepare".into()));
    }
    let vocab_size = tokenizer.vocab_size() as u64;
    let dtype = Dtype::for_vocab(vocab_size);
    let hash = tokenizer.content_hash()?;
    let separator = separator_id(tokenizer)?;

    // A prepared folder (it has dataset.json) is ours to replace; anything else is the user's.
    ingot_core::atomic::check_output(out_dir, "prepared dataset", crate::manifest::MANIFEST_FILE, opts.force)?;
    // The whole folder is built beside `out_dir` and swapped in at the end: a run killed half-way
    // leaves the previous dataset whole, never new shards under an old dataset.json.
    let staged = StagedDir::create(out_dir)?;
    let work_dir = staged.path();
    tokenizer.save(work_dir.join("tokenizer.json"))?;
    tokenizer.save_config(work_dir.join("tokenizer_config.json"))?;

    let by_position = docs.len() == 1 && opts.val_fraction > 0.0;
    let is_val = choose_val(docs.len(), opts.val_fraction, opts.seed);
    let n_bytes: u64 = docs.iter().map(|d| d.text.len() as u64).sum();
    let progress = progress_bar(n_bytes, opts.show_progress);

    let mut train = SplitWriter::new(work_dir, Split::Train, dtype, vocab_size, &hash, opts.max_tokens_per_shard);
    let mut val = SplitWriter::new(work_dir, Split::Val, dtype, vocab_size, &hash, opts.max_tokens_per_shard);
    let mut val_documents = Vec::new();
    let mut first = 0;
    while first < docs.len() {
        let chunk = &docs[first..chunk_end(docs, first)];
        // Parallel within a chunk; `collect` keeps corpus order.
        let encoded: Vec<Vec<u32>> = chunk
            .par_iter()
            .map(|doc| {
                let ids = tokenizer.encode(&doc.text, false);
                progress.inc(doc.text.len() as u64);
                ids
            })
            .collect::<std::result::Result<_, _>>()?;
        for (k, (doc, ids)) in chunk.iter().zip(encoded).enumerate() {
            if by_position {
                // Train gets the head; the document (and its separator) ends in val.
                let n_val = ((ids.len() as f64 * opts.val_fraction).ceil() as usize).min(ids.len());
                let cut = ids.len() - n_val;
                train.push(&ids[..cut])?;
                val.push(&ids[cut..])?;
                val.push(&[separator])?;
                val.end_document();
                val_documents.push(format!("{} (tokens {cut}.. of {})", doc.id, ids.len()));
                continue;
            }
            let split = if is_val[first + k] {
                val_documents.push(doc.id.clone());
                &mut val
            } else {
                &mut train
            };
            split.push(&ids)?;
            split.push(&[separator])?;
            split.end_document();
        }
        first += chunk.len();
    }
    progress.finish_and_clear();

    let (train, val) = (train.finish()?, val.finish()?);
    let manifest = Manifest {
        format_version: MANIFEST_VERSION,
        tokenizer_hash: hash,
        vocab_size,
        dtype,
        separator_id: separator,
        seed: opts.seed,
        val_fraction: opts.val_fraction,
        train,
        val,
        val_documents,
    };
    manifest.save(work_dir)?;
    staged.commit()?;
    Ok(PrepareReport {
        out_dir: out_dir.to_path_buf(),
        manifest,
        n_documents: docs.len(),
        n_bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The token that ends each document: `<|endoftext|>` when the vocabulary has it (GPT-2, Qwen,
/// SmolLM and Ingot's trained tokenizers), else the tokenizer's EOS. A chat model's EOS is often
/// an end-of-turn token, which is the wrong thing to teach between plain documents.
pub fn separator_id(tokenizer: &Tokenizer) -> Result<u32> {
    tokenizer.token_to_id(ENDOFTEXT).or(tokenizer.eos_id()).ok_or_else(|| {
        Error::Invalid(format!(
            "the tokenizer has neither {ENDOFTEXT} nor an EOS token to separate documents with; \
             train one with `ingot tokenizer train` (which adds {ENDOFTEXT})"
        ))
    })
}

/// `is_val[i]` for each document: shuffle the indices with `seed`, take the first
/// ceil(fraction * n) (at least 1 and at most n - 1 when n > 1 and fraction > 0).
pub fn choose_val(n: usize, fraction: f64, seed: u64) -> Vec<bool> {
    let mut is_val = vec![false; n];
    if n < 2 || fraction <= 0.0 {
        return is_val;
    }
    let n_val = ((fraction * n as f64).ceil() as usize).clamp(1, n - 1);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    for &i in &order[..n_val] {
        is_val[i] = true;
    }
    is_val
}

/// End (exclusive) of the chunk starting at `first`: at least one document, then up to
/// [`CHUNK_BYTES`] of text.
fn chunk_end(docs: &[Document], first: usize) -> usize {
    let mut bytes = 0;
    let mut end = first;
    while end < docs.len() && (end == first || bytes + docs[end].text.len() <= CHUNK_BYTES) {
        bytes += docs[end].text.len();
        end += 1;
    }
    end
}

fn progress_bar(total_bytes: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
    let template = "tokenizing [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} \
                    {binary_bytes_per_sec} ETA {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// One split's shards: opens `split_00000.bin`, moves to the next file when one is full.
struct SplitWriter<'a> {
    dir: &'a Path,
    split: Split,
    dtype: Dtype,
    vocab_size: u64,
    hash: &'a str,
    max_tokens: u64,
    current: Option<ShardWriter>,
    done: SplitManifest,
}

impl<'a> SplitWriter<'a> {
    fn new(dir: &'a Path, split: Split, dtype: Dtype, vocab_size: u64, hash: &'a str, max_tokens: u64) -> Self {
        Self { dir, split, dtype, vocab_size, hash, max_tokens, current: None, done: SplitManifest::default() }
    }

    fn push(&mut self, mut ids: &[u32]) -> Result<()> {
        while !ids.is_empty() {
            // Rotate lazily, before writing, so the shard that received a document's last token
            // is still open when `end_document` counts it.
            if self.current.as_ref().is_some_and(|w| w.len() >= self.max_tokens) {
                self.close()?;
            }
            let writer = match &mut self.current {
                Some(w) => w,
                None => {
                    let path = self.dir.join(self.split.shard_file(self.done.shards.len()));
                    let w = ShardWriter::create(&path, self.dtype, self.vocab_size, self.hash, self.split.name())?;
                    self.current.insert(w)
                }
            };
            let take = ((self.max_tokens - writer.len()) as usize).min(ids.len());
            writer.push(&ids[..take])?;
            ids = &ids[take..];
        }
        Ok(())
    }

    fn end_document(&mut self) {
        if let Some(w) = &mut self.current {
            w.end_document();
        }
    }

    fn close(&mut self) -> Result<()> {
        if let Some(w) = self.current.take() {
            let header = w.finish()?;
            self.done.n_tokens += header.n_tokens;
            self.done.n_documents += header.n_documents;
            self.done.shards.push(ShardEntry {
                file: self.split.shard_file(self.done.shards.len()),
                n_tokens: header.n_tokens,
                n_documents: header.n_documents,
            });
        }
        Ok(())
    }

    fn finish(mut self) -> Result<SplitManifest> {
        self.close()?;
        Ok(std::mem::take(&mut self.done))
    }
}
