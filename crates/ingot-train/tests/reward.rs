//! The reward-model recipe on a tiny llama: it learns to rank held-out pairs it could not rank
//! before, LoRA runs resume bit-identically (adapter and head), the exported folder loads back
//! with the same scores, and full fine-tuning exports a model folder with its head.

use std::path::{Path, PathBuf};

use candle_core::Device;
use ingot_test_support::models::{write_model_folder, LLAMA};
use ingot_test_support::temp_dir;
use ingot_train::recipes::reward::{self, evaluate, load_reward_model, RewardConfig, RewardSection};
use ingot_train::recipes::sft::GenerateSection;

fn no_generator(_: &GenerateSection, _: &Path) -> ingot_train::Result<(PathBuf, Option<PathBuf>)> {
    panic!("these tests read data files")
}

/// Pairs whose chosen answer says "good" and rejected "bad", after varied prompts.
fn write_pairs(path: &Path, n: usize, offset: usize) {
    let lines: Vec<String> = (offset..offset + n)
        .map(|i| {
            serde_json::json!({"prompt": format!("Q{i}: rate item {}.", i * 7 % 13), "chosen": " good.", "rejected": " bad."})
                .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

fn config(method: &str, train: &Path, val: &Path, tokenizer: &Path, steps: u64) -> RewardConfig {
    let text = format!(
        r#"
[model]
method = "{method}"
tokenizer = "{}"
[lora]
r = 4
lora_alpha = 8
lora_dropout = 0.0
target_modules = ["q_proj", "v_proj", "down_proj"]
[data]
train = "{}"
val = "{}"
max_len = 60
batch_size = 4
[train]
max_steps = {steps}
decay_steps = 30
lr = 2e-2
warmup_steps = 1
checkpoint_interval = 3
eval_interval = 0
log_interval = 1
weight_decay = 0.0
"#,
        tokenizer.display(),
        train.display(),
        val.display()
    );
    RewardConfig::from_toml(&text, &[], "test.toml").unwrap()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_reward_model_learns_to_rank_held_out_pairs_and_loads_back() {
    let dir = temp_dir("reward-learn");
    let hf = write_model_folder(&dir.join("hf"), LLAMA, 3);
    let (train, val) = (dir.join("train.jsonl"), dir.join("val.jsonl"));
    write_pairs(&train, 24, 0);
    write_pairs(&val, 8, 100);
    let tok = hf.join("tokenizer.json");
    let out = dir.join("run");
    let report =
        reward::run(&config("lora", &train, &val, &tok, 30), &hf, &out, false, false, false, &no_generator).unwrap();
    assert_eq!(report.val_pairs, 8);
    assert_eq!(report.val_accuracy, Some(1.0), "{report:?}");
    assert!(report.val_loss.unwrap() < 0.3, "{report:?}");
    // The exported folder gives the same ranking.
    let (model, head) = load_reward_model(&hf, &out, &Device::Cpu).unwrap();
    let tokenizer = ingot_tokenizer::Tokenizer::from_file(&tok).unwrap();
    let (pairs, _) = ingot_data::preference::load(&val, &tokenizer, 60, Default::default()).unwrap();
    let (acc, loss) = evaluate(&model, &head, &pairs, &RewardSection::default(), 4, &Device::Cpu).unwrap();
    assert_eq!(acc, 1.0);
    assert!((loss - report.val_loss.unwrap()).abs() < 1e-4, "{loss} vs {:?}", report.val_loss);
    // Untrained (a fresh head on the base), the same pairs are ranked no better than chance.
    let (base, _) = ingot_models::load(&hf, &Device::Cpu).unwrap();
    let fresh =
        ingot_models::heads::ScalarHead::train(&candle_nn::VarMap::new(), "score", base.hidden_size(), false, 1)
            .unwrap();
    let (base_loss, _) = {
        let (_, l) = evaluate(&base, &fresh, &pairs, &RewardSection::default(), 4, &Device::Cpu).unwrap();
        (l, ())
    };
    assert!(base_loss > 0.6, "an untrained head is near ln 2: {base_loss}");
}

#[test]
fn lora_reward_runs_resume_bit_identically_and_full_runs_export_a_model() {
    let dir = temp_dir("reward-resume");
    let hf = write_model_folder(&dir.join("hf"), LLAMA, 3);
    let (train, val) = (dir.join("train.jsonl"), dir.join("val.jsonl"));
    write_pairs(&train, 12, 0);
    write_pairs(&val, 4, 50);
    let tok = hf.join("tokenizer.json");
    let whole = dir.join("whole");
    reward::run(&config("lora", &train, &val, &tok, 6), &hf, &whole, false, false, false, &no_generator).unwrap();
    let split = dir.join("split");
    reward::run(&config("lora", &train, &val, &tok, 3), &hf, &split, false, false, false, &no_generator).unwrap();
    reward::run(&config("lora", &train, &val, &tok, 6), &hf, &split, true, false, false, &no_generator).unwrap();
    for file in ["adapter_model.safetensors", "score.safetensors"] {
        assert_eq!(read(&whole.join("reward").join(file)), read(&split.join("reward").join(file)), "{file}");
    }
    let full = dir.join("full");
    let mut cfg = config("full", &train, &val, &tok, 2);
    cfg.train.lr = 1e-4;
    let report = reward::run(&cfg, &hf, &full, false, false, false, &no_generator).unwrap();
    assert!(report.final_loss.is_finite());
    assert!(
        full.join("reward").join("config.json").is_file() && full.join("reward").join("score.safetensors").is_file()
    );
    load_reward_model(&hf, &full, &Device::Cpu).unwrap();
}

#[test]
fn bad_reward_configs_name_the_field() {
    let err = RewardConfig::from_toml("[model]\nmethod = \"lora\"\n[data]\nmax_len = 10\n", &[], "r.toml").unwrap_err();
    assert!(err.to_string().contains("data.train"), "{err}");
    let err = RewardConfig::from_toml(
        "[model]\nmethod = \"lora\"\n[data]\ntrain = \"x\"\n[reward]\ncenter_coef = -1.0\n",
        &[],
        "r.toml",
    )
    .unwrap_err();
    assert!(err.to_string().contains("reward.center_coef"), "{err}");
    let err = RewardConfig::from_toml(
        "[model]\nmethod = \"lora\"\n[data]\ntrain = \"x\"\n[reward]\nmargin = 1\n",
        &[],
        "r.toml",
    )
    .unwrap_err();
    assert!(err.to_string().contains("margin"), "{err}");
}
