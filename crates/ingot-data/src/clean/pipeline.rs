//! The `data clean` run: inputs streamed in chunks through the document filters, then
//! de-duplicated across the whole corpus, written as JSONL shards that `data prepare` reads.
//!
//! ```text
//! pass 1, per chunk (in parallel over its documents, order kept):
//!   raw record -> UTF-8 / size / JSON checks -> NFC -> decontamination -> language
//!              -> Gopher repetition -> Gopher quality -> C4 lines (rewrites) -> PII scrub
//!              -> exact key + MinHash band keys
//!   writes .work/chunk_NNNNN.{kept.jsonl,keys,stats.json} and removed/filtered_NNNNN.jsonl
//! dedup: every kept document's keys into a DupIndex (memory bounded, spills sorted runs to disk)
//! pass 2, per chunk: clean_NNNNN.jsonl (kept, not duplicates), removed/duplicates_NNNNN.jsonl
//! report.{json,md,svg}; .work removed
//! ```
//!
//! Design decisions:
//! - A chunk is a run of consecutive raw records (JSONL lines or `.txt` files) cut by count and
//!   bytes before anything is parsed, so its contents depend only on the inputs and the config.
//!   Every file a chunk writes is atomic and its stats file is written last: a killed run
//!   resumes at the first chunk without stats and produces byte-identical output.
//! - Nothing a corpus holds stops the run: non-UTF-8 files and lines, bad JSON, records over
//!   `max_doc_bytes` (never read into memory whole) are removed with their reason and counted.
//! - Duplicates keep the first document of each cluster in input order (`DupIndex`'s rule).
//! - `clean.json` records the config and the inputs (paths, sizes, modification times); a resumed
//!   run must match it, so a changed corpus is never mixed with an old run's chunks.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ingot_core::atomic::{self, StagedFile};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

use super::decontam::Decontaminator;
use super::filters::FilterConfig;
use super::minhash::{exact_key, DupIndex, MinHashConfig, MinHasher};
use super::pii::{PiiConfig, PiiCounts, PiiScrubber};
use crate::error::{Error, Result};

/// The file that marks a folder as a `data clean` output and records what made it.
pub const MARKER: &str = "clean.json";
const WORK: &str = ".work";
const FORMAT: u32 = 1;

// ---------------------------------------------------------------------------------------------
// Config

/// Everything `data clean` can be told, as a TOML file (`--config`); every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CleanConfig {
    /// Raw records (JSONL lines or `.txt` files) per chunk, the unit of parallel work and resume.
    pub chunk_docs: usize,
    /// Bytes per chunk at most (a chunk always holds at least one record).
    pub chunk_bytes: usize,
    /// Records larger than this are removed unread ("too_large").
    pub max_doc_bytes: usize,
    /// Unicode NFC normalisation of every document (CRLF to LF and the byte-order mark always go).
    pub unicode_nfc: bool,
    pub language: LanguageConfig,
    pub filters: FilterConfig,
    pub decontamination: DecontamConfig,
    /// PII replaced by placeholders in the kept documents (each kind can be switched off).
    pub pii: PiiConfig,
    pub dedup: DedupConfig,
}

impl Default for CleanConfig {
    fn default() -> Self {
        Self {
            chunk_docs: 10_000,
            chunk_bytes: 64 << 20,
            max_doc_bytes: 16 << 20,
            unicode_nfc: true,
            language: LanguageConfig::default(),
            filters: FilterConfig::default(),
            decontamination: DecontamConfig::default(),
            pii: PiiConfig::default(),
            dedup: DedupConfig::default(),
        }
    }
}

/// Language identification with `whatlang` (trigram profiles, no model file). datatrove's
/// `LanguageFilter` uses fastText's lid.176 with a 0.65 threshold; whatlang's confidence is a
/// different score on the same [0, 1] scale, so the default threshold is the same number.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LanguageConfig {
    pub enabled: bool,
    /// ISO 639-3 codes to keep (e.g. "eng", "fra", "deu").
    pub languages: Vec<String>,
    /// Minimum confidence of the detected language.
    pub threshold: f64,
    /// Characters from the start of the document given to the detector.
    pub sample_chars: usize,
}

impl Default for LanguageConfig {
    fn default() -> Self {
        Self { enabled: true, languages: vec!["eng".into()], threshold: 0.65, sample_chars: 4096 }
    }
}

