//! User-defined command tools, run as real processes (`echo`, `printf`, `cat`, `wc`, `sleep`, `yes`,
//! `head`: programs every Linux box has): loading TOML and JSON files, argv built without a shell,
//! stdin, timeout, output cap, exit status, and every load-time and call-time check.
#![cfg(unix)]

use std::time::{Duration, Instant};

use ingot_test_support::temp_dir;
use ingot_tools::{execute_calls, load_tool_file, load_tool_files, CommandTool, Tool, ToolCall, ToolError};
use serde_json::{json, Value};

/// Loads a TOML tool file holding exactly one tool.
fn one_tool(toml: &str) -> CommandTool {
    let dir = temp_dir("command");
    let mut tools = load_tool_file(&dir.write("tools.toml", toml)).unwrap();
    assert_eq!(tools.len(), 1);
    tools.pop().unwrap()
}

/// The error message of loading `toml` as `tools.toml`.
fn load_error(toml: &str) -> String {
    let dir = temp_dir("command");
    let path = dir.write("tools.toml", toml);
    let err = load_tool_file(&path).err().unwrap_or_else(|| panic!("loading should fail:\n{toml}")).to_string();
    assert!(err.contains(&path.display().to_string()), "the error names the file: {err}");
    err
}

fn failed_message(err: ToolError) -> String {
    assert!(matches!(err, ToolError::Failed { .. }), "{err:?}");
    err.to_string()
}

const WORD_COUNT_TOML: &str = r#"
[[tool]]
name = "word_count"
description = "Count the words in a text"
command = ["wc", "-w"]
stdin = "text"
timeout_secs = 5
max_output_bytes = 4096
[tool.parameters.text]
type = "string"
description = "the text"

[[tool]]
name = "say"
description = "Print a text"
command = ["printf", "%s|", "{text}"]
[tool.parameters.text]
type = "string"
"#;

#[test]
fn toml_file_loads_and_its_tools_run() {
    let dir = temp_dir("command");
    let path = dir.write("tools.toml", WORD_COUNT_TOML);
    let tools = load_tool_file(&path).unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["word_count", "say"]);
    assert_eq!(tools[0].file(), path);
    assert_eq!(tools[0].timeout(), Duration::from_secs(5));
    assert_eq!(tools[1].timeout(), Duration::from_secs(10), "the default timeout");
    assert_eq!(tools[0].description(), "Count the words in a text");
    assert_eq!(tools[0].call(&json!({"text": "one two three"})).unwrap().trim(), "3");
    assert_eq!(tools[1].call(&json!({"text": "hi"})).unwrap(), "hi|");
}

#[test]
fn json_file_loads_the_same_tree() {
    let dir = temp_dir("command");
    let path = dir.write(
        "tools.json",
        r#"{"tool": [{
            "name": "word_count",
            "description": "Count the words in a text",
            "command": ["wc", "-w"],
            "stdin": "text",
            "parameters": {"text": {"type": "string", "description": "the text"}}
        }]}"#,
    );
    let tools = load_tool_file(&path).unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].call(&json!({"text": "a b c d"})).unwrap().trim(), "4");
}

#[test]
fn schema_comes_from_the_declared_parameters() {
    let tool = one_tool(
        r#"
        [[tool]]
        name = "t"
        description = "d"
        command = ["printf", "%s %s %s %s", "{s}", "{i}", "{x}", "{b}"]
        [tool.parameters.s]
        type = "string"
        description = "some text"
        [tool.parameters.i]
        type = "integer"
        [tool.parameters.x]
        type = "number"
        required = false
        [tool.parameters.b]
        type = "boolean"
        "#,
    );
    assert_eq!(
        tool.parameters(),
        json!({
            "type": "object",
            "properties": {
                "b": {"type": "boolean"},
                "i": {"type": "integer"},
                "s": {"type": "string", "description": "some text"},
                "x": {"type": "number"},
            },
            "required": ["b", "i", "s"],
            "additionalProperties": false,
        })
    );
    // Each type's text as the program sees it.
    let out = tool.call(&json!({"s": "z", "i": -3, "x": 2.5, "b": true})).unwrap();
    assert_eq!(out, "z -3 2.5 true");
}

