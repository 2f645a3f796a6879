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
