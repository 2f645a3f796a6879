//! [`Tokenizer`]: an HF `tokenizers::Tokenizer` plus what the HF library keeps outside
//! tokenizer.json (which ids are BOS/EOS, whether to add BOS, the chat template).
//!
//! This file owns encoding, decoding, loading from a tokenizer.json folder and saving. Building
//! from GGUF metadata lives in `gguf.rs`, streaming detokenization in `stream.rs`.

use std::path::Path;
use std::str::FromStr;

use ingot_core::atomic::write_file;
use serde::Deserialize;

use crate::chat::{ChatTemplate, Prompt};
use crate::error::{Error, Result};

/// Tokens that end a turn in common chat formats. Chat models stop on these rather than on the
/// tokenizer's EOS (SmolLM2 and Qwen use `<|im_end|>`, Llama 3 `<|eot_id|>`, Gemma
/// `<end_of_turn>`); llama.cpp keeps a similar list for the same reason.
const END_OF_TURN_TOKENS: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|endoftext|>",
    "<|end|>",
    "<end_of_turn>",
    "<|end_of_text|>",
    "<|end▁of▁sentence|>",
];

/// A text tokenizer with the ids and flags a generation loop needs.
#[derive(Clone)]
pub struct Tokenizer {
    pub(crate) inner: tokenizers::Tokenizer,
    pub(crate) bos: Option<u32>,
    pub(crate) eos: Option<u32>,
    pub(crate) pad: Option<u32>,
    pub(crate) unk: Option<u32>,
    /// EOS plus every end-of-turn token present as a special token; sorted, no duplicates.
    pub(crate) eos_ids: Vec<u32>,
    pub(crate) add_bos: bool,
    pub(crate) add_eos: bool,
    pub(crate) chat_template: Option<ChatTemplate>,
    /// Cached: `tokenizers` rebuilds the whole vocabulary map to count it (~1 ms at 49k tokens),
    /// too slow to ask once per generated token.
    pub(crate) vocab_size: usize,
    /// The special (control) tokens' spellings and ids, longest first, for finding them in the
    /// markup of a [`Prompt`]; `inner` itself is set never to match them.
    pub(crate) specials: Vec<(String, u32)>,
}

/// A summary: the derived form would print the whole vocabulary.
impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eos_ids", &self.eos_ids)
            .field("pad", &self.pad)
            .field("unk", &self.unk)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("chat_template", &self.chat_template.is_some())
            .finish()
    }
}

impl Tokenizer {
    /// Load `tokenizer.json`, and from the same folder `tokenizer_config.json` (BOS/EOS tokens,
    /// `add_bos_token`, chat template), `chat_template.jinja` and `generation_config.json`
    /// (extra EOS ids), each if present.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = read_text(path)?;
        // tokenizers 0.22 panics ("Helper") on a JSON syntax error inside the "decoder" object
        // instead of returning it; check the syntax first so that a damaged file is an error.
        serde_json::from_str::<serde::de::IgnoredAny>(&text)
            .map_err(|source| ingot_core::Error::Json { path: path.to_path_buf(), cause: source })?;
        let inner = tokenizers::Tokenizer::from_str(&text)
            .map_err(Error::hf(format!("parsing {} as a tokenizer.json", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new("."));

        let config_path = dir.join("tokenizer_config.json");
        let config: TokenizerConfig = read_json_if_present(&config_path)?.unwrap_or_default();
        let id_of = |field: &Option<TokenField>| field.as_ref().and_then(|f| inner.token_to_id(f.content()));
        let (bos, eos) = (id_of(&config.bos_token), id_of(&config.eos_token));
        let (pad, unk) = (id_of(&config.pad_token), id_of(&config.unk_token));

        // tokenizer_config.json wins; without it, see what the file's post-processor adds.
        let (probed_bos, probed_eos) = probe_post_processor(&inner, bos, eos)?;
        let add_bos = config.add_bos_token.unwrap_or(probed_bos);
        let add_eos = config.add_eos_token.unwrap_or(probed_eos);

        let mut extra_eos = Vec::new();
        let generation_path = dir.join("generation_config.json");
        if let Some(generation) = read_json_if_present::<GenerationConfig>(&generation_path)? {
            extra_eos = generation.eos_token_id.map(IdOrIds::into_vec).unwrap_or_default();
        }

        let source = match config.chat_template {
            Some(TemplateField::One(source)) => Some(source),
            Some(TemplateField::Named(list)) => list.into_iter().find(|t| t.name == "default").map(|t| t.template),
            None => read_text_if_present(&dir.join("chat_template.jinja"))?,
        };
        let token_text = |id: Option<u32>| id.and_then(|id| inner.id_to_token(id)).unwrap_or_default();
        let chat_template = source
            .map(|s| ChatTemplate::new(s, token_text(bos), token_text(eos)))
            .transpose()
            .map_err(|e| in_file(&config_path, e))?;

        Ok(Self::assemble(inner, [bos, eos, pad, unk], &extra_eos, add_bos, add_eos, chat_template))
    }

    /// Fill in the derived fields (the end-of-turn ids, the special tokens) and stop `inner`
    /// from reading special tokens in text. `roles` is `[bos, eos, pad, unk]`.
    pub(crate) fn assemble(
        mut inner: tokenizers::Tokenizer,
        roles: [Option<u32>; 4],
        extra_eos: &[u32],
        add_bos: bool,
        add_eos: bool,
        chat_template: Option<ChatTemplate>,
    ) -> Self {
        let [bos, eos, pad, unk] = roles;
        let added = inner.get_added_tokens_decoder();
        let is_special = |id: &u32| added.get(id).is_some_and(|t| t.special);
        let mut eos_ids: Vec<u32> = END_OF_TURN_TOKENS
            .iter()
            .filter_map(|text| inner.token_to_id(text))
            .filter(is_special)
            .chain(eos)
            .chain(extra_eos.iter().copied())
            .collect();
        eos_ids.sort_unstable();
        eos_ids.dedup();
        let mut specials: Vec<(String, u32)> = added
            .iter()
            .filter(|(_, t)| t.special && !t.content.is_empty())
            .map(|(&id, t)| (t.content.clone(), id))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        // From here on HF reads `<|im_end|>` in text as the characters it is made of (its
        // `split_special_tokens`); `encode_prompt` finds special tokens in markup itself.
        // Non-special added tokens (a vocabulary's `<tool_call>`) are still matched.
        inner.set_encode_special_tokens(true);
        let vocab_size = inner.get_vocab_size(true);
        Self { inner, bos, eos, pad, unk, eos_ids, add_bos, add_eos, chat_template, vocab_size, specials }
    }

    /// Token ids of `text`, which is read as text: a special token's spelling such as
    /// `<|im_end|>` becomes the ordinary tokens of its characters, never the control token, so
    /// nothing a user, a tool or a document supplies can end a turn or forge one. With
    /// `add_special`, BOS (and EOS) are added when the model's tokenizer config asks for them.
    /// For a chat template's output use [`Tokenizer::encode_prompt`].
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        self.encode_prompt(&Prompt::text_only(text), add_special)
    }