#[test]
fn a_placeholder_is_one_literal_argv_element_and_no_shell_runs() {
    // `%s|` is printed once per argument, so the bars show where each argv element ends.
    let tool = one_tool(
        r#"
        [[tool]]
        name = "say"
        description = "Print a text"
        command = ["printf", "[%s]", "{text}", "--label={text}!", "{{literal}}"]
        [tool.parameters.text]
        type = "string"
        "#,
    );
    let hostile = r#"a b; echo pwned $(id) `id` 'single' "double" > /tmp/x | cat && $HOME *"#;
    let out = tool.call(&json!({"text": hostile})).unwrap();
    assert_eq!(out, format!("[{hostile}][--label={hostile}!][{{literal}}]"));

    let echo = one_tool(
        r#"
        [[tool]]
        name = "echo"
        description = "Echo"
        command = ["echo", "{text}"]
        [tool.parameters.text]
        type = "string"
        "#,
    );
    let out = echo.call(&json!({"text": "a; echo pwned"})).unwrap();
    assert_eq!(out, "a; echo pwned\n", "the text is printed once, literally");
}

#[test]
fn an_element_naming_a_missing_optional_parameter_is_dropped() {
    let tool = one_tool(
        r#"
        [[tool]]
        name = "t"
        description = "d"
        command = ["printf", "[%s]", "first", "--n={n}", "{text}"]
        [tool.parameters.text]
        type = "string"
        [tool.parameters.n]
        type = "integer"
        required = false
        "#,
    );
    assert_eq!(tool.call(&json!({"text": "x", "n": 7})).unwrap(), "[first][--n=7][x]");
    assert_eq!(tool.call(&json!({"text": "x"})).unwrap(), "[first][x]");
    assert_eq!(tool.call(&json!({"text": "x", "n": null})).unwrap(), "[first][x]", "null means left out");
}

#[test]
fn stdin_is_piped_and_otherwise_empty() {
    let tool = one_tool(
        r#"
        [[tool]]
        name = "upto"
        description = "First bytes of a text"
        command = ["head", "-c", "{n}"]
        stdin = "text"
        [tool.parameters.text]
        type = "string"
        required = false
        [tool.parameters.n]
        type = "integer"
        "#,
    );
    let text = "line one\nline two with 'quotes' and $(no expansion)\n\0nul byte";
    assert_eq!(tool.call(&json!({"text": text, "n": 1000})).unwrap(), text, "stdin carries any bytes, NUL included");
    assert_eq!(tool.call(&json!({"text": "abcdef", "n": 3})).unwrap(), "abc");
    // A large input the program does not read whole must not block the call.
    let big = "x".repeat(1 << 20);
    assert_eq!(tool.call(&json!({"text": big, "n": 2})).unwrap(), "xx");
    // Left out: empty input, not the test runner's stdin.
    assert_eq!(tool.call(&json!({"n": 5})).unwrap(), "(the command printed nothing)");

    // Without `stdin` the program reads /dev/null, so `cat` ends at once instead of waiting.
    let cat = one_tool("[[tool]]\nname = \"c\"\ndescription = \"d\"\ncommand = [\"cat\"]\ntimeout_secs = 5");
    assert_eq!(cat.call(&json!({})).unwrap(), "(the command printed nothing)");
}

#[test]
fn timeout_kills_the_program() {
    let tool = one_tool(
        r#"
        [[tool]]
        name = "nap"
        description = "Sleep"
        command = ["sleep", "{secs}"]
        timeout_secs = 0.5
        [tool.parameters.secs]
        type = "integer"
        "#,
    );
    // A 300 s sleep: the message says it was killed at the timeout, and the call coming back long
    // before the sleep would end shows it really was (60 s is a hang guard, not a speed test).
    let start = Instant::now();
    let msg = failed_message(tool.call(&json!({"secs": 300})).unwrap_err());
    let took = start.elapsed();
    assert!(msg.contains("did not finish within 0.5 s and was killed"), "{msg}");
    assert!(took < Duration::from_secs(60), "the sleep was not killed: the call took {took:?}");
    assert_eq!(tool.call(&json!({"secs": 0})).unwrap(), "(the command printed nothing)");
}

