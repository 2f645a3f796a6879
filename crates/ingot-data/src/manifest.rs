//! `dataset.json`: the index of a prepared dataset folder, written last by `prepare` (so a
//! folder with a manifest is complete) and read first by the loader.

use std::path::{Path, PathBuf};

use ingot_core::atomic::write_file;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::shards::Dtype;

/// The manifest's file name inside a prepared folder.
pub const MANIFEST_FILE: &str = "dataset.json";
/// Bumped when the manifest's meaning changes.
pub const MANIFEST_VERSION: u32 = 1;

/// Which part of the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Val,
}

impl Split {
    /// "train" or "val": the shard file prefix and the header's `split`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }

    /// Shard file name, e.g. `train_00000.bin`.
    pub fn shard_file(self, index: usize) -> String {
        format!("{}_{index:05}.bin", self.name())
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Contents of `dataset.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// [`ingot_tokenizer::Tokenizer::content_hash`] of the tokenizer saved beside the shards.
    pub tokenizer_hash: String,
    pub vocab_size: u64,
    pub dtype: Dtype,
    /// The token appended after every document (`<|endoftext|>`, else the tokenizer's EOS).
    pub separator_id: u32,
    /// The seed and fraction that chose the validation documents.
    pub seed: u64,
    pub val_fraction: f64,
    pub train: SplitManifest,
    pub val: SplitManifest,
    /// Ids of the documents that went to validation, in corpus order.
    pub val_documents: Vec<String>,
}

/// One split's shards and totals.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SplitManifest {
    pub n_documents: u64,
    pub n_tokens: u64,
    pub shards: Vec<ShardEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name, relative to the manifest's folder.
    pub file: String,
    pub n_tokens: u64,
    pub n_documents: u64,
}

impl Manifest {
    pub fn split(&self, split: Split) -> &SplitManifest {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// Read `dir/dataset.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        if !path.exists() {
            return Err(Error::BadManifest {
                path,
                detail: "missing; prepare the folder with `ingot data prepare --out DIR`".into(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(Error::io("read", &path))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| Error::BadManifest {
            path: path.clone(),
            detail: format!("not a dataset manifest: {}", ingot_core::text::error_text(&e)),
        })?;
        if manifest.format_version != MANIFEST_VERSION {
            return Err(Error::BadManifest {
                path,
                detail: format!(
                    "format version {} (this build reads {MANIFEST_VERSION}); re-run `ingot data prepare`",
                    manifest.format_version
                ),
            });
        }
        Ok(manifest)
    }

    /// Write `dir/dataset.json` atomically; returns its path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(MANIFEST_FILE);
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::BadManifest { path: path.clone(), detail: format!("cannot serialize: {e}") })?;
        write_file(&path, json.as_bytes())?;
        Ok(path)
    }
}
