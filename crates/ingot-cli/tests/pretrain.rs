//! `ingot tokenizer train`, `ingot data prepare` and `ingot pretrain` as a user runs them,
//! including a run killed (SIGKILL) while it saves checkpoints and then resumed.

use std::path::{Path, PathBuf};

use ingot_test_support::cli::{self, Run};

/// `ingot ARGS` with extra environment variables.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    cli::run_with(env!("CARGO_BIN_EXE_ingot"), args, "", env)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let r = run_env(args, &[]);
    (r.code, r.stdout, r.stderr)
}

/// `ingot ARGS`, aborted at `fault` (see `cli::run_killed_at`).
fn kill_at(fault: &str, args: &[&str]) {
    cli::run_killed_at(env!("CARGO_BIN_EXE_ingot"), fault, args);
}

fn temp_dir(tag: &str) -> ingot_test_support::TempDir {
    ingot_test_support::temp_dir(&format!("cli-pretrain-{tag}"))
}

fn write_corpus(dir: &Path) -> PathBuf {
    ingot_test_support::write_txt(&dir.join("corpus"), &ingot_test_support::mercy_corpus())
}

fn write_config(dir: &Path, corpus: &Path, max_steps: u32, checkpoint_interval: u32) -> PathBuf {
    let train = format!(
        "max_steps = {max_steps}\nwarmup_steps = 2\ndecay_steps = {max_steps}\nlr = 3e-3\nmin_lr = 3e-4\n\
         eval_interval = 10\ncheckpoint_interval = {checkpoint_interval}\nlog_interval = 1\nkeep_last = 2"
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, ingot_test_support::tiny_pretrain_toml(corpus, 32, &train)).unwrap();
    path
}