#[test]
fn output_past_the_cap_is_cut_and_the_program_stopped() {
    let tool = one_tool(
        r#"
        [[tool]]
        name = "flood"
        description = "Endless output"
        command = ["yes", "{word}"]
        max_output_bytes = 100
        timeout_secs = 60
        [tool.parameters.word]
        type = "string"
        "#,
    );
    // The cap stops `yes` by byte count: had it not, the call would end at the 60 s timeout (the
    // hang guard) as a timeout error, not return the cut output and the note.
    let out = tool.call(&json!({"word": "spam"})).unwrap();
    let (kept, note) = out.rsplit_once('\n').unwrap();
    assert_eq!(note, "[output cut at 100 bytes: the command was stopped there]");
    assert_eq!(kept.len(), 99, "100 bytes of `spam\\n` lines, the last newline moved before the note: {out:?}");
    assert!(kept.lines().all(|l| l == "spam" || "spam".starts_with(l)), "{out:?}");

    // A character cut in half by the cap is dropped rather than shown as garbage.
    let wide =
        one_tool("[[tool]]\nname = \"w\"\ndescription = \"d\"\ncommand = [\"printf\", \"ééé\"]\nmax_output_bytes = 3");
    let out = wide.call(&json!({})).unwrap();
    assert!(out.starts_with("é\n[output cut at 3 bytes"), "{out:?}");
}

#[test]
fn a_background_process_holding_the_output_does_not_hang_the_call() {
    // `sh` exits at once, but the `sleep` it leaves behind keeps stdout open; the call must come
    // back by the timeout with what was printed, not wait for the pipe to close.
    let tool = one_tool(
        r#"
        [[tool]]
        name = "bg"
        description = "d"
        command = ["sh", "-c", "sleep 60 & echo started"]
        timeout_secs = 0.5
        "#,
    );
    // Returning by the 0.5 s timeout, not when the 60 s sleep closes the pipe: 30 s tells the two
    // apart on any machine, however busy.
    let start = Instant::now();
    let out = tool.call(&json!({})).unwrap();
    assert_eq!(out, "started\n");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(30), "waited for the background process: {took:?}");
}

#[test]
fn a_failing_program_reports_its_status_and_error_output() {
    let tool = one_tool(
        r#"
        [[tool]]
        name = "show"
        description = "Print a file"
        command = ["cat", "--", "{file}"]
        [tool.parameters.file]
        type = "string"
        "#,
    );
    let msg = failed_message(tool.call(&json!({"file": "/nonexistent/ingot-test-file"})).unwrap_err());
    assert!(msg.contains("tool `show` failed: `cat` failed (exit status: 1)"), "{msg}");
    assert!(msg.contains("/nonexistent/ingot-test-file") && msg.contains("No such file"), "{msg}");

    // Error output of a program that succeeds is shown after its output (`sh` is the tool
    // author's choice of program here; no model text reaches it).
    let warn = one_tool(
        r#"
        [[tool]]
        name = "warn"
        description = "Print to both streams"
        command = ["sh", "-c", "echo out; echo careful >&2"]
        "#,
    );
    assert_eq!(warn.call(&json!({})).unwrap(), "out\n[stderr]\ncareful\n");

    // The error output is capped like the rest.
    let loud = one_tool(
        r#"
        [[tool]]
        name = "loud"
        description = "d"
        command = ["sh", "-c", "yes spam >&2"]
        max_output_bytes = 64
        "#,
    );
    let out = loud.call(&json!({})).unwrap();
    assert!(out.starts_with("[stderr]\nspam\n"), "{out:?}");
    assert!(out.contains("[output cut at 64 bytes"), "{out:?}");
}