    /// Token ids of a [`Prompt`]: special-token spellings become their ids inside its markup
    /// only, content is read as text (as by [`Tokenizer::encode`]). With `add_special`, BOS/EOS
    /// are added as for `encode`; a rendered chat template holds its own, so it passes false.
    ///
    /// The ids equal HF's encoding of the whole text with special tokens parsed, wherever the
    /// content spells none: HF also cuts the text at special tokens and encodes the pieces
    /// between them alone, which is what is done here, cutting at the markup's only.
    pub fn encode_prompt(&self, prompt: &Prompt, add_special: bool) -> Result<Vec<u32>> {
        let text = prompt.as_str();
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            ids.extend(self.bos);
        }
        let mut piece_start = 0;
        for range in prompt.markup_ranges() {
            let mut at = range.start;
            while at < range.end {
                let markup = &text[at..range.end];
                match self.specials.iter().find(|(spelling, _)| markup.starts_with(spelling.as_str())) {
                    Some((spelling, id)) => {
                        self.encode_text_into(&text[piece_start..at], &mut ids)?;
                        ids.push(*id);
                        at += spelling.len();
                        piece_start = at;
                    }
                    None => at += markup.chars().next().map_or(1, char::len_utf8),
                }
            }
        }
        self.encode_text_into(&text[piece_start..], &mut ids)?;
        if add_special && self.add_eos {
            ids.extend(self.eos);
        }
        Ok(ids)
    }

    /// As [`Tokenizer::encode`] but with every special-token spelling read as its id: for text
    /// the program writes itself (markup, test fixtures), never for anything a user supplied.
    pub fn encode_markup(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        self.encode_prompt(&Prompt::markup(text), add_special)
    }

    /// Append the ids of `text` read as text (no special tokens). The HF post-processor is
    /// bypassed so that GGUF- and JSON-built tokenizers add BOS/EOS by the same two flags.
    fn encode_text_into(&self, text: &str, ids: &mut Vec<u32>) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let encoding =
            self.inner.encode(text, false).map_err(Error::hf(format!("encoding {} bytes of text", text.len())))?;
        ids.extend_from_slice(encoding.get_ids());
        Ok(())
    }

    /// Text of `ids`; with `skip_special`, special tokens (BOS, `<|im_end|>`, ...) are left out.
    /// Bytes that do not form valid UTF-8 come out as U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let vocab_size = self.vocab_size();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(Error::UnknownId { id, vocab_size });
        }
        self.inner.decode(ids, skip_special).map_err(Error::hf(format!("decoding {} token ids", ids.len())))
    }

    /// Number of token ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// Every id that should stop generation: EOS and the end-of-turn tokens the vocabulary has
    /// as special tokens (e.g. `<|im_end|>`).
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }

    pub fn unk_id(&self) -> Option<u32> {
        self.unk
    }

    /// Whether `encode(_, true)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(_, true)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// The wrapped HF tokenizer, for what this type does not expose (offsets, training). It is
    /// set to read special-token spellings as text (`set_encode_special_tokens(true)`).
    pub fn hf(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Write the HF `tokenizer.json` (atomically). Role ids, flags and the chat template live
    /// in `tokenizer_config.json`: see [`Tokenizer::save_config`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let json = self
            .inner
            .to_string(true)
            .map_err(Error::hf(format!("serializing the tokenizer for {}", path.display())))?;
        Ok(write_file(path, json.as_bytes())?)
    }

    /// The `tokenizer.json` text [`Tokenizer::save`] writes.
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(true).map_err(Error::hf("serializing the tokenizer".to_string()))
    }

    /// The `tokenizer_config.json` text [`Tokenizer::save_config`] writes.
    pub fn config_json(&self) -> String {
        let text = |id: Option<u32>| id.and_then(|id| self.inner.id_to_token(id));
        let config = serde_json::json!({
            "bos_token": text(self.bos),
            "eos_token": text(self.eos),
            "pad_token": text(self.pad),
            "unk_token": text(self.unk),
            "add_bos_token": self.add_bos,
            "add_eos_token": self.add_eos,
            "chat_template": self.chat_template.as_ref().map(ChatTemplate::source),
        });
        // A Value of strings, bools and nulls always serializes.
        serde_json::to_string_pretty(&config).unwrap_or_else(|_| config.to_string())
    }

    /// Write an HF-style `tokenizer_config.json` (atomically) that [`Tokenizer::from_file`]
    /// reads back: BOS/EOS/PAD/UNK tokens, `add_bos_token`, `add_eos_token`, `chat_template`.
    pub fn save_config(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(write_file(path.as_ref(), self.config_json().as_bytes())?)
    }
}

