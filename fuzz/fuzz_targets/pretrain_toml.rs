//! Pre-training config files (`PretrainConfig::from_toml`, with `--set` overrides) and the model
//! config they resolve to (`resolve_model_config`: preset, overrides, HF config checks).
//!
//! Input, joined with `ingot_fuzz::SEP`: the TOML text, then `--set` values (`section.key=value`).
#![no_main]

use ingot_fuzz::{checked, split_parts};
use ingot_train::recipes::pretrain::{resolve_model_config, PretrainConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parts = split_parts(data);
    // The CLI reads the file with read_to_string: non-UTF-8 is refused before parsing.
    let Ok(text) = std::str::from_utf8(parts[0]) else { return };
    let overrides: Vec<String> = parts[1..].iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    let Some(cfg) = checked("PretrainConfig::from_toml", PretrainConfig::from_toml(text, &overrides, "fuzz.toml"))
    else {
        return;
    };
    checked("resolve_model_config", resolve_model_config(&cfg.model, 256));
    checked("resolve_model_config", resolve_model_config(&cfg.model, cfg.data.vocab_size));
});
