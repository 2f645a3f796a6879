//! Sizes and numbers a user supplies, through the binary: each used to abort in the allocator
//! (rc 134), run forever, or print a wrong number with exit 0; each is now a one-line error that
//! names the flag or field, the value and the limit, and exits non-zero. `RUST_BACKTRACE` is set
//! on the machines these run on, so "one line" also shows no backtrace leaks into the message.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ingot_test_support::cli::{self, Run};
use ingot_test_support::{dialogue_corpus, temp_dir, write_txt, TempDir};

fn ingot(args: &[&str]) -> Run {
    cli::run(env!("CARGO_BIN_EXE_ingot"), args)
}

fn ingot_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    cli::run_with(env!("CARGO_BIN_EXE_ingot"), args, "", env)
}

/// Fails with `needle` in an error of exactly one line (the last on stderr; progress notes may
/// come before it).
fn refused(r: Run, needle: &str) -> Run {
    let r = r.fails_with(needle);
    let lines: Vec<&str> = r.stderr.trim().lines().collect();
    let error_at = lines.iter().position(|l| l.starts_with("error: "));
    assert_eq!(error_at, Some(lines.len() - 1), "a one-line error expected:\n{}", r.dump());
    assert!(lines[lines.len() - 1].contains(needle), "{}", r.dump());
    r
}

