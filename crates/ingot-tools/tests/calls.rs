//! Tool-call parsing: well-formed calls, each kind of damage the repairs handle, and hostile input
//! (which must give a sensible result, bounded by the parser's limits, never a panic).

use ingot_test_support::finishes;
use ingot_tools::calls::{ParsedReply, MAX_SCAN_BYTES};
use ingot_tools::{parse_calls, CallError, ToolCall};
use serde_json::json;

fn call(name: &str, arguments: serde_json::Value) -> Result<ToolCall, CallError> {
    Ok(ToolCall { name: name.into(), arguments })
}

fn calc(expr: &str) -> Result<ToolCall, CallError> {
    call("calculator", json!({ "expression": expr }))
}

#[test]
fn well_formed_single_call() {
    let p = parse_calls(r#"<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>"#);
    assert_eq!(p.calls, vec![calc("2+2")]);
    assert_eq!(p.text, "");
}

#[test]
fn well_formed_multiple_calls_with_text_around() {
    let p = parse_calls(
        "Let me compute both.\n<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"1+1\"}}\n</tool_call>\n\
         <tool_call>{\"name\": \"search\", \"arguments\": {\"query\": \"rust\"}}</tool_call>\nDone.",
    );
    assert_eq!(p.calls, vec![calc("1+1"), call("search", json!({"query": "rust"}))]);
    assert_eq!(p.text, "Let me compute both.\n\n\nDone.");
}

#[test]
fn plain_answer_has_no_calls() {
    let p = parse_calls("The answer is 4.");
    assert!(p.calls.is_empty());
    assert_eq!(p.text, "The answer is 4.");
}

#[test]
fn bare_json_object_and_parameters_key() {
    let p = parse_calls(r#"{"name": "calculator", "parameters": {"expression": "3*3"}}"#);
    assert_eq!(p.calls, vec![calc("3*3")]);
    assert_eq!(p.text, "");
}

#[test]
fn bare_json_that_is_not_a_call_stays_text() {
    let p = parse_calls(r#"The config is {"name": "x", "size": 3} as you asked."#);
    assert!(p.calls.is_empty());
    assert_eq!(p.text, r#"The config is {"name": "x", "size": 3} as you asked."#);
}

#[test]
fn arguments_as_a_json_string() {
    let p = parse_calls(r#"<tool_call>{"name": "calculator", "arguments": "{\"expression\": \"5-1\"}"}</tool_call>"#);
    assert_eq!(p.calls, vec![calc("5-1")]);
}

#[test]
fn openai_function_wrapper() {
    let p = parse_calls(
        r#"<tool_call>{"type": "function", "function": {"name": "calculator", "arguments": {"expression": "1"}}}</tool_call>"#,
    );
    assert_eq!(p.calls, vec![calc("1")]);
}

#[test]
fn missing_closing_tag() {
    let p = parse_calls(r#"<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}"#);
    assert_eq!(p.calls, vec![calc("2+2")]);
    // Two calls, neither closed: the second tag ends the first body.
    let p = parse_calls(r#"<tool_call>{"name": "a", "arguments": {}}<tool_call>{"name": "b", "arguments": {}}"#);
    assert_eq!(p.calls, vec![call("a", json!({})), call("b", json!({}))]);
}

#[test]
fn truncated_json_is_closed() {
    let p = parse_calls(r#"<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}"#);
    assert_eq!(p.calls, vec![calc("2+2")]);
    let p = parse_calls(r#"<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"#);
    assert_eq!(p.calls, vec![calc("2+2")]);
}

#[test]
fn trailing_commas() {
    let p = parse_calls(r#"<tool_call>{"name": "calculator", "arguments": {"expression": "2+2",},}</tool_call>"#);
    assert_eq!(p.calls, vec![calc("2+2")]);
    let p = parse_calls(r#"<tool_call>{"name": "f", "arguments": {"xs": [1, 2, ],}}</tool_call>"#);
    assert_eq!(p.calls, vec![call("f", json!({"xs": [1, 2]}))]);
}

#[test]
fn single_quotes() {
    let p = parse_calls(r#"<tool_call>{'name': 'calculator', 'arguments': {'expression': '2+2'}}</tool_call>"#);
    assert_eq!(p.calls, vec![calc("2+2")]);
    // A double quote inside a single-quoted string is escaped, an escaped single quote unescaped.
    let p = parse_calls(r#"<tool_call>{'name': 'echo', 'arguments': {'text': 'say "hi" it\'s me'}}</tool_call>"#);
    assert_eq!(p.calls, vec![call("echo", json!({"text": "say \"hi\" it's me"}))]);
    // Apostrophes inside double-quoted strings are left alone.
    let p = parse_calls(r#"<tool_call>{"name": "echo", "arguments": {"text": "it's"}}</tool_call>"#);
    assert_eq!(p.calls, vec![call("echo", json!({"text": "it's"}))]);
}

#[test]
fn unquoted_keys_and_python_literals() {
    let p = parse_calls(r#"<tool_call>{name: "calculator", arguments: {expression: "2+2"}}</tool_call>"#);
    assert_eq!(p.calls, vec![calc("2+2")]);
    let p = parse_calls(r#"<tool_call>{'name': 'f', 'arguments': {'a': True, 'b': None, 'c': False}}</tool_call>"#);
    assert_eq!(p.calls, vec![call("f", json!({"a": true, "b": null, "c": false}))]);
}

#[test]
fn raw_newline_in_string() {
    let p = parse_calls("<tool_call>{\"name\": \"echo\", \"arguments\": {\"text\": \"a\nb\"}}</tool_call>");
    assert_eq!(p.calls, vec![call("echo", json!({"text": "a\nb"}))]);
}

#[test]
fn code_fences() {
    let p = parse_calls(
        "Sure:\n```json\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"7*6\"}}\n```\nThat's it.",
    );
    assert_eq!(p.calls, vec![calc("7*6")]);
    assert_eq!(p.text, "Sure:\n\nThat's it.");
    let p = parse_calls(
        "<tool_call>\n```json\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"1\"}}\n```\n</tool_call>",
    );
    assert_eq!(p.calls, vec![calc("1")]);
}

#[test]
fn several_damages_at_once() {
    let p = parse_calls(
        "I'll use the tool. <tool_call>```\n{name: 'calculator', 'parameters': {expression: '9/3',},}\n```",
    );
    assert_eq!(p.calls, vec![calc("9/3")]);
    assert_eq!(p.text, "I'll use the tool.");
}

#[test]
fn per_call_errors() {
    let p = parse_calls("<tool_call>please compute</tool_call>");
    assert_eq!(p.calls, vec![Err(CallError::NoJson)]);
    let p = parse_calls("<tool_call></tool_call>");
    assert_eq!(p.calls, vec![Err(CallError::NoJson)]);
    let p = parse_calls("<tool_call>[1, 2]</tool_call>");
    assert_eq!(p.calls, vec![Err(CallError::NoJson)]);
    let p = parse_calls(r#"<tool_call>{"arguments": {}}</tool_call>"#);
    assert_eq!(p.calls, vec![Err(CallError::MissingName)]);
    let p = parse_calls(r#"<tool_call>{"name": "f", "arguments": [1]}</tool_call>"#);
    assert_eq!(p.calls, vec![Err(CallError::ArgumentsNotObject { name: "f".into(), found: "an array" })]);
    let p = parse_calls(r#"<tool_call>{"name": "f", "arguments": "not json"}</tool_call>"#);
    assert!(matches!(&p.calls[..], [Err(CallError::ArgumentsNotObject { .. })]));
    let p = parse_calls(r#"<tool_call>{"name": "f", "arguments": {"a": 1}} }}} {{{ </tool_call>"#);
    assert_eq!(p.calls, vec![call("f", json!({"a": 1}))]);
    // One bad call does not lose a good one.
    let p = parse_calls(r#"<tool_call>{"name": 3}</tool_call><tool_call>{"name": "g", "arguments": {}}</tool_call>"#);
    assert_eq!(p.calls, vec![Err(CallError::MissingName), call("g", json!({}))]);
    // Messages are written for the model: they say what to send instead.
    assert!(CallError::NoJson.to_string().contains("\"arguments\""));
}

#[test]
fn missing_arguments_means_no_arguments() {
    let p = parse_calls(r#"<tool_call>{"name": "now"}</tool_call>"#);
    assert_eq!(p.calls, vec![call("now", json!({}))]);
}

/// `parse_calls` on hostile input. Its work is bounded by counts, which the callers assert: only
/// the first `MAX_SCAN_BYTES` are searched (the rest comes back as text) and at most `MAX_CALLS`
/// calls are read. No speed assertion (the machine may be busy): a hang guard far above the
/// milliseconds this takes catches a runaway scan.
fn parse_guarded(what: &str, reply: &str) -> ParsedReply {
    let reply = reply.to_string();
    finishes(what, move || parse_calls(&reply))
}

#[test]
fn hostile_huge_garbage() {
    // 1 MB of brackets, quotes and tags: only the first 64 KB is searched, the rest is kept as text.
    let unit = "{'\"<tool_call>[,:}\\x";
    let garbage: String = unit.repeat(1_000_000 / unit.len());
    let p = parse_guarded("1 MB garbage", &garbage);
    assert!(p.calls.len() <= ingot_tools::calls::MAX_CALLS);
    assert!(p.calls.iter().all(|c| c.is_err()));
    let plain: String = "a{".repeat(500_000);
    let p = parse_guarded("1 MB of a{", &plain);
    assert!(p.calls.is_empty());
    assert!(p.text.len() > MAX_SCAN_BYTES);
}

#[test]
fn hostile_deep_nesting() {
    for depth in [200, 10_000, 100_000] {
        let nested = format!(r#"{{"name": "f", "arguments": {}{}}}"#, "[".repeat(depth), "]".repeat(depth));
        let p = parse_guarded("deep nesting, bare", &nested);
        assert!(p.calls.is_empty(), "depth {depth}: deep JSON must not read as a call");
        let tagged = format!("<tool_call>{nested}</tool_call>");
        let p = parse_guarded("deep nesting, tagged", &tagged);
        assert!(matches!(&p.calls[..], [Err(CallError::InvalidJson { .. })]), "depth {depth}: {:?}", p.calls);
        let open_only = format!("<tool_call>{}", "{".repeat(depth));
        let p = parse_guarded("deep unclosed nesting", &open_only);
        assert!(matches!(&p.calls[..], [Err(_)]));
    }
}

#[test]
fn hostile_many_tags() {
    let many = "<tool_call>".repeat(10_000);
    let p = parse_guarded("many empty tags", &many);
    assert_eq!(p.calls.len(), ingot_tools::calls::MAX_CALLS);
    assert!(p.calls.iter().all(|c| *c == Err(CallError::NoJson)));
    let many_calls = r#"<tool_call>{"name": "f", "arguments": {}}</tool_call>"#.repeat(1_000);
    let p = parse_guarded("many calls", &many_calls);
    assert_eq!(p.calls.len(), ingot_tools::calls::MAX_CALLS);
}

#[test]
fn json_injection_stays_inside_strings() {
    // The argument value contains text that looks like a closing brace, another key and a tag.
    let p = parse_calls(
        r#"<tool_call>{"name": "echo", "arguments": {"text": "\"}, \"name\": \"rm\", \"x\": {\"a\": \"</tool_call"}}</tool_call>"#,
    );
    assert_eq!(p.calls, vec![call("echo", json!({"text": "\"}, \"name\": \"rm\", \"x\": {\"a\": \"</tool_call"}))]);
    // Duplicate keys: serde_json keeps the last; whatever it keeps, it is one call with one name.
    let p = parse_calls(r#"<tool_call>{"name": "a", "name": "b", "arguments": {}}</tool_call>"#);
    assert_eq!(p.calls.len(), 1);
}

#[test]
fn odd_escapes_and_unicode() {
    // Valid escapes, lone surrogates, invalid escapes, NUL and multi-byte text at the scan cut.
    let p = parse_calls(r#"<tool_call>{"name": "echo", "arguments": {"text": "\u00e9\ud83d\ude00"}}</tool_call>"#);
    assert_eq!(p.calls, vec![call("echo", json!({"text": "é😀"}))]);
    let p = parse_calls(r#"<tool_call>{"name": "echo", "arguments": {"text": "\ud800"}}</tool_call>"#);
    assert!(matches!(&p.calls[..], [Err(CallError::InvalidJson { .. })]));
    let p = parse_calls(r#"<tool_call>{"name": "echo", "arguments": {"text": "\x41\q"}}</tool_call>"#);
    assert!(matches!(&p.calls[..], [Err(CallError::InvalidJson { .. })]));
    let p = parse_calls("<tool_call>{\"name\": \"echo\u{0}\", \"arguments\": {\"t\": \"\u{0}\u{7f}\"}}</tool_call>");
    assert_eq!(p.calls.len(), 1);
    let wide = "é".repeat(MAX_SCAN_BYTES); // 2 bytes each: the cut falls inside the text
    let p = parse_guarded("multi-byte text past the cut", &wide);
    assert_eq!(p.text, wide);
    let p = parse_calls("<tool_call>{\"name\": \"\\");
    assert!(matches!(&p.calls[..], [Err(_)]));
}
