//! HF config.json (`ingot_models::read_hf_config`) resolved into each architecture's config.
#![no_main]

use ingot_fuzz::{checked, write_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = write_file("config.json", data);
    let Some(cfg) = checked("read_hf_config", ingot_models::read_hf_config(&path)) else { return };
    let _ = cfg.model_type();
    checked("HfConfig::llama", cfg.llama("config.json"));
    checked("HfConfig::gpt2", cfg.gpt2("config.json"));
});