#[test]
fn tokenizer_train_and_data_prepare() {
    let dir = temp_dir("prep");
    let corpus = write_corpus(dir.path());
    let tok = dir.join("tok.json");
    let (code, _, err) = run(&[
        "tokenizer",
        "train",
        "--corpus",
        corpus.to_str().unwrap(),
        "--kind",
        "bpe",
        "--vocab-size",
        "300",
        "--out",
        tok.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let data = dir.join("data");
    let (code, out, err) = run(&[
        "data",
        "prepare",
        "--corpus",
        corpus.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--out",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("train") && data.join("dataset.json").exists(), "{out}");
    // A truncated shard is a one-line error when training on it.
    let shard = data.join("train_00000.bin");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 7]).unwrap();
    let cfg = write_config(dir.path(), &corpus, 4, 2);
    let (code, _, err) = run(&[
        "pretrain",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        dir.join("run").to_str().unwrap(),
        "--set",
        &format!("data.dir=\"{}\"", data.display()),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("truncated") && err.lines().count() == 1, "{err}");
}

/// A run killed at each point of a checkpoint save (the new step complete but not renamed in; the
/// step in place but `latest` not yet pointing at it; a re-save of an existing step between its
/// two renames) keeps a loadable `latest`, resumes from it, and leaves nothing behind once resumed.
/// The kills are staged (`INGOT_FAULT`), so each lands exactly where it is meant to.
#[test]
fn pretrain_killed_while_saving_resumes() {
    let dir = temp_dir("kill");
    let corpus = write_corpus(dir.path());
    let cfg = write_config(dir.path(), &corpus, 3, 1); // a checkpoint every step
    let out = dir.join("run");
    let (cfg_s, out_s) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    let fresh = ["pretrain", "--config", cfg_s, "--out", out_s, "--set", "train.max_steps=2"];
    let resume = ["pretrain", "--config", cfg_s, "--out", out_s, "--set", "train.max_steps=2", "--resume"];
    let latest = || std::fs::read_to_string(out.join("latest")).unwrap().trim().to_string();
    let loads = |step_dir: &str| {
        let (code, _, err) = run(&["inspect", out.join(step_dir).to_str().unwrap()]);
        assert_eq!(code, 0, "checkpoint {step_dir} does not load: {err}");
    };

    // 1. Killed with step 2 complete in its temporary folder: latest is still step 1.
    kill_at("before-rename@step-00000002", &fresh);
    assert_eq!(latest(), "step-00000001");
    loads("step-00000001");
    assert!(
        cli::hidden_entries(&out).iter().any(|n| n.starts_with(".step-00000002.tmp-")),
        "{:?}",
        cli::hidden_entries(&out)
    );

    // 2. Resumed, killed with step 2 in place but before `latest` moves to it.
    kill_at("before-rename@latest", &resume);
    assert_eq!(latest(), "step-00000001");
    assert!(out.join("step-00000002").is_dir());
    assert!(
        !cli::hidden_entries(&out).iter().any(|n| n.starts_with(".step-")),
        "the next save cleaned up: {:?}",
        cli::hidden_entries(&out)
    );

    // 3. Resumed from step 1 again, so step 2 is saved over itself: killed between the two renames
    //    (the old step 2 moved aside, the new one not yet in).
    kill_at("between-renames@step-00000002", &resume);
    assert_eq!(latest(), "step-00000001");
    loads("step-00000001");
    assert!(!out.join("step-00000002").exists());
    assert!(
        cli::hidden_entries(&out).iter().any(|n| n.starts_with(".step-00000002.old-")),
        "{:?}",
        cli::hidden_entries(&out)
    );

    // 4. Resumed to the end: steps 1..=3 logged once each, the last checkpoint loads, no litter.
    let (code, _, err) = run(&["pretrain", "--config", cfg_s, "--out", out_s, "--resume"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(latest(), "step-00000003");
    loads("step-00000003");
    assert_eq!(cli::hidden_entries(&out), Vec::<String>::new());
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> =
        log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, vec![1, 2, 3], "metrics log has gaps or repeats after kills");
}

#[test]
fn pretrain_config_errors_are_one_line() {
    let dir = temp_dir("cfg");
    let corpus = write_corpus(dir.path());
    let cfg = write_config(dir.path(), &corpus, 4, 2);
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "model.n_layerz=3"], "n_layerz"),
        (&["--set", "model.preset=huge"], "unknown model preset 'huge'"),
        (&["--set", "train.lr=-1"], "train.lr"),
        (&["--set", "data.context=999"], "context"),
        (&["--set", "train.bogus=1"], "bogus"),
    ];
    let run_dir = dir.join("run");
    for (extra, phrase) in cases {
        let mut args = vec!["pretrain", "--config", cfg.to_str().unwrap(), "--out", run_dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, _, err) = run(&args);
        assert_eq!(code, 1, "{extra:?}: {err}");
        assert!(err.starts_with("error:") && err.lines().count() == 1 && err.contains(phrase), "{extra:?}: {err}");
    }
    let (code, _, err) = run(&["pretrain", "--config", dir.join("missing.toml").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.toml"), "{err}");
}

/// The trainer's validation loss over the whole held-out split (`pretrain --eval-only`) and
/// `ingot perplexity` over the held-out documents' text measure the same thing two ways (token
/// shards and batched windows vs raw text and a sliding window): exp(loss) and the perplexity agree
/// within 1%.
#[test]
fn perplexity_of_the_held_out_split_equals_exp_validation_loss() {
    let dir = temp_dir("ppl");
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    // Ten varied documents so the held-out ones are not a copy of the training text.
    let words = ["mercy", "strained", "droppeth", "gentle", "rain", "heaven", "twice", "blest", "giveth", "takes"];
    for d in 0..10 {
        let text: String = (0..150)
            .map(|i| {
                format!(
                    "{} {} the {} of {}.\n",
                    words[(i * 3 + d) % 10],
                    words[(i * 7 + 2 * d) % 10],
                    words[(i + d) % 10],
                    words[(i * i + d) % 10]
                )
            })
            .collect();
        std::fs::write(corpus.join(format!("p{d}.txt")), text).unwrap();
    }
    let cfg = write_config(dir.path(), &corpus, 150, 150);
    let out = dir.join("run");
    let base =
        ["pretrain", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--set", "data.context=32"];
    let (code, _, err) = run(&base);
    assert_eq!(code, 0, "{err}");
    let (code, stdout, err) = run(&[&base[..], &["--eval-only"]].concat());
    assert_eq!(code, 0, "{err}");
    let loss: f64 =
        stdout.split("validation loss ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("data/dataset.json")).unwrap()).unwrap();
    let held_out: String = manifest["val_documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| std::fs::read_to_string(corpus.join(f.as_str().unwrap())).unwrap())
        .collect();
    assert!(held_out.len() > 5000);
    let text = dir.join("held_out.txt");
    std::fs::write(&text, held_out).unwrap();
    let latest = std::fs::read_to_string(out.join("latest")).unwrap();
    let model = out.join(latest.trim());
    let (code, stdout, err) = run(&[
        "perplexity",
        "--model",
        model.to_str().unwrap(),
        "--file",
        text.to_str().unwrap(),
        "--context",
        "32",
        "--stride",
        "32",
    ]);
    assert_eq!(code, 0, "{err}");
    let ppl: f64 = stdout.split("perplexity:").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let rel = (ppl / loss.exp() - 1.0).abs();
    eprintln!("perplexity {ppl:.4} vs exp(validation loss {loss:.4}) = {:.4}: {:.3}% apart", loss.exp(), 100.0 * rel);
    assert!(loss.exp() < 10.0, "the model did not learn (exp(loss) = {})", loss.exp());
    assert!(rel < 0.01, "perplexity {ppl} vs exp(loss) {}", loss.exp());
}
