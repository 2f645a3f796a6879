//! The GGUF reader (`ingot_core::gguf`) and what reads its metadata: every typed getter, every
//! tensor (loaded and, when small, dequantized), the tokenizer built from the vocabulary metadata
//! and the model configuration keys.
#![no_main]

use candle_core::Device;
use ingot_core::gguf::GgufFile;
use ingot_fuzz::{checked, write_file};
use ingot_models::config::GgufKeys;
use ingot_tokenizer::{Message, Tokenizer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = write_file("model.gguf", data);
    let Some(file) = checked("GgufFile::open", GgufFile::open(&path)) else { return };
    for key in file.metadata().keys() {
        checked("get_u64", file.get_u64(key));
        checked("get_f64", file.get_f64(key));
        checked("get_str", file.get_str(key));
        checked("get_str_array", file.get_str_array(key));
    }
    checked("require_str", file.require_str("general.architecture"));
    let device = Device::Cpu;
    for info in file.tensors() {
        if checked("qtensor", file.qtensor(&info.name, &device)).is_none() {
            continue;
        }
        // Bounded by the file (a tensor's bytes are in it); dequantizing multiplies that by at most
        // ~12 (Q2_K), so this stays small at the max_len scripts/fuzz uses.
        if info.elem_count() <= 1 << 20 {
            checked("tensor", file.tensor(&info.name, &device));
        }
    }
    if let Some(tok) = checked("Tokenizer::from_gguf", Tokenizer::from_gguf(&file)) {
        if let Some(ids) = checked("encode", tok.encode("Hello world, <|im_start|>user\nhi", true)) {
            checked("decode", tok.decode(&ids, false));
        }
        checked("decode", tok.decode(&[0, 1, 2, 3, 300, 70000], true));
        if let Some(template) = tok.chat_template() {
            let messages = [Message::system("Be brief."), Message::user("Hi"), Message::assistant("Hello.")];
            checked("render", template.render(&messages, true));
        }
    }
    if let Some(keys) = checked("GgufKeys::new", GgufKeys::new(&file)) {
        checked("GgufKeys::llama", keys.llama());
        checked("GgufKeys::gpt2", keys.gpt2());
    }
});
