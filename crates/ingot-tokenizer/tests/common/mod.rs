//! Helpers shared by the integration tests: the real model, scratch folders, small GGUF files.
#![allow(dead_code)]

use std::path::PathBuf;

use ingot_core::gguf::{GgufFile, GgufWriter, Value};

/// The default model's GGUF, or None (with a message) when the asset has not been fetched.
pub fn smollm_gguf() -> Option<GgufFile> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        eprintln!("skipping: {} is missing (fetch it with `scripts/fetch-assets model`)", path.display());
        return None;
    }
    Some(GgufFile::open(&path).expect("the SmolLM2 asset should parse"))
}

/// A fresh, empty folder for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ingot-tokenizer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch folder");
    dir
}

pub fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
}

/// Write `metadata` as a GGUF file named `name` in a scratch folder and open it.
pub fn gguf_with(name: &str, metadata: Vec<(&str, Value)>) -> GgufFile {
    let mut writer = GgufWriter::new();
    for (key, value) in metadata {
        writer.metadata(key, value);
    }
    let path = scratch_dir(name).join(format!("{name}.gguf"));
    writer.write(&path).expect("write the test GGUF");
    GgufFile::open(&path).expect("read back the test GGUF")
}
