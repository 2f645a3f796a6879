//! Inputs found by the fuzz targets (fuzz/, `scripts/fuzz`) whose messages broke the one-line rule.

use ingot_data::{prepare, Document, PrepareOptions, Split, TokenDataset};
use ingot_test_support::{temp_dir, TempDir};

/// test-support's small corpus prepared into `dir/data`, with a character tokenizer.
fn prepared(dir: &TempDir) -> std::path::PathBuf {
    let docs: Vec<Document> =
        ingot_test_support::small_corpus().into_iter().map(|d| Document { id: d.name, text: d.text }).collect();
    let tok = ingot_test_support::char_tokenizer(docs.iter().map(|d| d.text.as_str()));
    let data = dir.join("data");
    prepare(&docs, &tok, &data, &PrepareOptions { val_fraction: 0.34, ..PrepareOptions::default() }).unwrap();
    data
}

/// fuzz target `shard`: dataset.json names its shard files, and a name with a newline was printed
/// raw (and a name like "../x" would have been opened outside the folder). Only the names
/// `prepare` writes are accepted.
#[test]
fn shard_names_in_the_manifest_are_checked() {
    let dir = temp_dir("fuzz-shard-names");
    let data = prepared(&dir);
    let manifest = std::fs::read_to_string(data.join("dataset.json")).unwrap();
    assert!(TokenDataset::open(&data, Split::Train).is_ok());
    for bad in ["tra\\n_00000.bin", "../../train_00000.bin", "train_00001.bin"] {
        std::fs::write(data.join("dataset.json"), manifest.replacen("train_00000.bin", bad, 1)).unwrap();
        let err = TokenDataset::open(&data, Split::Train).expect_err(bad).to_string();
        assert!(err.contains("expected train_00000.bin") && !err.contains('\n'), "{bad}: {err}");
    }
}

/// fuzz target `shard`: serde's message about a bad header field quoted the field's text raw,
/// newline included.
#[test]
fn a_shard_header_error_is_one_line() {
    let dir = temp_dir("fuzz-shard-header");
    let data = prepared(&dir);
    let shard = data.join("train_00000.bin");
    let bytes = std::fs::read(&shard).unwrap();
    let at = bytes.windows(5).position(|w| w == b"\"u16\"").expect("the header names its dtype");
    let mut bad = bytes.clone();
    bad[at + 2] = b'\n'; // "u\n6": same length, so only the field is wrong
    std::fs::write(&shard, bad).unwrap();
    let err = ingot_data::TokenShard::open(&shard).expect_err("a bad dtype").to_string();
    assert!(err.contains("not valid JSON") && !err.contains('\n'), "{err}");
}

/// fuzz target `shard`: serde's message about a bad dataset.json field (here a dtype holding a
/// newline and 1 KB of backslashes) quoted the text raw.
#[test]
fn a_manifest_error_is_one_short_line() {
    let dir = temp_dir("fuzz-manifest");
    let data = prepared(&dir);
    let manifest = std::fs::read_to_string(data.join("dataset.json")).unwrap();
    let hostile = format!("\"n\\n{}\"", "\\\\".repeat(600));
    std::fs::write(data.join("dataset.json"), manifest.replacen("\"u16\"", &hostile, 1)).unwrap();
    let err = TokenDataset::open(&data, Split::Train).expect_err("a bad dtype").to_string();
    assert!(err.contains("not a dataset manifest") && !err.contains('\n') && err.len() < 1024, "{err}");
}
