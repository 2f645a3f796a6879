//! Build a [`Tokenizer`] from a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! The result should tokenize exactly as the model's original tokenizer.json did. Two model kinds
//! are supported, following llama.cpp (src/llama-vocab.cpp) for what the metadata means and HF
//! `transformers` (convert_slow_tokenizer.py) for how the equivalent HF pipeline looks:
//!
//! - `gpt2`: byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM). Tokens and "left right" merges come
//!   straight from the file; `tokenizer.ggml.pre` names how text is split before BPE.
//! - `llama`: SentencePiece BPE (Llama 2, Mistral). GGUF stores no merges, only a score per token;
//!   merges are rebuilt from the scores as HF's `SentencePieceExtractor` does.
//!
//! Tokens of type control (and unknown) become special added tokens, user-defined ones plain added
//! tokens. A special token's spelling becomes its one id only in a chat template's markup
//! (`Tokenizer::encode_prompt`); in text it is ordinary characters.

use std::path::Path;

use ingot_core::gguf::GgufFile;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, NormalizerWrapper, SplitDelimiterBehavior};

use crate::chat::ChatTemplate;
use crate::error::{Error, Result};
use crate::tokenizer::{in_file, Tokenizer};

/// Llama 3's split pattern (tiktoken cl100k): contractions, letter runs with one leading
/// non-letter, 1-3 digit groups, punctuation runs, newlines, other whitespace.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's split pattern: Llama 3's with every digit on its own.
const QWEN2_REGEX: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How byte-level BPE splits text before merging, by `tokenizer.ggml.pre`.
#[derive(Debug, Clone, Copy)]
enum PreSplit {
    /// GPT-2's regex, inside the ByteLevel pre-tokenizer.
    Gpt2,
    /// Every digit alone, then GPT-2's regex (StarCoder family, SmolLM).
    DigitsThenGpt2,
    /// Llama 3's regex; Llama 3 also sets `ignore_merges` (a word already in the vocab is one token).
    Llama3 { ignore_merges: bool },
    /// Qwen2's regex.
    Qwen2,
}

/// `tokenizer.ggml.pre` values and their split, grouped as llama.cpp groups them.
const PRE_SPLITS: &[(&str, PreSplit)] = &[
    ("default", PreSplit::Gpt2),
    ("gpt-2", PreSplit::Gpt2),
    ("phi-2", PreSplit::Gpt2),
    ("roberta-bpe", PreSplit::Gpt2),
    ("smollm", PreSplit::DigitsThenGpt2),
    ("starcoder", PreSplit::DigitsThenGpt2),
    ("refact", PreSplit::DigitsThenGpt2),
    ("codeshell", PreSplit::DigitsThenGpt2),
    ("llama-bpe", PreSplit::Llama3 { ignore_merges: true }),
    ("llama3", PreSplit::Llama3 { ignore_merges: true }),
    ("llama-v3", PreSplit::Llama3 { ignore_merges: true }),
    ("dbrx", PreSplit::Llama3 { ignore_merges: false }),
    ("smaug-bpe", PreSplit::Llama3 { ignore_merges: false }),
    ("qwen2", PreSplit::Qwen2),
    ("deepseek-r1-qwen", PreSplit::Qwen2),
];

/// GGUF token types (llama.cpp's `llama_token_type`).
const TYPE_UNKNOWN: i64 = 2;
const TYPE_CONTROL: i64 = 3;
const TYPE_USER_DEFINED: i64 = 4;

