//! `search`: BM25 full-text search over a folder of the user's documents, built on tantivy.
//!
//! [`SearchIndex::build`] reads every `.txt` and `.md` file under a folder (recursively, in sorted
//! order, skipping hidden entries and files that are not UTF-8), cuts each into passages of roughly
//! [`MIN_PASSAGE_WORDS`]..[`MAX_PASSAGE_WORDS`] words and indexes them; [`SearchIndex::search`]
//! returns the best passages for a query; [`SearchTool`] offers that to a model.
//!
//! Passages: a file is split on blank lines into paragraphs; consecutive short paragraphs are merged
//! until a passage holds at least [`MIN_PASSAGE_WORDS`] words (without passing
//! [`MAX_PASSAGE_WORDS`]), and a paragraph longer than [`MAX_PASSAGE_WORDS`] is cut into word windows.
//! A passage is what the model reads, so it should be a few hundred words: long enough to carry a fact
//! with its context, short enough that three of them fit comfortably in a prompt.
//!
//! Crash safety (STYLE.md habit 12): a build never writes into the live index. It builds a complete
//! index, manifest included, in the sibling folder `<index_dir>.tmp-<pid>`, then swaps it in with
//! two renames (`index_dir` -> `<index_dir>.old-<pid>`, tmp -> `index_dir`) and deletes the old one.
//! A crash before the swap leaves the previous index untouched; a crash between the two renames
//! leaves the previous index in `.old-<pid>`, which [`SearchIndex::open`] falls back to and the next
//! build puts back; a crash after leaves the new index in place. The manifest is the "complete"
//! marker: a folder without one is never opened. Leftover `.tmp-*` folders of dead builds are removed
//! by the next build.
//!
//! Queries go through tantivy's `QueryParser` in lenient mode, so user or model text (quotes,
//! colons, parentheses, `AND OR`, emoji) never fails to parse: the worst case is fewer matches.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ingot_core::atomic::{self, StagedDir};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value as _, STORED, STRING};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};

use crate::tool::{json_type_name, Tool, ToolError};

/// A passage is grown from paragraphs until it has at least this many words.
pub const MIN_PASSAGE_WORDS: usize = 100;
/// No passage has more words than this; longer paragraphs are cut into windows of this size.
pub const MAX_PASSAGE_WORDS: usize = 300;
/// Longest query searched, in characters; the rest is ignored so a huge query costs nothing.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// Most passages one search returns.
pub const MAX_K: usize = 100;
/// Characters of each passage the tool shows the model.
pub const TOOL_SNIPPET_CHARS: usize = 400;
/// Name of the manifest file inside an index folder; its presence marks the index complete.
pub const MANIFEST_FILE: &str = "ingot-manifest.json";
/// Bumped when the schema or passage rules change, so an old index asks to be rebuilt.
const FORMAT_VERSION: u32 = 1;
/// Indexing memory budget; tantivy's floor is 15 MB and a document folder needs little more.
const WRITER_MEMORY_BYTES: usize = 50_000_000;

/// Why building, opening or searching an index failed. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("documents folder {path} does not exist or is not a folder")]
    DocsDirMissing { path: PathBuf },
    #[error("no search index at {path}: run `ingot index build DIR` to index a folder of documents")]
    IndexMissing { path: PathBuf },
    #[error("search index at {path} is unreadable ({reason}); rebuild it with `ingot index build DIR`")]
    IndexCorrupt { path: PathBuf, reason: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing the index (the output-path policy, the atomic swap).
    #[error(transparent)]
    Core(#[from] ingot_core::Error),
    #[error("search index {op} failed: {source}")]
    Tantivy {
        op: &'static str,
        #[source]
        source: tantivy::TantivyError,
    },
}

pub type Result<T> = std::result::Result<T, SearchError>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SearchError + 'a {
    move |source| SearchError::Io { op, path: path.to_path_buf(), source }
}

fn tv_err(op: &'static str) -> impl FnOnce(tantivy::TantivyError) -> SearchError {
    move |source| SearchError::Tantivy { op, source }
}

/// Written inside every complete index; describes what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// The folder that was indexed, as given to the build.
    pub docs_dir: PathBuf,
    pub documents: usize,
    pub passages: usize,
    /// When the build finished, in seconds since the Unix epoch.
    pub built_at_unix_secs: u64,
    /// How long the build took.
    pub build_millis: u64,
}

