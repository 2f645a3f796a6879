//! `prepare`: token counts, a by-document split chosen by the seed, reproducible bytes, shard
//! rotation, dtype choice, and the manifest.

use std::collections::BTreeSet;
use std::path::Path;

use ingot_data::{prepare, Document, Dtype, PrepareOptions, Split, TokenDataset, TokenShard};
use ingot_test_support::temp_dir;
use ingot_tokenizer::{char_level, Tokenizer, ENDOFTEXT};

/// test-support's six-document corpus (Shakespeare's opening lines) as ingot-data documents.
fn small_corpus() -> Vec<Document> {
    ingot_test_support::small_corpus().into_iter().map(|d| Document { id: d.name, text: d.text }).collect()
}

/// A character tokenizer of the documents, `<|endoftext|>` as the separator.
fn char_tokenizer(docs: &[Document]) -> Tokenizer {
    ingot_test_support::char_tokenizer(docs.iter().map(|d| d.text.as_str()))
}

fn opts(seed: u64) -> PrepareOptions {
    PrepareOptions { val_fraction: 0.34, seed, ..PrepareOptions::default() }
}

/// Every file of a prepared folder, name -> bytes.
fn folder_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn counts_split_and_content() {
    let docs = small_corpus();
    let tok = char_tokenizer(&docs);
    let out = temp_dir("prepare-counts");
    let report = prepare(&docs, &tok, &out, &opts(1337)).unwrap();
    let m = &report.manifest;

    // ceil(0.34 * 6) = 3 validation documents, disjoint from training, covering the corpus.
    assert_eq!((m.train.n_documents, m.val.n_documents), (3, 3));
    let val: BTreeSet<&str> = m.val_documents.iter().map(String::as_str).collect();
    assert_eq!(val.len(), 3);
    let train: Vec<&Document> = docs.iter().filter(|d| !val.contains(d.id.as_str())).collect();
    let val_docs: Vec<&Document> = docs.iter().filter(|d| val.contains(d.id.as_str())).collect();
    assert_eq!(train.len(), 3);

    // Tokens = each document's tokens plus one separator, per split.
    let count = |ds: &[&Document]| ds.iter().map(|d| tok.encode(&d.text, false).unwrap().len() as u64 + 1).sum::<u64>();
    assert_eq!(m.train.n_tokens, count(&train));
    assert_eq!(m.val.n_tokens, count(&val_docs));
    assert_eq!(report.n_tokens(), docs.iter().map(|d| d.text.chars().count() as u64 + 1).sum::<u64>());
    assert_eq!(m.dtype, Dtype::U16);
    assert_eq!(m.separator_id, tok.token_to_id(ENDOFTEXT).unwrap());
    assert_eq!(m.tokenizer_hash, tok.content_hash().unwrap());

    // The train split decodes to its documents in corpus order, each followed by the separator.
    let ds = TokenDataset::open(&out, Split::Train).unwrap();
    ds.check_tokenizer(&tok).unwrap();
    let text = tok.decode(&ds.window(0, ds.len() as usize).unwrap(), false).unwrap();
    let want: String = train.iter().map(|d| format!("{}{ENDOFTEXT}", d.text)).collect();
    assert_eq!(text, want);

    // The saved tokenizer is the same tokenizer.
    let saved = ingot_tokenizer::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    assert_eq!(saved.content_hash().unwrap(), m.tokenizer_hash);
    assert_eq!(saved.eos_id(), tok.eos_id());
    let shard = TokenShard::open(out.join("val_00000.bin")).unwrap();
    assert_eq!(shard.header().split, "val");
    assert_eq!(shard.header().n_documents, 3);
}

#[test]
fn same_seed_same_bytes_other_seed_other_split() {
    let docs = small_corpus();
    let tok = char_tokenizer(&docs);
    let a = temp_dir("prepare-seed-a");
    let b = temp_dir("prepare-seed-b");
    let first = prepare(&docs, &tok, &a, &opts(7)).unwrap();
    prepare(&docs, &tok, &b, &opts(7)).unwrap();
    assert_eq!(folder_bytes(&a), folder_bytes(&b), "same corpus, tokenizer and seed: identical files");

    // Over a few seeds, the validation set changes (6 choose 3 = 20 possible sets).
    let splits: BTreeSet<Vec<String>> = (0..6)
        .map(|seed| {
            let dir = temp_dir(&format!("prepare-seed-{seed}"));
            prepare(&docs, &tok, &dir, &opts(seed)).unwrap().manifest.val_documents
        })
        .collect();
    assert!(splits.len() > 1, "different seeds should choose different validation documents: {splits:?}");
    assert!(!first.manifest.val_documents.is_empty());
}

