//! The default model's tokenizer, built from its GGUF: round trips, ids implied by the file's own
//! vocabulary, special tokens, the chat template, streaming, and save/reload through tokenizer.json.

mod common;

use ingot_tokenizer::{Message, Tokenizer};

/// Text that exercises byte-level BPE: accents, CJK, emoji (multi-codepoint ones too), tabs,
/// runs of spaces and newlines, CRLF, digits.
const MIXED: &str = "Hello, world! Ça va? naïve café résumé — 日本語のテキスト 中文 한국어 😀👍🏽🇯🇵\tTabs\t\tand  two   spaces\n\nnew lines\r\n  2024-01-15 3.14159 x=42  ";

fn load() -> Option<(Tokenizer, Vec<String>)> {
    let gguf = common::smollm_gguf()?;
    let tokens = gguf.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap();
    let tokens = tokens.into_iter().map(String::from).collect();
    Some((Tokenizer::from_gguf(&gguf).expect("build the SmolLM2 tokenizer"), tokens))
}

/// The id of `text` in the GGUF's own token array (independent of the HF vocabulary).
fn gguf_id(tokens: &[String], text: &str) -> u32 {
    tokens.iter().position(|t| t == text).unwrap_or_else(|| panic!("{text:?} is not in the GGUF vocabulary")) as u32
}

#[test]
fn round_trips_mixed_text() {
    let Some((tok, _)) = load() else { return };
    for text in [MIXED, "", " ", "\n", "a", "   leading and trailing   ", "🇯🇵", "x\u{0301}"] {
        let ids = tok.encode(text, true).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text, "ids {ids:?}");
    }
}

#[test]
fn encodes_to_the_gguf_vocabulary_ids() {
    let Some((tok, tokens)) = load() else { return };
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tokens.len(), 49152);

    let expect = |text: &str, pieces: &[&str]| {
        let want: Vec<u32> = pieces.iter().map(|p| gguf_id(&tokens, p)).collect();
        assert_eq!(tok.encode(text, true).unwrap(), want, "encoding {text:?}");
    };
    expect("Hello world", &["Hello", "Ġworld"]);
    // SmolLM's Digits(individual_digits) pre-tokenizer: every digit is its own token, and the
    // space before a number stays alone.
    expect("2024", &["2", "0", "2", "4"]);
    expect("in 2024", &["in", "Ġ", "2", "0", "2", "4"]);
    for digit in 0..10 {
        assert_eq!(tok.encode(&digit.to_string(), false).unwrap().len(), 1);
    }
    // GPT-2's `\s+(?!\S)` leaves the last whitespace character for the next word, so a blank
    // line before a word is two "\n" tokens, but at the end of the text it is one "\n\n" token.
    expect("Hello\n\nworld", &["Hello", "Ċ", "Ċ", "world"]);
    expect("Hello\n\n", &["Hello", "ĊĊ"]);
}

#[test]
fn special_tokens_and_roles() {
    let Some((tok, _)) = load() else { return };
    let user = tok.token_to_id("user").unwrap();
    assert_eq!(tok.encode_markup("<|im_start|>user", true).unwrap(), [1, user]);
    assert_eq!(tok.id_to_token(1).as_deref(), Some("<|im_start|>"));
    assert_eq!(tok.decode(&[1, user, 2], false).unwrap(), "<|im_start|>user<|im_end|>");
    assert_eq!(tok.decode(&[1, user, 2], true).unwrap(), "user");

    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    assert_eq!(tok.pad_id(), Some(2));
    assert!(!tok.add_bos(), "SmolLM2's GGUF sets add_bos_token = false");
    assert!(tok.eos_ids().contains(&2));
    assert!(tok.eos_ids().contains(&0), "<|endoftext|> ends generation too: {:?}", tok.eos_ids());
    assert!(tok.decode(&[49152], false).is_err(), "an id past the vocabulary must be an error");
}

