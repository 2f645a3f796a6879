//! A model together with its tokenizer and chat template: what every command that talks to a
//! model loads.

use std::path::{Path, PathBuf};

use candle_core::Device;
use ingot_models::{Model, ModelFiles};
use ingot_tokenizer::{Message, Tokenizer};

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
        let (model, files) = ingot_models::load(path, device)?;
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

    /// Render a conversation with the model's chat template, ready for the assistant's turn.
    pub fn chat_prompt(&self, messages: &[Message]) -> Result<String> {
        let template = self.tokenizer.chat_template().ok_or_else(|| {
            Error::Input("this model has no chat template; use --raw to send the prompt as plain text".into())
        })?;
        Ok(template.render(messages, true)?)
    }

    /// Token ids for a prompt: chat-templated (`chat`) or raw text with the model's BOS policy.
    ///
    /// A rendered chat template already holds its special tokens (BOS included, where the
    /// template writes one), so it is encoded without adding more.
    pub fn encode_prompt(&self, text: &str, chat: bool) -> Result<Vec<u32>> {
        if chat {
            let rendered = self.chat_prompt(&[Message::new("user", text)])?;
            Ok(self.tokenizer.encode(&rendered, false)?)
        } else {
            Ok(self.tokenizer.encode(text, true)?)
        }
    }
}
