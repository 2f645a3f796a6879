//! Inputs found by the fuzz targets (fuzz/, `scripts/fuzz`) that once panicked, kept as bytes.

use ingot_test_support::temp_dir;
use ingot_tokenizer::Tokenizer;

/// fuzz target `tokenizer_json`: a JSON syntax error (a raw control character in a string) inside
/// the "decoder" object made tokenizers 0.22 panic ("Helper") instead of returning an error.
#[test]
fn syntax_error_inside_the_decoder_is_an_error() {
    let dir = temp_dir("fuzz-tokenizer-decoder");
    let path = dir.write("tokenizer.json", b"{\"decoder\": {\"type\": \"ByteLevel\", \"trim\": \"a\x01b\"}}");
    let err = Tokenizer::from_file(&path).expect_err("a file that is not valid JSON must not load").to_string();
    assert!(err.contains("tokenizer.json") && err.contains("control character"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
}

/// fuzz target `gguf`: a vocabulary whose merges name a token holding "\r" and a broken byte made
/// the HF library's error ("Token `\r…` out of vocabulary") reach the message raw, over two lines.
#[test]
fn library_messages_quoting_tokens_stay_on_one_line() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-gguf-token-out-of-vocab.gguf");
    let gguf = ingot_core::gguf::GgufFile::open(&path).expect("the fuzz input is a readable GGUF");
    let err = Tokenizer::from_gguf(&gguf).expect_err("its vocabulary is broken").to_string();
    assert!(!err.contains(['\n', '\r']) && err.len() < 1024, "one short line: {err:?}");
}

/// fuzz target `tokenizer_json`: the HF library's message quoted a 1 KB string from the file, and
/// (as the error's source) was printed a second time, raw, by the cause chain.
#[test]
fn library_messages_are_capped_and_not_repeated() {
    let dir = temp_dir("fuzz-tokenizer-long");
    let path = dir.write("tokenizer.json", format!("{{\"model\": \"{}\\n\"}}", "}".repeat(2000)));
    let err = Tokenizer::from_file(&path).expect_err("not a tokenizer");
    let mut line = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        line.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(line.len() < 1024 && !line.contains('\n'), "{} bytes: {line:?}", line.len());
}
