//! Inputs found by the fuzz targets (fuzz/, `scripts/fuzz`) whose messages broke the one-line rule.

use ingot_tools::calls::parse_calls;

/// fuzz target `tool_calls`: a model-written tool name with a newline and NUL bytes was repeated
/// raw in the "arguments must be an object" message.
#[test]
fn a_tool_name_in_a_message_is_quoted() {
    let parsed =
        parse_calls("<tool_call>{\"name\": \"cal\\u00ff\\ntor\\u0000\\u001b[31m\", \"arguments\": 5}</tool_call>");
    let err = parsed.calls[0].as_ref().expect_err("arguments are a number").to_string();
    assert!(err.contains("must be a JSON object"), "{err}");
    assert!(!err.contains(['\n', '\0', '\u{1b}']), "one clean line: {err:?}");
}
