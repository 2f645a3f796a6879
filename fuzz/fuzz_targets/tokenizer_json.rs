//! tokenizer.json loading (`Tokenizer::from_file`, which also reads tokenizer_config.json and
//! generation_config.json from the same folder), then encode, decode, streaming decode and the
//! content hash.
//!
//! Input: tokenizer.json, then optionally tokenizer_config.json and generation_config.json,
//! joined with `ingot_fuzz::SEP`.
#![no_main]

use ingot_fuzz::{checked, fresh_dir, split_parts};
use ingot_tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

const FILES: &[&str] = &["tokenizer.json", "tokenizer_config.json", "generation_config.json"];

fuzz_target!(|data: &[u8]| {
    let dir = fresh_dir("tokenizer");
    for (name, bytes) in FILES.iter().zip(split_parts(data)) {
        std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
    }
    let Some(tok) = checked("Tokenizer::from_file", Tokenizer::from_file(dir.join(FILES[0]))) else { return };
    let text = "Hello, world! <|endoftext|> café 😀\n\tend";
    if let Some(ids) = checked("encode", tok.encode(text, true)) {
        checked("decode", tok.decode(&ids, false));
        let mut stream = tok.stream(true);
        for &id in &ids {
            checked("TokenStream::push", stream.push(id));
        }
        stream.finish();
    }
    let n = tok.vocab_size() as u32;
    checked("decode", tok.decode(&[0, n.saturating_sub(1), n, u32::MAX], true));
    checked("content_hash", tok.content_hash());
});
