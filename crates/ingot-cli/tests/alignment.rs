//! `ingot reward-train` and `ingot dpo` end to end on the real default model: the bundled
//! configs cut to a few pairs and two steps train, report held-out accuracy and export (the
//! reward model's adapter with its head; DPO's adapter, which `--adapter` then takes); a bad
//! pair line fails naming the file and line. Real-model tests skip when the model is absent
//! (fail under CI).

use std::path::Path;

use ingot_test_support::{cli, temp_dir, Run};

fn run(args: &[&str]) -> Run {
    cli::run(env!("CARGO_BIN_EXE_ingot"), args)
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

fn tiny(command: &str, config: &str, model: &str, out: &Path, extra: &[&str]) -> Run {
    let config = format!("{}/../../configs/{config}", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec![command, "--config", &config, "--model", model, "--out", arg(out)];
    for set in [
        "data.generate.train=6",
        "data.generate.val=4",
        "train.max_steps=2",
        "train.warmup_steps=1",
        "train.eval_interval=0",
    ] {
        args.extend(["--set", set]);
    }
    args.extend_from_slice(extra);
    run(&args)
}

/// The model's own answers to the first 6 training prompts (`align-eval --split train`), and the
/// `--set` that points the harmlessness configs' data.generate.answers at them.
fn train_answers(model: &str, dir: &Path) -> String {
    let json = dir.join("train-answers.json");
    let args = ["align-eval", "--model", model, "--split", "train", "--limit", "6", "--max-tokens", "16", "--json"];
    let r = run(&[&args[..], &[arg(&json)]].concat()).ok();
    assert!(r.stdout.contains("| rule |"), "{}", r.dump());
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((report["split"].as_str(), report["answers"].as_array().map(Vec::len)), (Some("train"), Some(6)));
    format!("data.generate.answers={:?}", json.display().to_string())
}

#[test]
fn both_bundled_reward_configs_train_and_export_on_the_real_model() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let model = model.display().to_string();
    let dir = temp_dir("cli-reward");
    let answers = train_answers(&model, &dir);
    // The tool-use pairs are long (their system prompt lists the tools): fewer of them.
    let smaller: &[&str] = &[
        "--set",
        "data.generate.train=2",
        "--set",
        "data.generate.val=2",
        "--set",
        "train.max_steps=1",
        "--set",
        "train.warmup_steps=0",
    ];
    let on_policy: &[&str] = &["--set", &answers];
    for (config, extra, steps, held_out) in
        [("reward-harmless.toml", on_policy, 2, 4), ("reward-tools.toml", smaller, 1, 2)]
    {
        let out = dir.join(config);
        let mut args = vec!["--set", "data.batch_size=2"];
        args.extend_from_slice(extra);
        let r = tiny("reward-train", config, &model, &out, &args).ok();
        assert!(r.stdout.contains(&format!("qlora: trained {steps} steps")), "{}", r.dump());
        if config == "reward-harmless.toml" {
            assert!(r.stderr.contains("on-policy pairs from the answers in"), "{}", r.dump());
        }
        assert!(r.stdout.contains("held-out pairs:") && r.stdout.contains(&format!("of {held_out}")), "{}", r.dump());
        for file in ["adapter_config.json", "adapter_model.safetensors", "score.safetensors"] {
            assert!(out.join("reward").join(file).is_file(), "{config}: {file} missing:\n{}", r.dump());
        }
    }
    // align-eval judges held-out answers by the rule and by the reward model just trained.
    let reward = dir.join("reward-harmless.toml");
    // The first 4 held-out prompts answered by `policy`, judged by that reward model too.
    let align_eval = |policy: &str, name: &str| -> (Run, serde_json::Value) {
        let json = dir.join(name);
        let args = ["--limit", "4", "--max-tokens", "8", "--json", arg(&json)];
        let r = run(&[&["align-eval", "--model", policy, "--reward-model", arg(&reward)][..], &args].concat()).ok();
        let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        (r, report)
    };
    let (r, report) = align_eval(&model, "align.json");
    assert!(r.stdout.contains("| rule |") && r.stdout.contains("| reward model |"), "{}", r.dump());
    assert_eq!(report["answers"].as_array().unwrap().len(), 4);
    assert!(report["rates"]["refusal_reward"].is_number(), "{report}");
    // A tuned policy merged into a file is judged by the same reward model: the reward model's
    // adapter goes over the base it records, not over the model answering, so its scores of
    // the authored refusal and compliance stay what they were.
    let merged = dir.join("merged.gguf");
    let r = run(&["merge", "--adapter", arg(&reward.join("reward")), "--out", arg(&merged), "--type", "q8_0"]).ok();
    assert!(merged.is_file(), "{}", r.dump());
    let (r, merged_report) = align_eval(arg(&merged), "align-merged.json");
    // (Within 1e-4: the references are scored in one batch with answers of other lengths.)
    let references = |r: &serde_json::Value| -> Vec<f64> {
        let answers = r["answers"].as_array().unwrap();
        answers.iter().flat_map(|a| [1, 2].map(|i| a["scores"][i].as_f64().unwrap())).collect()
    };
    let (before, after) = (references(&report), references(&merged_report));
    assert!(before.iter().zip(&after).all(|(a, b)| (a - b).abs() < 1e-4), "{before:?} vs {after:?}\n{}", r.dump());

    // PPO against that reward model: one rollout batch of 2 prompts, 2 updates.
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/ppo-harmless.toml");
    let rm = format!("ppo.reward_model=\"{}\"", reward.display());
    let ppo_out = dir.join("ppo");
    let mut args = vec!["ppo", "--config", config, "--model", &model, "--out", arg(&ppo_out), "--set", &rm];
    for set in [
        "data.generate.train=4",
        "data.generate.val=2",
        "ppo.rollouts_per_batch=2",
        "ppo.ppo_epochs=1",
        "ppo.minibatches=2",
        "ppo.max_completion_tokens=6",
        "ppo.eval_prompts=2",
        "train.max_steps=2",
        "train.warmup_steps=0",
    ] {
        args.extend(["--set", set]);
    }
    let r = run(&args).ok();
    assert!(r.stdout.contains("ppo: trained 2 updates over 1 rollout batches"), "{}", r.dump());
    assert!(
        r.stdout.contains("held-out reward-model score on 2 prompts") && r.stdout.contains("KL to the reference"),
        "{}",
        r.dump()
    );
    assert!(
        ppo_out.join("adapter").join("adapter_model.safetensors").is_file()
            && ppo_out.join("v_head.safetensors").is_file()
    );
}

#[test]
fn dpo_on_the_real_model_exports_an_adapter_that_generate_takes() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let model = model.display().to_string();
    let dir = temp_dir("cli-dpo");
    let out = dir.join("run");
    let answers = train_answers(&model, &dir);
    let extra = ["--set", "data.batch_size=2", "--set", "train.lr=1e-3", "--set", &answers];
    let r = tiny("dpo", "dpo-harmless.toml", &model, &out, &extra).ok();
    assert!(r.stdout.contains("qlora (Sigmoid, beta 0.1): trained 2 steps"), "{}", r.dump());
    // Before any update the policy is its reference: no pair is preferred yet (the held-out loss
    // is the preference loss alone, without RPO's term).
    assert!(
        r.stdout.contains("held-out pairs at the start: preference accuracy 0.0% of 4, mean margin 0.000, loss 0.6931"),
        "{}",
        r.dump()
    );
    assert!(r.stdout.contains("held-out pairs at the end"), "{}", r.dump());
    let g =
        run(&["generate", "-q", "--model", &model, "--adapter", arg(&out), "--prompt", "Hi", "--max-tokens", "4"]).ok();
    assert!(!g.stdout.trim().is_empty(), "{}", g.dump());
}