impl Tokenizer {
    /// Build the tokenizer a GGUF model was converted with, from its `tokenizer.ggml.*` keys,
    /// with its chat template (`tokenizer.chat_template`) if it has one.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let path = gguf.path();
        let model = gguf.get_str("tokenizer.ggml.model")?.ok_or_else(|| Error::Missing {
            path: path.to_path_buf(),
            key: "tokenizer.ggml.model",
            why: "so the file carries no tokenizer; use a GGUF converted with its vocabulary",
        })?;
        let tokens = gguf.get_str_array("tokenizer.ggml.tokens")?.ok_or_else(|| Error::Missing {
            path: path.to_path_buf(),
            key: "tokenizer.ggml.tokens",
            why: "the vocabulary every tokenizer needs",
        })?;
        if tokens.is_empty() {
            return Err(invalid(path, "tokenizer.ggml.tokens is empty".into()));
        }
        let types = token_types(gguf, tokens.len())?;

        // Defaults are llama.cpp's where the file is silent: SentencePiece models add BOS
        // (id 1) and use <unk> = 0; byte-level models add nothing unless they are Llama 3.
        let (mut inner, default_add_bos, default_roles) = match model {
            "gpt2" => {
                let (inner, split) = byte_level_bpe(gguf, &tokens)?;
                (inner, matches!(split, PreSplit::Llama3 { .. }), [None, None, None])
            }
            "llama" => (sentencepiece_bpe(gguf, &tokens)?, true, [Some(1), Some(2), Some(0)]),
            other => return Err(Error::UnsupportedModel { path: path.to_path_buf(), model: other.into() }),
        };

        let added: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter_map(|(&text, &ty)| match ty {
                TYPE_CONTROL | TYPE_UNKNOWN => Some(AddedToken::from(text, true).normalized(false)),
                TYPE_USER_DEFINED => Some(AddedToken::from(text, false).normalized(false)),
                _ => None,
            })
            .collect();
        inner.add_tokens(&added);

        let role = |key: &'static str, default: Option<u32>| -> Result<Option<u32>> {
            match gguf.get_u64(key)? {
                None => Ok(default.filter(|&id| (id as usize) < tokens.len())),
                Some(id) if (id as usize) < tokens.len() => Ok(Some(id as u32)),
                Some(id) => Err(invalid(path, format!("{key} = {id} but the vocabulary has {} tokens", tokens.len()))),
            }
        };
        let [default_bos, default_eos, default_unk] = default_roles;
        let bos = role("tokenizer.ggml.bos_token_id", default_bos)?;
        let eos = role("tokenizer.ggml.eos_token_id", default_eos)?;
        let pad = role("tokenizer.ggml.padding_token_id", None)?;
        let unk = role("tokenizer.ggml.unknown_token_id", default_unk)?;
        let extra_eos: Vec<u32> =
            [role("tokenizer.ggml.eot_token_id", None)?, role("tokenizer.ggml.eom_token_id", None)?]
                .into_iter()
                .flatten()
                .collect();

        let flag = |key: &str, default: bool| gguf.get(key).and_then(|v| v.as_bool()).unwrap_or(default);
        let add_bos = flag("tokenizer.ggml.add_bos_token", default_add_bos);
        let add_eos = flag("tokenizer.ggml.add_eos_token", false);

        let token_text = |id: Option<u32>| id.map_or("", |id| tokens[id as usize]);
        let chat_template = gguf
            .get_str("tokenizer.chat_template")?
            .map(|source| ChatTemplate::new(source, token_text(bos), token_text(eos)))
            .transpose()
            .map_err(|e| in_file(path, e))?;

        Ok(Tokenizer::assemble(inner, [bos, eos, pad, unk], &extra_eos, add_bos, add_eos, chat_template))
    }
}

/// `tokenizer.ggml.token_type`, or all normal (1) when absent.
fn token_types(gguf: &GgufFile, n_tokens: usize) -> Result<Vec<i64>> {
    let key = "tokenizer.ggml.token_type";
    let Some(value) = gguf.get(key) else { return Ok(vec![1; n_tokens]) };
    let bad = |detail: String| invalid(gguf.path(), detail);
    let items =
        value.as_array().ok_or_else(|| bad(format!("{key} should be an array, found {}", value.type_name())))?;
    if items.len() != n_tokens {
        return Err(bad(format!("{key} has {} entries but there are {n_tokens} tokens", items.len())));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_i64().ok_or_else(|| bad(format!("{key}[{i}] should be an integer, found {}", v.type_name())))
        })
        .collect()
}