#[test]
fn arguments_are_checked_before_anything_runs() {
    let tool = one_tool(
        r#"
        [[tool]]
        name = "t"
        description = "d"
        command = ["printf", "%s", "{s}{i}{x}{b}"]
        [tool.parameters.s]
        type = "string"
        [tool.parameters.i]
        type = "integer"
        required = false
        [tool.parameters.x]
        type = "number"
        required = false
        [tool.parameters.b]
        type = "boolean"
        required = false
        "#,
    );
    let err = |args: Value| tool.call(&args).unwrap_err();
    let e = err(json!({}));
    assert!(matches!(&e, ToolError::MissingArgument { field, .. } if field == "s"), "{e:?}");
    assert_eq!(e.to_string(), "tool `t`: missing required argument `s`");
    let e = err(json!({"s": "a", "sz": 1}));
    assert!(matches!(&e, ToolError::UnknownArgument { field, .. } if field == "sz"), "{e:?}");
    assert_eq!(e.to_string(), "tool `t`: unknown argument `sz`; the arguments it takes: b, i, s, x");
    let e = err(json!("s"));
    assert!(matches!(e, ToolError::ArgumentsNotObject { .. }), "{e:?}");
    for (args, field, expected) in [
        (json!({"s": 5}), "s", "a string"),
        (json!({"s": "a", "i": "5"}), "i", "an integer"),
        (json!({"s": "a", "i": 1.5}), "i", "an integer"),
        (json!({"s": "a", "x": "1.5"}), "x", "a number"),
        (json!({"s": "a", "b": "yes"}), "b", "true or false"),
        (json!({"s": "a\0b"}), "s", "text without NUL characters"),
    ] {
        let e = err(args.clone());
        assert!(
            matches!(&e, ToolError::WrongArgumentType { field: f, expected: x, .. } if f == field && *x == expected),
            "{args}: {e:?}"
        );
    }
    assert_eq!(tool.call(&json!({"s": "a", "i": 2, "x": 0.5, "b": false})).unwrap(), "a20.5false");
}

#[test]
fn the_agent_dispatch_reports_tool_errors_to_the_model() {
    let dir = temp_dir("command");
    let tools: Vec<Box<dyn Tool>> = load_tool_file(&dir.write("tools.toml", WORD_COUNT_TOML))
        .unwrap()
        .into_iter()
        .map(|t| Box::new(t) as Box<dyn Tool>)
        .collect();
    let calls = vec![
        Ok(ToolCall { name: "word_count".into(), arguments: json!({"text": "x y"}) }),
        Ok(ToolCall { name: "word_count".into(), arguments: json!({"txt": "x y"}) }),
    ];
    let results = execute_calls(&tools, &calls);
    assert!(results[0].ok && results[0].content.trim() == "2", "{:?}", results[0]);
    assert!(!results[1].ok && results[1].content.contains("unknown argument `txt`"), "{:?}", results[1]);
}

#[test]
fn a_relative_program_path_is_taken_from_the_tool_file_folder() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("command");
    let script = dir.write("hello.sh", "#!/bin/sh\nprintf 'hello %s' \"$1\"\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.write(
        "tools.toml",
        "[[tool]]\nname = \"hello\"\ndescription = \"d\"\ncommand = [\"./hello.sh\", \"{who}\"]\n\
         [tool.parameters.who]\ntype = \"string\"\n",
    );
    let tools = load_tool_file(&path).unwrap();
    assert_eq!(tools[0].call(&json!({"who": "you"})).unwrap(), "hello you");
}

