//! Exact and near-duplicate detection: normalised-text hashes, MinHash signatures banded for LSH,
//! and a memory-bounded index that turns shared band keys into clusters.
//!
//! ```text
//! exact_key(text)                   text         ->  u64 (hash of the normalised words)
//! MinHasher::signature(text)        text         ->  k = bands x rows min-hashes of its word 5-gram shingles
//! MinHasher::bucket_keys(sig)       signature    ->  one u64 key per band
//! DupIndex::add(doc, keys) .. finish()  (doc, keys)  ->  Clusters (union of docs sharing a key in any band)
//! Clusters::is_duplicate(doc)       doc index    ->  drop it? (every member but the smallest index)
//! ```
//!
//! Follows datatrove's `pipeline/dedup/minhash.py` (huggingface/datatrove) in its defaults and
//! semantics; the code is Ingot's own:
//! - Normalisation before shingling ([`normalize`]): lowercase, numbers become `0`, punctuation
//!   becomes a word break, diacritics dropped, words split on whitespace. datatrove's punctuation is
//!   a hand-picked list; here it is every Unicode punctuation character (`\p{P}`), the control
//!   characters, and the ASCII symbols `$ + < = > ^ | ~` and the backtick (which datatrove's list
//!   also has). Diacritics
//!   are the combining marks left by NFD with a non-zero canonical combining class (accents), so
//!   Indic vowel signs, which carry meaning, stay. A number is digits with single `.` or `,` between
//!   them: `3.14` and `1,000,000` are each one word `0`.
//! - Shingles are the word 5-grams. A document with fewer than `n_grams` words has one shingle,
//!   all its words, so it matches only documents with the same normalised words (datatrove skips
//!   such documents; here every signature has its full length and every document its keys).
//! - 14 bands of 8 rows: a pair at Jaccard `j` becomes a candidate with probability
//!   `1 - (1 - j^8)^14` ([`MinHashConfig::candidate_probability`]): 0.924 at 0.8, 0.50 near the
//!   threshold `(1/14)^(1/8) = 0.719`, 0.05 at 0.5.
//! - Candidates are not verified against the exact Jaccard; clusters are the connected components
//!   of "shares a band key" (datatrove does the same), and of each cluster the document with the
//!   smallest index is kept. That choice makes the result independent of the order in which
//!   matches are found, of the memory budget and of thread count.
//!
//! Hashing is Ingot's own 64-bit mix (Stafford's "mix13" finaliser of splitmix64), seeded, so
//! keys are identical across runs, machines and Rust versions (never std's `RandomState`). The
//! k hash functions are `x -> mix(x ^ key_i)`, bijections of u64 with keys drawn from the seed,
//! in place of datatrove's `(a x + b) mod 2^61 - 1` (no 128-bit arithmetic, full avalanche);
//! `tests/clean_dedup.rs` holds the estimator they give to the binomial bound of ideal ones.
//!
//! Memory: signatures are computed one document at a time; the [`DupIndex`] holds at most its
//! budget of `(key, doc)` pairs (16 bytes each) and spills the rest to sorted run files, merged per
//! band at the end. What must stay in RAM is one u64 per document (the union-find array). A key
//! collision between unrelated 64-bit band keys is ~N^2 / 2^65 per band: negligible below 10^8
//! documents.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use ingot_core::atomic::StagedFile;
use regex::Regex;
use serde::{Deserialize, Serialize};
use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

// ---------------------------------------------------------------------------------------------
// Normalisation

