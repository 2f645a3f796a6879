//! The PPO recipe on a tiny llama with a tiny reward model: it runs rollouts, scores them,
//! penalises KL to the base and logs what TRL logs; a run stopped between rollout batches resumes
//! bit-identically (policy and value head); the adaptive KL controller follows Ziegler et al.'s
//! rule; bad configs name the field.

use std::path::{Path, PathBuf};

use ingot_test_support::models::{write_model_folder, LLAMA};
use ingot_test_support::temp_dir;
use ingot_train::recipes::ppo::{self, adapt_kl, PpoConfig};
use ingot_train::recipes::reward::{self, RewardConfig};
use ingot_train::recipes::sft::GenerateSection;

fn no_generator(_: &GenerateSection, _: &Path) -> ingot_train::Result<(PathBuf, Option<PathBuf>)> {
    panic!("these tests read data files")
}

/// A tiny reward model that prefers " good." to " bad." after any prompt.
fn reward_model(dir: &Path, hf: &Path, tok: &Path) -> PathBuf {
    let pairs = dir.join("pairs.jsonl");
    let lines: Vec<String> = (0..12)
        .map(|i| serde_json::json!({"prompt": format!("Q{i}:"), "chosen": " good.", "rejected": " bad."}).to_string())
        .collect();
    std::fs::write(&pairs, lines.join("\n")).unwrap();
    let text = format!(
        "[model]\nmethod = \"lora\"\ntokenizer = \"{}\"\n[lora]\nr = 4\nlora_alpha = 8\ntarget_modules = [\"q_proj\", \"v_proj\"]\n\
         [data]\ntrain = \"{}\"\nmax_len = 40\nbatch_size = 4\n[train]\nmax_steps = 10\nlr = 2e-2\nwarmup_steps = 1\n\
         checkpoint_interval = 0\neval_interval = 0\nlog_interval = 5\n",
        tok.display(),
        pairs.display()
    );
    let out = dir.join("rm");
    reward::run(&RewardConfig::from_toml(&text, &[], "rm.toml").unwrap(), hf, &out, false, false, false, &no_generator)
        .unwrap();
    out
}

fn config(prompts: &Path, tok: &Path, rm: &Path, steps: u64, extra: &str) -> PpoConfig {
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
[ppo]
reward_model = "{}"
rollouts_per_batch = 4
ppo_epochs = 2
minibatches = 2
max_completion_tokens = 6
eval_prompts = 2
{extra}
[train]
max_steps = {steps}
decay_steps = 40
lr = 1e-2
warmup_steps = 1
checkpoint_interval = 4
eval_interval = 0
log_interval = 1
weight_decay = 0.0
"#,
        tok.display(),
        prompts.display(),
        prompts.display(),
        rm.display()
    );
    PpoConfig::from_toml(&text, &[], "test.toml").unwrap()
}

#[test]
fn ppo_runs_logs_and_resumes_bit_identically() {
    let dir = temp_dir("ppo");
    let hf = write_model_folder(&dir.join("hf"), LLAMA, 3);
    let tok = hf.join("tokenizer.json");
    let rm = reward_model(&dir, &hf, &tok);
    let prompts = dir.join("prompts.jsonl");
    let lines: Vec<String> = (0..8).map(|i| serde_json::json!({"prompt": format!("Q{i}:")}).to_string()).collect();
    std::fs::write(&prompts, lines.join("\n")).unwrap();

    let whole = dir.join("whole");
    let report =
        ppo::run(&config(&prompts, &tok, &rm, 8, "target_kl = 0.5"), &hf, &whole, false, false, false, &no_generator)
            .unwrap();
    assert_eq!(report.batches, 2, "{report:?}");
    assert!(report.eval_score_start.is_some() && report.eval_score_end.is_some());
    let metrics = std::fs::read_to_string(whole.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    for key in ["score", "kl", "kl_coef", "ppo/policy_loss", "ppo/value_loss", "ppo/clipfrac", "completion_length"] {
        assert!(last[key].is_number(), "{key} missing from {last}");
    }
    for chart in ["score.svg", "kl.svg"] {
        let svg = std::fs::read_to_string(whole.join(chart)).unwrap_or_else(|e| panic!("{chart}: {e}"));
        ingot_test_support::svg::assert_well_formed_svg(&svg);
    }
    // The second batch's coefficient follows the controller from the first batch's KL.
    let batch = |run: &Path, id: u32| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(run.join("rollouts").join(format!("batch-{id:08}.json"))).unwrap(),
        )
        .unwrap()
    };
    let (b0, b1) = (batch(&whole, 0), batch(&whole, 1));
    let kl0: f64 = b0["kl"].as_array().unwrap().iter().map(|k| k.as_f64().unwrap()).sum::<f64>() / 4.0;
    let expect = adapt_kl(0.05, kl0, 0.5, 10.0, 1.0);
    assert!((b1["kl_coef"].as_f64().unwrap() - expect).abs() < 1e-12, "{} vs {expect}", b1["kl_coef"]);

    let split = dir.join("split");
    ppo::run(&config(&prompts, &tok, &rm, 4, "target_kl = 0.5"), &hf, &split, false, false, false, &no_generator)
        .unwrap();
    ppo::run(&config(&prompts, &tok, &rm, 8, "target_kl = 0.5"), &hf, &split, true, false, false, &no_generator)
        .unwrap();
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    assert_eq!(
        read(whole.join("adapter").join("adapter_model.safetensors")),
        read(split.join("adapter").join("adapter_model.safetensors"))
    );
    assert_eq!(read(whole.join("v_head.safetensors")), read(split.join("v_head.safetensors")));
}

#[test]
fn the_kl_controller_follows_the_rule() {
    // Ziegler et al.: e = clip(KL / target − 1, ±0.2); β ← β (1 + e · n / horizon).
    assert!((adapt_kl(0.1, 2.0, 1.0, 10.0, 1.0) - 0.1 * 1.02).abs() < 1e-12);
    assert!((adapt_kl(0.1, 0.5, 1.0, 10.0, 1.0) - 0.1 * (1.0 - 0.02)).abs() < 1e-12);
    assert!((adapt_kl(0.1, 1.1, 1.0, 10.0, 1.0) - 0.1 * (1.0 + 0.01)).abs() < 1e-12);
    assert!((adapt_kl(0.1, 1.0, 1.0, 10.0, 1.0) - 0.1).abs() < 1e-12);
}

#[test]
fn bad_ppo_configs_name_the_field() {
    let base = "[data]\ntrain = \"x\"\n";
    for (text, needle) in [
        ("[model]\nmethod = \"full\"\n[ppo]\nreward_model = \"r\"\n", "adapters switched off"),
        ("[model]\nmethod = \"lora\"\n[ppo]\n", "ppo.reward_model"),
        ("[model]\nmethod = \"lora\"\n[ppo]\nreward_model = \"r\"\nminibatches = 9\n", "ppo.minibatches"),
        ("[model]\nmethod = \"lora\"\n[ppo]\nreward_model = \"r\"\ngamma = 2.0\n", "ppo.gamma"),
        ("[model]\nmethod = \"lora\"\n[ppo]\nreward_model = \"r\"\n[train]\ngrad_accum = 2\n", "train.grad_accum"),
    ] {
        let err = PpoConfig::from_toml(&format!("{base}{text}"), &[], "p.toml").unwrap_err();
        assert!(err.to_string().contains(needle), "{text}: {err}");
    }
}