/// Documents sharing an n-gram with an evaluation set are removed and listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DecontamConfig {
    pub enabled: bool,
    /// Words per n-gram (GPT-3 used 13).
    pub n: usize,
    /// Benchmarks whose items are checked (`ingot eval`'s task names); empty means all shipped.
    pub benchmarks: Vec<String>,
}

impl Default for DecontamConfig {
    fn default() -> Self {
        Self { enabled: true, n: 13, benchmarks: Vec::new() }
    }
}

/// Exact and near-duplicate removal across the whole corpus.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Same normalised text.
    pub exact: bool,
    /// MinHash LSH near duplicates.
    pub near: bool,
    /// RAM for the duplicate index before it spills sorted runs to disk, in MiB.
    pub memory_mib: usize,
    pub minhash: MinHashConfig,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self { exact: true, near: true, memory_mib: 512, minhash: MinHashConfig::default() }
    }
}

impl CleanConfig {
    /// Read a TOML config; unknown fields are errors that name them.
    pub fn from_toml(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
        let cfg: CleanConfig =
            toml::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {}", path.display(), e.message())))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.chunk_docs == 0 || self.chunk_bytes == 0 || self.max_doc_bytes == 0 {
            return bad("chunk_docs, chunk_bytes and max_doc_bytes must be at least 1".into());
        }
        if self.language.enabled {
            for code in &self.language.languages {
                if whatlang::Lang::from_code(code).is_none() {
                    return bad(format!(
                        "language.languages: '{code}' is not an ISO 639-3 code whatlang knows (e.g. \"eng\", \"fra\", \"deu\")"
                    ));
                }
            }
            if self.language.languages.is_empty() {
                return bad(
                    "language.languages is empty; list the languages to keep or set language.enabled = false".into()
                );
            }
        }
        self.filters.validate()?;
        self.dedup.minhash.validate()?;
        if self.decontamination.enabled && self.decontamination.n == 0 {
            return bad("decontamination.n must be at least 1".into());
        }
        if self.dedup.memory_mib == 0 {
            return bad("dedup.memory_mib must be at least 1".into());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// One input file, as recorded in `clean.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    pub bytes: u64,
    /// Modification time, seconds since the epoch.
    pub modified: u64,
}

/// The `.txt` and `.jsonl` files under `paths` (folders walked recursively, hidden entries skipped),
/// each folder's files sorted by name, in the order the paths were given.
pub fn list_inputs(paths: &[PathBuf]) -> Result<Vec<InputFile>> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|_| Error::CorpusNotFound { path: path.clone() })?;
        if meta.is_dir() {
            let before = files.len();
            walk(path, &mut files)?;
            if files.len() == before {
                return Err(Error::EmptyCorpus {
                    path: path.clone(),
                    detail: "the folder has no .txt or .jsonl files".into(),
                });
            }
        } else if is_input(path) {
            files.push(input_file(path, &meta));
        } else {
            return Err(Error::BadCorpusFile {
                path: path.clone(),
                detail: "an input file should end in .txt (one document) or .jsonl (one document per line, a \"text\" field)".into(),
            });
        }
    }
    Ok(files)
}

fn is_input(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("txt" | "jsonl"))
}

fn input_file(path: &Path, meta: &std::fs::Metadata) -> InputFile {
    let modified =
        meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
    InputFile { path: path.to_path_buf(), bytes: meta.len(), modified }
}

fn walk(dir: &Path, files: &mut Vec<InputFile>) -> Result<()> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            entries.push(entry.path());
        }
    }
    entries.sort();
    for path in entries {
        let meta = std::fs::metadata(&path).map_err(Error::io("read the metadata of", &path))?;
        if meta.is_dir() {
            walk(&path, files)?;
        } else if is_input(&path) {
            files.push(input_file(&path, &meta));
        }
    }
    Ok(())
}

/// One record as read: an id and its bytes, or why it could not be read whole.
struct Record {
    id: String,
    body: Body,
    /// Bytes it took in the input.
    len: u64,
}

enum Body {
    Txt(Vec<u8>),
    JsonLine(Vec<u8>),
    TooLarge,
}

/// Streams the records of every input in order; reads at most `max` bytes of any one record.
struct Records {
    files: std::vec::IntoIter<InputFile>,
    current: Option<(PathBuf, BufReader<File>, usize)>,
    max: usize,
}

impl Records {
    fn new(files: &[InputFile], max: usize) -> Self {
        Self { files: files.to_vec().into_iter(), current: None, max }
    }