/// A word: a run of characters that are neither whitespace, punctuation, control characters nor
/// ASCII symbols, where a number may carry single `.`/`,` between its digits (`3.14` is one word).
static WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\p{N}+(?:[.,]\p{N}+)*|[^\s\p{P}\p{Cc}\p{N}$+<=>^`|~])+").expect("the word pattern is valid")
});

/// Call `f(byte_range, normalised_word)` for each word of `text`, in order. The range is where the
/// word lies in `text`; the word is lowercased, its numbers replaced by `0` and its diacritics
/// dropped (see the module docs). Words that normalise to nothing (a lone combining mark) are
/// skipped.
pub fn for_each_word(text: &str, mut f: impl FnMut(Range<usize>, &str)) {
    let mut buf = String::new();
    for m in WORD.find_iter(text) {
        normalize_word(m.as_str(), &mut buf);
        if !buf.is_empty() {
            f(m.range(), &buf);
        }
    }
}

/// One word (as matched by [`WORD`]) normalised into `out`.
pub(crate) fn normalize_word(word: &str, out: &mut String) {
    out.clear();
    let mut in_number = false;
    if word.is_ascii() {
        for b in word.bytes() {
            if b.is_ascii_digit() || (in_number && (b == b'.' || b == b',')) {
                if !in_number {
                    out.push('0');
                    in_number = true;
                }
            } else {
                in_number = false;
                out.push(b.to_ascii_lowercase() as char);
            }
        }
        return;
    }
    for c in word.nfd() {
        if c.is_numeric() || (in_number && (c == '.' || c == ',')) {
            if !in_number {
                out.push('0');
                in_number = true;
            }
        } else if canonical_combining_class(c) == 0 {
            in_number = false;
            out.extend(c.to_lowercase());
        }
    }
}

/// The normalised text: its words (see [`for_each_word`]) joined by single spaces. What
/// [`exact_key`] hashes and shingles are cut from.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for_each_word(text, |_, w| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    });
    out
}

// ---------------------------------------------------------------------------------------------
// Hashing

/// Stafford's mix13, the splitmix64 finaliser: a bijection of u64 with full avalanche.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fold `v` into the running hash `h` (order matters).
#[inline]
pub(crate) fn combine(h: u64, v: u64) -> u64 {
    mix64(h ^ v).wrapping_add(0x9e37_79b9_7f4a_7c15)
}

/// A seeded 64-bit hash of `bytes`, 8 bytes at a time, the length mixed in first.
pub(crate) fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = mix64(seed ^ (bytes.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = combine(h, u64::from_le_bytes(word));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = combine(h, u64::from_le_bytes(word));
    }
    mix64(h)
}

/// The seed of word hashes (shared with decontamination, so both see the same words).
pub(crate) const WORD_SEED: u64 = 0x243f_6a88_85a3_08d3; // the first hex digits of pi

/// Hash of the normalised text, for exact duplicates: two texts get the same key when their
/// [`normalize`]d forms are equal (case, spacing, punctuation, numbers and accents aside). A false
/// match between different texts has probability ~N^2 / 2^65 over N documents.
pub fn exact_key(text: &str) -> u64 {
    let mut h = mix64(0xe7ac_7e5a_c0de_0001);
    let mut n = 0u64;
    for_each_word(text, |_, w| {
        h = combine(h, hash_bytes(WORD_SEED, w.as_bytes()));
        n += 1;
    });
    mix64(h ^ n)
}

// ---------------------------------------------------------------------------------------------
// MinHash

/// MinHash and LSH settings; the defaults are datatrove's `MinhashConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinHashConfig {
    /// Words per shingle. 5: short enough that an edit spoils few shingles, long enough that a
    /// shingle is rarely shared by unrelated text.
    pub n_grams: usize,
    /// LSH bands `b`: a pair is a candidate when all rows of any one band agree.
    pub num_buckets: usize,
    /// Rows per band `r`. With b = 14, r = 8 (112 hashes) the threshold is (1/14)^(1/8) = 0.72.
    pub hashes_per_bucket: usize,
    /// Seed of the hash functions. Signatures from different seeds cannot be compared.
    pub seed: u64,
}

impl Default for MinHashConfig {
    fn default() -> Self {
        Self { n_grams: 5, num_buckets: 14, hashes_per_bucket: 8, seed: 1 }
    }
}

impl MinHashConfig {
    /// Refuse settings that make no signature (any count of zero), naming the field.
    pub fn validate(&self) -> Result<()> {
        let d = Self::default();
        for (name, value, default) in [
            ("n_grams", self.n_grams, d.n_grams),
            ("num_buckets", self.num_buckets, d.num_buckets),
            ("hashes_per_bucket", self.hashes_per_bucket, d.hashes_per_bucket),
        ] {
            if value == 0 {
                return Err(Error::Invalid(format!(
                    "minhash {name} must be at least 1 (datatrove's default is {default})"
                )));
            }
        }
        Ok(())
    }

    /// Hashes per signature, `b * r`.
    pub fn num_hashes(&self) -> usize {
        self.num_buckets * self.hashes_per_bucket
    }

    /// The LSH S-curve: the probability that two documents whose shingle sets have Jaccard
    /// similarity `j` share at least one band key, `1 - (1 - j^r)^b`.
    pub fn candidate_probability(&self, j: f64) -> f64 {
        let j = j.clamp(0.0, 1.0);
        1.0 - (1.0 - j.powi(self.hashes_per_bucket as i32)).powi(self.num_buckets as i32)
    }

    /// Where the S-curve is steepest, roughly the Jaccard at which a pair becomes a candidate:
    /// `(1/b)^(1/r)` (0.719 for the defaults).
    pub fn threshold(&self) -> f64 {
        (1.0 / self.num_buckets as f64).powf(1.0 / self.hashes_per_bucket as f64)
    }
}

/// Computes MinHash signatures and their band keys for one [`MinHashConfig`].
#[derive(Debug, Clone)]
pub struct MinHasher {
    n_grams: usize,
    bands: usize,
    rows: usize,
    /// The key of each hash function `x -> mix64(x ^ key)`, `bands * rows` of them.
    keys: Vec<u64>,
    band_seed: u64,
}

impl MinHasher {
    /// Settings of zero (which [`MinHashConfig::validate`] refuses) are taken as 1.
    pub fn new(cfg: MinHashConfig) -> Self {
        let (n_grams, bands, rows) = (cfg.n_grams.max(1), cfg.num_buckets.max(1), cfg.hashes_per_bucket.max(1));
        // splitmix64's stream from the seed: distinct, well-spread keys.
        let mut state = cfg.seed;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(state)
        };
        let keys = (0..bands * rows).map(|_| next()).collect();
        let band_seed = next();
        Self { n_grams, bands, rows, keys, band_seed }
    }

    /// Number of bands, the length of [`MinHasher::bucket_keys`].
    pub fn bands(&self) -> usize {
        self.bands
    }

    /// The hashes of the document's word `n_grams`-shingles (with repeats), in text order. A
    /// document of fewer words has one shingle, all its words (see the module docs).
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        let mut words = Vec::new();
        for_each_word(text, |_, w| words.push(hash_bytes(WORD_SEED, w.as_bytes())));
        let shingle = |window: &[u64]| {
            mix64(window.iter().fold(mix64(0x5817_1e5e_ed00_0005 ^ window.len() as u64), |h, &w| combine(h, w)))
        };
        if words.len() < self.n_grams {
            return vec![shingle(&words)];
        }
        words.windows(self.n_grams).map(shingle).collect()
    }

    /// The MinHash signature: for each of the `bands * rows` hash functions, the smallest hash of
    /// any shingle. Always `bands * rows` long.
    pub fn signature(&self, text: &str) -> Vec<u64> {
        let shingles = self.shingles(text);
        let mut sig = vec![u64::MAX; self.keys.len()];
        for &s in &shingles {
            for (m, &key) in sig.iter_mut().zip(&self.keys) {
                *m = (*m).min(mix64(s ^ key));
            }
        }
        sig
    }

    /// One key per band: a hash of the band's index and its `rows` values. Two signatures share
    /// the key of band `i` exactly when their rows of band `i` agree (up to 64-bit collisions).
    /// A signature of another length than `bands * rows` gives the keys of the whole bands it
    /// holds.
    pub fn bucket_keys(&self, sig: &[u64]) -> Vec<u64> {
        sig.chunks_exact(self.rows)
            .take(self.bands)
            .enumerate()
            .map(|(band, rows)| mix64(rows.iter().fold(combine(self.band_seed, band as u64), |h, &v| combine(h, v))))
            .collect()
    }
}