/// A tiny GPT-2 pre-training config over a small generated corpus.
fn tiny_config(dir: &TempDir) -> PathBuf {
    let corpus = write_txt(&dir.join("corpus"), &dialogue_corpus(4, 60));
    let train = "max_steps = 2\nwarmup_steps = 1\ndecay_steps = 2\neval_interval = 0\ncheckpoint_interval = 0\nlog_interval = 1";
    dir.write("tiny.toml", ingot_test_support::tiny_pretrain_toml(&corpus, 16, train))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn model_sizes_beyond_memory_are_refused_before_allocating() {
    let dir = temp_dir("cli-limits-model");
    let cfg = tiny_config(&dir);
    let out = dir.join("run");
    let r = refused(
        ingot(&["pretrain", "-c", s(&cfg), "--out", s(&out), "--set", "model.n_embd=1000000000"]),
        "n_embd = 1000000000",
    );
    assert!(r.stderr.contains("needs an estimated") && r.stderr.contains("over the limit of"), "{}", r.dump());
    // Grew layer by layer without end.
    refused(
        ingot(&["pretrain", "-c", s(&cfg), "--out", s(&out), "--set", "model.n_layer=100000000"]),
        "n_layer = 100000000",
    );
    // The limit is the machine's memory unless INGOT_MAX_MEMORY says otherwise.
    let r = refused(
        ingot_env(&["pretrain", "-c", s(&cfg), "--out", s(&out)], &[("INGOT_MAX_MEMORY", "1K")]),
        "over the limit of 1.0 KiB (INGOT_MAX_MEMORY)",
    );
    assert!(r.stderr.contains("n_embd = 16"), "{}", r.dump());
}

#[test]
fn tokenizer_vocab_sizes_beyond_the_limits_are_refused() {
    let dir = temp_dir("cli-limits-tok");
    let corpus = write_txt(&dir.join("corpus"), &dialogue_corpus(2, 20));
    let out = dir.join("tok.json");
    refused(
        ingot(&["tokenizer", "train", "--corpus", s(&corpus), "--out", s(&out), "--vocab-size", "1000000000"]),
        "vocab size = 1000000000 is out of range: give 1 to 16777216",
    );
    refused(
        ingot_env(
            &["tokenizer", "train", "--corpus", s(&corpus), "--out", s(&out), "--vocab-size", "100000"],
            &[("INGOT_MAX_MEMORY", "1M")],
        ),
        "over the limit of 1.0 MiB",
    );
    assert!(!out.exists());
}

#[test]
fn flags_out_of_range_are_refused_before_the_model_loads() {
    // No model is needed to reject these: the flag is named, not "model not found".
    let none = "/nonexistent/model.gguf";
    refused(
        ingot(&["perplexity", "--model", none, "-f", "x.txt", "--threads", "100000"]),
        "--threads 100000 is out of range",
    );
    refused(ingot(&["perplexity", "--model", none, "-f", "x.txt", "--threads", "0"]), "--threads 0 is out of range");
    refused(
        ingot(&["perplexity", "--model", none, "-f", "x.txt", "--stride", "0"]),
        "--stride 0 is below the minimum of 1",
    );
    refused(
        ingot(&["perplexity", "--model", none, "-f", "x.txt", "--context", "1"]),
        "--context 1 is below the minimum of 2",
    );
    refused(ingot(&["utilization-bench", "--model", none, "--n", "0"]), "--n 0 is below the minimum of 1");
    refused(ingot(&["utilization-bench", "--model", none, "--k", "0"]), "--k 0 is below the minimum of 1");
}

#[test]
fn eval_batches_zero_is_refused() {
    // It reported "validation loss 0.0000 (estimate)" over no batches, exit 0.
    let dir = temp_dir("cli-limits-eval");
    let cfg = tiny_config(&dir);
    let r = refused(
        ingot(&["pretrain", "-c", s(&cfg), "--out", s(&dir.join("run")), "--set", "data.eval_batches=0"]),
        "data.eval_batches = 0",
    );
    assert!(!r.stdout.contains("0.0000"), "{}", r.dump());
}

#[test]
fn resuming_at_or_past_max_steps_is_refused() {
    let dir = temp_dir("cli-limits-resume");
    let cfg = tiny_config(&dir);
    let out = dir.join("run");
    ingot(&["pretrain", "-c", s(&cfg), "--out", s(&out)]).ok();
    // Resuming at or past max_steps trained nothing and printed "final loss NaN", exit 0.
    for steps in ["1", "2"] {
        let r = refused(
            ingot(&[
                "pretrain",
                "-c",
                s(&cfg),
                "--out",
                s(&out),
                "--resume",
                "--set",
                &format!("train.max_steps={steps}"),
            ]),
            &format!("train.max_steps = {steps}"),
        );
        assert!(r.stderr.contains("already at step 2") && !r.stdout.contains("NaN"), "{}", r.dump());
    }
}

/// Rewrite one tensor of a checkpoint's model.safetensors.
fn poison(ckpt: &Path, name: &str, value: f32) {
    let file = ckpt.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let t = &tensors[name];
    let mut v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    v[0] = value;
    let t = Tensor::from_vec(v, t.shape(), &Device::Cpu).unwrap();
    tensors.insert(name.to_string(), t);
    candle_core::safetensors::save(&tensors, &file).unwrap();
}

/// Set `key` of a checkpoint's config.json.
fn set_config(ckpt: &Path, key: &str, value: serde_json::Value) {
    let path = ckpt.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg[key] = value;
    std::fs::write(&path, cfg.to_string()).unwrap();
}

#[test]
fn broken_checkpoints_are_errors_not_empty_output() {
    let dir = temp_dir("cli-limits-ckpt");
    let cfg = tiny_config(&dir);
    let out = dir.join("run");
    ingot(&["pretrain", "-c", s(&cfg), "--out", s(&out)]).ok();
    let good = out.join("step-00000002");
    let generate = |m: &Path| ingot(&["generate", "--model", s(m), "--raw", "--prompt", "O love", "--max-tokens", "3"]);
    generate(&good).ok();

    let copy = |name: &str| -> PathBuf {
        let to = dir.join(name);
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(&good).unwrap() {
            let f = f.unwrap().path();
            if f.is_file() {
                std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
            }
        }
        to
    };
    let nan = copy("nan");
    poison(&nan, "transformer.h.0.mlp.c_fc.weight", f32::NAN);
    refused(generate(&nan), "holds NaN or infinity");

    let eps = copy("eps");
    set_config(&eps, "layer_norm_epsilon", serde_json::json!(-1.0));
    refused(generate(&eps), "layer_norm_epsilon = -1");

    let act = copy("act");
    set_config(&act, "activation_function", serde_json::json!("bogus"));
    refused(generate(&act), "activation_function = \"bogus\" is not supported");
}