    fn next(&mut self) -> Result<Option<Record>> {
        loop {
            if let Some((path, reader, line)) = &mut self.current {
                let (bytes, len) = read_line_capped(reader, self.max).map_err(Error::io("read", &*path))?;
                if len == 0 {
                    self.current = None;
                    continue;
                }
                *line += 1;
                let id = format!("{}:{}", path.display(), line);
                let body = match bytes {
                    Some(b) if b.iter().all(u8::is_ascii_whitespace) => continue,
                    Some(b) => Body::JsonLine(b),
                    None => Body::TooLarge,
                };
                return Ok(Some(Record { id, body, len }));
            }
            let Some(file) = self.files.next() else { return Ok(None) };
            let path = file.path;
            if path.extension().and_then(|e| e.to_str()) == Some("jsonl") {
                let f = File::open(&path).map_err(Error::io("open", &path))?;
                self.current = Some((path, BufReader::with_capacity(1 << 20, f), 0));
                continue;
            }
            let id = path.display().to_string();
            if file.bytes > self.max as u64 {
                return Ok(Some(Record { id, body: Body::TooLarge, len: file.bytes }));
            }
            let mut bytes = Vec::with_capacity(file.bytes as usize);
            File::open(&path)
                .and_then(|f| f.take(self.max as u64 + 1).read_to_end(&mut bytes))
                .map_err(Error::io("read", &path))?;
            let len = bytes.len() as u64;
            let body = if bytes.len() > self.max { Body::TooLarge } else { Body::Txt(bytes) };
            return Ok(Some(Record { id, body, len }));
        }
    }
}

/// One line (without its newline): `None` for the bytes when it is longer than `max` (the rest is
/// skipped without being kept); the second value is the bytes consumed, 0 at the end.
fn read_line_capped(reader: &mut impl BufRead, max: usize) -> std::io::Result<(Option<Vec<u8>>, u64)> {
    let mut line = Vec::new();
    let mut too_long = false;
    let mut consumed = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let (take, done) = match memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if !too_long {
            let part = &buf[..if done { take - 1 } else { take }];
            if line.len() + part.len() > max {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(part);
            }
        }
        reader.consume(take);
        consumed += take as u64;
        if done {
            break;
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok((if too_long { None } else { Some(line) }, consumed))
}

fn memchr(byte: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == byte)
}

/// The next chunk of records, or an empty vector at the end.
fn next_chunk(records: &mut Records, cfg: &CleanConfig) -> Result<Vec<Record>> {
    let mut chunk = Vec::new();
    let mut bytes = 0u64;
    while chunk.len() < cfg.chunk_docs && (chunk.is_empty() || bytes < cfg.chunk_bytes as u64) {
        let Some(record) = records.next()? else { break };
        bytes += record.len;
        chunk.push(record);
    }
    Ok(chunk)
}

// ---------------------------------------------------------------------------------------------
// One document

/// What pass 1 decided about one record.
enum Outcome {
    Kept { id: String, text: String, keys: Vec<u64>, pii: PiiCounts, stripped: u64 },
    Removed { id: String, reason: String, text: Option<String>, contamination: Option<Contamination> },
}

/// The benchmarks a removed document overlapped, and its first overlapping n-gram.
struct Contamination {
    benchmarks: Vec<String>,
    ngram: String,
}

/// The pass-1 machinery shared by every thread.
struct Stages<'a> {
    cfg: &'a CleanConfig,
    languages: Vec<whatlang::Lang>,
    decontam: Option<&'a Decontaminator>,
    pii: Option<PiiScrubber>,
    minhash: Option<MinHasher>,
}

