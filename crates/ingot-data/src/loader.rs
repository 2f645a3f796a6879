//! Reading a prepared folder at training time: [`TokenDataset`] memory-maps one split's shards as
//! one token sequence, [`BatchSampler`] draws (inputs, targets) batches from it.
//!
//! Sampling follows nanoGPT's `get_batch`: B window starts drawn uniformly from
//! [0, len - T - 1], inputs = tokens[s .. s+T], targets = tokens[s+1 .. s+T+1]. The RNG of each
//! batch is seeded from (seed, step, micro-step) alone, so a run resumed at step s draws exactly
//! the batches the uninterrupted run would have, with no sampler state to checkpoint.
//! Windows may cross document separators and shard boundaries, as in nanoGPT.
//!
//! Dimension legend: B batch size, T context (tokens per row).

use std::path::{Path, PathBuf};

use ingot_tokenizer::Tokenizer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::manifest::{Manifest, Split};
use crate::shards::TokenShard;

/// One split of a prepared folder.
#[derive(Debug)]
pub struct TokenDataset {
    dir: PathBuf,
    split: Split,
    manifest: Manifest,
    shards: Vec<TokenShard>,
    /// `starts[i]`: global index of shard i's first token; one more entry holding the total.
    starts: Vec<u64>,
}

impl TokenDataset {
    /// Open `split` of the folder `ingot data prepare` wrote, checking every shard against the
    /// manifest (tokenizer hash, vocabulary, dtype, token count) and every id against the
    /// vocabulary.
    pub fn open(dir: &Path, split: Split) -> Result<Self> {
        let manifest = Manifest::load(dir)?;
        let mut shards = Vec::new();
        let mut starts = vec![0];
        for (i, entry) in manifest.split(split).shards.iter().enumerate() {
            // The names come from dataset.json: only the names `prepare` writes, so a damaged or
            // hostile manifest can neither point outside the folder nor print odd bytes.
            if entry.file != split.shard_file(i) {
                return Err(Error::BadManifest {
                    path: dir.join(crate::MANIFEST_FILE),
                    detail: format!(
                        "shard {i} of {split} is named {}, expected {}; re-run `ingot data prepare`",
                        ingot_core::text::quoted(&entry.file),
                        split.shard_file(i)
                    ),
                });
            }
            let shard = TokenShard::open(dir.join(&entry.file))?;
            let h = shard.header();
            let disagree = |what: &str, shard_value: String, manifest_value: String| Error::BadManifest {
                path: shard.path().to_path_buf(),
                detail: format!(
                    "{what} is {shard_value} but dataset.json says {manifest_value}; the folder mixes two \
                     preparations, re-run `ingot data prepare`"
                ),
            };
            if h.tokenizer_hash != manifest.tokenizer_hash {
                return Err(disagree("the tokenizer hash", h.tokenizer_hash.clone(), manifest.tokenizer_hash.clone()));
            }
            if h.vocab_size != manifest.vocab_size {
                return Err(disagree("the vocabulary size", h.vocab_size.to_string(), manifest.vocab_size.to_string()));
            }
            if h.dtype != manifest.dtype {
                return Err(disagree("the dtype", h.dtype.as_str().into(), manifest.dtype.as_str().into()));
            }
            if h.split != split.name() {
                return Err(disagree("the split", h.split.clone(), split.name().into()));
            }
            if h.n_tokens != entry.n_tokens {
                return Err(disagree("the token count", h.n_tokens.to_string(), entry.n_tokens.to_string()));
            }
            shard.check_ids()?;
            starts.push(starts[starts.len() - 1] + shard.len());
            shards.push(shard);
        }
        Ok(Self { dir: dir.to_path_buf(), split, manifest, shards, starts })
    }

    /// Tokens in the split, separators included.
    pub fn len(&self) -> u64 {
        self.starts[self.starts.len() - 1]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn split(&self) -> Split {
        self.split
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn vocab_size(&self) -> usize {
        self.manifest.vocab_size as usize
    }

    /// The tokenizer saved beside the shards (`tokenizer.json`, `tokenizer_config.json`).
    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }

    /// Fail unless `tokenizer` is the one the shards were made with.
    pub fn check_tokenizer(&self, tokenizer: &Tokenizer) -> Result<()> {
        let hash = tokenizer.content_hash()?;
        if hash != self.manifest.tokenizer_hash {
            return Err(Error::BadManifest {
                path: self.dir.join(crate::manifest::MANIFEST_FILE),
                detail: format!(
                    "the shards were made with tokenizer {} but this tokenizer is {hash}; use {} or re-run \
                     `ingot data prepare` with this tokenizer",
                    self.manifest.tokenizer_hash,
                    self.tokenizer_path().display()
                ),
            });
        }
        Ok(())
    }

    /// Tokens `start .. start + len`, across shard boundaries.
    pub fn window(&self, start: u64, len: usize) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(len);
        self.read_window(start, len, &mut out)?;
        Ok(out)
    }