/// The MinHash estimate of Jaccard similarity: the fraction of positions where two signatures
/// agree. Its standard deviation is `sqrt(j (1 - j) / k)` for k hashes. 0 when either is empty
/// or their lengths differ (signatures of different configurations cannot be compared).
pub fn jaccard_estimate(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

// ---------------------------------------------------------------------------------------------
// DupIndex: memory-bounded grouping of documents by shared keys

/// Bytes one `(key, doc)` pair costs in memory and on disk.
const ENTRY_BYTES: usize = 16;
const RUN_MAGIC: &[u8; 8] = b"INGOTDUP";
const RUN_VERSION: u32 = 1;

/// Collects `(doc, keys)` pairs (one key per band) and finds the documents that share a key in
/// any band, within a memory budget.
///
/// Up to `memory_budget` bytes of pairs (16 bytes each) are held in RAM; past that they are sorted
/// per band and spilled to a run file `run-NNNNNN.dup` under `dir`, written atomically (temporary
/// file, fsync, rename). [`DupIndex::finish`] merges the runs of each band (a k-way merge, one
/// buffered reader per run), unions the documents of each key, and removes the run files. Its
/// cost in RAM is one u64 per document (the union-find array) plus the readers' buffers.
///
/// Documents are added in increasing index order (gaps are fine: a document with no keys, or
/// one never added, is alone). Each run records the range of documents it covers, so after a
/// crash [`DupIndex::resume`] keeps the complete runs and says where to start adding again;
/// [`DupIndex::new`] instead removes any runs left in `dir`.
///
/// The same key in different bands does not join documents: bands are merged separately. For
/// exact duplicates, an index with one band fed [`exact_key`]s does the job.
#[derive(Debug)]
pub struct DupIndex {
    dir: PathBuf,
    bands: usize,
    /// Pairs held before a spill (at least 1).
    max_entries: usize,
    /// Per band: (key, doc), unsorted until a spill.
    buffer: Vec<Vec<(u64, u64)>>,
    buffered: usize,
    runs: Vec<RunInfo>,
    /// One past the largest document added; documents below it can no longer be added.
    next_doc: u64,
    /// Where the next run's document range starts (the previous run's end).
    run_start: u64,
}

/// A run file and what its header says.
#[derive(Debug, Clone)]
struct RunInfo {
    path: PathBuf,
    /// Documents `docs.start..docs.end` were added while this run was buffered.
    docs: Range<u64>,
    /// Pairs per band.
    counts: Vec<u64>,
}

impl RunInfo {
    fn header_len(bands: usize) -> u64 {
        (8 + 4 + 4 + 8 + 8 + 8 * bands) as u64
    }

    /// Byte offset of band `band`'s pairs.
    fn band_offset(&self, band: usize) -> u64 {
        Self::header_len(self.counts.len()) + self.counts[..band].iter().sum::<u64>() * ENTRY_BYTES as u64
    }

    /// Read and check the header of `path`: magic, version, band count, and that the file is as
    /// long as the header says.
    fn read(path: &Path, bands: usize) -> Result<Self> {
        let bad = |detail: String| Error::BadSpill { path: path.to_path_buf(), detail };
        let mut file = File::open(path).map_err(Error::io("open", path))?;
        let len = file.metadata().map_err(Error::io("inspect", path))?.len();
        let header_len = Self::header_len(bands);
        if len < header_len {
            return Err(bad(format!("{len} bytes, shorter than the {header_len}-byte header of a {bands}-band run")));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(Error::io("read", path))?;
        if &header[..8] != RUN_MAGIC {
            return Err(bad("it does not start with INGOTDUP".into()));
        }
        let u32_at = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let (version, file_bands) = (u32_at(8), u32_at(12));
        if version != RUN_VERSION {
            return Err(bad(format!("format version {version}, this build reads {RUN_VERSION}")));
        }
        if file_bands as usize != bands {
            return Err(bad(format!("it has {file_bands} bands, the index has {bands}")));
        }
        let docs = u64_at(16)..u64_at(24);
        let counts: Vec<u64> = (0..bands).map(|b| u64_at(32 + 8 * b)).collect();
        let expected = counts
            .iter()
            .try_fold(header_len, |acc, &c| c.checked_mul(ENTRY_BYTES as u64).and_then(|b| acc.checked_add(b)));
        if expected != Some(len) {
            return Err(bad(format!(
                "{len} bytes, but its header promises {counts:?} pairs per band after the header"
            )));
        }
        if docs.start > docs.end {
            return Err(bad(format!("document range {}..{} is backwards", docs.start, docs.end)));
        }
        Ok(Self { path: path.to_path_buf(), docs, counts })
    }
}

fn run_path(dir: &Path, run: usize) -> PathBuf {
    dir.join(format!("run-{run:06}.dup"))
}

/// The run files in `dir`, by number.
fn list_runs(dir: &Path) -> Result<BTreeMap<usize, PathBuf>> {
    let mut runs = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_prefix("run-").and_then(|r| r.strip_suffix(".dup")).and_then(|n| n.parse().ok()) {
            runs.insert(n, entry.path());
        }
    }
    Ok(runs)
}

impl DupIndex {
    /// A new, empty index spilling under `dir` (created if needed; run files left there by an
    /// earlier index are removed). `bands` is the number of keys per document (the LSH bands, or
    /// 1 for exact keys); `memory_budget` the bytes of pairs to hold before spilling.
    pub fn new(dir: &Path, bands: usize, memory_budget: usize) -> Result<Self> {
        fs::create_dir_all(dir).map_err(Error::io("create the folder", dir))?;
        for path in list_runs(dir)?.into_values() {
            fs::remove_file(&path).map_err(Error::io("remove the stale dedup run", &path))?;
        }
        Self::empty(dir, bands, memory_budget)
    }

    /// Reopen an index whose process died: keep the runs in `dir` that are complete, consecutive
    /// from `run-000000` and of this band count, remove the others, and return the index with the
    /// document index to resume adding from (every document before it is in the kept runs).
    pub fn resume(dir: &Path, bands: usize, memory_budget: usize) -> Result<(Self, u64)> {
        fs::create_dir_all(dir).map_err(Error::io("create the folder", dir))?;
        let mut index = Self::empty(dir, bands, memory_budget)?;
        let mut trusted = true;
        for (n, path) in list_runs(dir)? {
            let run = if trusted && n == index.runs.len() { RunInfo::read(&path, bands).ok() } else { None };
            match run {
                Some(run) if run.docs.start == index.run_start => {
                    index.run_start = run.docs.end;
                    index.next_doc = run.docs.end;
                    index.runs.push(run);
                }
                _ => {
                    // Not a complete continuation of the runs before it: it and all later runs go.
                    trusted = false;
                    fs::remove_file(&path).map_err(Error::io("remove the untrusted dedup run", &path))?;
                }
            }
        }
        let next = index.next_doc;
        Ok((index, next))
    }

    fn empty(dir: &Path, bands: usize, memory_budget: usize) -> Result<Self> {
        if bands == 0 {
            return Err(Error::Invalid("a dedup index needs at least one band".into()));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            bands,
            max_entries: (memory_budget / ENTRY_BYTES).max(1),
            buffer: vec![Vec::new(); bands],
            buffered: 0,
            runs: Vec::new(),
            next_doc: 0,
            run_start: 0,
        })
    }

    /// Add document `doc` with one key per band (or none: it is then alone). Documents come in
    /// increasing index order.
    pub fn add(&mut self, doc: u64, keys: &[u64]) -> Result<()> {
        if !keys.is_empty() && keys.len() != self.bands {
            return Err(Error::Invalid(format!(
                "dedup index: document {doc} has {} keys, the index has {} bands",
                keys.len(),
                self.bands
            )));
        }
        if doc < self.next_doc {
            return Err(Error::Invalid(format!(
                "dedup index: document {doc} added after document {}; documents must come in increasing order",
                self.next_doc - 1
            )));
        }
        let Some(next) = doc.checked_add(1) else {
            return Err(Error::Invalid(format!("dedup index: document index {doc} is out of range")));
        };
        self.next_doc = next;
        for (band, &key) in keys.iter().enumerate() {
            let pairs = &mut self.buffer[band];
            if pairs.capacity() == 0 {
                // Once, exactly the band's share: growth by doubling could overshoot the budget.
                pairs.reserve_exact(self.max_entries / self.bands + 1);
            }
            pairs.push((key, doc));
        }
        self.buffered += keys.len();
        if self.buffered >= self.max_entries {
            self.spill()?;
        }
        Ok(())
    }

    /// How many run files have been written so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Sort the buffered pairs of each band and write them as the next run file.
    fn spill(&mut self) -> Result<()> {
        let path = run_path(&self.dir, self.runs.len());
        let mut staged = StagedFile::create(&path)?;
        let tmp = staged.tmp_path().to_path_buf();
        let w = staged.writer();
        let mut header = Vec::with_capacity(RunInfo::header_len(self.bands) as usize);
        header.extend_from_slice(RUN_MAGIC);
        header.extend_from_slice(&RUN_VERSION.to_le_bytes());
        header.extend_from_slice(&(self.bands as u32).to_le_bytes());
        header.extend_from_slice(&self.run_start.to_le_bytes());
        header.extend_from_slice(&self.next_doc.to_le_bytes());
        for band in &self.buffer {
            header.extend_from_slice(&(band.len() as u64).to_le_bytes());
        }
        w.write_all(&header).map_err(Error::io("write", &tmp))?;
        let mut counts = Vec::with_capacity(self.bands);
        for band in &mut self.buffer {
            band.sort_unstable();
            for &(key, doc) in band.iter() {
                w.write_all(&key.to_le_bytes()).map_err(Error::io("write", &tmp))?;
                w.write_all(&doc.to_le_bytes()).map_err(Error::io("write", &tmp))?;
            }
            counts.push(band.len() as u64);
            band.clear();
        }
        staged.commit()?;
        self.runs.push(RunInfo { path, docs: self.run_start..self.next_doc, counts });
        self.run_start = self.next_doc;
        self.buffered = 0;
        Ok(())
    }

    /// Merge everything added into clusters, then remove the run files.
    pub fn finish(mut self) -> Result<Clusters> {
        let n_docs = usize::try_from(self.next_doc)
            .map_err(|_| Error::Invalid(format!("dedup index: {} documents do not fit in memory", self.next_doc)))?;
        let mut parent: Vec<u64> = (0..self.next_doc).collect();
        // Split the readers' share of the budget between the runs open at once.
        let buf_bytes = (self.max_entries * ENTRY_BYTES / (self.runs.len() + 1)).clamp(8 << 10, 1 << 20);
        for band in 0..self.bands {
            let mut memory = std::mem::take(&mut self.buffer[band]);
            memory.sort_unstable();
            let mut sources: Vec<Source> = Vec::with_capacity(self.runs.len() + 1);
            for run in &self.runs {
                sources.push(Source::run(run, band, buf_bytes)?);
            }
            sources.push(Source::Memory(memory.into_iter()));
            let mut heap = BinaryHeap::with_capacity(sources.len());
            for (i, source) in sources.iter_mut().enumerate() {
                if let Some((key, doc)) = source.next()? {
                    heap.push(Reverse((key, doc, i)));
                }
            }
            let mut current: Option<(u64, u64)> = None; // (key, first doc with it)
            while let Some(Reverse((key, doc, i))) = heap.pop() {
                if doc >= self.next_doc {
                    return Err(sources[i].bad(format!("document {doc} is past the {n_docs} documents added")));
                }
                match current {
                    Some((k, first)) if k == key => union(&mut parent, first, doc),
                    _ => current = Some((key, doc)),
                }
                if let Some((next_key, next_doc)) = sources[i].next()? {
                    if (next_key, next_doc) < (key, doc) {
                        return Err(sources[i].bad("its pairs are not sorted".into()));
                    }
                    heap.push(Reverse((next_key, next_doc, i)));
                }
            }
        }
        // parent[i] <= i always (the smaller root wins), so one forward pass leaves every entry
        // pointing at its cluster's smallest member.
        for i in 0..n_docs {
            parent[i] = parent[parent[i] as usize];
        }
        let mut members: HashMap<u64, usize> = HashMap::new();
        for (i, &root) in parent.iter().enumerate() {
            if root != i as u64 {
                *members.entry(root).or_insert(1) += 1;
            }
        }
        let mut sizes = BTreeMap::new();
        for &size in members.values() {
            *sizes.entry(size).or_insert(0) += 1;
        }
        for run in &self.runs {
            fs::remove_file(&run.path).map_err(Error::io("remove the merged dedup run", &run.path))?;
        }
        Ok(Clusters { root: parent, sizes })
    }
}

