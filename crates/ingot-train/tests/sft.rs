//! The SFT recipe on tiny models: packed rows give the loss of their examples run one by one,
//! LoRA and QLoRA runs resume bit-identically, only adapter parameters move, and bad configs
//! fail with their field named.

use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::Device;
use ingot_data::sft::{pack, SftExample};
use ingot_test_support::gguf::{write_gguf, Storage};
use ingot_test_support::models::{write_model_folder, LLAMA};
use ingot_test_support::temp_dir;
use ingot_train::recipes::sft::{self, rows_loss, single_row, SftConfig};

fn no_generator(_: &sft::GenerateSection, _: &Path) -> ingot_train::Result<(PathBuf, Option<PathBuf>)> {
    panic!("these tests read data files")
}

/// prompt/completion lines (plain text: the character tokenizer has no chat template).
fn write_data(path: &Path, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({"prompt": format!("Q{i}: what is {i} plus {}?", i % 7), "completion": format!(" It is {}.", i + i % 7)})
                .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

/// A tiny llama as an HF folder (with tokenizer) and the same-shaped model as a Q8_0 GGUF file.
fn models(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let hf = write_model_folder(&dir.join("hf"), LLAMA, 3);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hf.join("config.json")).unwrap()).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(LLAMA).unwrap();
    json["vocab_size"] = config["vocab_size"].clone();
    let gguf = write_gguf(&dir.join("q8.gguf"), &json.to_string(), 3, Storage::Quantized(GgmlDType::Q8_0));
    (hf.clone(), gguf, hf.join("tokenizer.json"))
}

fn config(method: &str, data: &Path, tokenizer: &Path, steps: u64) -> SftConfig {
    let text = format!(
        r#"
[model]
method = "{method}"
tokenizer = "{}"
[lora]
r = 4
lora_alpha = 8
lora_dropout = 0.1
target_modules = ["q_proj", "v_proj", "down_proj"]
[data]
train = "{}"
max_len = 60
seq_len = 64
batch_size = 2
[train]
max_steps = {steps}
decay_steps = 6
lr = 1e-2
warmup_steps = 1
checkpoint_interval = 3
eval_interval = 0
log_interval = 1
"#,
        tokenizer.display(),
        data.display()
    );
    SftConfig::from_toml(&text, &[], "test.toml").unwrap()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn packed_rows_give_the_loss_of_their_examples_one_by_one() {
    let dir = temp_dir("sft-pack");
    let (hf, _, tok_path) = models(&dir);
    let tok = ingot_tokenizer::Tokenizer::from_file(&tok_path).unwrap();
    let (model, _) = ingot_models::load(&hf, &Device::Cpu).unwrap();
    let data = dir.join("data.jsonl");
    write_data(&data, 5);
    let (examples, _) = ingot_data::sft::load(&data, &tok, 60, Default::default()).unwrap();
    let rows = pack(&examples, 200);
    assert!(rows.len() < examples.len(), "the examples should share rows");
    let refs: Vec<_> = rows.iter().collect();
    let (packed, _, _) = rows_loss(&model, &refs, &Device::Cpu).unwrap();
    let trained = |e: &SftExample| e.trained.iter().skip(1).filter(|&&t| t).count() as f64;
    let (mut sum, mut count) = (0f64, 0f64);
    for e in &examples {
        let (loss, _, _) = rows_loss(&model, &[&single_row(e)], &Device::Cpu).unwrap();
        sum += loss.to_scalar::<f32>().unwrap() as f64 * trained(e);
        count += trained(e);
    }
    let (packed, one_by_one) = (packed.to_scalar::<f32>().unwrap() as f64, sum / count);
    assert!((packed - one_by_one).abs() < 1e-5, "packed {packed} vs one by one {one_by_one}");
}

#[test]
fn lora_and_qlora_runs_resume_bit_identically_and_move_only_adapters() {
    let dir = temp_dir("sft-resume");
    let (hf, gguf, tok) = models(&dir);
    let data = dir.join("data.jsonl");
    write_data(&data, 12);
    for (method, model) in [("lora", &hf), ("qlora", &gguf)] {
        let full_run = dir.join(format!("{method}-full"));
        let report =
            sft::run(&config(method, &data, &tok, 6), model, &full_run, false, false, false, &no_generator).unwrap();
        assert!(report.final_loss.is_finite());
        let split = dir.join(format!("{method}-split"));
        sft::run(&config(method, &data, &tok, 3), model, &split, false, false, false, &no_generator).unwrap();
        sft::run(&config(method, &data, &tok, 6), model, &split, true, false, false, &no_generator).unwrap();
        let adapter = |run: &Path| read(&run.join("adapter").join("adapter_model.safetensors"));
        assert_eq!(adapter(&full_run), adapter(&split), "{method}: resumed adapter differs from the uninterrupted one");
        // The exported adapter holds only the targeted modules' pairs, and the base file is untouched.
        let tensors =
            candle_core::safetensors::load(full_run.join("adapter").join("adapter_model.safetensors"), &Device::Cpu)
                .unwrap();
        assert_eq!(tensors.len(), 3 * 3 * 2, "{method}: 3 layers x 3 modules x (A, B)");
        for (key, t) in &tensors {
            assert!(key.starts_with("base_model.model.model.layers."), "{key}");
            if key.contains("lora_B") {
                let norm = t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(norm > 0.0, "{method}: {key} never moved");
            }
        }
        // The checkpoint is adapter-only (no copy of the base weights).
        let step = full_run.join("step-00000006");
        assert!(step.join("adapter_model.safetensors").is_file() && !step.join("model.safetensors").exists());
    }
}

#[test]
fn bad_configs_name_the_field() {
    let dir = temp_dir("sft-bad");
    let data = dir.join("d.jsonl");
    let tok = dir.join("t.json");
    let mut cfg = config("lora", &data, &tok, 3);
    cfg.lora.r = 0;
    assert!(cfg.validate().unwrap_err().to_string().contains("lora.r"));
    let err = SftConfig::from_toml("[model]\nmethod = \"half\"\n[data]\ntrain = \"x\"\n", &[], "c.toml").unwrap_err();
    assert!(err.to_string().contains("c.toml") && err.to_string().contains("half"), "{err}");
    let err = SftConfig::from_toml("[model]\nmethod = \"lora\"\n[data]\nmax_len = 10\n", &[], "c.toml").unwrap_err();
    assert!(err.to_string().contains("data.train"), "{err}");
}