#[test]
fn chat_template_renders_like_transformers() {
    let Some((tok, _)) = load() else { return };
    let template = tok.chat_template().expect("SmolLM2 has a chat template");
    let conversation = [
        Message::system("You are terse."),
        Message::user("Hi"),
        Message::assistant("Hello!"),
        Message::user("What is 2+2?"),
    ];
    assert_eq!(
        template.render(&conversation, true).unwrap(),
        "<|im_start|>system\nYou are terse.<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello!<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
    // Without a system message the template supplies its default one.
    assert_eq!(
        template.render(&[Message::user("Hi")], false).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n"
    );
    // The rendered prompt's markers encode as single special ids.
    let ids = tok.encode_markup(&template.render(&[Message::user("Hi")], true).unwrap(), true).unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == 1).count(), 3);
    assert_eq!(ids.iter().filter(|&&id| id == 2).count(), 2);
}

#[test]
fn token_stream_emits_whole_characters_only() {
    let Some((tok, _)) = load() else { return };
    let text = "Hi 😀! 日本語で話そう 🇯🇵 café ñ👍🏽 done";
    let ids = tok.encode(text, false).unwrap();
    // The test means something only if some token holds part of a character.
    assert!(ids.iter().any(|&id| tok.decode(&[id], false).unwrap().contains('\u{FFFD}')));

    let mut stream = tok.stream(false);
    let mut chunks = Vec::new();
    for &id in &ids {
        chunks.extend(stream.push(id).unwrap());
    }
    chunks.extend(stream.finish());
    for chunk in &chunks {
        assert!(!chunk.contains('\u{FFFD}'), "chunk {chunk:?} holds half a character");
    }
    assert!(chunks.len() < ids.len(), "partial characters should have been held back");
    assert_eq!(chunks.concat(), tok.decode(&ids, false).unwrap());
    assert_eq!(chunks.concat(), text);

    // Skipping specials: the stop token adds no text.
    let ids = tok.encode_markup("<|im_start|>assistant\nSure 👍<|im_end|>", false).unwrap();
    let mut stream = tok.stream(true);
    let mut out = String::new();
    for &id in &ids {
        out += &stream.push(id).unwrap().unwrap_or_default();
    }
    out += &stream.finish().unwrap_or_default();
    assert_eq!(out, "assistant\nSure 👍");
}

#[test]
fn token_stream_finish_flushes_an_incomplete_character() {
    let Some((tok, _)) = load() else { return };
    let ids = tok.encode(" 😀", false).unwrap();
    assert!(ids.len() >= 2, "the emoji should take several byte-level tokens: {ids:?}");
    let mut stream = tok.stream(false);
    assert_eq!(stream.push(ids[0]).unwrap(), None);
    assert_eq!(stream.finish().as_deref(), Some(" \u{FFFD}"));
    assert_eq!(stream.finish(), None);
}

#[test]
fn saves_and_reloads_through_tokenizer_json() {
    let Some((tok, _)) = load() else { return };
    let dir = ingot_test_support::temp_dir("smollm-save");
    tok.save(dir.join("tokenizer.json")).unwrap();
    tok.save_config(dir.join("tokenizer_config.json")).unwrap();

    let reloaded = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    for text in [MIXED, "<|im_start|>user\nHi<|im_end|>", "2024"] {
        assert_eq!(reloaded.encode(text, true).unwrap(), tok.encode(text, true).unwrap(), "encoding {text:?}");
    }
    assert_eq!(reloaded.bos_id(), tok.bos_id());
    assert_eq!(reloaded.eos_id(), tok.eos_id());
    assert_eq!(reloaded.eos_ids(), tok.eos_ids());
    assert_eq!(reloaded.add_bos(), tok.add_bos());
    let messages = [Message::user("Hi")];
    assert_eq!(
        reloaded.chat_template().unwrap().render(&messages, true).unwrap(),
        tok.chat_template().unwrap().render(&messages, true).unwrap()
    );
}