/// Find with path halving.
fn find(parent: &mut [u64], mut x: u64) -> u64 {
    while parent[x as usize] != x {
        let grand = parent[parent[x as usize] as usize];
        parent[x as usize] = grand;
        x = grand;
    }
    x
}

/// Join the clusters of `a` and `b`; the smaller root becomes the root, so a cluster's root is
/// its smallest document whatever order the unions come in.
fn union(parent: &mut [u64], a: u64, b: u64) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
    }
}

/// One sorted stream of `(key, doc)` pairs of a band: a run file's section or the pairs still in
/// memory.
enum Source {
    Run { path: PathBuf, reader: BufReader<File>, remaining: u64 },
    Memory(std::vec::IntoIter<(u64, u64)>),
}

impl Source {
    fn run(run: &RunInfo, band: usize, buf_bytes: usize) -> Result<Self> {
        use std::io::{Seek, SeekFrom};
        let mut file = File::open(&run.path).map_err(Error::io("open", &run.path))?;
        file.seek(SeekFrom::Start(run.band_offset(band))).map_err(Error::io("seek in", &run.path))?;
        Ok(Source::Run {
            path: run.path.clone(),
            reader: BufReader::with_capacity(buf_bytes, file),
            remaining: run.counts[band],
        })
    }

    fn next(&mut self) -> Result<Option<(u64, u64)>> {
        match self {
            Source::Memory(it) => Ok(it.next()),
            Source::Run { path, reader, remaining } => {
                if *remaining == 0 {
                    return Ok(None);
                }
                let mut pair = [0u8; ENTRY_BYTES];
                reader.read_exact(&mut pair).map_err(Error::io("read", path.as_path()))?;
                *remaining -= 1;
                let (mut key, mut doc) = ([0u8; 8], [0u8; 8]);
                key.copy_from_slice(&pair[..8]);
                doc.copy_from_slice(&pair[8..]);
                Ok(Some((u64::from_le_bytes(key), u64::from_le_bytes(doc))))
            }
        }
    }

