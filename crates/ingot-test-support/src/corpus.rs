//! Small corpora for tests, in memory and written to disk the two ways `ingot data` reads them: a
//! folder of `.txt` files (one document each) or a `.jsonl` file (one `{"text": ...}` per line).

use std::path::{Path, PathBuf};

/// One document: the file name it is written under and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doc {
    pub name: String,
    pub text: String,
}

impl Doc {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self { name: name.into(), text: text.into() }
    }
}

/// Six short documents of different lengths (Shakespeare's opening lines), named `doc0.txt` to
/// `doc5.txt`: enough to split into train and validation and small enough to check by hand.
pub fn small_corpus() -> Vec<Doc> {
    [
        "Now is the winter of our discontent\nMade glorious summer by this sun of York;",
        "When shall we three meet again\nIn thunder, lightning, or in rain?",
        "Two households, both alike in dignity,\nIn fair Verona, where we lay our scene,",
        "Who's there?\nNay, answer me: stand, and unfold yourself.",
        "If music be the food of love, play on;",
        "In sooth, I know not why I am so sad:\nIt wearies me; you say it wearies you;\nBut how I caught it...",
    ]
    .iter()
    .enumerate()
    .map(|(i, text)| Doc::new(format!("doc{i}.txt"), *text))
    .collect()
}

/// `plays` generated "plays" (`play0.txt`, ...) of `lines` two-line speeches each, from five
/// speakers and ten words: repetitive enough that a tiny model's loss falls within a few steps,
/// varied enough that no two documents are equal.
pub fn dialogue_corpus(plays: usize, lines: usize) -> Vec<Doc> {
    let names = ["ROMEO", "JULIET", "NURSE", "MERCUTIO", "TYBALT"];
    let words = ["love", "night", "sword", "fair", "death", "moon", "heart", "name", "rose", "light"];
    (0..plays)
        .map(|d| {
            let mut text = String::new();
            for i in 0..lines {
                let who = names[(i * 7 + d) % names.len()];
                let a = words[(i * 3 + d) % words.len()];
                let b = words[(i * 5 + 2 * d + 1) % words.len()];
                text.push_str(&format!("{who}.\nO {a}, thou art my {b}.\n\n"));
            }
            Doc::new(format!("play{d}.txt"), text)
        })
        .collect()
}

/// Four "plays" (`p0.txt` to `p3.txt`) of 200 numbered lines of one sentence: the pretrain and
/// scaling tests' corpus, a few thousand BPE tokens that a tiny model learns in a few steps.
pub fn mercy_corpus() -> Vec<Doc> {
    (0..4)
        .map(|d| {
            let text: String =
                (0..200).map(|i| format!("LINE {i} of play {d}: the quality of mercy is not strained.\n")).collect();
            Doc::new(format!("p{d}.txt"), text)
        })
        .collect()
}

/// Write each document to `dir/<name>` (creating `dir`) and return `dir`.
pub fn write_txt(dir: &Path, docs: &[Doc]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    for doc in docs {
        let path = dir.join(&doc.name);
        std::fs::write(&path, &doc.text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    dir.to_path_buf()
}

/// Write the documents to `path` as JSON lines, `{"text": ..., "id": <name>}`, and return `path`.
pub fn write_jsonl(path: &Path, docs: &[Doc]) -> PathBuf {
    let lines: String =
        docs.iter().map(|d| format!("{}\n", serde_json::json!({"text": d.text, "id": d.name}))).collect();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    std::fs::write(path, lines).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path.to_path_buf()
}

/// A pre-training config (TOML) for a model small enough to train in milliseconds: the
/// `char-baby` GPT-2 preset cut to one layer of width `width` (its context too), over `corpus`,
/// batches of `width / 8` windows of `width / 2` tokens; `train` is the `[train]` section's body.
pub fn tiny_pretrain_toml(corpus: &Path, width: usize, train: &str) -> String {
    format!(
        "[model]\npreset = \"char-baby\"\nn_layer = 1\nn_head = 2\nn_embd = {width}\nn_positions = {width}\n\
         [data]\ncorpus = \"{}\"\nbatch_size = {}\ncontext = {}\neval_batches = {}\n[train]\n{train}\n",
        corpus.display(),
        (width / 8).max(1),
        width / 2,
        (width / 16).max(1),
    )
}