/// What a build did.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildReport {
    pub manifest: Manifest,
    /// Files with a .txt/.md extension that were not indexed, with the reason (e.g. not UTF-8).
    pub skipped: Vec<(PathBuf, String)>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Path of the document relative to the indexed folder, with `/` separators.
    pub source: String,
    /// 0-based number of the passage within its document.
    pub passage: u64,
    /// BM25 score; higher is better. Only comparable within one search.
    pub score: f32,
    pub text: String,
}

/// The schema's fields, resolved once.
#[derive(Debug, Clone, Copy)]
struct Fields {
    text: Field,
    source: Field,
    passage: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    // English stemming so "indexes" finds "indexing"; positions so quoted phrases work.
    let text_opts = TextOptions::default().set_stored().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("en_stem")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let text = b.add_text_field("text", text_opts);
    let source = b.add_text_field("source", STRING | STORED);
    let passage = b.add_u64_field("passage", STORED);
    (b.build(), Fields { text, source, passage })
}

/// An open, searchable index.
pub struct SearchIndex {
    reader: IndexReader,
    parser: QueryParser,
    fields: Fields,
    manifest: Manifest,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").field("manifest", &self.manifest).finish()
    }
}

impl SearchIndex {
    /// Indexes `docs_dir` into `index_dir`, replacing any index there atomically. Refuses an
    /// `index_dir` that holds anything but an Ingot index (see [`build_staged`]).
    pub fn build(docs_dir: &Path, index_dir: &Path) -> Result<BuildReport> {
        build_staged(docs_dir, index_dir, false)?.commit()
    }

    /// [`SearchIndex::build`] that replaces whatever is at `index_dir` (`--force`); it still
    /// refuses an `index_dir` that is or contains `docs_dir`.
    pub fn build_replacing(docs_dir: &Path, index_dir: &Path) -> Result<BuildReport> {
        build_staged(docs_dir, index_dir, true)?.commit()
    }

    /// Opens the index at `index_dir`. If a build crashed between its two renames, the previous
    /// index is still complete beside it and is opened from there.
    pub fn open(index_dir: &Path) -> Result<Self> {
        if index_dir.is_dir() {
            return Self::open_complete(index_dir);
        }
        match atomic::previous_copy(index_dir) {
            Some(old) => Self::open_complete(&old),
            None => Err(SearchError::IndexMissing { path: index_dir.to_path_buf() }),
        }
    }

    fn open_complete(dir: &Path) -> Result<Self> {
        let corrupt = |reason: String| SearchError::IndexCorrupt { path: dir.to_path_buf(), reason };
        let manifest = read_manifest(dir).map_err(corrupt)?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "index format {} but this version of ingot reads format {FORMAT_VERSION}",
                manifest.format_version
            )));
        }
        let index = Index::open_in_dir(dir).map_err(|e| corrupt(e.to_string()))?;
        let field =
            |name: &str| index.schema().get_field(name).map_err(|_| corrupt(format!("schema has no `{name}` field")));
        let fields = Fields { text: field("text")?, source: field("source")?, passage: field("passage")? };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e: tantivy::TantivyError| corrupt(e.to_string()))?;
        let parser = QueryParser::for_index(&index, vec![fields.text]);
        Ok(SearchIndex { reader, parser, fields, manifest })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The `k` best passages for `query`, best first. Any text is a valid query: unparsable parts
    /// are dropped, and an empty query matches nothing. `k` is capped at [`MAX_K`].
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        let k = k.min(MAX_K);
        let query: String = query.chars().take(MAX_QUERY_CHARS).collect();
        if k == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        // Lenient: the errors only describe parts that were dropped, which a search box ignores.
        let (parsed, _dropped) = self.parser.parse_query_lenient(&query);
        let searcher = self.reader.searcher();
        let top = searcher.search(&parsed, &TopDocs::with_limit(k).order_by_score()).map_err(tv_err("search"))?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr).map_err(tv_err("reading a passage"))?;
            let text_of = |f: Field| doc.get_first(f).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            hits.push(Hit {
                source: text_of(self.fields.source),
                passage: doc.get_first(self.fields.passage).and_then(|v| v.as_u64()).unwrap_or_default(),
                score,
                text: text_of(self.fields.text),
            });
        }
        Ok(hits)
    }
}

// ---------------------------------------------------------------------------------------------
// Building and the atomic swap

