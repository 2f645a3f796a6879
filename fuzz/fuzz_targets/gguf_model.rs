//! A whole model from a GGUF file (`ingot_models::load_gguf`), then one forward pass of two tokens:
//! shapes, sizes and types in the file must be refused at load, not met as a panic in a kernel.
#![no_main]

use std::sync::Arc;

use candle_core::{Device, Tensor};
use ingot_core::gguf::GgufFile;
use ingot_fuzz::{checked, write_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = write_file("model.gguf", data);
    let Some(file) = checked("GgufFile::open", GgufFile::open(&path)) else { return };
    let device = Device::Cpu;
    let Some(model) = checked("load_gguf", ingot_models::load_gguf(Arc::new(file), &device)) else { return };
    let vocab = model.vocab_size().min(u32::MAX as usize) as u32;
    let ids = [0u32, vocab.saturating_sub(1)];
    // Two fixed ids: this cannot fail, and is not what is under test.
    let Ok(ids) = Tensor::new(&ids[..], &device).and_then(|t| t.unsqueeze(0)) else { return };
    let mut cache = model.new_cache();
    checked("forward", model.forward(&ids, Some(&mut cache)));
});
