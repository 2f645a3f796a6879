//! Reading a text corpus into documents.
//!
//! Accepted: a folder whose `.txt` files are one document each and whose `.jsonl` files hold one
//! document per line (an object with a string `text` field), or a single such file. Only the
//! folder's own files are read (not subfolders), sorted by name so that document order, and
//! hence the train/validation split and the shard bytes, do not depend on the file system.
//! Text is normalised once here: CRLF becomes LF and a leading byte-order mark is dropped.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One unit of the train/validation split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Where it came from: the file name for `.txt`, `file.jsonl:LINE` for JSONL (1-based line).
    pub id: String,
    pub text: String,
}

/// Read every document under `path` (see the module docs for what is accepted).
pub fn read_corpus(path: &Path) -> Result<Vec<Document>> {
    let meta = std::fs::metadata(path).map_err(|_| Error::CorpusNotFound { path: path.to_path_buf() })?;
    let files = if meta.is_dir() {
        let files = corpus_files(path)?;
        if files.is_empty() {
            return Err(Error::EmptyCorpus {
                path: path.to_path_buf(),
                detail: "the folder has no .txt or .jsonl files".into(),
            });
        }
        files
    } else {
        if kind_of(path).is_none() {
            return Err(Error::BadCorpusFile {
                path: path.to_path_buf(),
                detail: "a corpus file should end in .txt (one document) or .jsonl (one document per line)".into(),
            });
        }
        vec![path.to_path_buf()]
    };

    let mut docs = Vec::new();
    for file in &files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let text = read_text(file)?;
        match kind_of(file) {
            Some(Kind::Txt) => docs.push(Document { id: name, text }),
            Some(Kind::Jsonl) => read_jsonl(file, &name, &text, &mut docs)?,
            None => {}
        }
    }
    if docs.is_empty() {
        return Err(Error::EmptyCorpus { path: path.to_path_buf(), detail: "the .jsonl files have no lines".into() });
    }
    Ok(docs)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Txt,
    Jsonl,
}

fn kind_of(path: &Path) -> Option<Kind> {
    match path.extension()?.to_str()? {
        "txt" => Some(Kind::Txt),
        "jsonl" => Some(Kind::Jsonl),
        _ => None,
    }
}

/// The folder's .txt and .jsonl files (hidden files skipped), sorted by name.
fn corpus_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(Error::io("list the corpus folder", dir))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list the corpus folder", dir))?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && path.is_file() && kind_of(&path).is_some() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(Error::io("read", path))?;
    let text = String::from_utf8(bytes).map_err(|e| Error::BadCorpusFile {
        path: path.to_path_buf(),
        detail: format!(
            "not UTF-8 text (invalid byte at offset {}); convert it to UTF-8 first",
            e.utf8_error().valid_up_to()
        ),
    })?;
    Ok(normalise(&text))
}

/// CRLF to LF, no leading byte-order mark.
pub(crate) fn normalise(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.contains('\r') {
        text.replace("\r\n", "\n")
    } else {
        text.to_string()
    }
}

/// One document per non-blank line; anything else on a line is an error naming it.
fn read_jsonl(path: &Path, name: &str, text: &str, docs: &mut Vec<Document>) -> Result<()> {
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |detail: String| Error::BadJsonLine { path: path.to_path_buf(), line: line_no, detail };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {}", ingot_core::text::error_text(&e))))?;
        let object =
            value.as_object().ok_or_else(|| bad(format!("expected a JSON object, found {}", json_type(&value))))?;
        let text = match object.get("text") {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => return Err(bad(format!("\"text\" should be a string, found {}", json_type(other)))),
            None => {
                let keys: Vec<&str> = object.keys().map(String::as_str).collect();
                return Err(bad(format!("no \"text\" field (keys: {})", keys.join(", "))));
            }
        };
        // JSON escapes can carry CR LF too.
        docs.push(Document { id: format!("{name}:{line_no}"), text: normalise(text) });
    }
    Ok(())
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
