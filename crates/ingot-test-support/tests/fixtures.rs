//! The fixtures load the way the tests that use them assume: checkpoint folders and GGUF files of
//! each architecture load through `ingot_models::load` and compute the in-memory model's function,
//! the folders' tokenizer covers the vocabulary, and the corpus writers write what they were given.

use candle_core::{Device, Tensor};
use ingot_test_support::gguf::{write_gguf, Storage};
use ingot_test_support::models::{config, random_model, GPT2, LLAMA, QWEN2};
use ingot_test_support::tokenizer::ascii_text;
use ingot_test_support::{small_corpus, temp_dir, write_jsonl, write_model_folder, write_txt};
use ingot_tokenizer::Tokenizer;

fn logits(model: &ingot_models::Model, ids: &[u32]) -> Tensor {
    let input = Tensor::new(ids, &Device::Cpu).unwrap().unsqueeze(0).unwrap(); // (1, T)
    model.forward(&input, None).unwrap() // (1, T, V)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn model_folders_load_with_their_tokenizer() {
    let dir = temp_dir("fixture-folders");
    for (name, json) in [("llama", LLAMA), ("qwen2", QWEN2), ("gpt2", GPT2)] {
        let folder = write_model_folder(&dir.join(name), json, 7);
        let (model, files) = ingot_models::load(&folder, &Device::Cpu).unwrap();
        assert!(files.gguf.is_none() && files.hf_config.is_some(), "{name}: not loaded as a checkpoint folder");
        let tok = Tokenizer::from_file(folder.join("tokenizer.json")).unwrap();
        assert_eq!(model.vocab_size(), tok.vocab_size(), "{name}: model and tokenizer vocabularies differ");
        let ids = tok.encode("Hello, world!\n", false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), "Hello, world!\n", "{name}: ASCII round trip");
        assert!(ids.iter().all(|&id| (id as usize) < model.vocab_size()));

        // The same weights as the in-memory model of the same config and seed. The VarMap model
        // runs candle's composed ops, the loaded one its fused kernels: agree to 1e-5.
        let cfg: ingot_models::HfConfig =
            serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap()).unwrap();
        let (reference, _vars) = random_model(&cfg, 7);
        let diff = max_abs_diff(&logits(&model, &ids), &logits(&reference, &ids));
        assert!(diff < 1e-5, "{name}: folder and in-memory model differ by {diff}");
    }
}

#[test]
fn gguf_files_load_and_match_the_model() {
    let dir = temp_dir("fixture-gguf");
    for (name, json) in [("llama", LLAMA), ("qwen2", QWEN2), ("gpt2", GPT2)] {
        let path = write_gguf(&dir.join(format!("{name}.gguf")), json, 3, Storage::F32);
        let (model, files) = ingot_models::load(&path, &Device::Cpu).unwrap();
        assert!(files.gguf.is_some(), "{name}: not loaded as GGUF");
        let (reference, _vars) = random_model(&config(json), 3);
        let ids: Vec<u32> = (0..9).map(|i| (i * 37 + 11) % model.vocab_size() as u32).collect();
        // Composed vs fused ops and permuted q/k rows: the same maths, sums in another order.
        let diff = max_abs_diff(&logits(&model, &ids), &logits(&reference, &ids));
        assert!(diff < 1e-4, "{name}: GGUF and in-memory model differ by {diff}");
    }
}

#[test]
fn ascii_text_covers_printable_ascii() {
    let text = ascii_text();
    assert_eq!(text.chars().count(), 96);
    assert!((' '..='~').all(|c| text.contains(c)) && text.contains('\n'));
}

#[test]
fn corpus_writers_write_every_document() {
    let dir = temp_dir("fixture-corpus");
    let docs = small_corpus();
    let folder = write_txt(&dir.join("txt"), &docs);
    assert_eq!(dir.list("txt"), docs.iter().map(|d| d.name.clone()).collect::<Vec<_>>());
    for d in &docs {
        assert_eq!(std::fs::read_to_string(folder.join(&d.name)).unwrap(), d.text);
    }
    let path = write_jsonl(&dir.join("corpus.jsonl"), &docs);
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let texts: Vec<&str> = lines.iter().map(|v| v["text"].as_str().unwrap()).collect();
    assert_eq!(texts, docs.iter().map(|d| d.text.as_str()).collect::<Vec<_>>());
}
