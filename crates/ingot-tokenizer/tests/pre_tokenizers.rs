//! `tokenizer.ggml.pre` picks how byte-level BPE splits text; one tiny vocabulary shows each
//! choice's effect on "ab 12345".

mod common;

use common::{gguf_with, strings};
use ingot_core::gguf::Value;
use ingot_tokenizer::Tokenizer;

/// Byte-level tokens ("Ġ" is the space). "ab" has no merge, so only Llama 3's ignore_merges
/// (a word already in the vocabulary is one token) produces it.
const TOKENS: &[&str] = &["Ġ", "a", "b", "ab", "1", "2", "3", "4", "5", "12", "123", "45", "12345"];
const MERGES: &[&str] = &["1 2", "12 3", "4 5", "123 45"];

fn pieces(pre: Option<&str>) -> Vec<String> {
    let mut metadata = vec![
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens", strings(TOKENS)),
        ("tokenizer.ggml.merges", strings(MERGES)),
    ];
    metadata.extend(pre.map(|p| ("tokenizer.ggml.pre", Value::String(p.into()))));
    let name = format!("pre-{}", pre.unwrap_or("none"));
    let tok = Tokenizer::from_gguf(&gguf_with(&name, metadata)).unwrap();
    let ids = tok.encode("ab 12345", false).unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), "ab 12345");
    ids.iter().map(|&id| TOKENS[id as usize].to_string()).collect()
}

#[test]
fn each_pre_tokenizer_splits_as_its_model_did() {
    // GPT-2: " 12345" is one word, merged whole.
    assert_eq!(pieces(None), ["a", "b", "Ġ", "12345"]);
    assert_eq!(pieces(Some("gpt-2")), ["a", "b", "Ġ", "12345"]);
    // SmolLM / StarCoder: digits are split apart before anything else.
    assert_eq!(pieces(Some("smollm")), ["a", "b", "Ġ", "1", "2", "3", "4", "5"]);
    // Llama 3: numbers in groups of up to three, and whole-word vocabulary hits.
    assert_eq!(pieces(Some("llama-bpe")), ["ab", "Ġ", "123", "45"]);
    // Qwen2: Llama 3's pattern with single digits, and merges as usual.
    assert_eq!(pieces(Some("qwen2")), ["a", "b", "Ġ", "1", "2", "3", "4", "5"]);
}