impl Stages<'_> {
    fn process(&self, record: Record) -> Outcome {
        let Record { id, body, .. } = record;
        let removed = |id: String, reason: &str, text: Option<String>| Outcome::Removed {
            id,
            reason: reason.to_string(),
            text,
            contamination: None,
        };
        let text = match body {
            Body::TooLarge => return removed(id, "too_large", None),
            Body::Txt(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => return removed(id, "not_utf8", None),
            },
            Body::JsonLine(bytes) => match json_text(&bytes) {
                Ok(text) => text,
                Err(reason) => return removed(id, reason, None),
            },
        };
        let text = self.normalise(text);
        if text.trim().is_empty() {
            return removed(id, "empty", None);
        }
        // Before the filters, so the report counts every contaminated document of the corpus,
        // whatever else would have removed it (or the lines holding the item).
        if let Some(decontam) = self.decontam {
            let hits = decontam.hits(&text);
            if let Some(first) = hits.first() {
                let ngram = first.ngram.clone();
                let mut benchmarks: Vec<String> = hits.into_iter().map(|h| h.benchmark).collect();
                benchmarks.sort();
                benchmarks.dedup();
                return Outcome::Removed {
                    id,
                    reason: "contaminated".into(),
                    text: Some(text),
                    contamination: Some(Contamination { benchmarks, ngram }),
                };
            }
        }
        if let Some(reason) = self.language(&text) {
            return removed(id, reason, Some(text));
        }
        let before = text.len();
        let mut text = match self.cfg.filters.check(&text) {
            Ok(std::borrow::Cow::Borrowed(_)) => text,
            Ok(std::borrow::Cow::Owned(kept)) => kept,
            Err(reason) => return removed(id, reason, Some(text)),
        };
        let stripped = before.saturating_sub(text.len()) as u64;
        let mut pii = PiiCounts::default();
        if let Some(scrubber) = &self.pii {
            let (scrubbed, counts) = scrubber.scrub(&text);
            pii = counts;
            if let std::borrow::Cow::Owned(s) = scrubbed {
                text = s;
            }
        }
        let mut keys = Vec::new();
        if self.cfg.dedup.exact {
            keys.push(exact_key(&text));
        }
        if let Some(hasher) = &self.minhash {
            keys.extend(hasher.bucket_keys(&hasher.signature(&text)));
        }
        Outcome::Kept { id, text, keys, pii, stripped }
    }

    /// NFC (when configured), and `read_corpus`'s LF line ends and no byte-order mark.
    fn normalise(&self, text: String) -> String {
        let mut text = crate::corpus::normalise(&text);
        if self.cfg.unicode_nfc && is_nfc_quick(text.chars()) != IsNormalized::Yes {
            text = text.nfc().collect();
        }
        text
    }

    /// `Some(reason)` when the document is not in a kept language with enough confidence.
    fn language(&self, text: &str) -> Option<&'static str> {
        if !self.cfg.language.enabled {
            return None;
        }
        let end = text.char_indices().nth(self.cfg.language.sample_chars).map_or(text.len(), |(i, _)| i);
        match whatlang::detect(&text[..end]) {
            Some(info) if self.languages.contains(&info.lang()) && info.confidence() >= self.cfg.language.threshold => {
                None
            }
            Some(info) if self.languages.contains(&info.lang()) => Some("language_low_confidence"),
            _ => Some("language"),
        }
    }
}

/// The `text` field of a JSONL line, or the removal reason.
fn json_text(bytes: &[u8]) -> std::result::Result<String, &'static str> {
    if std::str::from_utf8(bytes).is_err() {
        return Err("not_utf8");
    }
    match serde_json::from_slice::<serde_json::Value>(bytes).map_err(|_| "bad_json")? {
        serde_json::Value::Object(mut map) => match map.remove("text") {
            Some(serde_json::Value::String(s)) => Ok(s),
            _ => Err("no_text_field"),
        },
        _ => Err("no_text_field"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tallies and the report

/// Documents and bytes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tally {
    pub docs: u64,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.docs += 1;
        self.bytes += bytes;
    }
    fn merge(&mut self, other: Tally) {
        self.docs += other.docs;
        self.bytes += other.bytes;
    }
}

/// What one chunk's pass 1 did; summed into the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ChunkStats {
    input: Tally,
    kept: Tally,
    removed: BTreeMap<String, Tally>,
    /// Bytes of boilerplate lines the C4 rules removed from kept documents.
    stripped_bytes: u64,
    pii: PiiCounts,
    /// Documents removed per benchmark they overlapped.
    contamination: BTreeMap<String, u64>,
}

/// The run's report (`report.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CleanReport {
    pub input: Tally,
    pub output: Tally,
    /// By reason: each filter's name for what it dropped, `exact_duplicate`, `near_duplicate`,
    /// `contaminated`, and the input problems (`not_utf8`, `bad_json`, `no_text_field`,
    /// `too_large`, `empty`).
    pub removed: BTreeMap<String, Tally>,
    pub stripped_bytes: u64,
    pub pii: PiiCounts,
    pub contamination: BTreeMap<String, u64>,
    /// Near-duplicate (or exact, when near is off) clusters: cluster size -> clusters of that size.
    pub duplicate_clusters: BTreeMap<usize, usize>,
    pub shards: usize,
    pub seconds: f64,
    pub docs_per_sec: f64,
    pub mb_per_sec: f64,
    pub threads: usize,
    pub config: CleanConfig,
}

