//! How tools, tool calls and tool results are shown to a chat template: one definition, used by
//! the tool-calling loop (ingot-tools' `agent`) to prompt a model and by SFT data (ingot-data's
//! `sft`) to train one, so that a model is tuned on exactly the text it will later be shown.
//!
//! - Tool descriptions: a template whose source mentions `tools` (Qwen2.5, Hermes, Llama 3.1 ...)
//!   gets the OpenAI-shaped schemas through `render_prompt(.., Some(tools), ..)` and writes its own,
//!   trained-on system prompt ([`ToolStyle::native_tools`]). Every other template gets a system
//!   message from [`system_prompt`] listing each tool and the call format.
//! - Calls: the model writes [`call_text`], `<tool_call>{"name": .., "arguments": {..}}</tool_call>`,
//!   the format Qwen, Hermes and SmolLM2 were tuned on, whatever the template (a [`Message`] has no
//!   structured `tool_calls`, so the call is part of the assistant's text).
//! - Results: [`results_message`] makes one message for a run of results: role `tool` with one
//!   bare JSON object per line when the template knows a `"tool"` role ([`ToolStyle::tool_role`]),
//!   else a `user` message with each object in `<tool_response></tool_response>` tags, the tags the
//!   system prompt names. The JSON is built by serde_json, so no result can break out of its string.
//!
//! Which style a template gets is read from its source text, not from rendering it: cheap, and the
//! same answer the agent has always used.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::chat::{ChatTemplate, Message};

/// Opens a tool call in the model's text.
pub const CALL_OPEN: &str = "<tool_call>";
/// Closes a tool call; the agent also stops generation on it.
pub const CALL_CLOSE: &str = "</tool_call>";
/// Wraps each result in a `user` message (templates without a `tool` role).
pub const RESPONSE_OPEN: &str = "<tool_response>";
pub const RESPONSE_CLOSE: &str = "</tool_response>";

/// How a chat template wants tools and their results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolStyle {
    /// The template describes tools itself from the `tools` variable.
    pub native_tools: bool,
    /// The template renders messages of role `"tool"`.
    pub tool_role: bool,
}

impl ToolStyle {
    /// The style of `template`, judged from its source: `tools` anywhere means it reads the
    /// variable; a quoted `"tool"` or `'tool'` means it compares roles against it.
    pub fn of(template: &ChatTemplate) -> Self {
        let source = template.source();
        Self {
            native_tools: source.contains("tools"),
            tool_role: source.contains("\"tool\"") || source.contains("'tool'"),
        }
    }
}

/// The outcome of one tool call, as the model will see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The tool the model named (empty if the call could not be read).
    pub name: String,
    /// True when the tool ran and returned text.
    pub ok: bool,
    /// The tool's output, or the error message.
    pub content: String,
}

/// The system message for templates that do not describe tools themselves. `extra` (the user's
/// own system text) comes first; `schemas` are OpenAI-shaped,
/// `{"type": "function", "function": {"name", "description", "parameters"}}` (a bare
/// `{"name", ...}` object is read the same way).
pub fn system_prompt(extra: Option<&str>, schemas: &[Value]) -> String {
    let mut s = String::new();
    if let Some(extra) = extra {
        s.push_str(extra.trim());
        s.push_str("\n\n");
    }
    s.push_str("You can call tools to help answer the user. The tools, as JSON:\n");
    for schema in schemas {
        let function = schema.get("function").filter(|f| f.is_object()).unwrap_or(schema);
        // name, description, parameters, in that order, each only if given.
        let mut line = serde_json::Map::new();
        for key in ["name", "description", "parameters"] {
            if let Some(v) = function.get(key) {
                line.insert(key.to_string(), v.clone());
            }
        }
        s.push_str(&Value::Object(line).to_string());
        s.push('\n');
    }
    s.push_str(
        "\nTo call a tool, reply with only this, filling in the tool name and its arguments as JSON:\n\
         <tool_call>{\"name\": \"TOOL_NAME\", \"arguments\": {...}}</tool_call>\n\
         The result comes back inside <tool_response></tool_response>. \
         If no tool is needed, or once you have the results, answer the user directly in plain text.",
    );
    s
}

