//! GGUF helpers shared by the tokenizer tests: the default model's file, and small GGUF files of
//! tokenizer metadata. Folders and asset lookup come from ingot-test-support.
#![allow(dead_code)]

use ingot_core::gguf::{GgufFile, GgufWriter, Value};

/// The default model's GGUF, or None (with a SKIPPED note; a failure under CI) when the asset has
/// not been fetched.
pub fn smollm_gguf() -> Option<GgufFile> {
    let path = ingot_test_support::real_model()?;
    Some(GgufFile::open(&path).expect("the SmolLM2 asset should parse"))
}

pub fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
}

/// Write `metadata` as a GGUF file named `name` in a temporary folder and open it. The folder is
/// removed on return; the file stays readable through its memory map.
pub fn gguf_with(name: &str, metadata: Vec<(&str, Value)>) -> GgufFile {
    let mut writer = GgufWriter::new();
    for (key, value) in metadata {
        writer.metadata(key, value);
    }
    let dir = ingot_test_support::temp_dir(name);
    let path = dir.join(format!("{name}.gguf"));
    writer.write(&path).expect("write the test GGUF");
    GgufFile::open(&path).expect("read back the test GGUF")
}