/// What `clean.json` holds: the run's identity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct RunId {
    format: u32,
    inputs: Vec<InputFile>,
    config: CleanConfig,
}

// ---------------------------------------------------------------------------------------------
// The run

/// How to run (the parts that do not change what is written).
pub struct CleanOptions {
    pub show_progress: bool,
    /// Replace an output folder that is not an earlier clean run of the same inputs and config.
    pub force: bool,
}

/// Clean `inputs` into `out`. Resumes an interrupted run of the same inputs and config; a
/// finished one is returned as it is. `decontam` holds the evaluation items to check against.
pub fn clean(
    inputs: &[PathBuf],
    out: &Path,
    cfg: &CleanConfig,
    decontam: Option<&Decontaminator>,
    opts: &CleanOptions,
) -> Result<CleanReport> {
    cfg.validate()?;
    let files = list_inputs(inputs)?;
    for input in inputs {
        atomic::check_not_inside(out, input, "input")?;
        let (Ok(o), Ok(i)) = (std::path::absolute(out), std::path::absolute(input)) else { continue };
        if input.is_dir() && o.starts_with(&i) {
            return Err(Error::Invalid(format!(
                "--out {} is inside the input folder {}: the next run would read its own output as input; \
                 choose an output folder outside it",
                out.display(),
                input.display()
            )));
        }
    }
    let id = RunId { format: FORMAT, inputs: files.clone(), config: cfg.clone() };
    prepare_output(out, &id, opts.force)?;
    if let Some(report) = finished_report(out)? {
        return Ok(report);
    }
    let started = Instant::now();
    let work = out.join(WORK);
    std::fs::create_dir_all(&work).map_err(Error::io("create", &work))?;
    std::fs::create_dir_all(out.join("removed")).map_err(Error::io("create", out.join("removed")))?;

    let stages = Stages {
        cfg,
        languages: cfg.language.languages.iter().filter_map(|c| whatlang::Lang::from_code(c)).collect(),
        decontam: if cfg.decontamination.enabled { decontam } else { None },
        pii: Some(PiiScrubber::new(&cfg.pii)),
        minhash: cfg.dedup.near.then(|| MinHasher::new(cfg.dedup.minhash.clone())),
    };
    let total: u64 = files.iter().map(|f| f.bytes).sum();
    let bar = progress_bar(total, opts.show_progress);
    let mut records = Records::new(&files, cfg.max_doc_bytes);
    let mut chunks = Vec::new();
    let mut docs_seen = 0u64;
    loop {
        let index = chunks.len();
        let chunk = next_chunk(&mut records, cfg)?;
        if chunk.is_empty() {
            break;
        }
        let stats_path = work.join(format!("chunk_{index:05}.stats.json"));
        let stats = match read_json::<ChunkStats>(&stats_path)? {
            Some(stats) => stats,
            None => run_chunk(chunk, index, out, &stages)?,
        };
        docs_seen += stats.input.docs;
        bar.inc(stats.input.bytes);
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{docs_seen} docs, {:.0} docs/s", docs_seen as f64 / secs));
        chunks.push(stats);
    }
    bar.finish_and_clear();

    let (clusters_by_size, dup_removed) = dedup_and_write(out, &chunks, cfg, opts.show_progress)?;

    let mut report = CleanReport { config: cfg.clone(), threads: rayon::current_num_threads(), ..Default::default() };
    for s in &chunks {
        report.input.merge(s.input);
        for (reason, t) in &s.removed {
            report.removed.entry(reason.clone()).or_default().merge(*t);
        }
        report.stripped_bytes += s.stripped_bytes;
        report.pii += s.pii;
        for (b, n) in &s.contamination {
            *report.contamination.entry(b.clone()).or_default() += n;
        }
        report.output.merge(s.kept);
    }
    for (reason, t) in dup_removed {
        report.output.docs -= t.docs;
        report.output.bytes -= t.bytes;
        report.removed.entry(reason).or_default().merge(t);
    }
    report.duplicate_clusters = clusters_by_size;
    report.shards = chunks.len();
    report.seconds = started.elapsed().as_secs_f64();
    report.docs_per_sec = report.input.docs as f64 / report.seconds.max(1e-9);
    report.mb_per_sec = report.input.bytes as f64 / 1e6 / report.seconds.max(1e-9);
    write_report(out, &report)?;
    std::fs::remove_dir_all(&work).map_err(Error::io("remove", &work))?;
    Ok(report)
}