    /// As [`TokenDataset::window`], appending to `out`.
    pub fn read_window(&self, start: u64, len: usize, out: &mut Vec<u32>) -> Result<()> {
        let end = start.checked_add(len as u64).filter(|&end| end <= self.len()).ok_or_else(|| {
            Error::Invalid(format!(
                "window {start}..{start}+{len} is past the end of the {} split ({} tokens)",
                self.split,
                self.len()
            ))
        })?;
        let mut at = start;
        // The shard holding `at`: the last whose start is <= at.
        let mut i = self.starts.partition_point(|&s| s <= at).saturating_sub(1);
        while at < end {
            let local = at - self.starts[i];
            let take = (self.shards[i].len() - local).min(end - at);
            self.shards[i].read(local, take as usize, out)?;
            at += take;
            i += 1;
        }
        Ok(())
    }
}

/// Draws training and evaluation batches; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSampler {
    pub seed: u64,
}

/// Separates the evaluation batches' RNG streams from the training ones.
const EVAL_SALT: u64 = 0x6576_616c_5f73_6565; // "eval_see"

impl BatchSampler {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The training batch of micro-step `micro` of optimizer step `step`: (inputs, targets),
    /// each B*T ids, row-major (B, T); targets are the inputs shifted left by one token.
    pub fn batch(
        &self,
        ds: &TokenDataset,
        step: u64,
        micro: u32,
        batch_size: usize,
        context: usize,
    ) -> Result<(Vec<u32>, Vec<u32>)> {
        draw(ds, stream_seed(self.seed, step, u64::from(micro)), batch_size, context)
    }

    /// Evaluation batch `index`: the same ids on every call, so validation losses taken at
    /// different steps (or in different runs with the same seed) are comparable.
    pub fn eval_batch(
        &self,
        ds: &TokenDataset,
        index: u32,
        batch_size: usize,
        context: usize,
    ) -> Result<(Vec<u32>, Vec<u32>)> {
        draw(ds, stream_seed(self.seed ^ EVAL_SALT, u64::from(index), 0), batch_size, context)
    }

    /// Evaluation batches `0 .. n`.
    pub fn eval_batches(
        &self,
        ds: &TokenDataset,
        n: u32,
        batch_size: usize,
        context: usize,
    ) -> Result<Vec<(Vec<u32>, Vec<u32>)>> {
        (0..n).map(|i| self.eval_batch(ds, i, batch_size, context)).collect()
    }
}

/// B windows of T+1 tokens from an RNG seeded with `seed`, split into (inputs, targets).
fn draw(ds: &TokenDataset, seed: u64, batch_size: usize, context: usize) -> Result<(Vec<u32>, Vec<u32>)> {
    if batch_size == 0 || context == 0 {
        return Err(Error::Invalid(format!(
            "batch size and context must be at least 1, got batch size {batch_size} and context {context}"
        )));
    }
    let needed = context as u64 + 1;
    if ds.len() < needed {
        return Err(Error::TooFewTokens { split: ds.split.name().into(), n_tokens: ds.len(), context, needed });
    }
    let max_start = ds.len() - needed;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut inputs = Vec::with_capacity(batch_size * context); // (B, T)
    let mut targets = Vec::with_capacity(batch_size * context); // (B, T)
    let mut row = Vec::with_capacity(context + 1);
    for _ in 0..batch_size {
        let start = rng.random_range(0..=max_start);
        row.clear();
        ds.read_window(start, context + 1, &mut row)?;
        inputs.extend_from_slice(&row[..context]);
        targets.extend_from_slice(&row[1..]);
    }
    Ok((inputs, targets))
}

/// One RNG seed per (seed, a, b), by chaining SplitMix64's finaliser: nearby inputs (step 7 vs
/// step 8) give unrelated seeds.
fn stream_seed(seed: u64, a: u64, b: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ a) ^ b)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
