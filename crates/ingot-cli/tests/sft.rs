//! `ingot sft`, `--adapter` and `ingot merge` end to end on the real default model: a two-step
//! QLoRA run on generated tool-use data exports a PEFT adapter, every model command takes it, and
//! the merged GGUF gives the same greedy text as base + adapter. Bad data fails naming file and
//! line. Real-model tests skip when the model is absent (fail under CI).

use std::path::Path;

use ingot_test_support::{cli, temp_dir, Run};

fn run(args: &[&str]) -> Run {
    cli::run(env!("CARGO_BIN_EXE_ingot"), args)
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

fn greedy(model: &str, adapter: Option<&str>) -> String {
    let mut args = vec!["generate", "-q", "--model", model, "--prompt", "What is 12 times 34?", "--max-tokens", "12"];
    if let Some(a) = adapter {
        args.extend(["--adapter", a]);
    }
    run(&args).ok().stdout
}

/// `ingot sft` with the bundled tool-use config cut to 6 conversations (and 2 plain-text few-shot
/// examples) and 2 steps (lr 3e-3, so
/// two steps visibly move the adapter), plus `extra` flags.
fn tiny_sft(model: &str, out: &Path, extra: &[&str]) -> Run {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/sft-tools.toml");
    let mut args = vec!["sft", "--config", config, "--model", model, "--out", arg(out)];
    for set in [
        "data.generate.train=6",
        "data.generate.val=2",
        "data.generate.few_shot=2",
        "train.max_steps=2",
        "train.warmup_steps=1",
        "train.lr=3e-3",
        "train.eval_interval=0",
    ] {
        args.extend(["--set", set]);
    }
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn qlora_on_the_real_model_exports_an_adapter_that_every_model_command_takes() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let model = model.display().to_string();
    let dir = temp_dir("cli-sft");
    let out = dir.join("run");
    let r = tiny_sft(&model, &out, &[]).ok();
    assert!(r.stdout.contains("qlora: trained 2 steps"), "{}", r.dump());
    // Chat conversations with tools and plain prompt/completion examples, in one file.
    let train = std::fs::read_to_string(out.join("data/train.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = train.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 8, "{train}");
    let plain: Vec<_> = records.iter().filter(|r| r["completion"].is_string()).collect();
    assert_eq!(plain.len(), 2, "{train}");
    assert!(plain.iter().all(|r| r["completion"].as_str().unwrap().contains("The answer is")));
    let adapter = out.join("adapter");
    for file in ["adapter_config.json", "adapter_model.safetensors"] {
        assert!(adapter.join(file).is_file(), "{file} missing:\n{}", r.dump());
    }
    // The run folder itself is accepted as --adapter, and the adapter changes what the model says
    // (lr 3e-3 for two steps moves it).
    let base = greedy(&model, None);
    let tuned = greedy(&model, Some(arg(&out)));
    assert_ne!(base, tuned, "a trained adapter should change the greedy text");
    // Merged into an F32 GGUF: the same function, so the same greedy text.
    let merged = dir.join("merged.gguf");
    run(&["merge", "--model", &model, "--adapter", arg(&out), "--out", arg(&merged), "--type", "f32"]).ok();
    assert_eq!(greedy(arg(&merged), None), tuned, "merged GGUF vs base + adapter");
    // Resuming a finished run with nothing left to do is refused with what to change.
    let again = tiny_sft(&model, &out, &["--resume"]);
    again.fails_with("raise train.max_steps");
}

#[test]
fn bad_sft_data_is_named_by_file_and_line() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let dir = temp_dir("cli-sft-bad");
    let data = dir.join("train.jsonl");
    std::fs::write(
        &data,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n{not json\n",
    )
    .unwrap();
    let config = dir.join("sft.toml");
    std::fs::write(&config, format!("[model]\nmethod = \"qlora\"\n[data]\ntrain = \"{}\"\n", data.display())).unwrap();
    let m = model.display().to_string();
    run(&["sft", "--config", arg(&config), "--model", &m, "--out", arg(&dir.join("a"))]).fails_with("train.jsonl:2");
    std::fs::write(&data, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n").unwrap();
    run(&["sft", "--config", arg(&config), "--model", &m, "--out", arg(&dir.join("b"))]).fails_with("train.jsonl:1");
    // A target module the model does not have.
    std::fs::write(
        &data,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n",
    )
    .unwrap();
    run(&[
        "sft",
        "--config",
        arg(&config),
        "--model",
        &m,
        "--out",
        arg(&dir.join("c")),
        "--set",
        "lora.target_modules=[\"q_proj\", \"attn_qkv\"]",
    ])
    .fails_with("target module 'attn_qkv' does not exist");
    // --adapter on a folder that holds none.
    run(&["generate", "--model", &m, "--adapter", arg(&dir), "--prompt", "hi"]).fails_with("adapter_config.json");
}