/// Create `out` with its `clean.json`, or check that the one there is this run's.
fn prepare_output(out: &Path, id: &RunId, force: bool) -> Result<()> {
    let marker = out.join(MARKER);
    if let Some(existing) = read_json::<RunId>(&marker)? {
        if &existing == id {
            return Ok(());
        }
        if !force {
            return Err(Error::Invalid(format!(
                "{} holds a clean run of other inputs or another config (its {MARKER} differs); \
                 choose another --out, or pass --force to start it over",
                out.display()
            )));
        }
    } else {
        atomic::check_output(out, "clean output", MARKER, force)?;
    }
    if out.exists() {
        clear_output(out)?;
    }
    std::fs::create_dir_all(out).map_err(Error::io("create", out))?;
    atomic::write_file(&marker, &json_bytes(id)?)?;
    Ok(())
}

/// Remove what an earlier run wrote (and, with `--force`, whatever is there).
fn clear_output(out: &Path) -> Result<()> {
    for entry in std::fs::read_dir(out).map_err(Error::io("list", out))? {
        let path = entry.map_err(Error::io("list", out))?.path();
        let result = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        result.map_err(Error::io("remove", &path))?;
    }
    Ok(())
}

fn finished_report(out: &Path) -> Result<Option<CleanReport>> {
    if out.join(WORK).exists() {
        return Ok(None);
    }
    read_json(&out.join("report.json"))
}

/// Pass 1 over one chunk; writes its files (stats last) and returns the stats.
fn run_chunk(chunk: Vec<Record>, index: usize, out: &Path, stages: &Stages) -> Result<ChunkStats> {
    let lens: Vec<u64> = chunk.iter().map(|r| r.len).collect();
    let outcomes: Vec<Outcome> = chunk.into_par_iter().map(|r| stages.process(r)).collect();
    let work = out.join(WORK);
    let mut stats = ChunkStats::default();
    let mut kept = StagedFile::create(&work.join(format!("chunk_{index:05}.kept.jsonl")))?;
    let mut keys = StagedFile::create(&work.join(format!("chunk_{index:05}.keys")))?;
    let mut removed = StagedFile::create(&out.join("removed").join(format!("filtered_{index:05}.jsonl")))?;
    for (outcome, len) in outcomes.into_iter().zip(lens) {
        stats.input.add(len);
        match outcome {
            Outcome::Kept { id, text, keys: k, pii, stripped } => {
                stats.kept.add(text.len() as u64);
                stats.stripped_bytes += stripped;
                stats.pii += pii;
                write_line(&mut kept, &serde_json::json!({ "id": id, "text": text }))?;
                let mut bytes = Vec::with_capacity(4 + 8 * k.len());
                bytes.extend_from_slice(&(k.len() as u32).to_le_bytes());
                k.iter().for_each(|key| bytes.extend_from_slice(&key.to_le_bytes()));
                let tmp = keys.tmp_path().to_path_buf();
                keys.writer().write_all(&bytes).map_err(Error::io("write", tmp))?;
            }
            Outcome::Removed { id, reason, text, contamination } => {
                stats.removed.entry(reason.clone()).or_default().add(len);
                let mut line = serde_json::json!({ "id": id, "reason": reason });
                if let Some(c) = contamination {
                    for b in &c.benchmarks {
                        *stats.contamination.entry(b.clone()).or_default() += 1;
                    }
                    line["benchmarks"] = serde_json::json!(c.benchmarks);
                    line["ngram"] = serde_json::json!(c.ngram);
                }
                if let Some(text) = text {
                    line["text"] = serde_json::Value::String(text);
                }
                write_line(&mut removed, &line)?;
            }
        }
    }
    kept.commit()?;
    keys.commit()?;
    removed.commit()?;
    atomic::write_file(&work.join(format!("chunk_{index:05}.stats.json")), &json_bytes(&stats)?)?;
    Ok(stats)
}

