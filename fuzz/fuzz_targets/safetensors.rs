//! The safetensors reader of checkpoints (`ingot_train::checkpoint::read_safetensors`).
#![no_main]

use candle_core::Device;
use ingot_fuzz::{checked, write_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = write_file("model.safetensors", data);
    checked("read_safetensors", ingot_train::checkpoint::read_safetensors(&path, &Device::Cpu));
});
