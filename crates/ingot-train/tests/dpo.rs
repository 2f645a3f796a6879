//! The DPO recipe on a tiny llama: before any update the policy is its reference (held-out loss
//! exactly ln 2, margins 0); training ranks held-out pairs right with positive margins; TRL's
//! figures reach metrics.jsonl; LoRA runs resume bit-identically; IPO trains too; RPO's term is
//! alpha times the chosen answers' NLL and lowers it; bad configs name the field.

use std::path::{Path, PathBuf};

use ingot_test_support::models::{write_model_folder, LLAMA};
use ingot_test_support::temp_dir;
use ingot_train::recipes::dpo::{self, DpoConfig};
use ingot_train::recipes::sft::GenerateSection;

fn no_generator(_: &GenerateSection, _: &Path) -> ingot_train::Result<(PathBuf, Option<PathBuf>)> {
    panic!("these tests read data files")
}

fn write_pairs(path: &Path, n: usize, offset: usize) {
    let lines: Vec<String> = (offset..offset + n)
        .map(|i| {
            serde_json::json!({"prompt": format!("Q{i}: rate item {}.", i * 7 % 13), "chosen": " good.", "rejected": " bad."})
                .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

fn config(loss: &str, train: &Path, val: &Path, tokenizer: &Path, steps: u64) -> DpoConfig {
    let text = format!(
        r#"
[model]
method = "lora"
tokenizer = "{}"
[lora]
r = 4
lora_alpha = 8
lora_dropout = 0.1
target_modules = ["q_proj", "v_proj", "down_proj"]
[data]
train = "{}"
val = "{}"
max_len = 60
batch_size = 4
[dpo]
beta = 0.1
loss = "{loss}"
[train]
max_steps = {steps}
decay_steps = 20
lr = 1e-2
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
    DpoConfig::from_toml(&text, &[], "test.toml").unwrap()
}

fn setup(name: &str) -> (ingot_test_support::TempDir, PathBuf, PathBuf, PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let hf = write_model_folder(&dir.join("hf"), LLAMA, 3);
    let (train, val) = (dir.join("train.jsonl"), dir.join("val.jsonl"));
    write_pairs(&train, 16, 0);
    write_pairs(&val, 8, 100);
    let tok = hf.join("tokenizer.json");
    (dir, hf, train, val, tok)
}

#[test]
fn dpo_starts_at_ln2_and_learns_to_prefer_the_chosen_answers() {
    let (dir, hf, train, val, tok) = setup("dpo-learn");
    let out = dir.join("run");
    let report =
        dpo::run(&config("sigmoid", &train, &val, &tok, 20), &hf, &out, false, false, false, &no_generator).unwrap();
    let (loss0, acc0, margin0) = report.val_start.unwrap();
    assert!((loss0 - std::f64::consts::LN_2).abs() < 1e-6, "the policy is its reference at the start: {loss0}");
    assert_eq!((acc0, margin0), (0.0, 0.0));
    let (loss1, acc1, margin1) = report.val_end.unwrap();
    assert_eq!(acc1, 1.0, "{report:?}");
    assert!(margin1 > 0.5 && loss1 < loss0, "{report:?}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    for key in ["rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"] {
        assert!(last[key].is_number(), "{key} missing from {last}");
    }
    for chart in ["rewards.svg", "accuracy.svg"] {
        let svg = std::fs::read_to_string(out.join(chart)).unwrap_or_else(|e| panic!("{chart}: {e}"));
        ingot_test_support::svg::assert_well_formed_svg(&svg);
    }
    assert!(out.join("adapter").join("adapter_model.safetensors").is_file());
}

#[test]
fn dpo_resumes_bit_identically_and_ipo_trains() {
    let (dir, hf, train, val, tok) = setup("dpo-resume");
    let whole = dir.join("whole");
    dpo::run(&config("sigmoid", &train, &val, &tok, 6), &hf, &whole, false, false, false, &no_generator).unwrap();
    let split = dir.join("split");
    dpo::run(&config("sigmoid", &train, &val, &tok, 3), &hf, &split, false, false, false, &no_generator).unwrap();
    dpo::run(&config("sigmoid", &train, &val, &tok, 6), &hf, &split, true, false, false, &no_generator).unwrap();
    let adapter = |run: &Path| std::fs::read(run.join("adapter").join("adapter_model.safetensors")).unwrap();
    assert_eq!(adapter(&whole), adapter(&split));
    let ipo =
        dpo::run(&config("ipo", &train, &val, &tok, 10), &hf, &dir.join("ipo"), false, false, false, &no_generator)
            .unwrap();
    let (start, end) = (ipo.val_start.unwrap(), ipo.val_end.unwrap());
    assert!(end.0 < start.0 && end.2 > 0.0, "{ipo:?}");
}

#[test]
fn rpo_adds_alpha_times_the_chosen_nll_and_makes_the_chosen_answers_likelier() {
    let (dir, hf, train, val, tok) = setup("dpo-rpo");
    let nll = |run: &Path| -> Vec<(f64, f64)> {
        let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        metrics
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|m| (m["loss"].as_f64().unwrap(), m["nll_loss"].as_f64().unwrap()))
            .collect()
    };
    let mut cfg = config("sigmoid", &train, &val, &tok, 8);
    let plain = dir.join("plain");
    dpo::run(&cfg, &hf, &plain, false, false, false, &no_generator).unwrap();
    cfg.dpo.rpo_alpha = 0.5;
    let rpo = dir.join("rpo");
    let report = dpo::run(&cfg, &hf, &rpo, false, false, false, &no_generator).unwrap();
    assert_eq!(report.rpo_alpha, 0.5);
    // Step 1 is scored before any update: the policy is its reference, the DPO term is ln 2.
    let (plain, rpo) = (nll(&plain), nll(&rpo));
    assert!((plain[0].0 - std::f64::consts::LN_2).abs() < 1e-5, "{plain:?}");
    let (loss, nll1) = rpo[0];
    assert!((loss - (std::f64::consts::LN_2 + 0.5 * nll1)).abs() < 1e-5, "{rpo:?}");
    assert!((nll1 - plain[0].1).abs() < 1e-6, "the same first batch: {plain:?} {rpo:?}");
    // The NLL term pulls the chosen answers up: lower NLL after training than plain DPO's.
    assert!(rpo.last().unwrap().1 < plain.last().unwrap().1, "{plain:?} {rpo:?}");
    let err = DpoConfig::from_toml(
        "[model]\nmethod = \"lora\"\n[data]\ntrain = \"x\"\n[dpo]\nrpo_alpha = -1.0\n",
        &[],
        "d.toml",
    )
    .unwrap_err();
    assert!(err.to_string().contains("dpo.rpo_alpha"), "{err}");
}

#[test]
fn bad_dpo_configs_name_the_field() {
    for (extra, needle) in [
        ("[dpo]\nbeta = 0.0\n", "dpo.beta"),
        ("[dpo]\nlabel_smoothing = 0.7\n", "dpo.label_smoothing"),
        ("[dpo]\nloss = \"ipo\"\nlabel_smoothing = 0.1\n", "sigmoid loss only"),
        ("[dpo]\nloss = \"hinge\"\n", "hinge"),
    ] {
        let text = format!("[model]\nmethod = \"lora\"\n[data]\ntrain = \"x\"\n{extra}");
        let err = DpoConfig::from_toml(&text, &[], "d.toml").unwrap_err();
        assert!(err.to_string().contains(needle), "{extra}: {err}");
    }
}