/// Find the duplicates over every chunk's keys, then write the output shards.
/// Returns the cluster sizes and the bytes removed as duplicates, by reason.
fn dedup_and_write(
    out: &Path,
    chunks: &[ChunkStats],
    cfg: &CleanConfig,
    show_progress: bool,
) -> Result<(BTreeMap<usize, usize>, BTreeMap<String, Tally>)> {
    let work = out.join(WORK);
    let exact = cfg.dedup.exact;
    let bands = if cfg.dedup.near { cfg.dedup.minhash.num_buckets } else { 0 };
    let budget = cfg.dedup.memory_mib << 20;
    let mut exact_index = if exact { Some(DupIndex::new(&work.join("exact"), 1, budget / 4)?) } else { None };
    let mut near_index = if bands > 0 { Some(DupIndex::new(&work.join("near"), bands, budget)?) } else { None };
    let mut doc = 0u64;
    for index in 0..chunks.len() {
        let path = work.join(format!("chunk_{index:05}.keys"));
        let bytes = std::fs::read(&path).map_err(Error::io("read", &path))?;
        let mut at = 0;
        let next_u32 = |at: &mut usize| -> Result<u32> {
            let b = bytes.get(*at..*at + 4).ok_or_else(|| corrupt(&path))?;
            *at += 4;
            Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
        };
        let mut keys = Vec::new();
        while at < bytes.len() {
            let n = next_u32(&mut at)? as usize;
            keys.clear();
            for _ in 0..n {
                let b = bytes.get(at..at + 8).ok_or_else(|| corrupt(&path))?;
                keys.push(u64::from_le_bytes(b.try_into().expect("8 bytes")));
                at += 8;
            }
            if keys.len() != usize::from(exact) + bands {
                return Err(corrupt(&path));
            }
            let (e, near) = keys.split_at(usize::from(exact));
            if let Some(ix) = &mut exact_index {
                ix.add(doc, e)?;
            }
            if let Some(ix) = &mut near_index {
                ix.add(doc, near)?;
            }
            doc += 1;
        }
    }
    let exact_clusters = exact_index.map(DupIndex::finish).transpose()?;
    let near_clusters = near_index.map(DupIndex::finish).transpose()?;
    let sizes = near_clusters.as_ref().or(exact_clusters.as_ref()).map(|c| c.sizes()).unwrap_or_default();

    let bar = progress_bar(chunks.iter().map(|c| c.kept.bytes).sum(), show_progress);
    bar.set_prefix("writing");
    let mut removed = BTreeMap::<String, Tally>::new();
    let mut doc = 0u64;
    for index in 0..chunks.len() {
        let kept_path = work.join(format!("chunk_{index:05}.kept.jsonl"));
        let reader = BufReader::new(File::open(&kept_path).map_err(Error::io("open", &kept_path))?);
        let dest = out.join(format!("clean_{index:05}.jsonl"));
        let done = dest.exists();
        let mut clean = if done { None } else { Some(StagedFile::create(&dest)?) };
        let mut dups = if done {
            None
        } else {
            Some(StagedFile::create(&out.join("removed").join(format!("duplicates_{index:05}.jsonl")))?)
        };
        for line in reader.lines() {
            let line = line.map_err(Error::io("read", &kept_path))?;
            let value: serde_json::Value = serde_json::from_str(&line).map_err(|_| corrupt(&kept_path))?;
            let text_len = value["text"].as_str().map_or(0, str::len) as u64;
            let dup = if exact_clusters.as_ref().is_some_and(|c| c.is_duplicate(doc)) {
                Some(("exact_duplicate", exact_clusters.as_ref().map(|c| c.kept_of(doc))))
            } else if near_clusters.as_ref().is_some_and(|c| c.is_duplicate(doc)) {
                Some(("near_duplicate", near_clusters.as_ref().map(|c| c.kept_of(doc))))
            } else {
                None
            };
            match dup {
                Some((reason, of)) => {
                    removed.entry(reason.to_string()).or_default().add(text_len);
                    if let Some(f) = &mut dups {
                        let mut v = value;
                        v["reason"] = reason.into();
                        v["of_doc"] = of.into();
                        write_line(f, &v)?;
                    }
                }
                None => {
                    if let Some(f) = &mut clean {
                        f.writer().write_all(line.as_bytes()).map_err(Error::io("write", f.tmp_path()))?;
                        f.writer().write_all(b"\n").map_err(Error::io("write", f.tmp_path()))?;
                    }
                }
            }
            bar.inc(text_len);
            doc += 1;
        }
        if let (Some(clean), Some(dups)) = (clean, dups) {
            dups.commit()?;
            clean.commit()?;
        }
    }
    bar.finish_and_clear();
    Ok((sizes, removed))
}