#[test]
fn rotates_shards_and_reads_across_them() {
    let docs = small_corpus();
    let tok = char_tokenizer(&docs);
    let whole = temp_dir("prepare-one-shard");
    let split = temp_dir("prepare-many-shards");
    prepare(&docs, &tok, &whole, &opts(3)).unwrap();
    // A stale shard from an earlier, bigger run is removed.
    prepare(&docs, &tok, &split, &opts(3)).unwrap();
    std::fs::write(split.join("train_00099.bin"), b"old").unwrap();
    let small = PrepareOptions { max_tokens_per_shard: 50, ..opts(3) };
    let report = prepare(&docs, &tok, &split, &small).unwrap();
    assert!(!split.join("train_00099.bin").exists());

    let shards = &report.manifest.train.shards;
    assert!(shards.len() > 3, "{shards:?}");
    assert!(shards.iter().all(|s| s.n_tokens <= 50));
    assert_eq!(shards.iter().map(|s| s.n_documents).sum::<u64>(), 3);
    assert_eq!(shards[0].file, "train_00000.bin");

    let one = TokenDataset::open(&whole, Split::Train).unwrap();
    let many = TokenDataset::open(&split, Split::Train).unwrap();
    assert_eq!(one.len(), many.len());
    assert_eq!(one.window(0, one.len() as usize).unwrap(), many.window(0, many.len() as usize).unwrap());
    // A window straddling the first shard boundary.
    assert_eq!(one.window(45, 10).unwrap(), many.window(45, 10).unwrap());
    assert!(many.window(many.len() - 2, 3).is_err());
}

#[test]
fn chooses_u32_for_large_vocabularies() {
    // 70 000 distinct characters (CJK Extension B and beyond) make a vocabulary over 65 536.
    let wide: String = (0x20000u32..0x20000 + 70_000).filter_map(char::from_u32).collect();
    let docs = vec![
        Document { id: "wide.txt".into(), text: wide.clone() },
        Document { id: "tail.txt".into(), text: wide.chars().rev().take(100).collect() },
    ];
    let tok = char_level([wide.as_str()], &[ENDOFTEXT.to_string()]).unwrap();
    assert!(tok.vocab_size() > 65_536);
    let out = temp_dir("prepare-u32");
    let report =
        prepare(&docs, &tok, &out, &PrepareOptions { val_fraction: 0.5, ..PrepareOptions::default() }).unwrap();
    assert_eq!(report.manifest.dtype, Dtype::U32);
    let ds = TokenDataset::open(&out, Split::Train).unwrap();
    let max = ds.window(0, ds.len() as usize).unwrap().into_iter().max().unwrap();
    assert!(max > 65_535, "ids above u16 survive: {max}");
}

#[test]
fn one_document_is_split_by_position() {
    let text = "abcdefghij".repeat(10);
    let docs = vec![Document { id: "input.txt".into(), text: text.clone() }];
    let tok = char_tokenizer(&docs);
    let out = temp_dir("prepare-one-doc");
    let report =
        prepare(&docs, &tok, &out, &PrepareOptions { val_fraction: 0.1, ..PrepareOptions::default() }).unwrap();
    let m = &report.manifest;
    assert_eq!((m.train.n_tokens, m.val.n_tokens), (90, 11), "the last 10 tokens plus the separator");
    assert_eq!(m.val_documents, ["input.txt (tokens 90.. of 100)"]);
}

#[test]
fn bad_options_are_refused() {
    let docs = small_corpus();
    let tok = char_tokenizer(&docs);
    let out = temp_dir("prepare-bad-options");
    for fraction in [1.0, -0.1, f64::NAN] {
        let err = prepare(&docs, &tok, &out, &PrepareOptions { val_fraction: fraction, ..PrepareOptions::default() })
            .unwrap_err();
        assert!(err.to_string().contains("val fraction must be in [0, 1)"), "{err}");
    }
    let err = prepare(&[], &tok, &out, &PrepareOptions::default()).unwrap_err();
    assert!(err.to_string().contains("no documents"), "{err}");
    let no_separator = char_level(["abc"], &[]).unwrap();
    let err = prepare(&docs, &no_separator, &out, &PrepareOptions::default()).unwrap_err();
    assert!(err.to_string().contains("neither <|endoftext|> nor an EOS"), "{err}");
}
