//! A SentencePiece ("llama") vocabulary made in the test: merges rebuilt from scores, byte
//! fallback, the "▁" space marker, BOS, and save/reload.

mod common;

use common::strings;
use ingot_core::gguf::Value;
use ingot_tokenizer::Tokenizer;

/// Pieces after the 3 specials and 256 byte tokens, with their scores. A merge's rank is its
/// result's score, so these make "▁hello" and "▁world" whole words: he, ll, llo, hello, ▁hello,
/// then or, ld, wor, world, ▁world.
const PIECES: &[(&str, f32)] = &[
    ("▁", -1.0),
    ("he", -3.0),
    ("ll", -4.0),
    ("llo", -5.0),
    ("hello", -6.0),
    ("▁hello", -7.0),
    ("or", -8.0),
    ("ld", -9.0),
    ("wor", -10.0),
    ("world", -11.0),
    ("▁world", -12.0),
    ("h", -20.0),
    ("e", -21.0),
    ("l", -22.0),
    ("o", -23.0),
    ("w", -24.0),
    ("r", -25.0),
    ("d", -26.0),
    ("<tool>", 0.0),
];

const FIRST_BYTE: u32 = 3;
const FIRST_PIECE: u32 = 3 + 256;

fn piece(text: &str) -> u32 {
    FIRST_PIECE + PIECES.iter().position(|(t, _)| *t == text).unwrap() as u32
}

fn byte(b: u8) -> u32 {
    FIRST_BYTE + b as u32
}

fn build(name: &str, extra: Vec<(&str, Value)>) -> Tokenizer {
    let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
    let mut scores = vec![0.0f32; 3];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        scores.push(0.0);
        types.push(6);
    }
    for (text, score) in PIECES {
        tokens.push(text.to_string());
        scores.push(*score);
        types.push(if *text == "<tool>" { 4 } else { 1 });
    }
    let token_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mut metadata = vec![
        ("tokenizer.ggml.model", Value::String("llama".into())),
        ("tokenizer.ggml.tokens", strings(&token_refs)),
        ("tokenizer.ggml.scores", Value::Array(scores.into_iter().map(Value::F32).collect())),
        ("tokenizer.ggml.token_type", Value::Array(types.into_iter().map(Value::I32).collect())),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
    ];
    metadata.extend(extra);
    Tokenizer::from_gguf(&common::gguf_with(name, metadata)).unwrap()
}

#[test]
fn merges_follow_scores_and_bytes_fall_back() {
    let tok = build("spm-basic", vec![]);
    assert_eq!(tok.encode("hello world", false).unwrap(), [piece("▁hello"), piece("▁world")]);
    // SentencePiece models add BOS by default (llama.cpp's default, and Llama 2's config).
    assert!(tok.add_bos());
    assert_eq!(tok.encode("hello world", true).unwrap(), [1, piece("▁hello"), piece("▁world")]);

    // "☃" is not in the vocabulary: its UTF-8 bytes E2 98 83 become byte tokens.
    let ids = tok.encode("hello ☃", false).unwrap();
    assert_eq!(ids, [piece("▁hello"), piece("▁"), byte(0xE2), byte(0x98), byte(0x83)]);
    assert_eq!(tok.decode(&ids, false).unwrap(), "hello ☃");

    // A partial word merges as far as the scores allow.
    assert_eq!(tok.encode("hold", false).unwrap(), [piece("▁"), piece("h"), piece("o"), piece("ld")]);
}

#[test]
fn round_trips_text_with_spaces_and_unknown_characters() {
    let tok = build("spm-roundtrip", vec![]);
    for text in ["hello world", "  hello   world  ", "héllo wörld 日本 😀", "hello\nworld\t!", "x"] {
        let ids = tok.encode(text, true).unwrap();
        assert!(!ids.contains(&0), "nothing should become <unk> with byte fallback: {text:?} -> {ids:?}");
        assert_eq!(tok.decode(&ids, true).unwrap(), text, "ids {ids:?}");
    }
}

#[test]
fn special_and_user_defined_tokens_are_single_ids() {
    let tok = build("spm-special", vec![]);
    assert_eq!(tok.encode_markup("<s>hello", false).unwrap(), [1, piece("▁hello")]);
    let with_tool = tok.encode("hello<tool>world", false).unwrap();
    assert!(with_tool.contains(&piece("<tool>")), "{with_tool:?}");
    assert_eq!(tok.decode(&[1, piece("▁hello"), 2], true).unwrap(), "hello");
    assert_eq!(tok.eos_ids(), [2]);
}

#[test]
fn add_space_prefix_false_keeps_the_first_word_bare() {
    let tok = build("spm-no-prefix", vec![("tokenizer.ggml.add_space_prefix", Value::Bool(false))]);
    assert_eq!(tok.encode("hello world", false).unwrap(), [piece("hello"), piece("▁world")]);
    assert_eq!(tok.decode(&[piece("▁world")], false).unwrap(), " world");
}

#[test]
fn token_stream_holds_byte_fallback_until_the_character_is_whole() {
    let tok = build("spm-stream", vec![]);
    let ids = tok.encode("hello ☃ world", false).unwrap();
    let mut stream = tok.stream(false);
    let outputs: Vec<Option<String>> = ids.iter().map(|&id| stream.push(id).unwrap()).collect();
    let expected = [Some("hello"), Some(" "), None, None, Some("☃"), Some(" world")];
    assert_eq!(outputs, expected.map(|s| s.map(String::from)));
    assert_eq!(stream.finish(), None);
}

#[test]
fn saves_and_reloads_through_tokenizer_json() {
    let tok = build("spm-save", vec![]);
    let dir = ingot_test_support::temp_dir("spm-save-json");
    tok.save(dir.join("tokenizer.json")).unwrap();
    tok.save_config(dir.join("tokenizer_config.json")).unwrap();
    let reloaded = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    for text in ["hello world", "héllo ☃<tool>", "  x  "] {
        assert_eq!(reloaded.encode(text, true).unwrap(), tok.encode(text, true).unwrap(), "{text:?}");
    }
    assert!(reloaded.add_bos());
    assert_eq!(reloaded.unk_id(), Some(0));
}