    fn bad(&self, detail: String) -> Error {
        match self {
            Source::Run { path, .. } => Error::BadSpill { path: path.clone(), detail },
            Source::Memory(_) => Error::Invalid(format!("dedup index (in memory): {detail}")),
        }
    }
}

/// The clusters found by a [`DupIndex`]: which documents to drop, and which one each copies.
///
/// Of each cluster the member with the smallest document index is kept and all others are
/// duplicates: deterministic, and in corpus order the first occurrence survives (datatrove keeps
/// its union-find root, which depends on the order of matches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clusters {
    /// The kept member of each document's cluster (itself when alone), for documents
    /// `0..next_doc` of the index.
    root: Vec<u64>,
    sizes: BTreeMap<usize, usize>,
}

impl Clusters {
    /// Whether `doc` is a duplicate to drop: it is in a cluster and not its smallest member.
    pub fn is_duplicate(&self, doc: u64) -> bool {
        self.kept_of(doc) != doc
    }

    /// The document kept for `doc`'s cluster (`doc` itself when it is kept or alone).
    pub fn kept_of(&self, doc: u64) -> u64 {
        usize::try_from(doc).ok().and_then(|i| self.root.get(i)).copied().unwrap_or(doc)
    }

    /// Cluster size -> number of clusters of that size, for clusters of two or more documents.
    pub fn sizes(&self) -> BTreeMap<usize, usize> {
        self.sizes.clone()
    }

