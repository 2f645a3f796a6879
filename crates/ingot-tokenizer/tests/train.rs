//! Tokenizer training: byte-level BPE and character-level tokenizers round-trip Shakespeare,
//! honour the vocabulary size and special tokens, and survive save/reload through tokenizer.json.

use ingot_tokenizer::{char_level, train_bpe, BpeOptions, Tokenizer, CHAR_UNK, ENDOFTEXT};

/// Public-domain Shakespeare (Sonnet 18, Hamlet III.1, Macbeth V.5), with blank lines, indents,
/// runs of spaces and punctuation.
const EXCERPTS: [&str; 3] = [
    "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n\
     Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date;\n\
     Sometime too hot the eye of heaven shines,\nAnd often is his gold complexion dimm'd;\n\
     And every fair from fair sometime declines,\nBy chance or nature's changing course untrimm'd;\n\
     But thy eternal summer shall not fade,\nNor lose possession of that fair thou ow'st;\n\
     Nor shall Death brag thou wander'st in his shade,\nWhen in eternal lines to time thou grow'st:\n\
     So long as men can breathe or eyes can see,\nSo long lives this, and this gives life to thee.\n",
    "HAMLET.\n  To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n\
     The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles,\n\
     And by opposing end them? To die: to sleep;\nNo more; and by a sleep to say we end\n\
     The heart-ache and the thousand natural shocks\nThat flesh is heir to, 'tis a consummation\n\
     Devoutly to be wish'd. To die, to sleep;\nTo sleep: perchance to dream: ay, there's the rub;\n\n\
     For in that sleep of death what dreams may come\n",
    "MACBETH.\nTo-morrow, and to-morrow, and to-morrow,\nCreeps in this petty pace from day to day\n\
     To the last syllable of recorded time,\nAnd all our yesterdays have lighted fools\n\
     The way to dusty death. Out, out, brief candle!\nLife's but a walking shadow, a poor player\n\
     That struts and frets his hour upon the stage\nAnd then is heard no more: it is a tale\n\
     Told by an idiot, full of sound and fury,\nSignifying nothing.   \t\n\n",
];

fn round_trip(tok: &Tokenizer, text: &str) {
    let ids = tok.encode(text, true).unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), text, "ids {ids:?}");
}

/// Save to a scratch folder (tokenizer.json + tokenizer_config.json) and load back.
fn reload(tok: &Tokenizer, name: &str) -> Tokenizer {
    let dir = ingot_test_support::temp_dir(name);
    tok.save(dir.join("tokenizer.json")).unwrap();
    tok.save_config(dir.join("tokenizer_config.json")).unwrap();
    Tokenizer::from_file(dir.join("tokenizer.json")).unwrap()
}

#[test]
fn char_level_round_trips_and_reloads() {
    let tok = char_level(EXCERPTS, &[ENDOFTEXT.to_string()]).unwrap();
    assert_eq!(tok.token_to_id(ENDOFTEXT), Some(0));
    assert_eq!(tok.token_to_id(CHAR_UNK), Some(1));
    assert_eq!(tok.eos_id(), Some(0));
    assert_eq!(tok.unk_id(), Some(1));
    // Ids after the specials follow code point order: '\t' < '\n' < ' ' < '!' ...
    assert_eq!(tok.token_to_id("\t"), Some(2));
    assert_eq!(tok.token_to_id("\n"), Some(3));
    assert_eq!(tok.token_to_id(" "), Some(4));

    for text in EXCERPTS {
        round_trip(&tok, text);
        assert_eq!(tok.encode(text, false).unwrap().len(), text.chars().count(), "one token per character");
    }
    let joined = format!("{}{ENDOFTEXT}{}", EXCERPTS[0], EXCERPTS[1]);
    assert_eq!(tok.decode(&tok.encode_markup(&joined, true).unwrap(), false).unwrap(), joined);
    let with_eos = tok.encode_markup(&format!("a{ENDOFTEXT}b"), false).unwrap();
    assert_eq!(with_eos[1], 0, "special token text encodes to its id: {with_eos:?}");

    let back = reload(&tok, "char-reload");
    assert_eq!(back.vocab_size(), tok.vocab_size());
    assert_eq!(back.eos_id(), Some(0));
    assert_eq!(back.unk_id(), Some(1));
    assert_eq!(back.content_hash().unwrap(), tok.content_hash().unwrap());
    for text in EXCERPTS {
        assert_eq!(back.encode(text, false).unwrap(), tok.encode(text, false).unwrap());
    }
}