fn corrupt(path: &Path) -> Error {
    Error::Invalid(format!(
        "{} is damaged (not what this run wrote); delete the output folder's .work and run again",
        path.display()
    ))
}

fn write_line(file: &mut StagedFile, value: &serde_json::Value) -> Result<()> {
    let tmp = file.tmp_path().to_path_buf();
    let w = file.writer();
    serde_json::to_writer(&mut *w, value).map_err(|e| Error::io("write", &tmp)(e.into()))?;
    w.write_all(b"\n").map_err(Error::io("write", &tmp))
}

fn json_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Invalid(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

fn progress_bar(total_bytes: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
    let template = "{prefix} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} \
                    {binary_bytes_per_sec} {msg} ETA {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_prefix("cleaning");
    bar
}

// ---------------------------------------------------------------------------------------------
// Report files

fn write_report(out: &Path, report: &CleanReport) -> Result<()> {
    atomic::write_file(&out.join("report.md"), report_markdown(report).as_bytes())?;
    atomic::write_file(&out.join("report.svg"), report_chart(report).as_bytes())?;
    // Last: its presence (with no .work) says the run is finished.
    Ok(atomic::write_file(&out.join("report.json"), &json_bytes(report)?)?)
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// The report as Markdown.
pub fn report_markdown(r: &CleanReport) -> String {
    let mut md = String::from("# Corpus cleaning report\n\n");
    md += &format!(
        "| | documents | bytes |\n|---|---|---|\n| in | {} | {} |\n| out | {} ({:.1}%) | {} ({:.1}%) |\n\n",
        r.input.docs,
        r.input.bytes,
        r.output.docs,
        pct(r.output.docs, r.input.docs),
        r.output.bytes,
        pct(r.output.bytes, r.input.bytes)
    );
    md += &format!(
        "{:.1} s on {} threads: {:.0} documents/s, {:.1} MB/s. C4 line rules removed {} bytes of boilerplate lines \
         from kept documents.\n\n",
        r.seconds, r.threads, r.docs_per_sec, r.mb_per_sec, r.stripped_bytes
    );
    md += "## Removed, by reason\n\n| reason | documents | % of input | bytes |\n|---|---|---|---|\n";
    let mut reasons: Vec<_> = r.removed.iter().collect();
    reasons.sort_by(|a, b| b.1.docs.cmp(&a.1.docs).then(a.0.cmp(b.0)));
    for (reason, t) in reasons {
        md += &format!("| {reason} | {} | {:.2} | {} |\n", t.docs, pct(t.docs, r.input.docs), t.bytes);
    }
    md += "\n## Duplicate clusters\n\n| cluster size | clusters |\n|---|---|\n";
    for (size, n) in &r.duplicate_clusters {
        md += &format!("| {size} | {n} |\n");
    }
    md += &format!(
        "\n## PII replaced\n\n| e-mail | IP | phone | card |\n|---|---|---|---|\n| {} | {} | {} | {} |\n",
        r.pii.email, r.pii.ip, r.pii.phone, r.pii.card
    );
    md += "\n## Contamination (documents removed, by benchmark)\n\n";
    if r.contamination.is_empty() {
        md += "None found.\n";
    } else {
        md += "| benchmark | documents |\n|---|---|\n";
        for (b, n) in &r.contamination {
            md += &format!("| {b} | {n} |\n");
        }
    }
    md
}

/// Documents removed by each reason, as a horizontal bar chart.
pub fn report_chart(r: &CleanReport) -> String {
    use ingot_core::chart::{Bar, Chart};
    let mut bars: Vec<Bar> =
        r.removed.iter().map(|(reason, t)| Bar::new(reason.clone(), pct(t.docs, r.input.docs), None)).collect();
    bars.push(Bar::new("kept", pct(r.output.docs, r.input.docs), None));
    Chart::new(format!("Where {} documents went", r.input.docs))
        .x_label("% of input documents")
        .horizontal()
        .bars("documents", bars)
        .to_svg()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// configs/clean.toml documents every field at its default: it must say what the code does.
    #[test]
    fn the_bundled_config_holds_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/clean.toml");
        if std::env::var_os("INGOT_PRINT_CLEAN_CONFIG").is_some() {
            println!("{}", toml::to_string_pretty(&CleanConfig::default()).unwrap());
        }
        let cfg = CleanConfig::from_toml(&path).unwrap();
        assert_eq!(cfg, CleanConfig::default());
    }
}
