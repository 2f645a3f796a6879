//! Malformed or unsupported tokenizer metadata gives an error that names the file and the key.

mod common;

use common::{gguf_with, strings};
use ingot_core::gguf::Value;
use ingot_tokenizer::{Error, Tokenizer};

fn model(kind: &str) -> (&'static str, Value) {
    ("tokenizer.ggml.model", Value::String(kind.into()))
}

fn error_of(name: &str, metadata: Vec<(&str, Value)>) -> (Error, String) {
    let gguf = gguf_with(name, metadata);
    let err = Tokenizer::from_gguf(&gguf).expect_err("building should fail");
    let message = err.to_string();
    assert!(message.contains(&format!("{name}.gguf")), "the message should name the file: {message}");
    (err, message)
}

#[test]
fn unsupported_model_kind_is_named() {
    let (err, message) = error_of("bert", vec![model("bert"), ("tokenizer.ggml.tokens", strings(&["[PAD]", "a"]))]);
    assert!(matches!(err, Error::UnsupportedModel { ref model, .. } if model == "bert"), "{err:?}");
    assert!(message.contains("'bert'") && message.contains("gpt2"), "{message}");
}

#[test]
fn missing_vocabulary_is_reported() {
    let (err, message) = error_of("no-tokens", vec![model("gpt2")]);
    assert!(matches!(err, Error::Missing { key: "tokenizer.ggml.tokens", .. }), "{err:?}");
    assert!(message.contains("tokenizer.ggml.tokens"), "{message}");

    let (err, _) = error_of("no-model", vec![("general.architecture", Value::String("llama".into()))]);
    assert!(matches!(err, Error::Missing { key: "tokenizer.ggml.model", .. }), "{err:?}");

    let (err, _) = error_of("no-merges", vec![model("gpt2"), ("tokenizer.ggml.tokens", strings(&["a", "b"]))]);
    assert!(matches!(err, Error::Missing { key: "tokenizer.ggml.merges", .. }), "{err:?}");

    let (err, _) = error_of("no-scores", vec![model("llama"), ("tokenizer.ggml.tokens", strings(&["<unk>", "a"]))]);
    assert!(matches!(err, Error::Missing { key: "tokenizer.ggml.scores", .. }), "{err:?}");
}

#[test]
fn inconsistent_metadata_is_reported() {
    let base = || vec![model("gpt2"), ("tokenizer.ggml.tokens", strings(&["a", "b", "ab"]))];

    let mut bad_merge = base();
    bad_merge.push(("tokenizer.ggml.merges", strings(&["ab"])));
    let (err, message) = error_of("bad-merge", bad_merge);
    assert!(matches!(err, Error::InvalidVocab { .. }) && message.contains("merges[0]"), "{message}");

    let mut short_types = base();
    short_types.push(("tokenizer.ggml.merges", strings(&["a b"])));
    short_types.push(("tokenizer.ggml.token_type", Value::Array(vec![Value::I32(1)])));
    let (_, message) = error_of("short-types", short_types);
    assert!(message.contains("token_type has 1 entries but there are 3 tokens"), "{message}");

    let mut bad_eos = base();
    bad_eos.push(("tokenizer.ggml.merges", strings(&["a b"])));
    bad_eos.push(("tokenizer.ggml.eos_token_id", Value::U32(7)));
    let (_, message) = error_of("bad-eos", bad_eos);
    assert!(message.contains("eos_token_id = 7"), "{message}");

    let mut unknown_pre = base();
    unknown_pre.push(("tokenizer.ggml.merges", strings(&["a b"])));
    unknown_pre.push(("tokenizer.ggml.pre", Value::String("mystery".into())));
    let (err, message) = error_of("unknown-pre", unknown_pre);
    assert!(matches!(err, Error::UnsupportedPreTokenizer { .. }), "{err:?}");
    assert!(message.contains("'mystery'") && message.contains("smollm"), "{message}");

    let mut bad_template = base();
    bad_template.push(("tokenizer.ggml.merges", strings(&["a b"])));
    bad_template.push(("tokenizer.chat_template", Value::String("{% if %}".into())));
    let (err, _) = error_of("bad-template", bad_template);
    assert!(matches!(err, Error::Template { .. }), "{err:?}");
}

#[test]
fn a_minimal_byte_level_vocabulary_works() {
    // The happy path of the same tiny file, so the failures above are failures of one key each.
    let gguf = gguf_with(
        "tiny-ok",
        vec![
            model("gpt2"),
            ("tokenizer.ggml.tokens", strings(&["a", "b", "ab"])),
            ("tokenizer.ggml.merges", strings(&["a b"])),
        ],
    );
    let tok = Tokenizer::from_gguf(&gguf).unwrap();
    assert_eq!(tok.encode("abab", true).unwrap(), [2, 2]);
    assert_eq!(tok.decode(&[2, 0], false).unwrap(), "aba");
    assert!(matches!(tok.decode(&[3], false), Err(Error::UnknownId { id: 3, vocab_size: 3 })));
    assert!(tok.chat_template().is_none());
}
