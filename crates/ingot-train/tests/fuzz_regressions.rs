//! Inputs found by the fuzz targets (fuzz/, `scripts/fuzz`) that once gave a bad error, kept as bytes.

use ingot_train::recipes::pretrain::PretrainConfig;

fn config_error(text: &str) -> String {
    PretrainConfig::from_toml(text, &[], "run.toml").expect_err("not a valid pre-training config").to_string()
}

/// fuzz target `pretrain_toml`: toml's error rendering spans several lines (a snippet with a
/// caret, a trailing newline); Ingot's errors are one line.
#[test]
fn toml_errors_are_one_line() {
    let missing = config_error("");
    assert!(!missing.contains(['\n', '\r']), "{missing:?}");
    assert!(missing.contains("run.toml") && missing.contains("missing field `model`"), "{missing:?}");

    let syntax = config_error("[model]\npreset = \n");
    assert!(!syntax.contains(['\n', '\r']), "{syntax:?}");
    assert!(syntax.contains("run.toml: line 2, column 10:"), "{syntax:?}");
}

/// fuzz target `pretrain_toml`: a `--set` value holding newlines came back verbatim in the error.
#[test]
fn set_errors_are_one_line() {
    let text = "[model]\npreset = \"tiny\"\n";
    let err = PretrainConfig::from_toml(text, &["no equals\nsign\u{1b}[2J".to_string()], "run.toml")
        .expect_err("not section.key=value")
        .to_string();
    assert!(!err.contains(['\n', '\r', '\u{1b}']), "{err:?}");
    assert!(err.contains("expected section.key=value"), "{err:?}");
}

/// fuzz target `pretrain_toml`: a model field of the wrong type (`n_layer` as a long string with
/// newlines) came back in serde's message verbatim, over 1 KB and several lines.
#[test]
fn model_config_type_errors_are_one_short_line() {
    let long = "2\n# a comment pasted in by mistake\n".repeat(40);
    let text =
        format!("[model]\npreset = \"tiny\"\nn_layer = {}\n[data]\nbatch_size = 1\ncontext = 8\n", toml_string(&long));
    let cfg = PretrainConfig::from_toml(&text, &[], "run.toml").expect("the TOML itself is valid");
    let err = ingot_train::recipes::pretrain::resolve_model_config(&cfg.model, 256).expect_err("n_layer is a string");
    let err = err.to_string();
    assert!(err.len() < 1024 && !err.contains('\n'), "{} bytes: {err:?}", err.len());
    assert!(err.contains("model config: invalid type"), "{err}");
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}
