//! The shard format: round trips in both widths, and clear errors (never panics) for truncated,
//! foreign or inconsistent files.

use std::path::{Path, PathBuf};

use ingot_data::{Dtype, Error, ShardWriter, TokenShard};
use ingot_test_support::{temp_dir, TempDir};

fn write_shard(path: &Path, dtype: Dtype, vocab_size: u64, ids: &[u32]) {
    let mut w = ShardWriter::create(path, dtype, vocab_size, "0123456789abcdef", "train").unwrap();
    w.push(ids).unwrap();
    w.end_document();
    w.finish().unwrap();
}

/// A valid 10-token u16 shard, to be damaged by each test.
/// The folder holding it is removed when the returned `TempDir` is dropped.
fn good_shard(name: &str) -> (TempDir, PathBuf, Vec<u8>) {
    let dir = temp_dir(name);
    let path = dir.join("train_00000.bin");
    write_shard(&path, Dtype::U16, 100, &(0..10).collect::<Vec<_>>());
    let bytes = std::fs::read(&path).unwrap();
    (dir, path, bytes)
}

fn open_err(path: &Path, bytes: &[u8]) -> (Error, String) {
    std::fs::write(path, bytes).unwrap();
    let err = TokenShard::open(path).expect_err("opening a damaged shard should fail");
    let message = err.to_string();
    assert!(message.contains("train_00000.bin"), "the message should name the file: {message}");
    assert!(message.contains("re-run `ingot data prepare`"), "the message should say what to do: {message}");
    (err, message)
}

#[test]
fn round_trips_u16_and_u32() {
    let dir = temp_dir("shards-round-trip");
    for (dtype, vocab_size, ids) in
        [(Dtype::U16, 65_536, vec![0, 1, 65_535, 300, 7]), (Dtype::U32, 100_000, vec![99_999, 0, 65_536, 12])]
    {
        let path = dir.join(format!("{}.bin", dtype.as_str()));
        write_shard(&path, dtype, vocab_size, &ids);
        let shard = TokenShard::open(&path).unwrap();
        assert_eq!(shard.len(), ids.len() as u64);
        assert_eq!(shard.header().dtype, dtype);
        assert_eq!(shard.header().n_documents, 1);
        assert_eq!(shard.header().tokenizer_hash, "0123456789abcdef");
        assert_eq!(shard.get(2), Some(ids[2]));
        assert_eq!(shard.get(ids.len() as u64), None);
        let mut out = vec![42];
        shard.read(1, 3, &mut out).unwrap();
        assert_eq!(out, [42, ids[1], ids[2], ids[3]], "read appends");
        assert!(shard.read(3, 10, &mut out).is_err());
        shard.check_ids().unwrap();
        // Tokens start at byte 512 and the file has nothing after them.
        let file_len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(file_len, 512 + ids.len() as u64 * dtype.width());
    }
    assert_eq!(Dtype::for_vocab(65_536), Dtype::U16);
    assert_eq!(Dtype::for_vocab(65_537), Dtype::U32);
}

#[test]
fn truncated_shard_says_so_with_byte_counts() {
    let (_dir, path, bytes) = good_shard("shards-truncated");
    let (err, message) = open_err(&path, &bytes[..bytes.len() - 3]);
    assert!(matches!(err, Error::TruncatedShard { expected: 20, actual: 17, .. }), "{err:?}");
    assert!(
        message.contains("is truncated") && message.contains("20 bytes") && message.contains("only 17"),
        "{message}"
    );

    // Cut inside the header, and before the length field.
    let (_, message) = open_err(&path, &bytes[..100]);
    assert!(message.contains("header length field says 500 bytes, but only 88 follow"), "{message}");
    let (_, message) = open_err(&path, &bytes[..10]);
    assert!(message.contains("shorter than the 12-byte preamble"), "{message}");
    // No tokens at all after a complete header.
    let (err, _) = open_err(&path, &bytes[..512]);
    assert!(matches!(err, Error::TruncatedShard { actual: 0, .. }), "{err:?}");
}

#[test]
fn foreign_and_inconsistent_files_are_refused() {
    let (_dir, path, bytes) = good_shard("shards-bad");

    let mut bad_magic = bytes.clone();
    bad_magic[..8].copy_from_slice(b"NOTTOKEN");
    let (_, message) = open_err(&path, &bad_magic);
    assert!(message.contains("starts with \"NOTTOKEN\", expected \"INGOTTOK\""), "{message}");

    let mut huge_header = bytes.clone();
    huge_header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let (_, message) = open_err(&path, &huge_header);
    assert!(message.contains("header length field says 4294967295 bytes"), "{message}");

    // A header length that cuts the JSON short.
    let mut short_header = bytes.clone();
    short_header[8..12].copy_from_slice(&20u32.to_le_bytes());
    let (_, message) = open_err(&path, &short_header);
    assert!(message.contains("not valid JSON"), "{message}");

    let text = String::from_utf8_lossy(&bytes[12..512]).into_owned();
    let patch = |from: &str, to: &str| {
        let mut b = bytes.clone();
        let patched = text.replacen(from, to, 1);
        assert_eq!(patched.len(), text.len(), "keep the header length");
        b[12..512].copy_from_slice(patched.as_bytes());
        b
    };
    let (_, message) = open_err(&path, &patch("\"u16\"", "\"u8\" "));
    assert!(message.contains("unknown variant `u8`"), "{message}");
    let (_, message) = open_err(&path, &patch("\"format_version\":1", "\"format_version\":9"));
    assert!(message.contains("format version 9"), "{message}");
    // n_tokens 10 -> 1: the file is longer than the header says.
    let (_, message) = open_err(&path, &patch("\"n_tokens\":10", "\"n_tokens\":1 "));
    assert!(message.contains("18 bytes follow the 1 u16 tokens"), "{message}");
    let (err, _) = open_err(&path, &patch("\"n_tokens\":10", "\"n_tokens\":99"));
    assert!(matches!(err, Error::TruncatedShard { expected: 198, actual: 20, .. }), "{err:?}");
    // An id beyond the vocabulary is caught by check_ids.
    let mut bad_id = bytes.clone();
    bad_id[512..514].copy_from_slice(&500u16.to_le_bytes());
    std::fs::write(&path, &bad_id).unwrap();
    let err = TokenShard::open(&path).unwrap().check_ids().unwrap_err();
    assert!(err.to_string().contains("token id 500 is outside the vocabulary (size 100)"), "{err}");
}

#[test]
fn writer_checks_ids_and_cleans_up() {
    let dir = temp_dir("shards-writer");
    let path = dir.join("w.bin");
    let mut w = ShardWriter::create(&path, Dtype::U16, 10, "h", "val").unwrap();
    let err = w.push(&[1, 10]).unwrap_err();
    assert!(err.to_string().contains("token id 10 is outside the vocabulary (size 10)"), "{err}");
    drop(w);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "an unfinished shard leaves no file behind");

    let err = ShardWriter::create(&path, Dtype::U16, 70_000, "h", "val").unwrap_err();
    assert!(err.to_string().contains("does not fit u16"), "{err}");
}
