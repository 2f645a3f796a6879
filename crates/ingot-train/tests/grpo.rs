//! The GRPO recipe on a tiny llama with a character tokenizer: the policy learns what a reward
//! function pays for; runs resume bit-identically; a reward function that panics or returns NaN
//! is a clear error; with the adapters switched off the model is its base exactly (the
//! reference of the KL term); bad configs name the field.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ingot_test_support::models::{write_model_folder, LLAMA};
use ingot_test_support::temp_dir;
use ingot_train::recipes::grpo::{self, GrpoRunConfig, RewardFn};
use ingot_train::recipes::sft::GenerateSection;

fn no_generator(_: &GenerateSection, _: &Path) -> ingot_train::Result<(PathBuf, Option<PathBuf>)> {
    panic!("these tests read data files")
}

/// Pays for the letter 'e': its share of the completion's characters.
fn registry(name: &str) -> Option<RewardFn> {
    match name {
        "e-share" => Some(Box::new(|text: &str, _: &serde_json::Map<String, serde_json::Value>| {
            let n = text.chars().count().max(1) as f64;
            Ok(text.chars().filter(|&c| c == 'e').count() as f64 / n)
        })),
        "panics" => Some(Box::new(|_: &str, _: &serde_json::Map<String, serde_json::Value>| -> Result<f64, String> {
            panic!("a buggy reward")
        })),
        "nan" => Some(Box::new(|_: &str, _: &serde_json::Map<String, serde_json::Value>| Ok(f64::NAN))),
        _ => None,
    }
}

fn write_prompts(path: &Path, n: usize) {
    let lines: Vec<String> =
        (0..n).map(|i| serde_json::json!({"prompt": format!("Say {i}:"), "id": i}).to_string()).collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

fn config(reward: &str, train: &Path, tokenizer: &Path, steps: u64, extra: &str) -> GrpoRunConfig {
    let text = format!(
        r#"
[model]
method = "lora"
tokenizer = "{}"
[lora]
r = 4
lora_alpha = 8
lora_dropout = 0.0
target_modules = ["q_proj", "v_proj", "down_proj"]
[data]
train = "{}"
val = "{}"
[grpo]
group_size = 8
prompts_per_step = 2
max_completion_tokens = 8
eval_prompts = 4
{extra}
[[grpo.rewards]]
name = "{reward}"
[train]
max_steps = {steps}
decay_steps = 40
lr = 2e-2
warmup_steps = 1
checkpoint_interval = 2
eval_interval = 0
log_interval = 1
weight_decay = 0.0
"#,
        tokenizer.display(),
        train.display(),
        train.display()
    );
    GrpoRunConfig::from_toml(&text, &[], "test.toml").unwrap()
}

fn rewards_logged(out: &Path) -> Vec<f64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["reward"].as_f64().unwrap())
        .collect()
}

#[test]
fn grpo_learns_what_the_reward_pays_for_and_resumes_exactly() {
    let dir = temp_dir("grpo-learn");
    let hf = write_model_folder(&dir.join("hf"), LLAMA, 3);
    let prompts = dir.join("prompts.jsonl");
    write_prompts(&prompts, 8);
    let tok = hf.join("tokenizer.json");
    let out = dir.join("run");
    let report =
        grpo::run(&config("e-share", &prompts, &tok, 30, ""), &hf, &out, false, false, false, &no_generator, &registry)
            .unwrap();
    let r = rewards_logged(&out);
    let (first, last) = (r[..5].iter().sum::<f64>() / 5.0, r[r.len() - 5..].iter().sum::<f64>() / 5.0);
    assert!(last > first + 0.1, "mean reward {first:.3} -> {last:.3}: {r:?}");
    assert!(report.eval_reward_end.unwrap() > report.eval_reward_start.unwrap(), "{report:?}");
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().last().unwrap())
            .unwrap();
    for key in ["reward_std", "rewards/e-share", "completion_length", "rollout_tokens_per_sec", "update_tokens_per_sec"]
    {
        assert!(line[key].is_number(), "{key} missing from {line}");
    }
    let svg = std::fs::read_to_string(out.join("reward.svg")).unwrap();
    ingot_test_support::svg::assert_well_formed_svg(&svg);
    assert!(svg.contains("sampled groups") && svg.contains("held-out"), "a series is missing from reward.svg");

    let whole = dir.join("whole");
    grpo::run(
        &config("e-share", &prompts, &tok, 4, "beta = 0.04"),
        &hf,
        &whole,
        false,
        false,
        false,
        &no_generator,
        &registry,
    )
    .unwrap();
    let split = dir.join("split");
    grpo::run(
        &config("e-share", &prompts, &tok, 2, "beta = 0.04"),
        &hf,
        &split,
        false,
        false,
        false,
        &no_generator,
        &registry,
    )
    .unwrap();
    grpo::run(
        &config("e-share", &prompts, &tok, 4, "beta = 0.04"),
        &hf,
        &split,
        true,
        false,
        false,
        &no_generator,
        &registry,
    )
    .unwrap();
    let adapter = |run: &Path| std::fs::read(run.join("adapter").join("adapter_model.safetensors")).unwrap();
    assert_eq!(adapter(&whole), adapter(&split));
}

