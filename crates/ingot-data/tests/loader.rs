//! Loading prepared folders and sampling batches: determinism by (seed, step, micro-step),
//! targets shifted by one, fixed evaluation batches, and clear errors.

use ingot_data::{prepare, BatchSampler, Document, Error, PrepareOptions, Split, TokenDataset};
use ingot_test_support::{temp_dir, TempDir};
use ingot_tokenizer::Tokenizer;

/// test-support's six-document corpus (Shakespeare's opening lines) as ingot-data documents.
fn small_corpus() -> Vec<Document> {
    ingot_test_support::small_corpus().into_iter().map(|d| Document { id: d.name, text: d.text }).collect()
}

/// A character tokenizer of the documents, `<|endoftext|>` as the separator.
fn char_tokenizer(docs: &[Document]) -> Tokenizer {
    ingot_test_support::char_tokenizer(docs.iter().map(|d| d.text.as_str()))
}

/// A prepared folder of the small corpus (3 train documents, 3 val).
fn prepared(name: &str) -> TempDir {
    let docs = small_corpus();
    let tok = char_tokenizer(&docs);
    let out = temp_dir(name);
    prepare(&docs, &tok, &out, &PrepareOptions { val_fraction: 0.34, ..PrepareOptions::default() }).unwrap();
    out
}

#[test]
fn batches_are_a_function_of_seed_step_and_micro() {
    let dir = prepared("loader-determinism");
    let ds = TokenDataset::open(&dir, Split::Train).unwrap();
    let (b, t) = (4, 16);
    let sampler = BatchSampler::new(1337);

    let (inputs, targets) = sampler.batch(&ds, 10, 0, b, t).unwrap();
    assert_eq!((inputs.len(), targets.len()), (b * t, b * t));
    assert_eq!(sampler.batch(&ds, 10, 0, b, t).unwrap(), (inputs.clone(), targets.clone()), "same step, same batch");
    // A fresh sampler with the same seed (a resumed run) draws the same batch.
    assert_eq!(BatchSampler::new(1337).batch(&ds, 10, 0, b, t).unwrap().0, inputs);
    assert_ne!(sampler.batch(&ds, 11, 0, b, t).unwrap().0, inputs, "next step, new batch");
    assert_ne!(sampler.batch(&ds, 10, 1, b, t).unwrap().0, inputs, "next micro-step, new batch");
    assert_ne!(BatchSampler::new(1338).batch(&ds, 10, 0, b, t).unwrap().0, inputs, "other seed, new batch");

    // Each row is a window of the data; targets are the same window shifted by one.
    let all = ds.window(0, ds.len() as usize).unwrap();
    for row in 0..b {
        let x = &inputs[row * t..(row + 1) * t];
        let y = &targets[row * t..(row + 1) * t];
        assert_eq!(&x[1..], &y[..t - 1]);
        let start = (0..=all.len() - t - 1).find(|&s| all[s..s + t] == *x && all[s + 1..s + t + 1] == *y);
        assert!(start.is_some(), "row {row} is not a window of the split");
    }
}

#[test]
fn starts_cover_the_whole_range() {
    let dir = prepared("loader-coverage");
    let ds = TokenDataset::open(&dir, Split::Train).unwrap();
    // Context len - 1 leaves exactly two possible starts, 0 and 1; both should appear.
    let t = ds.len() as usize - 2;
    let all = ds.window(0, ds.len() as usize).unwrap();
    let mut seen = [false; 2];
    for step in 0..64 {
        let (x, _) = BatchSampler::new(5).batch(&ds, step, 0, 1, t).unwrap();
        let start = if x[..] == all[..t] { 0 } else { 1 };
        assert_eq!(x[..], all[start..start + t]);
        seen[start] = true;
    }
    assert_eq!(seen, [true, true]);
}

#[test]
fn eval_batches_are_fixed_and_distinct_from_training() {
    let dir = prepared("loader-eval");
    let val = TokenDataset::open(&dir, Split::Val).unwrap();
    let sampler = BatchSampler::new(1);
    let a = sampler.eval_batches(&val, 3, 2, 8).unwrap();
    assert_eq!(a, sampler.eval_batches(&val, 3, 2, 8).unwrap());
    assert_eq!(a.len(), 3);
    assert_ne!(a[0], a[1]);
    assert_ne!(a[0], sampler.batch(&val, 0, 0, 2, 8).unwrap());
    assert_eq!(a[2], sampler.eval_batch(&val, 2, 2, 8).unwrap());
}

#[test]
fn too_small_splits_and_bad_shapes_are_reported() {
    let dir = prepared("loader-too-small");
    let ds = TokenDataset::open(&dir, Split::Val).unwrap();
    let sampler = BatchSampler::new(0);
    let context = ds.len() as usize; // needs len + 1 tokens
    let err = sampler.batch(&ds, 0, 0, 1, context).unwrap_err();
    assert!(matches!(err, Error::TooFewTokens { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&format!("the val split has {} tokens", ds.len())), "{message}");
    assert!(message.contains(&format!("needs {}", ds.len() + 1)), "{message}");
    sampler.batch(&ds, 0, 0, 1, context - 1).unwrap();

    let err = sampler.batch(&ds, 0, 0, 0, 4).unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[test]
fn damaged_or_mismatched_folders_are_refused() {
    let dir = prepared("loader-damaged");
    // Truncate a shard: opening the split says so.
    let shard = dir.join("train_00000.bin");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 1]).unwrap();
    let err = TokenDataset::open(&dir, Split::Train).unwrap_err().to_string();
    assert!(err.contains("train_00000.bin is truncated") && err.contains("re-run `ingot data prepare`"), "{err}");
    // The other split is untouched.
    TokenDataset::open(&dir, Split::Val).unwrap();

    // A shard from another preparation (different tokenizer) in the folder.
    let other = temp_dir("loader-other");
    let docs: Vec<_> = small_corpus()
        .into_iter()
        .map(|mut d| {
            d.text.push('~');
            d
        })
        .collect();
    let other_tok = char_tokenizer(&docs);
    prepare(&docs, &other_tok, &other, &PrepareOptions { val_fraction: 0.34, ..PrepareOptions::default() }).unwrap();
    std::fs::copy(other.join("train_00000.bin"), &shard).unwrap();
    let err = TokenDataset::open(&dir, Split::Train).unwrap_err().to_string();
    assert!(err.contains("the tokenizer hash is") && err.contains("mixes two preparations"), "{err}");

    let val = TokenDataset::open(&dir, Split::Val).unwrap();
    let err = val.check_tokenizer(&other_tok).unwrap_err().to_string();
    assert!(err.contains("re-run `ingot data prepare` with this tokenizer"), "{err}");

    std::fs::remove_file(dir.join("dataset.json")).unwrap();
    let err = TokenDataset::open(&dir, Split::Train).unwrap_err().to_string();
    assert!(err.contains("dataset.json: missing"), "{err}");
}
