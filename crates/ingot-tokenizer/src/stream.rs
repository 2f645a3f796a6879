//! [`TokenStream`]: turn generated token ids into text as they arrive, never emitting half a
//! character.
//!
//! A character can span several tokens (byte-level BPE splits an emoji's four UTF-8 bytes; a
//! SentencePiece vocabulary falls back to `<0xF0>` ... tokens), and decoding a token on its own is
//! wrong for SentencePiece, whose decoder drops the leading space of the first token. So, as
//! text-generation-inference and HF's `DecodeStream` do, we decode a short window of recent
//! tokens twice: `prefix` (tokens already emitted, kept as context) and `prefix + new`. The new
//! text is the difference, emitted once it does not end in U+FFFD (an incomplete UTF-8 sequence).
//! The window then slides so its start is always at a character boundary.

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// Incremental detokenizer for one generation.
#[derive(Debug)]
pub struct TokenStream<'a> {
    tokenizer: &'a Tokenizer,
    skip_special: bool,
    /// The window: `ids[..read]` were emitted and are kept only as context, `ids[read..]` are
    /// pushed but not yet emitted.
    ids: Vec<u32>,
    read: usize,
    /// `decode(ids[..read])`, cached.
    prefix_text: String,
}

impl<'a> TokenStream<'a> {
    /// With `skip_special`, special tokens (`<|im_end|>`, BOS) produce no text.
    pub fn new(tokenizer: &'a Tokenizer, skip_special: bool) -> Self {
        Self { tokenizer, skip_special, ids: Vec::new(), read: 0, prefix_text: String::new() }
    }

    /// Add one generated token; returns the text it completes, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        let vocab_size = self.tokenizer.vocab_size();
        if id as usize >= vocab_size {
            return Err(Error::UnknownId { id, vocab_size });
        }
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids, self.skip_special)?;
        if text.len() <= self.prefix_text.len() || text.ends_with('\u{FFFD}') {
            return Ok(None);
        }
        // Decoders used here only append as tokens are added, so the old text is a prefix; if a
        // decoder ever broke that, hold the text back and let `finish` emit it.
        let Some(new) = text.strip_prefix(self.prefix_text.as_str()) else { return Ok(None) };
        let new = new.to_string();

        // Slide: the tokens just emitted become the whole context.
        self.ids.drain(..self.read);
        self.read = self.ids.len();
        self.prefix_text = self.tokenizer.decode(&self.ids, self.skip_special)?;
        Ok(Some(new))
    }

    /// Whatever has been pushed but not emitted (an incomplete character comes out as U+FFFD).
    pub fn finish(&mut self) -> Option<String> {
        if self.read == self.ids.len() {
            return None;
        }
        // Every id was decoded successfully by `push`, so decoding cannot fail here; should it
        // anyway, the unemitted tokens are decoded alone.
        let text = self.tokenizer.decode(&self.ids, self.skip_special).ok()?;
        let rest = match text.strip_prefix(self.prefix_text.as_str()) {
            Some(rest) => rest.to_string(),
            None => self.tokenizer.decode(&self.ids[self.read..], self.skip_special).ok()?,
        };
        self.ids.clear();
        self.read = 0;
        self.prefix_text.clear();
        Some(rest).filter(|s| !s.is_empty())
    }
}

impl Tokenizer {
    /// A [`TokenStream`] for one generation.
    pub fn stream(&self, skip_special: bool) -> TokenStream<'_> {
        TokenStream::new(self, skip_special)
    }
}