#[test]
fn load_errors_name_the_file_the_tool_and_the_problem() {
    const HEAD: &str = "[[tool]]\nname = \"t\"\ndescription = \"d\"\n";
    let param = "[tool.parameters.p]\ntype = \"string\"\n";
    let cases: Vec<(String, &str)> = vec![
        // File level.
        ("".into(), "defines no tools"),
        ("[[tools]]\nname = \"t\"".into(), "unknown top-level key `tools`"),
        ("tool = 5".into(), "`tool` must be a list of tools"),
        ("[[tool]\nname = ".into(), "is not valid TOML: line 1"),
        // Fields.
        (format!("{HEAD}command = [\"echo\"]\ncomand = [\"x\"]"), "tool `t`: unknown field `comand`"),
        ("[[tool]]\ndescription = \"d\"\ncommand = [\"echo\"]".into(), "tool `#1`: missing field `name`"),
        (
            format!("{HEAD}command = \"echo hi\""),
            "tool `t`: `command`: invalid type: string \"echo hi\", expected a sequence",
        ),
        (
            format!("{HEAD}command = [\"echo\"]\ntimeout_secs = \"5\""),
            "tool `t`: `timeout_secs`: invalid type: string \"5\"",
        ),
        (format!("{HEAD}command = []"), "`command` is empty"),
        (format!("{HEAD}command = [\"\"]"), "the program (first element of `command`) is empty"),
        (format!("{HEAD}command = [\"{{p}}\"]\n{param}"), "cannot hold a placeholder"),
        (format!("{HEAD}command = [\"no-such-program-ingot\"]"), "`no-such-program-ingot` was not found on PATH"),
        (format!("{HEAD}command = [\"./missing.sh\"]"), "missing.sh does not exist"),
        // Names.
        ("[[tool]]\nname = \"calculator\"\ndescription = \"d\"\ncommand = [\"echo\"]".into(), "built-in tool"),
        (
            "[[tool]]\nname = \"two words\"\ndescription = \"d\"\ncommand = [\"echo\"]".into(),
            "tool name `two words` is not allowed",
        ),
        (format!("{HEAD}command = [\"echo\"]\n{HEAD}command = [\"echo\"]"), "tool `t`: is defined twice in this file"),
        ("[[tool]]\nname = \"t\"\ndescription = \" \"\ncommand = [\"echo\"]".into(), "`description` is empty"),
        // Parameters and placeholders.
        (
            format!("{HEAD}command = [\"echo\", \"{{q}}\"]\n{param}"),
            "placeholder `{q}` in `command` names no declared parameter; declared: p",
        ),
        (
            format!("{HEAD}command = [\"echo\", \"{{q}}\"]"),
            "names no declared parameter; the tool declares no parameters",
        ),
        (format!("{HEAD}command = [\"echo\", \"{{p\"]\n{param}"), "has an unclosed `{`"),
        (format!("{HEAD}command = [\"echo\", \"p}}\"]\n{param}"), "has a `}` with no `{` before it"),
        (format!("{HEAD}command = [\"awk\", \"{{print $1}}\"]"), "`{print $1}` is not a placeholder"),
        (format!("{HEAD}command = [\"echo\"]\nstdin = \"q\"\n{param}"), "`stdin = \"q\"` names no declared parameter"),
        (format!("{HEAD}command = [\"echo\"]\n{param}"), "parameter `p` is used neither in `command`"),
        (
            format!("{HEAD}command = [\"echo\", \"{{p}}\"]\n[tool.parameters.p]\ntype = \"str\""),
            "parameter `p`: `type`: unknown variant `str`, expected one of `string`, `integer`, `number`, `boolean`",
        ),
        (
            format!("{HEAD}command = [\"echo\", \"{{p}}\"]\n[tool.parameters.p]\ntype = \"string\"\nrequird = false"),
            "parameter `p`: unknown field `requird`",
        ),
        (
            format!("{HEAD}command = [\"echo\", \"{{p}}\"]\n[tool.parameters.p]\ndescription = \"x\""),
            "parameter `p`: missing field `type`",
        ),
        (
            format!("{HEAD}command = [\"echo\", \"{{p}}\"]\n[tool.parameters.p]\ntype = \"string\"\nrequired = \"no\""),
            "parameter `p`: `required`: invalid type: string \"no\", expected a boolean",
        ),
        (
            format!("{HEAD}command = [\"echo\"]\n[tool.parameters]\np = \"string\""),
            "parameter `p`: a parameter must be a table, got a string",
        ),
        (
            format!("{HEAD}command = [\"echo\"]\n[tool.parameters.\"a b\"]\ntype = \"string\""),
            "parameter name `a b` is not allowed",
        ),
        // Limits.
        (
            format!("{HEAD}command = [\"echo\"]\ntimeout_secs = 0"),
            "`timeout_secs` is 0; it must be more than 0 and at most 600",
        ),
        (format!("{HEAD}command = [\"echo\"]\ntimeout_secs = 1e9"), "`timeout_secs` is 1000000000"),
        (
            format!("{HEAD}command = [\"echo\"]\nmax_output_bytes = 0"),
            "`max_output_bytes` is 0; it must be 1 to 1048576",
        ),
        (
            format!("{HEAD}command = [\"echo\"]\nmax_output_bytes = -1"),
            "`max_output_bytes`: invalid value: integer `-1`",
        ),
    ];
    for (toml, phrase) in cases {
        let err = load_error(&toml);
        assert!(err.contains(phrase), "for\n{toml}\nexpected {phrase:?} in: {err}");
        assert!(!err.contains('\n'), "errors are one line: {err}");
        if toml.contains("[[tool]]\nname = \"t\"") && !toml.contains("[[tool]\n") {
            assert!(err.contains("tool `t`"), "the error names the tool: {err}");
        }
    }
}

