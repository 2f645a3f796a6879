//! Where Ingot's assets live, and atomic writes.
//!
//! Assets (the default model, corpora, benchmark data) are fetched once by `scripts/fetch-assets`
//! into an assets folder, found in this order:
//! 1. an explicit path given on the command line (`--model PATH`),
//! 2. `$INGOT_HOME`,
//! 3. `./assets` under the current directory,
//! 4. `assets/` beside the running binary's workspace (so `target/release/ingot` works from anywhere).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The default model's file name under `<assets>/models/`.
pub const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Candidate assets folders, in search order.
pub fn asset_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(home) = std::env::var_os("INGOT_HOME").filter(|h| !h.is_empty()) {
        dirs.push(PathBuf::from(home));
    }
    dirs.push(PathBuf::from("assets"));
    // target/<profile>/ingot -> <workspace>/assets
    if let Ok(exe) = std::env::current_exe() {
        if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            dirs.push(root.join("assets"));
        }
    }
    dirs
}

/// Find `relative` (e.g. "models/x.gguf") in the first assets folder that has it, or say which
/// command fetches it.
pub fn find_asset(relative: &str, fetch_group: &str) -> Result<PathBuf> {
    let dirs = asset_dirs();
    for dir in &dirs {
        let candidate = dir.join(relative);
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(Error::NotFound {
        what: format!("asset '{relative}'"),
        path: dirs.first().map_or_else(|| PathBuf::from("assets"), |d| d.join(relative)),
        hint: format!(
            " (looked in $INGOT_HOME, ./assets and beside the binary); fetch it with `scripts/fetch-assets {fetch_group}`"
        ),
    })
}

/// The default model's path.
pub fn default_model() -> Result<PathBuf> {
    find_asset(&format!("models/{DEFAULT_MODEL}"), "model")
}