/// A complete index built in its temporary folder, not yet swapped into place. Dropping it removes
/// the temporary folder; a process killed before the commit leaves it for the next build to remove.
#[derive(Debug)]
pub struct StagedIndex {
    dir: StagedDir,
    report: BuildReport,
}

impl StagedIndex {
    /// Path of the temporary folder holding the staged index.
    pub fn tmp_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Swaps the staged index into place and deletes the previous one.
    pub fn commit(self) -> Result<BuildReport> {
        self.dir.commit()?;
        Ok(self.report)
    }
}

/// Builds a complete index of `docs_dir` in a temporary folder beside `index_dir` without touching
/// `index_dir`; [`StagedIndex::commit`] swaps it in. Exposed so tests can stop between the steps.
///
/// `index_dir` must be absent, empty, or an Ingot index (it has [`MANIFEST_FILE`]), unless `force`;
/// and it may never be `docs_dir` or a folder containing it (replacing it would delete the
/// documents).
pub fn build_staged(docs_dir: &Path, index_dir: &Path, force: bool) -> Result<StagedIndex> {
    let started = Instant::now();
    if !docs_dir.is_dir() {
        return Err(SearchError::DocsDirMissing { path: docs_dir.to_path_buf() });
    }
    atomic::check_not_inside(index_dir, docs_dir, "documents folder")?;
    atomic::check_output(index_dir, "search index", MANIFEST_FILE, force)?;
    let dir = StagedDir::create(index_dir)?;
    // From here on, an error drops `staged`, which removes the temporary folder.
    let mut staged = StagedIndex {
        dir,
        report: BuildReport {
            manifest: Manifest {
                format_version: FORMAT_VERSION,
                docs_dir: docs_dir.to_path_buf(),
                documents: 0,
                passages: 0,
                built_at_unix_secs: 0,
                build_millis: 0,
            },
            skipped: Vec::new(),
        },
    };
    let tmp_dir = staged.tmp_dir().to_path_buf();

    let (schema, fields) = schema();
    let index = Index::create_in_dir(&tmp_dir, schema).map_err(tv_err("create"))?;
    // One thread: document folders are small, and one thread keeps passage order deterministic.
    let mut writer: IndexWriter =
        index.writer_with_num_threads(1, WRITER_MEMORY_BYTES).map_err(tv_err("opening writer"))?;

    let mut files = Vec::new();
    collect_files(docs_dir, index_dir, &tmp_dir, &mut files)?;
    files.sort();
    let (mut documents, mut passages) = (0, 0);
    for path in files {
        let bytes = fs::read(&path).map_err(io_err("reading", &path))?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                staged.report.skipped.push((path, "not UTF-8".to_string()));
                continue;
            }
        };
        let source = relative_source(docs_dir, &path);
        documents += 1;
        for (n, passage) in split_passages(&text).into_iter().enumerate() {
            let mut doc = TantivyDocument::default();
            doc.add_text(fields.text, &passage);
            doc.add_text(fields.source, &source);
            doc.add_u64(fields.passage, n as u64);
            writer.add_document(doc).map_err(tv_err("adding a passage"))?;
            passages += 1;
        }
    }
    writer.commit().map_err(tv_err("commit"))?;
    writer.wait_merging_threads().map_err(tv_err("merging"))?;

    let m = &mut staged.report.manifest;
    m.documents = documents;
    m.passages = passages;
    m.built_at_unix_secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    m.build_millis = started.elapsed().as_millis() as u64;
    write_manifest(&tmp_dir, m)?;
    Ok(staged)
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let path = dir.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(manifest).map_err(|e| SearchError::Io {
        op: "serializing manifest",
        path: path.clone(),
        source: e.into(),
    })?;
    // Inside the staged folder, whose commit syncs every file.
    fs::write(&path, json).map_err(io_err("writing", &path))
}

fn read_manifest(dir: &Path) -> std::result::Result<Manifest, String> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("bad manifest {}: {}", path.display(), ingot_core::text::error_text(&e)))
}

/// Every .txt/.md file under `dir`, skipping hidden entries, symlinked folders (no cycles) and the
/// index's own folders in case they sit inside the documents folder.
fn collect_files(dir: &Path, index_dir: &Path, tmp_dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(io_err("listing", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("listing", dir))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') || path == index_dir || path == tmp_dir {
            continue;
        }
        let kind = entry.file_type().map_err(io_err("inspecting", &path))?;
        if kind.is_dir() {
            collect_files(&path, index_dir, tmp_dir, out)?;
        } else if (kind.is_file() || (kind.is_symlink() && path.is_file()))
            && matches!(
                path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref(),
                Some("txt" | "md")
            )
        {
            out.push(path);
        }
    }
    Ok(())
}

