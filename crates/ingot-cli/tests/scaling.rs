//! `ingot scaling` as a user runs it: a sweep of tiny models killed mid-run (INGOT_FAULT) twice
//! and resumed, without retraining the runs that had finished; its report; and the refusals
//! (a second fresh sweep over the first, a resume with changed settings).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ingot_test_support::cli::{self, Run};

fn run(args: &[&str]) -> Run {
    cli::run(env!("CARGO_BIN_EXE_ingot"), args)
}

fn write_corpus(dir: &Path) -> PathBuf {
    ingot_test_support::write_txt(&dir.join("corpus"), &ingot_test_support::mercy_corpus())
}

/// Three sizes (1, 2, 3 layers of width 16 per layer) x two budgets (64 and 128 tokens: 2 and 4
/// steps of 2 x 16 tokens), a checkpoint every step.
fn write_config(dir: &Path, corpus: &Path) -> PathBuf {
    let text = format!(
        "[model]\npreset = \"char-baby\"\nn_positions = 16\n\
         [data]\ncorpus = \"{}\"\nbatch_size = 2\ncontext = 16\neval_batches = 1\n\
         [train]\nlr = 3e-3\nmin_lr = 3e-4\neval_interval = 0\nlog_interval = 1\ncheckpoint_interval = 1\nkeep_last = 2\n\
         [sweep]\ndepths = [1, 2, 3]\naspect_ratio = 16\nhead_dim = 8\ntokens = [64, 128]\n\
         [fit]\nbootstrap = 5\n",
        corpus.display()
    );
    let path = dir.join("sweep.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A file's bytes and modification time: equal before and after means it was not rewritten.
fn snapshot(path: &Path) -> (Vec<u8>, SystemTime) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    (bytes, std::fs::metadata(path).unwrap().modified().unwrap())
}

fn latest(run_dir: &Path) -> String {
    std::fs::read_to_string(run_dir.join("latest")).unwrap().trim().to_string()
}

#[test]
fn sweep_killed_mid_run_resumes_without_retraining_finished_runs() {
    let dir = ingot_test_support::temp_dir("cli-scaling");
    let corpus = write_corpus(dir.path());
    let cfg = write_config(dir.path(), &corpus);
    let out = dir.join("sweep");
    let (cfg_s, out_s) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    let fresh = ["scaling", "--config", cfg_s, "--out", out_s];
    let resume = ["scaling", "--config", cfg_s, "--out", out_s, "--resume"];
    let runs = out.join("runs");
    let (first, second) = (runs.join("L1-W16-D64"), runs.join("L1-W16-D128"));

    // 1. Killed in the second run, saving its step 3: the first run is finished, the second has
    //    its step-2 checkpoint and no result.
    let killed = cli::run_killed_at(env!("CARGO_BIN_EXE_ingot"), "before-rename@step-00000003", &fresh);
    assert!(killed.stderr.contains("[run 1/6] L1-W16-D64"), "{}", killed.dump());
    assert!(killed.stderr.contains("[run 2/6] L1-W16-D128"), "{}", killed.dump());
    assert!(first.join("result.json").is_file(), "{}", killed.dump());
    assert!(!second.join("result.json").exists());
    assert_eq!(latest(&second), "step-00000002");
    let first_metrics = snapshot(&first.join("metrics.jsonl"));
    let first_result = snapshot(&first.join("result.json"));

    // 2. Resumed: the first run is skipped, the second continues from step 2 and is killed as it
    //    records its result, having trained to its last step.
    let killed = cli::run_killed_at(env!("CARGO_BIN_EXE_ingot"), "before-rename@result.json", &resume);
    assert!(killed.stderr.contains("L1-W16-D64: skipped: finished earlier"), "{}", killed.dump());
    assert!(killed.stderr.contains("(step 2)"), "the second run resumed from its checkpoint:\n{}", killed.dump());
    assert_eq!(latest(&second), "step-00000004");
    assert!(!second.join("result.json").exists());
    let second_metrics = snapshot(&second.join("metrics.jsonl"));
    let steps: Vec<u64> = String::from_utf8_lossy(&second_metrics.0)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3, 4], "each step logged once across the kill");

    // 3. Resumed to the end: the first run untouched, the second measured without training,
    //    the other four trained.
    let done = run(&resume).ok();
    assert!(
        done.stdout.contains("6 runs: 4 trained, 0 resumed, 1 skipped (finished earlier), 1 measured"),
        "{}",
        done.dump()
    );
    assert!(done.stderr.contains("L1-W16-D128: trained earlier, measured now"), "{}", done.dump());
    assert_eq!(snapshot(&first.join("metrics.jsonl")), first_metrics, "the finished run was retrained");
    assert_eq!(snapshot(&first.join("result.json")), first_result);
    assert_eq!(snapshot(&second.join("metrics.jsonl")), second_metrics, "the trained run was retrained");
    for name in ["L1-W16-D64", "L1-W16-D128", "L2-W32-D64", "L2-W32-D128", "L3-W48-D64", "L3-W48-D128"] {
        let result: serde_json::Value =
            serde_json::from_slice(&std::fs::read(runs.join(name).join("result.json")).unwrap()).unwrap();
        let loss = result["val_loss"].as_f64().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{name}: {result}");
        assert!(result["non_embedding_params"].as_u64().unwrap() > 0);
    }
    // The report: every run in the table, the L(N, D) fit, the held-out check declined with a
    // reason (two sizes are too few to fit without the largest), and the three charts.
    let md = std::fs::read_to_string(out.join("scaling.md")).unwrap();
    assert!(md.contains("| L3-W48-D128 |") && md.contains("## L(N) = E + A / N^alpha"), "{md}");
    assert!(md.contains("held-out check, L(N) without the largest size"), "{md}");
    for svg in ["loss_vs_params.svg", "loss_vs_compute.svg", "predicted_vs_measured.svg"] {
        ingot_test_support::svg::assert_well_formed_svg(&std::fs::read_to_string(out.join(svg)).unwrap());
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("scaling.json")).unwrap()).unwrap();
    assert_eq!(report["runs"].as_array().unwrap().len(), 6);

    // 4. Again: nothing to train. A fresh sweep over it is refused; so is a resume with another
    //    learning rate (the finished runs were trained with the old one).
    let again = run(&resume).ok();
    assert!(again.stdout.contains("6 skipped"), "{}", again.dump());
    assert_eq!(snapshot(&first.join("metrics.jsonl")), first_metrics);
    run(&fresh).fails_with("already holds a scaling sweep; continue it with --resume");
    let mut changed = resume.to_vec();
    changed.extend(["--set", "train.lr=1e-2"]);
    run(&changed).fails_with("cannot resume");
    // The report alone is rebuilt from the finished runs.
    let only = run(&["scaling", "--config", cfg_s, "--out", out_s, "--report-only"]).ok();
    assert!(only.stdout.contains("report:"), "{}", only.dump());
}

#[test]
fn bad_sweep_configs_are_one_line_errors() {
    let dir = ingot_test_support::temp_dir("cli-scaling-bad");
    let corpus = write_corpus(dir.path());
    let cfg = write_config(dir.path(), &corpus);
    let out = dir.join("sweep");
    let args =
        |set: &str| run(&["scaling", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--set", set]);
    args("sweep.head_dim=5").fails_with("must be a positive multiple of sweep.head_dim");
    args("model.n_embd=64").fails_with("[model] n_embd is set by the sweep");
    args("sweep.tokens=[]").fails_with("at least one value");
    assert!(!out.exists(), "a bad config must fail before anything is written");
    run(&["scaling", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resume"])
        .fails_with("holds no scaling sweep");
}