    /// How many documents are duplicates (the sum of `size - 1` over clusters).
    pub fn n_duplicates(&self) -> u64 {
        self.sizes.iter().map(|(&size, &count)| ((size - 1) * count) as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingot_test_support::temp_dir;

    #[test]
    fn normalisation_follows_datatrove() {
        assert_eq!(normalize("  Hello,\tWORLD!!  It's 3.14 -- café naïve\n"), "hello world it s 0 cafe naive");
        assert_eq!(normalize("1,000,000 dollars; v2 ok_now"), "0 dollars v0 ok now");
        assert_eq!(normalize("«Ça» — déjà vu…"), "ca deja vu");
        assert_eq!(normalize(""), "");
        assert_eq!(normalize("!!! ... \u{301}"), "");
        // Indic vowel signs (combining class 0) stay; only accents go.
        assert_eq!(normalize("हिंदी"), "हिंदी".nfd().filter(|&c| canonical_combining_class(c) == 0).collect::<String>());
    }

    #[test]
    fn exact_key_ignores_case_spacing_and_punctuation_only() {
        let a = exact_key("The quick brown fox, jumps!");
        assert_eq!(a, exact_key("the QUICK   brown fox jumps"));
        assert_eq!(a, exact_key("the quick\nbrown -- fox ... jumps ."));
        assert_ne!(a, exact_key("the quick brown fox jumped"));
        assert_ne!(a, exact_key("quick the brown fox jumps"));
        assert_ne!(exact_key(""), exact_key("a"));
    }

    /// Pinned values: a change here changes which documents a resumed or repeated run calls
    /// duplicates, so it must be deliberate (and is a change of the run-file format too).
    #[test]
    fn hashes_are_stable_across_runs_and_machines() {
        assert_eq!(exact_key("hello world"), exact_key("Hello, World!"));
        let h = MinHasher::new(MinHashConfig::default());
        let sig = h.signature("one two three four five six seven eight nine ten");
        let keys = h.bucket_keys(&sig);
        let pinned = (exact_key("hello world"), sig[0], sig[111], keys[0], keys[13]);
        assert_eq!(pinned, PINNED, "the hash functions changed: {pinned:#x?}");
    }
    const PINNED: (u64, u64, u64, u64, u64) =
        (0x8075e96c7786e49d, 0x22369895dc68679f, 0x1f6f660a6976378d, 0x2db981c3f0232b89, 0xf49dbf2771bade75);

    #[test]
    fn s_curve_matches_datatrove_figures() {
        let cfg = MinHashConfig::default();
        assert_eq!(cfg.num_hashes(), 112);
        assert!((cfg.threshold() - 0.7190).abs() < 1e-3, "{}", cfg.threshold());
        assert!((cfg.candidate_probability(0.8) - 0.924).abs() < 1e-3, "{}", cfg.candidate_probability(0.8));
        assert_eq!(cfg.candidate_probability(0.0), 0.0);
        assert_eq!(cfg.candidate_probability(1.0), 1.0);
        let t = cfg.candidate_probability(cfg.threshold());
        assert!((0.4..0.7).contains(&t), "{t}");
    }

    #[test]
    fn config_reads_and_refuses_what_it_should() {
        let cfg: MinHashConfig = serde_json::from_str(r#"{"num_buckets": 20}"#).unwrap();
        assert_eq!(cfg, MinHashConfig { num_buckets: 20, ..Default::default() });
        assert!(serde_json::from_str::<MinHashConfig>(r#"{"buckets": 20}"#).is_err());
        let zero = MinHashConfig { hashes_per_bucket: 0, ..Default::default() };
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.contains("hashes_per_bucket") && err.contains('8'), "{err}");
    }

    #[test]
    fn signatures_have_full_length_and_short_documents_match_only_themselves() {
        let h = MinHasher::new(MinHashConfig::default());
        for text in ["", "one", "two words", "a b c d e f g h"] {
            assert_eq!(h.signature(text).len(), 112, "{text:?}");
            assert_eq!(h.bucket_keys(&h.signature(text)).len(), 14);
        }
        assert_eq!(h.signature("Two, words!"), h.signature("two words"));
        assert_eq!(jaccard_estimate(&h.signature("two words"), &h.signature("two other")), 0.0);
        let long = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu";
        assert_eq!(jaccard_estimate(&h.signature(long), &h.signature(long)), 1.0);
        assert_eq!(jaccard_estimate(&h.signature(long), &h.signature("alpha beta")), 0.0);
        assert_eq!(jaccard_estimate(&[], &[]), 0.0);
        assert_eq!(jaccard_estimate(&[1, 2], &[1]), 0.0);
    }

    fn add_all(index: &mut DupIndex, docs: &[(u64, Vec<u64>)]) {
        for (doc, keys) in docs {
            index.add(*doc, keys).unwrap();
        }
    }

    /// Docs 0..40 with two bands: doc d has keys (d / 4, 1000 + d / 5), so chains join across
    /// bands: {0..3} and {0..4} overlap, and so on: everything joins in one cluster except where
    /// gaps cut the chain.
    fn chained_docs() -> Vec<(u64, Vec<u64>)> {
        (0..40u64).filter(|d| d % 20 != 19).map(|d| (d, vec![d / 4, 1000 + d / 5])).collect()
    }

    #[test]
    fn dup_index_spills_merges_and_cleans_up() {
        let dir = temp_dir("dupindex");
        let mut big = DupIndex::new(dir.path(), 2, 1 << 20).unwrap();
        add_all(&mut big, &chained_docs());
        assert_eq!(big.runs(), 0);
        let expected = big.finish().unwrap();

        let mut small = DupIndex::new(dir.path(), 2, 3 * ENTRY_BYTES).unwrap();
        add_all(&mut small, &chained_docs());
        assert!(small.runs() >= 15, "{} runs", small.runs());
        assert!(dir.list(".").iter().any(|n| n.starts_with("run-")));
        let got = small.finish().unwrap();
        assert_eq!(got, expected);
        assert!(dir.list(".").is_empty(), "left behind: {:?}", dir.list("."));

        // Smallest index kept; a missing doc (19) is alone and cuts nothing it did not join.
        assert!(!got.is_duplicate(0) && got.is_duplicate(1) && got.kept_of(18) == 0);
        assert_eq!(got.kept_of(19), 19);
        assert_eq!(got.kept_of(20), 20);
        assert_eq!(got.kept_of(38), 20);
        assert_eq!(got.kept_of(1_000_000), 1_000_000);
        assert_eq!(got.sizes(), BTreeMap::from([(19, 2)]));
        assert_eq!(got.n_duplicates(), 36);
    }

    #[test]
    fn dup_index_refuses_wrong_key_counts_and_order() {
        let dir = temp_dir("dupindex-refuse");
        let mut index = DupIndex::new(dir.path(), 3, 1024).unwrap();
        index.add(5, &[1, 2, 3]).unwrap();
        let err = index.add(6, &[1, 2]).unwrap_err().to_string();
        assert!(err.contains("2 keys") && err.contains("3 bands"), "{err}");
        let err = index.add(5, &[1, 2, 3]).unwrap_err().to_string();
        assert!(err.contains("increasing order"), "{err}");
        index.add(7, &[]).unwrap();
        index.add(8, &[1, 9, 9]).unwrap();
        let clusters = index.finish().unwrap();
        assert_eq!(clusters.kept_of(8), 5);
        assert!(!clusters.is_duplicate(7));
        assert!(DupIndex::new(dir.path(), 0, 1024).is_err());
    }

    #[test]
    fn resume_keeps_complete_runs_and_drops_the_rest() {
        let dir = temp_dir("dupindex-resume");
        let docs = chained_docs();
        let mut full = DupIndex::new(dir.path(), 2, 1 << 20).unwrap();
        add_all(&mut full, &docs);
        let expected = full.finish().unwrap();

        // A process that spilled some runs and died with pairs still in memory.
        let mut first = DupIndex::new(dir.path(), 2, 7 * ENTRY_BYTES).unwrap();
        add_all(&mut first, &docs[..25]);
        let runs = first.runs();
        assert!(runs >= 3);
        drop(first);
        // A stray run that does not continue the others, and a truncated last one.
        std::fs::write(run_path(dir.path(), runs + 3), b"junk").unwrap();
        let last = run_path(dir.path(), runs - 1);
        let bytes = std::fs::read(&last).unwrap();
        std::fs::write(&last, &bytes[..bytes.len() - 5]).unwrap();

        let (mut resumed, next) = DupIndex::resume(dir.path(), 2, 7 * ENTRY_BYTES).unwrap();
        assert_eq!(resumed.runs(), runs - 1);
        assert!(next > 0 && next < docs[25].0, "{next}");
        add_all(&mut resumed, &docs.iter().filter(|(d, _)| *d >= next).cloned().collect::<Vec<_>>());
        assert_eq!(resumed.finish().unwrap(), expected);

        // A run of another band count is not trusted either.
        let mut other = DupIndex::new(dir.path(), 3, ENTRY_BYTES).unwrap();
        other.add(0, &[1, 2, 3]).unwrap();
        let (resumed, next) = DupIndex::resume(dir.path(), 2, 1024).unwrap();
        assert_eq!((resumed.runs(), next), (0, 0));
        assert!(dir.list(".").is_empty());
    }

    #[test]
    fn a_run_damaged_after_writing_is_an_error_naming_it() {
        let dir = temp_dir("dupindex-bad");
        let mut index = DupIndex::new(dir.path(), 1, ENTRY_BYTES).unwrap();
        index.add(0, &[7]).unwrap();
        index.add(1, &[7]).unwrap();
        // Overwrite run 1's pair with a doc index past the end.
        let path = run_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 8..].copy_from_slice(&99u64.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        let err = index.finish().unwrap_err();
        assert!(matches!(&err, Error::BadSpill { path: p, .. } if *p == path), "{err}");
        assert!(err.to_string().contains("document 99"), "{err}");
    }
}