#[test]
fn file_level_errors() {
    let dir = temp_dir("command");
    let yaml = dir.write("tools.yaml", "tool: []");
    let err = load_tool_file(&yaml).unwrap_err().to_string();
    assert!(err.contains("tools.yaml must end in .toml or .json"), "{err}");
    let err = load_tool_file(&dir.join("absent.toml")).unwrap_err().to_string();
    assert!(err.starts_with("cannot read tool file") && err.contains("absent.toml"), "{err}");
    let json = dir.write("bad.json", "{\"tool\": [}");
    let err = load_tool_file(&json).unwrap_err().to_string();
    assert!(err.contains("bad.json is not valid JSON") && err.contains("line 1"), "{err}");
    let json = dir.write("extra.json", r#"{"tool": [{"name": "t", "description": "d", "command": ["echo"], "x": 1}]}"#);
    let err = load_tool_file(&json).unwrap_err().to_string();
    assert!(err.contains("extra.json, tool `t`: unknown field `x`"), "{err}");
    let json = dir.write("number.json", r#"{"tool": [5]}"#);
    let err = load_tool_file(&json).unwrap_err().to_string();
    assert!(err.contains("number.json, tool `#1`: a tool must be a table, got a number"), "{err}");
}

#[test]
fn a_name_defined_in_two_files_is_refused() {
    let dir = temp_dir("command");
    let tool = "[[tool]]\nname = \"t\"\ndescription = \"d\"\ncommand = [\"echo\"]\n";
    let a = dir.write("a.toml", tool);
    let b = dir.write("b.toml", tool);
    assert_eq!(load_tool_files(&[&a]).unwrap().len(), 1);
    let err = load_tool_files(&[&a, &b]).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("tool `t` is defined in both {} and {}; tool names must be unique", a.display(), b.display())
    );
}

/// The example in README.md loads, and its tools run.
#[test]
fn readme_example_is_a_valid_tool_file() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find("```toml\n[[tool]]\nname = \"word_count\"").expect("the README has the tool file example");
    let block = &readme[start + "```toml\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    let dir = temp_dir("command");
    let tools = load_tool_file(&dir.write("tools.toml", block)).unwrap();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0].call(&json!({"text": "one two"})).unwrap().trim(), "2");
    // `notes/` is relative to the current folder, which has none here: grep's own error comes back,
    // and it shows the argv was built (the `--max-count=` element dropped, the pattern after `-e`).
    let msg = failed_message(tools[1].call(&json!({"pattern": "-v"})).unwrap_err());
    assert!(msg.contains("`grep` failed (exit status: 2)") && msg.contains("notes/"), "{msg}");
}