/// The vocabulary as HF wants it. A repeated token text keeps its last id, as a Python dict would.
fn vocab(tokens: &[&str]) -> Vocab {
    tokens.iter().enumerate().map(|(id, &text)| (text.to_string(), id as u32)).collect()
}

/// Byte-level BPE (model `gpt2`): tokens and merges from the file, split by `tokenizer.ggml.pre`.
fn byte_level_bpe(gguf: &GgufFile, tokens: &[&str]) -> Result<(tokenizers::Tokenizer, PreSplit)> {
    let path = gguf.path();
    let merge_lines = gguf.get_str_array("tokenizer.ggml.merges")?.ok_or_else(|| Error::Missing {
        path: path.to_path_buf(),
        key: "tokenizer.ggml.merges",
        why: "the merge list byte-level BPE needs",
    })?;
    let merges: Merges = merge_lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            // Search after the first character, as llama.cpp does, so a left part may be a space.
            let first = line.chars().next().map_or(0, char::len_utf8);
            let split = line[first..].find(' ').map(|at| first + at);
            match split {
                Some(at) => Ok((line[..at].to_string(), line[at + 1..].to_string())),
                None => Err(invalid(
                    path,
                    format!(
                        "tokenizer.ggml.merges[{i}] = {} is not two tokens separated by a space",
                        ingot_core::text::quoted(line)
                    ),
                )),
            }
        })
        .collect::<Result<_>>()?;

    let pre = gguf.get_str("tokenizer.ggml.pre")?.unwrap_or("default");
    let split = PRE_SPLITS.iter().find(|(name, _)| *name == pre).map(|&(_, split)| split).ok_or_else(|| {
        Error::UnsupportedPreTokenizer {
            path: path.to_path_buf(),
            pre: pre.into(),
            supported: PRE_SPLITS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", "),
        }
    })?;

    let bpe = BPE::builder()
        .vocab_and_merges(vocab(tokens), merges)
        .ignore_merges(matches!(split, PreSplit::Llama3 { ignore_merges: true }))
        .build()
        .map_err(Error::hf(format!("{}: building byte-level BPE", path.display())))?;
    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(pre_tokenizer(split, path)?));
    inner.with_decoder(Some(ByteLevel::default()));
    Ok((inner, split))
}

/// The HF pre-tokenizer the original tokenizer.json has for `split`.
fn pre_tokenizer(split: PreSplit, path: &Path) -> Result<PreTokenizerWrapper> {
    // With a Split in front, ByteLevel only maps bytes to its printable alphabet.
    let byte_level = |use_regex| ByteLevel::new(false, true, use_regex);
    let regex_then_bytes = |regex: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(SplitPattern::Regex(regex.into()), SplitDelimiterBehavior::Isolated, false)
            .map_err(Error::hf(format!("{}: compiling the pre-tokenizer regex", path.display())))?;
        Ok(PreSequence::new(vec![split.into(), byte_level(false).into()]).into())
    };
    match split {
        PreSplit::Gpt2 => Ok(byte_level(true).into()),
        PreSplit::DigitsThenGpt2 => {
            Ok(PreSequence::new(vec![Digits::new(true).into(), byte_level(true).into()]).into())
        }
        PreSplit::Llama3 { .. } => regex_then_bytes(LLAMA3_REGEX),
        PreSplit::Qwen2 => regex_then_bytes(QWEN2_REGEX),
    }
}