/// Which of BOS/EOS the tokenizer.json's own post-processor adds, found by encoding one letter.
fn probe_post_processor(inner: &tokenizers::Tokenizer, bos: Option<u32>, eos: Option<u32>) -> Result<(bool, bool)> {
    let probe = |add| {
        inner
            .encode("a", add)
            .map(|e| e.get_ids().to_vec())
            .map_err(Error::hf("probing the tokenizer.json post-processor"))
    };
    let (plain, with_special) = (probe(false)?, probe(true)?);
    if with_special.len() <= plain.len() {
        return Ok((false, false));
    }
    Ok((
        bos.is_some() && with_special.first().copied() == bos && plain.first().copied() != bos,
        eos.is_some() && with_special.last().copied() == eos && plain.last().copied() != eos,
    ))
}

/// The fields of HF's tokenizer_config.json that Ingot uses; everything else is ignored.
#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    bos_token: Option<TokenField>,
    eos_token: Option<TokenField>,
    pad_token: Option<TokenField>,
    unk_token: Option<TokenField>,
    add_bos_token: Option<bool>,
    add_eos_token: Option<bool>,
    chat_template: Option<TemplateField>,
}

/// A special token is written either as its text or as a serialized `AddedToken`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenField {
    Text(String),
    Added { content: String },
}

impl TokenField {
    fn content(&self) -> &str {
        match self {
            TokenField::Text(s) | TokenField::Added { content: s } => s,
        }
    }
}

/// One template, or several by name (`default`, `tool_use`, ...).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Debug, Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

#[derive(Debug, Deserialize)]
struct GenerationConfig {
    eos_token_id: Option<IdOrIds>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IdOrIds {
    One(u32),
    Many(Vec<u32>),
}

impl IdOrIds {
    fn into_vec(self) -> Vec<u32> {
        match self {
            IdOrIds::One(id) => vec![id],
            IdOrIds::Many(ids) => ids,
        }
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|source| ingot_core::Error::Io { op: "read", path: path.to_path_buf(), source }.into())
}

fn read_text_if_present(path: &Path) -> Result<Option<String>> {
    if path.exists() {
        read_text(path).map(Some)
    } else {
        Ok(None)
    }
}

fn read_json_if_present<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let Some(text) = read_text_if_present(path)? else { return Ok(None) };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| ingot_core::Error::Json { path: path.to_path_buf(), cause: source }.into())
}

/// Say which file a chat-template error came from.
pub(crate) fn in_file(path: &Path, err: Error) -> Error {
    match err {
        Error::Template { detail } => Error::Template { detail: format!("{}: {detail}", path.display()) },
        other => other,
    }
}