#[test]
fn grpo_on_the_real_model_scores_calculator_calls() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let model = model.display().to_string();
    let dir = temp_dir("cli-grpo");
    let out = dir.join("run");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/grpo-calculator.toml");
    let mut args = vec!["grpo", "--config", config, "--model", &model, "--out", arg(&out)];
    for set in [
        "data.generate.train=4",
        "data.generate.val=2",
        "grpo.group_size=2",
        "grpo.prompts_per_step=1",
        "grpo.max_completion_tokens=8",
        "grpo.eval_prompts=2",
        "train.max_steps=1",
        "train.warmup_steps=0",
    ] {
        args.extend(["--set", set]);
    }
    let r = run(&args).ok();
    assert!(
        r.stdout.contains("qlora: trained 1 steps") && r.stdout.contains("held-out greedy reward on 2 prompts"),
        "{}",
        r.dump()
    );
    let line = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(line.contains("\"rewards/calculator-call\"") && line.contains("rollout_tokens_per_sec"), "{line}");
}

#[test]
fn a_bad_pair_line_names_the_file_and_line() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let model = model.display().to_string();
    let dir = temp_dir("cli-reward-bad");
    let data = dir.write(
        "pairs.jsonl",
        "{\"prompt\": \"Hi\", \"chosen\": \" Hello.\", \"rejected\": \" Go away.\"}\n{\"prompt\": \"Hi\", \"chosen\": \" Hello.\"}\n",
    );
    let cfg = dir.write(
        "r.toml",
        format!("[model]\nmethod = \"qlora\"\n[data]\ntrain = \"{}\"\nmax_len = 64\n[train]\nmax_steps = 1\nwarmup_steps = 0\n", data.display()),
    );
    let r = run(&["reward-train", "--config", arg(&cfg), "--model", &model, "--out", arg(&dir.join("run"))]);
    let r = r.fails_with("pairs.jsonl:2");
    assert!(r.stderr.contains("\"rejected\""), "{}", r.dump());
}
