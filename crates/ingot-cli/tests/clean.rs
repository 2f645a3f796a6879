//! `ingot data clean` as a user runs it: every kind of removal on one crafted corpus, the output
//! going straight into `data prepare` and `pretrain`, and a run killed mid-way that resumes to
//! byte-identical output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ingot_test_support::cli::{self, Run};
use ingot_test_support::{temp_dir, TempDir};

fn ingot(args: &[&str]) -> Run {
    cli::run(env!("CARGO_BIN_EXE_ingot"), args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const WORDS: &[&str] = &[
    "river", "garden", "winter", "letter", "market", "window", "castle", "forest", "harbour", "village", "mountain",
    "teacher", "doctor", "farmer", "sailor", "painter", "merchant", "soldier", "widow", "stranger", "kitchen",
    "bridge", "candle", "engine", "lantern", "meadow", "orchard", "pocket", "ribbon", "saddle", "thunder", "valley",
    "wagon", "basket", "blanket", "cellar", "chimney", "cottage", "feather", "hammer", "ladder", "mirror", "needle",
    "pillow", "shelter", "silver", "timber", "violin", "walked", "carried", "opened", "painted", "watched", "answered",
    "borrowed", "counted", "crossed", "finished", "gathered", "lifted", "mended", "noticed", "planted", "quickly",
    "slowly", "gently", "early", "late", "quietly", "bright", "old", "young", "heavy", "narrow", "warm", "cold",
    "green", "golden", "patient", "careful", "honest", "simple", "hidden", "distant", "broken", "famous",
];

const STOP: &[&str] = &["the", "of", "and", "to", "with", "that", "a", "in", "for", "on", "by", "from"];

/// `sentences` lines of plain English words from a seeded generator (stop words between content
/// words, 8 to 13 words a sentence): varied enough that no n-gram repeats much, ordinary enough
/// for every quality filter.
fn prose(seed: u64, sentences: usize) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = String::new();
    for _ in 0..sentences {
        let len = 8 + (next() % 6) as usize;
        let words: Vec<&str> = (0..len)
            .map(|i| {
                let r = next() as usize;
                if i % 2 == 0 {
                    STOP[r % STOP.len()]
                } else {
                    WORDS[r % WORDS.len()]
                }
            })
            .collect();
        let line = words.join(" ");
        text.push_str(&line[..1].to_uppercase());
        text.push_str(&line[1..]);
        text.push_str(".\n");
    }
    text
}

struct Corpus {
    dir: TempDir,
    input: PathBuf,
}

/// Forty good documents and one of every kind of trouble, as .txt files and one JSONL file.
fn corpus(tag: &str) -> Corpus {
    let dir = temp_dir(&format!("cli-clean-{tag}"));
    let input = dir.join("raw");
    let mut lines = Vec::new();
    for i in 0..40u64 {
        lines.push(serde_json::json!({ "text": prose(i, 12) }).to_string());
    }
    // An exact copy (differing only in case and spacing) and a near copy (one word changed).
    lines.push(serde_json::json!({ "text": prose(3, 12).replacen("the", "THE", 1).replace(' ', "  ") }).to_string());
    lines.push(serde_json::json!({ "text": prose(5, 12).replacen("The ", "A ", 1) }).to_string());
    // PII inside an otherwise good document.
    let pii = format!("{}Write to jane.doe@example.com or call 555-123-4567 before noon.\n", prose(100, 12));
    lines.push(serde_json::json!({ "text": pii }).to_string());
    // French, too short, one line over and over.
    let french = "Le petit chat dort sur le canapé pendant que la pluie tombe doucement sur les toits de la ville. \
                  Les enfants jouent dans le jardin et leur mère prépare le dîner dans la cuisine chaude.\n"
        .repeat(4);
    lines.push(serde_json::json!({ "text": french }).to_string());
    lines.push(
        serde_json::json!({ "text": "The farmer walked to the market with a basket of bread, and the river was cold. \
                              His daughter followed him past the mill, the chapel and the old stone bridge, \
                              singing quietly about summer." })
        .to_string(),
    );
    lines.push(serde_json::json!({ "text": "Buy cheap watches at our store today and save money on every order you place with us.\n".repeat(30) }).to_string());
    // Broken records: not JSON, no text field, one far over max_doc_bytes.
    lines.push("{\"text\": unquoted".to_string());
    lines.push(serde_json::json!({ "body": "no text here" }).to_string());
    lines.push(serde_json::json!({ "text": "x ".repeat(40_000) }).to_string());
    dir.write("raw/web.jsonl", &(lines.join("\n") + "\n"));
    dir.write("raw/books/book1.txt", &prose(200, 20));
    std::fs::write(input.join("books/latin1.txt"), b"caf\xe9 au lait, the river and the garden were old\n").unwrap();
    Corpus { dir, input }
}

fn config(dir: &TempDir, chunk_docs: usize) -> PathBuf {
    let path = dir.join("clean.toml");
    std::fs::write(
        &path,
        format!("chunk_docs = {chunk_docs}\nmax_doc_bytes = 20000\n\n[decontamination]\nenabled = false\n"),
    )
    .unwrap();
    path
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every `*.jsonl` under `dir` (recursively), keyed by path relative to `dir`.
fn jsonl_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                files.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    files
}

/// Reasons of everything under removed/, by the document's line in web.jsonl (or file name).
fn removed_reasons(out: &Path) -> BTreeMap<String, String> {
    let mut reasons = BTreeMap::new();
    for (name, _) in jsonl_files(&out.join("removed")) {
        for v in jsonl(&out.join("removed").join(name)) {
            let id = v["id"].as_str().unwrap();
            let short = id.rsplit('/').next().unwrap().to_string();
            reasons.insert(short, v["reason"].as_str().unwrap().to_string());
        }
    }
    reasons
}

#[test]
fn clean_removes_each_kind_of_trouble_and_feeds_prepare_and_pretrain() {
    let c = corpus("all");
    let out = c.dir.join("clean");
    let cfg = config(&c.dir, 16);
    let run = ingot(&["data", "clean", s(&c.input), "--out", s(&out), "--config", s(&cfg)]).ok();
    assert!(run.stdout.contains("documents: 51 in, 42 out"), "{}", run.dump());

    let reasons = removed_reasons(&out);
    let expect = [
        ("web.jsonl:41", "exact_duplicate"),
        ("web.jsonl:42", "near_duplicate"),
        ("web.jsonl:44", "language"),
        ("web.jsonl:45", "gopher_short_doc"),
        ("web.jsonl:47", "bad_json"),
        ("web.jsonl:48", "no_text_field"),
        ("web.jsonl:49", "too_large"),
        ("latin1.txt", "not_utf8"),
    ];
    for (id, reason) in expect {
        assert_eq!(reasons.get(id).map(String::as_str), Some(reason), "{id}: {reasons:?}");
    }
    // The repeated line is caught by a repetition rule (which one fires first is the filter's).
    let spam = &reasons["web.jsonl:46"];
    assert!(
        ["dup_line_frac", "dup_line_char_frac", "top_n_gram", "duplicated_n_grams"].contains(&spam.as_str()),
        "{spam}"
    );
    assert_eq!(reasons.len(), 9, "{reasons:?}");

    // Kept documents: PII replaced, in input order, the first of each duplicate cluster kept.
    let kept: Vec<serde_json::Value> =
        jsonl_files(&out).keys().filter(|k| k.starts_with("clean_")).flat_map(|k| jsonl(&out.join(k))).collect();
    assert_eq!(kept.len(), 42);
    let ids: Vec<&str> = kept.iter().map(|v| v["id"].as_str().unwrap().rsplit('/').next().unwrap()).collect();
    // Folders are walked in name order: books/ before web.jsonl.
    assert_eq!(&ids[..3], ["book1.txt", "web.jsonl:1", "web.jsonl:2"]);
    assert!(ids.contains(&"web.jsonl:4") && ids.contains(&"web.jsonl:6") && ids.contains(&"book1.txt"));
    let with_pii = kept.iter().find(|v| v["id"].as_str().unwrap().ends_with("web.jsonl:43")).unwrap();
    let text = with_pii["text"].as_str().unwrap();
    assert!(!text.contains("jane.doe@example.com") && !text.contains("555-123-4567"), "{text}");

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["input"]["docs"], 51);
    assert_eq!(report["output"]["docs"], 42);
    assert_eq!(report["pii"]["email"], 1);
    assert_eq!(report["pii"]["phone"], 1);
    assert_eq!(report["duplicate_clusters"]["2"], 2, "{}", report["duplicate_clusters"]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| near_duplicate | 1 |"), "{md}");
    assert!(std::fs::read_to_string(out.join("report.svg")).unwrap().starts_with("<svg"));

    // A finished run is not redone; the output is a corpus `data prepare` and `pretrain` take.
    let again = ingot(&["data", "clean", s(&c.input), "--out", s(&out), "--config", s(&cfg)]).ok();
    assert!(again.stdout.contains("documents: 51 in, 42 out"), "{}", again.dump());
    let tok = c.dir.join("tok.json");
    ingot(&["tokenizer", "train", "--corpus", s(&out), "--kind", "bpe", "--vocab-size", "300", "--out", s(&tok)]).ok();
    let data = c.dir.join("data");
    let prep = ingot(&["data", "prepare", "--corpus", s(&out), "--tokenizer", s(&tok), "--out", s(&data)]).ok();
    assert!(prep.stdout.contains("documents:  42"), "{}", prep.dump());
    let train = "max_steps = 3\nwarmup_steps = 1\ndecay_steps = 3\nlr = 3e-3\nmin_lr = 3e-4\neval_interval = 3\n\
                 checkpoint_interval = 3\nlog_interval = 1\nkeep_last = 1";
    std::fs::write(c.dir.join("tiny.toml"), ingot_test_support::tiny_pretrain_toml(&out, 32, train)).unwrap();
    ingot(&["pretrain", "--config", s(&c.dir.join("tiny.toml")), "--out", s(&c.dir.join("run"))]).ok();
    assert!(c.dir.join("run/latest").exists());
}

#[test]
fn a_killed_clean_resumes_to_byte_identical_output() {
    let c = corpus("resume");
    let cfg = config(&c.dir, 5);
    let whole = c.dir.join("whole");
    ingot(&["data", "clean", s(&c.input), "--out", s(&whole), "--config", s(&cfg)]).ok();

    let resumed = c.dir.join("resumed");
    let args = ["data", "clean", s(&c.input), "--out", s(&resumed), "--config", s(&cfg)];
    // Killed in pass 1 (the third chunk's stats not yet in place), then in pass 2 (a shard).
    cli::run_killed_at(env!("CARGO_BIN_EXE_ingot"), "before-rename@chunk_00002.stats.json", &args);
    cli::run_killed_at(env!("CARGO_BIN_EXE_ingot"), "before-rename@clean_00001.jsonl", &args);
    ingot(&args).ok();

    assert_eq!(jsonl_files(&resumed), jsonl_files(&whole), "same shards and removed lists");
    let strip = |p: &Path| {
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        for k in ["seconds", "docs_per_sec", "mb_per_sec"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    assert_eq!(strip(&resumed.join("report.json")), strip(&whole.join("report.json")));
    assert!(!resumed.join(".work").exists(), "the work folder is gone once the run is done");
    assert_eq!(cli::hidden_entries(&resumed), Vec::<String>::new());

    // Another config on the same folder is refused, not mixed in.
    let other = c.dir.join("other.toml");
    std::fs::write(&other, "chunk_docs = 7\n[decontamination]\nenabled = false\n").unwrap();
    ingot(&["data", "clean", s(&c.input), "--out", s(&resumed), "--config", s(&other)]).fails_with("--force");
}

#[test]
fn bad_arguments_are_errors_that_say_what_to_do() {
    let c = corpus("args");
    ingot(&["data", "clean", s(&c.dir.join("nope")), "--out", s(&c.dir.join("o"))]).fails_with("not found");
    c.dir.write("bad.toml", "chunk_docs = 5\nmystery = 1\n");
    ingot(&["data", "clean", s(&c.input), "--out", s(&c.dir.join("o")), "--config", s(&c.dir.join("bad.toml"))])
        .fails_with("mystery");
    c.dir.write("lang.toml", "[language]\nlanguages = [\"english\"]\n");
    ingot(&["data", "clean", s(&c.input), "--out", s(&c.dir.join("o")), "--config", s(&c.dir.join("lang.toml"))])
        .fails_with("ISO 639-3");
    let cfg = config(&c.dir, 5);
    ingot(&["data", "clean", s(&c.input), "--out", s(&c.input.join("out")), "--config", s(&cfg)])
        .fails_with("inside the input folder");
    c.dir.write("mine/notes.txt", "mine");
    ingot(&["data", "clean", s(&c.input), "--out", s(&c.dir.join("mine")), "--config", s(&cfg)]).fails_with("--force");
    assert!(c.dir.join("mine/notes.txt").exists());
}

/// Decontamination on the real benchmark data: a PIQA item planted in the corpus is found.
#[test]
fn a_planted_benchmark_item_is_removed_as_contaminated() {
    let Some(eval) = ingot_test_support::eval_data() else { return };
    let c = corpus("decontam");
    let root = eval.clone();
    let task = &ingot_eval::tasks::Task::resolve("piqa", &root).unwrap()[0];
    let doc = &task.documents(&root).unwrap()[7];
    let planted = format!("{}{} {}\n", prose(300, 12), doc["goal"].as_str().unwrap(), doc["sol1"].as_str().unwrap());
    c.dir.write("raw/planted.txt", &planted);
    let cfg = c.dir.join("d.toml");
    std::fs::write(&cfg, "max_doc_bytes = 20000\n[decontamination]\nbenchmarks = [\"piqa\"]\n").unwrap();
    let out = c.dir.join("out");
    ingot(&["data", "clean", s(&c.input), "--out", s(&out), "--config", s(&cfg), "--eval-data", s(&eval)]).ok();
    let reasons = removed_reasons(&out);
    assert_eq!(reasons.get("planted.txt").map(String::as_str), Some("contaminated"), "{reasons:?}");
    assert_eq!(reasons.values().filter(|r| *r == "contaminated").count(), 1, "{reasons:?}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["contamination"]["piqa"], 1);
}