/// SentencePiece BPE (model `llama`): merges from scores, byte fallback, "▁" for spaces.
fn sentencepiece_bpe(gguf: &GgufFile, tokens: &[&str]) -> Result<tokenizers::Tokenizer> {
    let path = gguf.path();
    let key = "tokenizer.ggml.scores";
    let value = gguf.get(key).ok_or_else(|| Error::Missing {
        path: path.to_path_buf(),
        key: "tokenizer.ggml.scores",
        why: "the token scores SentencePiece merges are rebuilt from",
    })?;
    let items = value
        .as_array()
        .ok_or_else(|| invalid(path, format!("{key} should be an array of numbers, found {}", value.type_name())))?;
    if items.len() != tokens.len() {
        return Err(invalid(path, format!("{key} has {} entries but there are {} tokens", items.len(), tokens.len())));
    }
    let scores: Vec<f32> = items
        .iter()
        .enumerate()
        .map(|(i, v)| v.as_f64().map(|s| s as f32).ok_or_else(|| invalid(path, format!("{key}[{i}] is not a number"))))
        .collect::<Result<_>>()?;

    let unk_id = gguf.get_u64("tokenizer.ggml.unknown_token_id")?.unwrap_or(0) as usize;
    let unk = tokens
        .get(unk_id)
        .ok_or_else(|| invalid(path, format!("unknown token id {unk_id} is outside the vocabulary")))?;
    let vocab = vocab(tokens);
    let merges = merges_from_scores(tokens, &scores, &vocab);
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .unk_token(unk.to_string())
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(Error::hf(format!("{}: building SentencePiece BPE", path.display())))?;

    // add_space_prefix: SentencePiece's "add_dummy_prefix" (a "▁" before the text, removed again
    // when decoding). True for Llama 2 and Mistral.
    let add_space_prefix = gguf.get("tokenizer.ggml.add_space_prefix").and_then(|v| v.as_bool()).unwrap_or(true);
    let space_to_marker = Replace::new(" ", "▁").map_err(Error::hf("building the ' ' -> '▁' normalizer"))?;
    let marker_to_space =
        DecoderWrapper::from(Replace::new("▁", " ").map_err(Error::hf("building the '▁' -> ' ' decoder"))?);
    let mut normalizers: Vec<NormalizerWrapper> = vec![space_to_marker.into()];
    let mut decoders: Vec<DecoderWrapper> = vec![marker_to_space, ByteFallback::new().into(), Fuse::new().into()];
    if add_space_prefix {
        normalizers.insert(0, Prepend::new("▁".into()).into());
        decoders.push(Strip::new(' ', 1, 0).into());
    }

    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_normalizer(Some(NormalizerSequence::new(normalizers)));
    inner.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(inner)
}

/// Rebuild BPE merges from SentencePiece scores, as HF's `SentencePieceExtractor` does: every way
/// of splitting a token into two vocabulary tokens is a merge, ranked by the merged token's score
/// (higher first), then by longer left part, then longer right part. Within one token the splits
/// are ordered by the parts' ids; the sort is stable, so ties otherwise keep vocabulary order.
fn merges_from_scores(tokens: &[&str], scores: &[f32], vocab: &Vocab) -> Merges {
    struct Candidate<'a> {
        left: &'a str,
        right: &'a str,
        score: f32,
    }
    let mut candidates = Vec::new();
    let mut local = Vec::new();
    for (&token, &score) in tokens.iter().zip(scores) {
        local.clear();
        for (at, _) in token.char_indices().skip(1) {
            let (left, right) = token.split_at(at);
            if let (Some(&l), Some(&r)) = (vocab.get(left), vocab.get(right)) {
                local.push((l, r, Candidate { left, right, score }));
            }
        }
        local.sort_by_key(|&(l, r, _)| (l, r));
        candidates.extend(local.drain(..).map(|(_, _, c)| c));
    }
    let chars = |s: &str| s.chars().count();
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| chars(b.left).cmp(&chars(a.left)))
            .then_with(|| chars(b.right).cmp(&chars(a.right)))
    });
    candidates.into_iter().map(|c| (c.left.to_string(), c.right.to_string())).collect()
}

fn invalid(path: &Path, detail: String) -> Error {
    Error::InvalidVocab { path: path.to_path_buf(), detail }
}
