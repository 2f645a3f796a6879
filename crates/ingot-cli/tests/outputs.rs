//! What a command that writes may replace, and what a kill in the middle of a write leaves behind.
//!
//! The policy (`ingot_core::atomic`): an output path is replaced only when it is absent, empty, or
//! something Ingot made there (it carries Ingot's marker file); `--force` overrides that, but never
//! to replace a command's own input. Writes are staged and renamed into place, so a process killed
//! between the temporary write and the rename (`INGOT_FAULT`, an abort at exactly that point)
//! leaves the old state whole, and the next run removes what the killed one left.

use std::fs;
use std::path::Path;

use ingot_test_support::cli::{self, Run};
use ingot_test_support::{temp_dir, TempDir};

fn ingot(args: &[&str]) -> Run {
    cli::run(env!("CARGO_BIN_EXE_ingot"), args)
}

/// `ingot ARGS`, aborted at `fault` (see `cli::run_killed_at`).
fn kill_at(fault: &str, args: &[&str]) {
    cli::run_killed_at(env!("CARGO_BIN_EXE_ingot"), fault, args);
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn notes(dir: &TempDir) -> std::path::PathBuf {
    dir.write("notes/kalomer.txt", "Kalomer was founded in 1432 by river traders.");
    dir.write("notes/sub/recipe.md", "Pistachio gelato needs a pinch of salt.");
    dir.join("notes")
}

// ---------------------------------------------------------------------------------------------
// ingot index build
// ---------------------------------------------------------------------------------------------

/// Issue 10, defect 1: `index build docs --out docs` indexed the notes and then deleted them; a
/// user's folder or file at --out was replaced or renamed aside, with exit 0.
#[test]
fn index_build_never_replaces_what_ingot_did_not_make() {
    let dir = temp_dir("out-index");
    let docs = notes(&dir);

    // The documents folder itself, spelled two ways, and its parent: refused, even with --force.
    for out in [docs.clone(), docs.join("sub/.."), dir.path().to_path_buf()] {
        for force in [false, true] {
            let mut args = vec!["index", "build", s(&docs), "--out", s(&out)];
            if force {
                args.push("--force");
            }
            ingot(&args).fails_with("would delete the documents folder");
        }
    }
    assert_eq!(fs::read_to_string(docs.join("kalomer.txt")).unwrap(), "Kalomer was founded in 1432 by river traders.");
    assert!(docs.join("sub/recipe.md").is_file());

    // A user's folder and a user's file: refused without --force, and left exactly as they were.
    dir.write("mine/todo.txt", "buy milk");
    let r = ingot(&["index", "build", s(&docs), "--out", s(&dir.join("mine"))]).fails_with("--force");
    assert!(r.stderr.contains("not an Ingot search index"), "{}", r.dump());
    assert_eq!(fs::read_to_string(dir.join("mine/todo.txt")).unwrap(), "buy milk");
    dir.write("file-out", "precious");
    ingot(&["index", "build", s(&docs), "--out", s(&dir.join("file-out"))]).fails_with("is a file");
    assert_eq!(fs::read_to_string(dir.join("file-out")).unwrap(), "precious");
    assert_eq!(cli::hidden_entries(dir.path()), Vec::<String>::new(), "nothing was renamed aside");

    // What Ingot made it may rebuild; --force replaces the user's folder when asked to.
    let index = dir.join("index");
    ingot(&["index", "build", s(&docs), "--out", s(&index)]).ok();
    ingot(&["index", "build", s(&docs), "--out", s(&index)]).ok();
    ingot(&["index", "build", s(&docs), "--out", s(&dir.join("mine")), "--force"]).ok();
    let hit = ingot(&["index", "search", "founded", "--index", s(&dir.join("mine"))]).ok();
    assert!(hit.stdout.contains("kalomer.txt"), "{}", hit.dump());
    // The default index folder sits inside the documents folder, hidden, and is allowed.
    ingot(&["index", "build", s(&docs)]).ok();
    assert!(docs.join(".ingot-index").is_dir());
}

/// A rebuild killed before its swap, and one killed between the swap's two renames, both leave the
/// previous index searchable; the next build restores, replaces and cleans up.
#[test]
fn index_build_killed_mid_swap_keeps_the_previous_index() {
    let dir = temp_dir("out-index-kill");
    let docs = notes(&dir);
    let index = dir.join("idx");
    let build = ["index", "build", s(&docs), "--out", s(&index)];
    let search = |word: &str| ingot(&["index", "search", word, "--index", s(&index)]).ok().stdout;
    ingot(&build).ok();
    dir.write("notes/new.txt", "The okapi lives in the Ituri forest.");

    kill_at("before-rename@idx", &build);
    assert!(search("founded").contains("kalomer.txt"));
    assert!(!search("okapi").contains("new.txt"), "the killed build was not swapped in");
    assert!(
        cli::hidden_entries(dir.path()).iter().any(|n| n.starts_with(".idx.tmp-")),
        "{:?}",
        cli::hidden_entries(dir.path())
    );

    kill_at("between-renames@idx", &build);
    assert!(!index.exists(), "killed after moving the old index aside");
    assert!(search("founded").contains("kalomer.txt"), "the old copy is still searched");

    ingot(&build).ok();
    assert!(search("okapi").contains("new.txt"));
    assert_eq!(cli::hidden_entries(dir.path()), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// ingot data prepare
// ---------------------------------------------------------------------------------------------

fn corpus(dir: &TempDir) -> std::path::PathBuf {
    for d in 0..4 {
        let text: String = (0..50).map(|i| format!("Line {i} of play {d}: the quality of mercy.\n")).collect();
        dir.write(format!("corpus/p{d}.txt"), text);
    }
    dir.join("corpus")
}

/// A prepare killed as it renames a shard (the new dataset half-written) leaves the previous
/// dataset whole: its manifest and shards still agree and it still trains.
#[test]
fn data_prepare_killed_mid_write_keeps_the_previous_dataset() {
    let dir = temp_dir("out-data");
    let corpus = corpus(&dir);
    let tok = dir.join("tok.json");
    ingot(&["tokenizer", "train", "--kind", "char", "--corpus", s(&corpus), "--out", s(&tok)]).ok();
    let data = dir.join("data");
    let prepare = |fraction: &str| {
        vec!["data", "prepare", "--corpus", s(&corpus), "--tokenizer", s(&tok), "--out", s(&data), "--val-fraction"]
            .into_iter()
            .chain([fraction])
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let args = prepare("0.25");
    ingot(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    let before = fs::read(data.join("dataset.json")).unwrap();
    let shard_before = fs::read(data.join("train_00000.bin")).unwrap();

    let args = prepare("0.5");
    kill_at("before-rename@val_00000.bin", &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(fs::read(data.join("dataset.json")).unwrap(), before, "the old manifest is intact");
    assert_eq!(fs::read(data.join("train_00000.bin")).unwrap(), shard_before, "the old shards are intact");
    assert!(!cli::hidden_entries(dir.path()).is_empty(), "the kill left its temporary folder");

    // The next prepare cleans up after the killed one and replaces the dataset.
    ingot(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    assert_ne!(fs::read(data.join("dataset.json")).unwrap(), before);
    assert_eq!(cli::hidden_entries(dir.path()), Vec::<String>::new());
    assert_eq!(cli::hidden_entries(&data), Vec::<String>::new());

    // A user's folder is not a dataset to replace.
    dir.write("mine/keep.txt", "mine");
    let mut args = prepare("0.25");
    let mine = dir.join("mine");
    let n = args.len();
    args[n - 3] = s(&mine).to_string();
    ingot(&args.iter().map(String::as_str).collect::<Vec<_>>()).fails_with("not an Ingot prepared dataset");
    assert_eq!(fs::read_to_string(mine.join("keep.txt")).unwrap(), "mine");
}

// ---------------------------------------------------------------------------------------------
// ingot pretrain
// ---------------------------------------------------------------------------------------------

fn pretrain_config(dir: &TempDir, corpus: &Path) -> std::path::PathBuf {
    let train =
        "max_steps = 2\nwarmup_steps = 1\neval_interval = 0\ncheckpoint_interval = 1\nlog_interval = 1\nkeep_last = 1";
    dir.write("tiny.toml", ingot_test_support::tiny_pretrain_toml(corpus, 16, train))
}

/// Issue 10, defect 2: a run folder is one run. A fresh run into a used folder is refused (before,
/// it trained on the old shards whatever the config said, and `keep_last` pruned the new run's
/// checkpoints while keeping the old ones); resume refuses other model, data or tokenizer
/// settings; `--force` starts afresh and prepares the data again when its settings changed.
#[test]
fn pretrain_run_folder_is_one_run() {
    let dir = temp_dir("out-pretrain");
    let corpus = corpus(&dir);
    let cfg = pretrain_config(&dir, &corpus);
    let out = dir.join("run");
    let base = ["pretrain", "--config", s(&cfg), "--out", s(&out)];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        ingot(&a)
    };
    with(&[]).ok();
    assert!(out.join("ingot-run.json").is_file());

    // A run that stopped before its first checkpoint (its manifest only): neither a fresh start
    // nor --resume sends the user to the other; --force starts it afresh.
    let stopped = dir.join("stopped");
    fs::create_dir_all(&stopped).unwrap();
    fs::copy(out.join("ingot-run.json"), stopped.join("ingot-run.json")).unwrap();
    let again = |extra: &[&str]| {
        let mut a = vec!["pretrain", "--config", s(&cfg), "--out", s(&stopped)];
        a.extend_from_slice(extra);
        ingot(&a)
    };
    again(&[]).fails_with("saved no checkpoint");
    again(&["--resume"]).fails_with("restarts with --force");
    again(&["--force"]).ok();
    assert!(stopped.join("step-00000002").is_dir());

    // A fresh run into the used folder, same or other settings: refused, nothing touched.
    let latest = fs::read_to_string(out.join("latest")).unwrap();
    with(&[]).fails_with("already holds a training run");
    with(&["--set", "data.vocab_size=300", "--set", "data.tokenizer_kind=\"bpe\""]).fails_with("--resume");
    assert_eq!(fs::read_to_string(out.join("latest")).unwrap(), latest);

    // Resume with other model or data settings: refused, naming the field.
    with(&["--resume", "--set", "train.max_steps=3", "--set", "model.n_layer=2"]).fails_with("model.n_layer 1 -> 2");
    with(&["--resume", "--set", "train.max_steps=3", "--set", "train.lr=0.01"]).fails_with("train.lr");
    let r = with(&["--resume", "--set", "train.max_steps=3", "--set", "data.val_fraction=0.5"]);
    r.fails_with("data.val_fraction");
    // Resume with only the length changed: fine.
    with(&["--resume", "--set", "train.max_steps=3"]).ok();
    assert!(out.join("step-00000003").is_dir());

    // --force: a new run with another corpus; the data is prepared again and the old run's
    // checkpoints are gone (keep_last = 1 keeps the new run's newest, not an old one).
    dir.write("corpus2/only.txt", "ZZZZ YYYY XXXX ".repeat(200));
    let r = with(&["--force", "--set", &format!("data.corpus=\"{}\"", dir.join("corpus2").display())]).ok();
    assert!(r.stderr.contains("preparing") && r.stderr.contains("again"), "{}", r.dump());
    let steps: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    assert_eq!(steps, vec!["step-00000002"], "only the new run's newest checkpoint is kept");
    let tok = fs::read_to_string(out.join("data/tokenizer.json")).unwrap();
    assert!(tok.contains("\"Z\"") && !tok.contains("\"m\""), "the new corpus's characters, not the old");

    // A folder that is not a run (and not empty) is refused without --force.
    dir.write("mine/keep.txt", "mine");
    ingot(&["pretrain", "--config", s(&cfg), "--out", s(&dir.join("mine"))]).fails_with("not an Ingot training run");
}

// ---------------------------------------------------------------------------------------------
// ingot tokenizer train, ingot eval
// ---------------------------------------------------------------------------------------------

/// A single-file output replaces only a file of its own kind; a report folder only a report.
#[test]
fn tokenizer_and_eval_outputs_replace_only_their_own() {
    let dir = temp_dir("out-files");
    let corpus = corpus(&dir);
    let train = |out: &Path, force: bool| {
        let mut a = vec!["tokenizer", "train", "--kind", "char", "--corpus", s(&corpus), "--out", s(out)];
        if force {
            a.push("--force");
        }
        ingot(&a)
    };
    let essay = dir.write("essay.txt", "my thesis");
    train(&essay, false).fails_with("not an Ingot tokenizer.json");
    assert_eq!(fs::read_to_string(&essay).unwrap(), "my thesis");
    let tok = dir.join("tok.json");
    train(&tok, false).ok();
    train(&tok, false).ok(); // a tokenizer replaces a tokenizer
    train(&dir.join("corpus"), true).fails_with("a folder");
    train(&essay, true).ok();

    // A single-file write (the same staged write as manifests, metrics, reports and assets) killed
    // before its rename keeps the old file; the next write removes the temporary one.
    let before = fs::read(&tok).unwrap();
    let mut args = vec!["tokenizer", "train", "--kind", "bpe", "--vocab-size", "300", "--corpus", s(&corpus)];
    args.extend(["--out", s(&tok)]);
    kill_at("before-rename@tok.json", &args);
    assert_eq!(fs::read(&tok).unwrap(), before, "the old tokenizer is intact");
    assert!(
        cli::hidden_entries(dir.path()).iter().any(|n| n.starts_with(".tok.json.")),
        "the kill left its temporary file"
    );
    ingot(&args).ok();
    assert_ne!(fs::read(&tok).unwrap(), before);
    assert_eq!(cli::hidden_entries(dir.path()), Vec::<String>::new());

    dir.write("mine/keep.txt", "mine");
    let mine = dir.join("mine");
    ingot(&["eval", "--tasks", "piqa", "--limit", "1", "--out", s(&mine)]).fails_with("not an Ingot evaluation report");
    assert_eq!(dir.list("mine"), vec!["keep.txt"]);
}