#[test]
fn char_level_maps_unseen_characters_to_unk() {
    let tok = char_level(["abc ab\n"], &[ENDOFTEXT.to_string()]).unwrap();
    let ids = tok.encode("abz", false).unwrap();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[2], tok.unk_id().unwrap());
    assert_eq!(tok.decode(&ids, false).unwrap(), format!("ab{CHAR_UNK}"));
}

#[test]
fn char_level_is_deterministic_and_rejects_empty_input() {
    let a = char_level(EXCERPTS, &[ENDOFTEXT.to_string()]).unwrap();
    let b = char_level(EXCERPTS.iter().rev(), &[ENDOFTEXT.to_string()]).unwrap();
    assert_eq!(a.content_hash().unwrap(), b.content_hash().unwrap(), "ids must not depend on document order");

    let err = char_level([""], &[]).unwrap_err().to_string();
    assert!(err.contains("no text"), "{err}");
}

#[test]
fn bpe_round_trips_with_vocab_size_and_special_ids() {
    let opts = BpeOptions { vocab_size: 300, ..BpeOptions::default() };
    let tok = train_bpe(EXCERPTS, &opts).unwrap();
    assert_eq!(tok.vocab_size(), 300, "the excerpts have enough repeated pairs for 43 merges");
    assert_eq!(tok.token_to_id(ENDOFTEXT), Some(0));
    assert_eq!(tok.eos_id(), Some(0));
    assert_eq!(tok.eos_ids(), &[0]);

    for text in EXCERPTS {
        round_trip(&tok, text);
        let ids = tok.encode(text, false).unwrap();
        assert!(ids.len() < text.len(), "merges should compress: {} ids for {} bytes", ids.len(), text.len());
    }
    // Byte-level: text never seen in training still round-trips, with no unknown token.
    round_trip(&tok, "Ça va? 日本語 😀 \r\n\t  x");
    round_trip(&tok, &format!("end{ENDOFTEXT}start"));

    let back = reload(&tok, "bpe-reload");
    assert_eq!(back.eos_id(), Some(0));
    assert_eq!(back.content_hash().unwrap(), tok.content_hash().unwrap());
    assert_eq!(back.encode(EXCERPTS[1], false).unwrap(), tok.encode(EXCERPTS[1], false).unwrap());
}

#[test]
fn bpe_is_deterministic_and_orders_special_tokens() {
    let specials = vec![ENDOFTEXT.to_string(), "<|pad|>".to_string()];
    let opts = BpeOptions { vocab_size: 280, special_tokens: specials, ..BpeOptions::default() };
    let a = train_bpe(EXCERPTS, &opts).unwrap();
    let b = train_bpe(EXCERPTS, &opts).unwrap();
    assert_eq!(a.content_hash().unwrap(), b.content_hash().unwrap(), "same corpus and options, same tokenizer");
    assert_eq!(a.token_to_id("<|pad|>"), Some(1));
    assert_eq!(a.encode_markup("x<|pad|>y", false).unwrap()[1], 1);

    let other = train_bpe(EXCERPTS, &BpeOptions { vocab_size: 290, ..opts.clone() }).unwrap();
    assert_ne!(a.content_hash().unwrap(), other.content_hash().unwrap());
}

#[test]
fn bpe_rejects_a_vocab_smaller_than_the_byte_alphabet() {
    let opts = BpeOptions { vocab_size: 200, ..BpeOptions::default() };
    let err = train_bpe(EXCERPTS, &opts).unwrap_err().to_string();
    assert!(err.contains("vocab size 200") && err.contains("257"), "{err}");

    let empty = BpeOptions { special_tokens: vec![String::new()], ..BpeOptions::default() };
    let err = train_bpe(EXCERPTS, &empty).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
}

/// The real corpus: one play, a 1024-token BPE.
#[test]
fn bpe_on_hamlet() {
    let Some(corpus) = ingot_test_support::corpus_dir() else { return };
    let path = corpus.join("hamlet_gut.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let tok = train_bpe([text.as_str()], &BpeOptions { vocab_size: 1024, ..BpeOptions::default() }).unwrap();
    assert_eq!(tok.vocab_size(), 1024);
    round_trip(&tok, &text);
    let ids = tok.encode(&text, false).unwrap();
    let bytes_per_token = text.len() as f64 / ids.len() as f64;
    assert!(
        bytes_per_token > 2.5,
        "a 1024-token BPE should average over 2.5 bytes per token, got {bytes_per_token:.2}"
    );
}
