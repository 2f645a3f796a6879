//! Training a tokenizer on a corpus: GPT-2 style byte-level BPE with HF's `BpeTrainer`, and a
//! character-level tokenizer for tiny experiments. Both come back as a [`Tokenizer`] whose
//! [`Tokenizer::save`] writes an ordinary tokenizer.json that HF `tokenizers` (and Ingot) load.
//!
//! Design decisions:
//! - Byte-level BPE follows GPT-2: the ByteLevel pre-tokenizer (GPT-2's split regex, no prefix
//!   space) maps every byte to a printable character, all 256 of which seed the vocabulary, so
//!   any text encodes without an unknown token and decodes back byte for byte.
//! - Special tokens take the first ids, in the order given; `<|endoftext|>` (the default, and
//!   the document separator of `ingot data prepare`) is made the EOS. Without it, the first
//!   special token is the EOS.
//! - The character-level tokenizer is an HF BPE model with one token per character and no
//!   merges, no pre-tokenizer and a Fuse decoder (tokens are concatenated back). Characters not
//!   seen in training encode as `<|unk|>` (always in its vocabulary, after the special tokens),
//!   since failing halfway through a corpus over one stray character helps nobody; count them
//!   with [`Tokenizer::unk_id`] if that matters.
//! - [`Tokenizer::content_hash`] identifies a tokenizer by the bytes [`Tokenizer::save`] writes,
//!   so token shards can record which tokenizer produced them.

use std::collections::{BTreeSet, HashSet};

use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::bpe::{BpeTrainer, Vocab, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// The default special token: GPT-2's document separator, used as EOS.
pub const ENDOFTEXT: &str = "<|endoftext|>";

/// The character-level tokenizer's token for characters it never saw.
pub const CHAR_UNK: &str = "<|unk|>";

/// Settings of [`train_bpe`].
#[derive(Debug, Clone)]
pub struct BpeOptions {
    /// Target vocabulary size, special tokens and the 256 byte tokens included. Training stops
    /// earlier when no pair occurs `min_frequency` times, so the result may be smaller.
    pub vocab_size: usize,
    /// A pair must occur at least this often to be merged; 2 keeps one-off words out.
    pub min_frequency: u64,
    /// Tokens that are never split and take ids 0, 1, ...; the default is `<|endoftext|>`.
    pub special_tokens: Vec<String>,
    /// Ask HF's trainer for its progress bars (shown only where `tokenizers` was built with them).
    pub show_progress: bool,
}

impl Default for BpeOptions {
    fn default() -> Self {
        // 4096: small enough that a tiny model's embedding table stays small, large enough that
        // common English words are one token.
        Self { vocab_size: 4096, min_frequency: 2, special_tokens: vec![ENDOFTEXT.into()], show_progress: false }
    }
}

/// Train a GPT-2 style byte-level BPE tokenizer on `texts` (each one a document).
pub fn train_bpe<I, S>(texts: I, opts: &BpeOptions) -> Result<Tokenizer>
where
    I: IntoIterator<Item = S>,
    I::IntoIter: Send,
    S: AsRef<str> + Send,
{
    let specials = check_specials(&opts.special_tokens)?;
    // HF's trainer reserves tables for the whole target vocabulary up front: check the size and
    // the memory before it does (1e9 tokens asked for 71 GB and aborted).
    ingot_core::limits::check_bpe_training("BPE vocab size", opts.vocab_size)?;
    let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
    let floor = alphabet.len() + specials.len();
    if opts.vocab_size < floor {
        return Err(invalid(format!(
            "byte-level BPE: vocab size {} is below the {} byte tokens plus {} special tokens = {floor}",
            opts.vocab_size,
            alphabet.len(),
            specials.len()
        )));
    }

    let trainer = BpeTrainer::builder()
        .vocab_size(opts.vocab_size)
        .min_frequency(opts.min_frequency)
        .special_tokens(specials.iter().map(|s| AddedToken::from(s.clone(), true)).collect())
        .initial_alphabet(alphabet)
        .show_progress(opts.show_progress)
        .build();
    let mut trainer = TrainerWrapper::from(trainer);

    let mut inner = tokenizers::Tokenizer::new(BPE::default());
    // (add_prefix_space, trim_offsets, use_regex): GPT-2's settings.
    inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    inner.with_decoder(Some(ByteLevel::default()));
    inner.train(&mut trainer, texts.into_iter()).map_err(Error::hf("training byte-level BPE"))?;
    Ok(with_roles(inner, &specials, None))
}

/// A character-level tokenizer: the special tokens, then `<|unk|>`, then every distinct
/// character of `texts` in code point order (so the same texts always give the same ids).
pub fn char_level<I, S>(texts: I, special_tokens: &[String]) -> Result<Tokenizer>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let specials = check_specials(special_tokens)?;
    let mut chars = BTreeSet::new();
    for text in texts {
        chars.extend(text.as_ref().chars());
    }
    if chars.is_empty() {
        return Err(invalid("character-level tokenizer: the corpus has no text".into()));
    }

    let mut tokens: Vec<String> = specials.clone();
    if !tokens.iter().any(|t| t == CHAR_UNK) {
        tokens.push(CHAR_UNK.into());
    }
    for c in chars {
        let s = c.to_string();
        // A one-character special token already has its id.
        if !specials.contains(&s) {
            tokens.push(s);
        }
    }
    let vocab: Vocab = tokens.iter().enumerate().map(|(id, t)| (t.clone(), id as u32)).collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, Vec::new())
        .unk_token(CHAR_UNK.into())
        .build()
        .map_err(Error::hf("building the character-level tokenizer"))?;

    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_decoder(Some(Fuse::new()));
    // Without a pre-tokenizer each document is one "word" that BPE splits into characters;
    // there are no merges to apply.
    inner.add_special_tokens(&[AddedToken::from(CHAR_UNK, true)]);
    let unk = inner.token_to_id(CHAR_UNK);
    Ok(with_roles(inner, &specials, unk))
}

