//! The character tokenizer tests build corpora and model folders with.

use ingot_tokenizer::{char_level, Tokenizer, ENDOFTEXT};

/// A character-level tokenizer of `texts` with `<|endoftext|>` as its one special token (id 0),
/// as `ingot tokenizer train --kind char` builds it.
pub fn char_tokenizer<I, S>(texts: I) -> Tokenizer
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    char_level(texts, &[ENDOFTEXT.to_string()]).unwrap_or_else(|e| panic!("cannot build a char tokenizer: {e}"))
}

/// Printable ASCII and a newline: a text whose character tokenizer encodes any English prompt
/// without unknown characters.
pub fn ascii_text() -> String {
    let mut s: String = (' '..='~').collect();
    s.push('\n');
    s
}