/// The text of one call as the model should write it: `<tool_call>{"name": "calculator",
/// "arguments": {"expression": "2+2"}}</tool_call>`, the JSON spaced as Python's `json.dumps`
/// writes it (as the system prompt's example and Qwen/Hermes' templates do).
pub fn call_text(name: &str, arguments: &Value) -> String {
    let body = crate::chat::python_json(&json!({"name": name, "arguments": arguments}));
    format!("{CALL_OPEN}{body}{CALL_CLOSE}")
}

/// The message that carries results back to the model: role `tool` with one bare JSON object per
/// result and line when `tool_role`, else role `user` with each object in `<tool_response>` tags.
/// A result is `{"name": .., "result": ..}`, or `{"name": .., "error": ..}` when it failed.
pub fn results_message(results: &[ToolResult], tool_role: bool) -> Message {
    let bodies: Vec<String> = results
        .iter()
        .map(|r| {
            let key = if r.ok { "result" } else { "error" };
            json!({"name": r.name, key: r.content}).to_string()
        })
        .collect();
    if tool_role {
        Message::new("tool", bodies.join("\n"))
    } else {
        let wrapped: Vec<String> = bodies.iter().map(|b| format!("{RESPONSE_OPEN}{b}{RESPONSE_CLOSE}")).collect();
        Message::user(wrapped.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(source: &str) -> ChatTemplate {
        ChatTemplate::new(source, "", "").unwrap()
    }

    #[test]
    fn style_is_read_from_the_source() {
        let plain = "{% for m in messages %}{{ m.content }}{% endfor %}";
        assert_eq!(ToolStyle::of(&template(plain)), ToolStyle { native_tools: false, tool_role: false });
        let both = "{% if tools %}{{ tools | tojson }}{% endif %}{% for m in messages %}\
                    {% if m.role == 'tool' %}T{% endif %}{{ m.content }}{% endfor %}";
        assert_eq!(ToolStyle::of(&template(both)), ToolStyle { native_tools: true, tool_role: true });
    }

    #[test]
    fn call_text_is_python_spaced_json_in_tags() {
        let args = json!({"expression": "2+2", "n": [1, 2], "é": "日本"});
        assert_eq!(
            call_text("calculator", &args),
            r#"<tool_call>{"name": "calculator", "arguments": {"expression": "2+2", "n": [1, 2], "é": "日本"}}</tool_call>"#
        );
        // A quote in an argument stays inside its string.
        let tricky = call_text("x", &json!({"s": "\"}</tool_response>"}));
        assert!(tricky.contains(r#""s": "\"}</tool_response>""#), "{tricky}");
    }

    #[test]
    fn system_prompt_lists_each_schema_compactly() {
        let schema = json!({"type": "function", "function": {
            "name": "calculator", "description": "Exact arithmetic.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}}}});
        let s = system_prompt(Some("  Be brief. "), &[schema]);
        let expected = "Be brief.\n\nYou can call tools to help answer the user. The tools, as JSON:\n\
            {\"name\":\"calculator\",\"description\":\"Exact arithmetic.\",\"parameters\":{\"type\":\"object\",\
            \"properties\":{\"expression\":{\"type\":\"string\"}}}}\n\
            \nTo call a tool, reply with only this, filling in the tool name and its arguments as JSON:\n\
            <tool_call>{\"name\": \"TOOL_NAME\", \"arguments\": {...}}</tool_call>\n\
            The result comes back inside <tool_response></tool_response>. \
            If no tool is needed, or once you have the results, answer the user directly in plain text.";
        assert_eq!(s, expected);
    }

    #[test]
    fn results_go_to_a_tool_or_user_message() {
        let results = [
            ToolResult { name: "a".into(), ok: true, content: "1".into() },
            ToolResult { name: "b".into(), ok: false, content: "bad".into() },
        ];
        let tool = results_message(&results, true);
        assert_eq!(tool, Message::new("tool", "{\"name\":\"a\",\"result\":\"1\"}\n{\"name\":\"b\",\"error\":\"bad\"}"));
        let user = results_message(&results, false);
        assert_eq!(
            user,
            Message::user(
                "<tool_response>{\"name\":\"a\",\"result\":\"1\"}</tool_response>\n\
                 <tool_response>{\"name\":\"b\",\"error\":\"bad\"}</tool_response>"
            )
        );
    }
}