fn relative_source(docs_dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(docs_dir).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Splits a document into passages; see the module docs for the rule.
pub fn split_passages(text: &str) -> Vec<String> {
    // Paragraphs: runs of non-blank lines.
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                paragraphs.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        paragraphs.push(current.join("\n"));
    }

    let mut passages = Vec::new();
    let mut acc = String::new();
    let mut acc_words = 0;
    for para in paragraphs {
        let words = para.split_whitespace().count();
        if words > MAX_PASSAGE_WORDS {
            if !acc.is_empty() {
                passages.push(std::mem::take(&mut acc));
                acc_words = 0;
            }
            let all: Vec<&str> = para.split_whitespace().collect();
            passages.extend(all.chunks(MAX_PASSAGE_WORDS).map(|c| c.join(" ")));
            continue;
        }
        if acc_words > 0 && acc_words + words > MAX_PASSAGE_WORDS {
            passages.push(std::mem::take(&mut acc));
            acc_words = 0;
        }
        if !acc.is_empty() {
            acc.push_str("\n\n");
        }
        acc.push_str(&para);
        acc_words += words;
        if acc_words >= MIN_PASSAGE_WORDS {
            passages.push(std::mem::take(&mut acc));
            acc_words = 0;
        }
    }
    if !acc.is_empty() {
        passages.push(acc);
    }
    passages
}

// ---------------------------------------------------------------------------------------------
// The tool

/// Most passages the tool returns per call, and its default.
pub const TOOL_MAX_K: u64 = 10;
pub const TOOL_DEFAULT_K: u64 = 3;

/// Full-text search over the user's indexed documents as a [`Tool`]: `query` (string), optional `k`.
#[derive(Debug)]
pub struct SearchTool {
    pub index: SearchIndex,
}

impl SearchTool {
    pub fn new(index: SearchIndex) -> Self {
        SearchTool { index }
    }
}

impl Tool for SearchTool {
    fn name(&self) -> &str {
        "search"
    }

    fn description(&self) -> &str {
        "Searches the user's own documents (notes, text and markdown files) by keywords and returns \
         the best-matching passages, each with the file it came from. Use it for facts that may be \
         in the user's documents; use specific, distinctive words rather than a whole question."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "description": "Keywords to search for, e.g. `invoice acme march`; wrap words in double quotes to match an exact phrase."
                },
                "k": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": TOOL_MAX_K,
                    "description": "How many passages to return (default 3)."
                }
            },
            "required": ["query"],
            "additionalProperties": false
        })
    }

    fn call(&self, args: &Value) -> std::result::Result<String, ToolError> {
        let query = crate::tool::required_str(self.name(), args, "query")?;
        let k = match args.get("k") {
            None | Some(Value::Null) => TOOL_DEFAULT_K,
            Some(v) => match v.as_u64() {
                Some(k) if (1..=TOOL_MAX_K).contains(&k) => k,
                _ => {
                    return Err(ToolError::WrongArgumentType {
                        tool: self.name().to_string(),
                        field: "k".to_string(),
                        expected: "an integer from 1 to 10",
                        found: if v.is_number() { "a number outside 1..=10" } else { json_type_name(v) },
                    })
                }
            },
        };
        let hits = self
            .index
            .search(query, k as usize)
            .map_err(|e| ToolError::Failed { tool: self.name().to_string(), source: Box::new(e) })?;
        if hits.is_empty() {
            return Ok(format!("No passages matched `{query}`. Try fewer or different keywords."));
        }
        Ok(format_hits(&hits))
    }
}

/// `[1] notes/x.md: <text>` per hit, whitespace collapsed, each cut to [`TOOL_SNIPPET_CHARS`].
pub fn format_hits(hits: &[Hit]) -> String {
    hits.iter()
        .enumerate()
        .map(|(i, h)| {
            let flat = h.text.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut snippet: String = flat.chars().take(TOOL_SNIPPET_CHARS).collect();
            if snippet.len() < flat.len() {
                snippet.push('…');
            }
            format!("[{}] {}: {}", i + 1, h.source, snippet)
        })
        .collect::<Vec<_>>()
        .join("\n")
}
