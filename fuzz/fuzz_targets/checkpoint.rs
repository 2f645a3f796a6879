//! A checkpoint folder: `ingot_train::checkpoint::load`, its tokenizer, and the folder loaded as a
//! model (`ingot_models::load`, config.json + model.safetensors) with one forward pass.
//!
//! Input: the folder's files joined with `ingot_fuzz::SEP`, in the order of `FILES`; a missing
//! part is a missing file.
#![no_main]

use candle_core::{Device, Tensor};
use ingot_fuzz::{checked, fresh_dir, split_parts};
use libfuzzer_sys::fuzz_target;

const FILES: &[&str] = &[
    "model.safetensors",
    "config.json",
    "optimizer.safetensors",
    "trainer_state.json",
    "tokenizer.json",
    "tokenizer_config.json",
];

fuzz_target!(|data: &[u8]| {
    let dir = fresh_dir("step-00000001");
    for (name, bytes) in FILES.iter().zip(split_parts(data)) {
        std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
    }
    let device = Device::Cpu;
    if let Some(ckpt) = checked("checkpoint::load", ingot_train::checkpoint::load(&dir, &device)) {
        checked("Checkpoint::tokenizer", ckpt.tokenizer());
    }
    let Some((model, _)) = checked("ingot_models::load", ingot_models::load(&dir, &device)) else { return };
    let vocab = model.vocab_size().min(u32::MAX as usize) as u32;
    let ids = [0u32, vocab.saturating_sub(1)];
    // Two fixed ids: this cannot fail, and is not what is under test.
    let Ok(ids) = Tensor::new(&ids[..], &device).and_then(|t| t.unsqueeze(0)) else { return };
    checked("forward", model.forward(&ids, None));
});