#[test]
fn failing_reward_functions_are_clear_errors() {
    let dir = temp_dir("grpo-bad-reward");
    let hf = write_model_folder(&dir.join("hf"), LLAMA, 3);
    let prompts = dir.join("prompts.jsonl");
    write_prompts(&prompts, 4);
    let tok = hf.join("tokenizer.json");
    for (name, needle) in [
        ("panics", "reward function panics panicked"),
        ("nan", "returned NaN"),
        ("missing", "no reward function named"),
    ] {
        let err = grpo::run(
            &config(name, &prompts, &tok, 2, ""),
            &hf,
            &dir.join(name),
            false,
            false,
            false,
            &no_generator,
            &registry,
        )
        .unwrap_err();
        assert!(err.to_string().contains(needle), "{name}: {err}");
    }
}

#[test]
fn adapters_switched_off_give_the_base_exactly() {
    let dir = temp_dir("grpo-switch");
    let hf = write_model_folder(&dir.join("hf"), LLAMA, 3);
    let (base, _) = ingot_models::load(&hf, &Device::Cpu).unwrap();
    let cfg: ingot_nn::LoraConfig =
        serde_json::from_str(r#"{"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "down_proj"]}"#).unwrap();
    let vars = candle_nn::VarMap::new();
    let adapters = ingot_nn::Adapters::train(cfg, vars.clone(), 1).unwrap();
    let opts = ingot_models::LoadOptions { adapters: Some(adapters.clone()), ..Default::default() };
    let (tuned, _) = ingot_models::load_with(&hf, &Device::Cpu, &opts).unwrap();
    // Move every B away from zero, so the adapters change the output.
    for var in vars.all_vars() {
        var.set(&(var.as_tensor().ones_like().unwrap() * 0.05).unwrap()).unwrap();
    }
    let ids = Tensor::new(&[[3u32, 9, 4, 1, 7]], &Device::Cpu).unwrap();
    let logits =
        |m: &ingot_models::Model| m.forward(&ids, None).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let reference = logits(&base);
    assert_ne!(logits(&tuned), reference, "the adapters change the output");
    assert!(adapters.set_enabled(false));
    assert_eq!(logits(&tuned), reference, "switched off, the model is its base");
    adapters.set_enabled(true);
    assert_ne!(logits(&tuned), reference);
}

#[test]
fn bad_grpo_configs_name_the_field() {
    let base = "[model]\nmethod = \"lora\"\n[data]\ntrain = \"x\"\n";
    for (extra, needle) in [
        ("[grpo]\ngroup_size = 1\n[[grpo.rewards]]\nname = \"a\"\n", "grpo.group_size"),
        ("[grpo]\n", "grpo.rewards is empty"),
        ("[grpo]\ntemperature = 0.0\n[[grpo.rewards]]\nname = \"a\"\n", "grpo.temperature"),
        ("[grpo]\nepsilon = 1.5\n[[grpo.rewards]]\nname = \"a\"\n", "grpo.epsilon"),
    ] {
        let err = GrpoRunConfig::from_toml(&format!("{base}{extra}"), &[], "g.toml").unwrap_err();
        assert!(err.to_string().contains(needle), "{extra}: {err}");
    }
    let full =
        "[model]\nmethod = \"full\"\n[data]\ntrain = \"x\"\n[grpo]\nbeta = 0.1\n[[grpo.rewards]]\nname = \"a\"\n";
    assert!(GrpoRunConfig::from_toml(full, &[], "g.toml").unwrap_err().to_string().contains("adapters switched off"));
}
