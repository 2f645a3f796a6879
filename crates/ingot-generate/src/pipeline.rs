//! A model together with its tokenizer and chat template: what every command that talks to a
//! model loads.

use std::path::{Path, PathBuf};

use candle_core::Device;
use ingot_models::{Model, ModelFiles};
use ingot_tokenizer::{Message, Prompt, Tokenizer};

use crate::error::{Error, Result};

pub struct Pipeline {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub files: ModelFiles,
    pub device: Device,
}

impl Pipeline {
    /// Load a GGUF file (tokenizer from its metadata) or a checkpoint folder (tokenizer.json).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::load_with(path, device, &ingot_models::LoadOptions::default())
    }

    /// [`Pipeline::load`] with a LoRA adapter folder (PEFT layout, e.g. written by `ingot sft`)
    /// applied to the model.
    pub fn load_with_adapter(path: &Path, adapter: Option<&Path>, device: &Device) -> Result<Self> {
        let adapters = match adapter {
            Some(dir) => Some(ingot_models::adapter::load(dir, ingot_models::adapter::RowOrder::of_model(path)?)?),
            None => None,
        };
        Self::load_with(path, device, &ingot_models::LoadOptions { adapters, ..Default::default() })
    }

    /// [`Pipeline::load`], holding weights and attaching adapters as `opts` says.
    pub fn load_with(path: &Path, device: &Device, opts: &ingot_models::LoadOptions) -> Result<Self> {
        let (model, files) = ingot_models::load_with(path, device, opts)?;
        let tokenizer = match &files.gguf {
            Some(gguf) => Tokenizer::from_gguf(gguf)?,
            None => {
                let tok_path: PathBuf = files.path.join("tokenizer.json");
                if !tok_path.exists() {
                    return Err(Error::Core(ingot_core::Error::NotFound {
                        what: "tokenizer.json".into(),
                        path: tok_path,
                        hint: " (a checkpoint folder needs its tokenizer beside the weights)".into(),
                    }));
                }
                Tokenizer::from_file(&tok_path)?
            }
        };
        if tokenizer.vocab_size() > model.vocab_size() {
            return Err(Error::Core(ingot_core::Error::Model(format!(
                "the tokenizer has {} tokens but the model's vocabulary is {}",
                tokenizer.vocab_size(),
                model.vocab_size()
            ))));
        }
        Ok(Self { model, tokenizer, files, device: device.clone() })
    }

    /// True when the model ships a chat template.
    pub fn is_chat(&self) -> bool {
        self.tokenizer.chat_template().is_some()
    }

    /// Render a conversation with the model's chat template, ready for the assistant's turn. The
    /// [`Prompt`] knows which text is the template's markup: encode it with
    /// `tokenizer.encode_prompt` (or use [`Pipeline::encode_chat`]), so that the messages' own
    /// text can never become control tokens.
    pub fn chat_prompt(&self, messages: &[Message]) -> Result<Prompt> {
        let template = self.tokenizer.chat_template().ok_or_else(|| {
            Error::Input("this model has no chat template; use --raw to send the prompt as plain text".into())
        })?;
        Ok(template.render_prompt(messages, None, true)?)
    }

    /// Token ids of a conversation rendered with the chat template, ready for the assistant's
    /// turn. A rendered template already holds its special tokens (BOS included, where the
    /// template writes one), so none are added.
    pub fn encode_chat(&self, messages: &[Message]) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode_prompt(&self.chat_prompt(messages)?, false)?)
    }

    /// Token ids for a prompt: chat-templated (`chat`) or raw text with the model's BOS policy.
    /// Either way `text` is the user's: a special token's spelling in it stays text.
    pub fn encode_prompt(&self, text: &str, chat: bool) -> Result<Vec<u32>> {
        if chat {
            self.encode_chat(&[Message::new("user", text)])
        } else {
            Ok(self.tokenizer.encode(text, true)?)
        }
    }
}