impl Tokenizer {
    /// A stable identity for this tokenizer: FNV-1a (64-bit, hex) of the tokenizer.json bytes
    /// that [`Tokenizer::save`] writes. Equal for a tokenizer and its saved-and-reloaded copy.
    pub fn content_hash(&self) -> Result<String> {
        let json = self.inner.to_string(true).map_err(Error::hf("serializing the tokenizer to hash it"))?;
        Ok(format!("{:016x}", fnv1a64(json.as_bytes())))
    }
}

/// FNV-1a, 64-bit: tiny, dependency-free and stable across platforms; not cryptographic, which
/// is fine for telling tokenizers apart.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The special tokens without repeats, in the order given; empty ones are refused.
fn check_specials(special_tokens: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(special_tokens.len());
    for token in special_tokens {
        if token.is_empty() {
            return Err(invalid("a special token cannot be the empty string".into()));
        }
        if !out.contains(token) {
            out.push(token.clone());
        }
    }
    Ok(out)
}

/// Register the special tokens and pick the EOS: `<|endoftext|>` if listed, else the first.
fn with_roles(mut inner: tokenizers::Tokenizer, specials: &[String], unk: Option<u32>) -> Tokenizer {
    let added: Vec<AddedToken> = specials.iter().map(|s| AddedToken::from(s.clone(), true)).collect();
    inner.add_special_tokens(&added);
    let eos_text = specials.iter().find(|s| *s == ENDOFTEXT).or(specials.first());
    let eos = eos_text.and_then(|s| inner.token_to_id(s));
    Tokenizer::assemble(inner, [None, eos, None, unk], &[], false, false, None)
}

fn invalid(message: String) -> Error {
    Error::Core(ingot_core::Error::Input(message))
}

#[cfg(test)]
mod tests {
    use super::fnv1a64;

    #[test]
    fn fnv1a64_known_values() {
        // Reference values of the FNV-1a 64-bit test suite (isthe.com/chongo/tech/comp/fnv).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
