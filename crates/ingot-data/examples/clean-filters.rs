//! Run Ingot's document filters over a JSONL file, one thread, for `scripts/clean-compare`.
//!
//! ```text
//! cargo run --release -p ingot-data --example clean-filters -- IN.jsonl OUT.jsonl [--words WORDS.jsonl]
//! ```
//!
//! Each input line is `{"id": ..., "text": ...}`. OUT gets one line per document:
//! `{"id", "gopher_quality", "gopher_repetition", "c4"}` with `"keep"` or datatrove's drop
//! reason, and `c4_chars` (the characters C4 kept). `--words` writes each document's words.
//! The last line printed to stdout is the timing, as JSON: seconds spent in the Gopher filters
//! (word splitting included, done once for both, as datatrove's cache does) and in C4,
//! excluding reading and writing.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::time::Instant;

use ingot_data::clean::filters::{self, C4Config, GopherQualityConfig, GopherRepetitionConfig};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (input, output) = match (args.first(), args.get(1)) {
        (Some(i), Some(o)) => (i.clone(), o.clone()),
        _ => return Err("usage: clean-filters IN.jsonl OUT.jsonl [--words WORDS.jsonl]".into()),
    };
    let words_out = args.iter().position(|a| a == "--words").and_then(|i| args.get(i + 1)).cloned();

    let mut docs: Vec<(Value, String)> = Vec::new();
    for line in BufReader::new(std::fs::File::open(&input)?).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)?;
        let text = v["text"].as_str().ok_or("a line without a string \"text\"")?.to_string();
        docs.push((v["id"].clone(), text));
    }

    let (quality, repetition, c4) =
        (GopherQualityConfig::default(), GopherRepetitionConfig::default(), C4Config::default());
    let mut verdicts = Vec::with_capacity(docs.len());
    let start = Instant::now();
    for (_, text) in &docs {
        let words = filters::words(text);
        let q = filters::gopher_quality_words(text, &words, &quality);
        let r = filters::gopher_repetition_words(text, &words, &repetition);
        verdicts.push((q, r));
    }
    let gopher_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let c4_results: Vec<_> = docs.iter().map(|(_, text)| filters::c4_lines(text, &c4)).collect();
    let c4_s = start.elapsed().as_secs_f64();

    let mut out = BufWriter::new(std::fs::File::create(&output)?);
    for (((id, _), (q, r)), c) in docs.iter().zip(&verdicts).zip(&c4_results) {
        let (c4_name, c4_chars) = match c {
            Ok(kept) => ("keep", kept.chars().count()),
            Err(reason) => (*reason, 0),
        };
        let line = json!({"id": id, "gopher_quality": q.name(), "gopher_repetition": r.name(),
                          "c4": c4_name, "c4_chars": c4_chars});
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if let Some(path) = words_out {
        let mut out = BufWriter::new(std::fs::File::create(path)?);
        for (id, text) in &docs {
            writeln!(out, "{}", json!({"id": id, "words": filters::words(text)}))?;
        }
        out.flush()?;
    }
    let bytes: usize = docs.iter().map(|(_, t)| t.len()).sum();
    println!("{}", json!({"documents": docs.len(), "bytes": bytes, "gopher_seconds": gopher_s, "c4_seconds": c4_s}));
    Ok(())
}
