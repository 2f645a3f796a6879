//! Reading tool calls out of a model's reply.
//!
//! The format is the one Qwen, Hermes and SmolLM2 were tuned on:
//!
//! ```text
//! <tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>
//! ```
//!
//! Small models do not always write it cleanly, so [`parse_calls`] also accepts: a bare JSON object
//! `{"name": ..., "arguments": ...}` with no tags (optionally in a code fence), `"parameters"` in
//! place of `"arguments"`, arguments given as a JSON *string* holding an object, several calls in one
//! reply, a missing `</tool_call>`, and text before and after the calls.
//!
//! Each call's JSON is read with serde_json first; only if that fails are repairs tried, in order:
//! cut to the outermost `{...}` (drops code fences and chatter), then one rewriting pass that turns
//! single-quoted strings into double-quoted ones, quotes bare keys, drops trailing commas, escapes raw
//! newlines in strings and maps Python's `True`/`False`/`None`, then closes an unterminated string
//! and any unclosed brackets (a reply cut off by the token limit). This is a fixed list of repairs,
//! not a JavaScript parser: anything it cannot fix becomes a per-call [`CallError`] whose message is
//! written for the model, so the loop can show it and let the model try again.
//!
//! Hostile replies are bounded: only the first [`MAX_SCAN_BYTES`] are searched (the rest stays text),
//! at most [`MAX_CALLS`] calls are read, every scan is iterative and linear in the input, and deep
//! nesting is refused by serde_json's recursion limit (an error, not a stack overflow).

use serde::Serialize;
use serde_json::Value;

use crate::tool::json_type_name;

/// How much of a reply is searched for calls; a model reply longer than this is not a tool call.
pub const MAX_SCAN_BYTES: usize = 64 * 1024;
/// Most calls read from one reply; later ones are left in the text.
pub const MAX_CALLS: usize = 16;
/// Deepest bracket nesting the repairs will track (serde_json itself stops at 128).
const MAX_REPAIR_DEPTH: usize = 128;

const OPEN_TAG: &str = "<tool_call>";
const CLOSE_TAG: &str = "</tool_call>";

/// One call the model asked for: a tool name and its arguments object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    pub name: String,
    /// Always a JSON object.
    pub arguments: Value,
}

/// Why one call in a reply could not be read. Messages are shown to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// A `<tool_call>` tag with nothing that looks like a JSON object after it.
    #[error("the <tool_call> holds no JSON object; write <tool_call>{{\"name\": \"TOOL\", \"arguments\": {{...}}}}</tool_call>")]
    NoJson,
    /// The JSON could not be read even after repairs.
    #[error("the tool call is not valid JSON ({reason}); write {{\"name\": \"TOOL\", \"arguments\": {{...}}}}")]
    InvalidJson { reason: String },
    /// Valid JSON, but not an object.
    #[error("a tool call must be a JSON object, got {found}")]
    NotAnObject { found: &'static str },
    /// No `"name"` string.
    #[error("the tool call has no \"name\" string; say which tool to call")]
    MissingName,
    /// `"arguments"` (or `"parameters"`) is neither an object nor a string holding one.
    #[error("tool {}: \"arguments\" must be a JSON object, got {found}", ingot_core::text::quoted(.name))]
    ArgumentsNotObject { name: String, found: &'static str },
}

/// A reply split into its tool calls and the text around them.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedReply {
    /// The reply with the calls (and their tags or code fences) taken out, trimmed.
    pub text: String,
    /// One entry per call found, in order; unreadable calls are errors, not dropped.
    pub calls: Vec<Result<ToolCall, CallError>>,
}

/// Splits a model reply into tool calls and the remaining text. Never panics.
///
/// If the reply has `<tool_call>` tags, each tag's body is one call (a missing `</tool_call>` runs
/// to the next tag or the end) and every body yields a call or an error. Without tags, top-level
/// JSON objects that read as `{"name": ..., "arguments" | "parameters": ...}` are calls and any other
/// JSON is left as text, since a final answer may well contain JSON.
pub fn parse_calls(reply: &str) -> ParsedReply {
    let cut = floor_char_boundary(reply, MAX_SCAN_BYTES);
    let (scan, rest) = reply.split_at(cut);
    let mut parsed = if scan.contains(OPEN_TAG) { parse_tagged(scan) } else { parse_bare(scan) };
    if !rest.is_empty() {
        parsed.text.push_str(rest);
    }
    parsed.text = parsed.text.trim().to_string();
    parsed
}

/// Replies with `<tool_call>` tags: every tag body is a call.
fn parse_tagged(s: &str) -> ParsedReply {
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut pos = 0;
    while let Some(open) = s[pos..].find(OPEN_TAG).map(|i| pos + i) {
        if calls.len() == MAX_CALLS {
            break;
        }
        text.push_str(&s[pos..open]);
        let body_start = open + OPEN_TAG.len();
        let after = &s[body_start..];
        // The body ends at `</tool_call>`, or, when that was never written, at the next tag or the end.
        let (body_len, skip) = match (after.find(CLOSE_TAG), after.find(OPEN_TAG)) {
            (Some(c), Some(o)) if o < c => (o, 0),
            (Some(c), _) => (c, CLOSE_TAG.len()),
            (None, Some(o)) => (o, 0),
            (None, None) => (after.len(), 0),
        };
        calls.push(parse_one(&after[..body_len]));
        pos = body_start + body_len + skip;
    }
    text.push_str(&s[pos..]);
    // A stray closing tag (the loop re-appends one) is not text.
    ParsedReply { text: text.replace(CLOSE_TAG, ""), calls }
}

/// Replies without tags: top-level JSON objects that look like calls.
fn parse_bare(s: &str) -> ParsedReply {
    let bytes = s.as_bytes();
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut copied = 0; // s[..copied] has been moved into `text` or consumed as a call
    let mut pos = 0;
    while pos < bytes.len() && calls.len() < MAX_CALLS {
        let Some(open) = s[pos..].find('{').map(|i| pos + i) else { break };
        let end = match_brace(s, open);
        let span = &s[open..end];
        if let Some(v) = value_from(span).ok().filter(looks_like_call) {
            let (start, stop) = widen_to_fence(s, open, end);
            let start = start.max(copied);
            text.push_str(&s[copied..start]);
            copied = stop;
            calls.push(call_from_value(v));
        }
        pos = end.max(open + 1);
    }
    text.push_str(&s[copied..]);
    ParsedReply { text, calls }
}

/// True for an object with a `"name"` and `"arguments"` or `"parameters"`: what a bare call must have.
fn looks_like_call(v: &Value) -> bool {
    let Some(obj) = v.as_object().map(|o| match o.get("function") {
        Some(Value::Object(f)) => f,
        _ => o,
    }) else {
        return false;
    };
    obj.get("name").is_some_and(Value::is_string) && (obj.contains_key("arguments") || obj.contains_key("parameters"))
}

/// Widens `[start, end)` over a code fence around it (```` ```json ```` ... ```` ``` ````), if any.
fn widen_to_fence(s: &str, start: usize, end: usize) -> (usize, usize) {
    let before = s[..start].trim_end();
    let after = s[end..].trim_start();
    let fence_open = before.rfind("```").filter(|&i| {
        let lang = &before[i + 3..];
        lang.chars().all(|c| c.is_ascii_alphanumeric())
    });
    match (fence_open, after.strip_prefix("```")) {
        (Some(i), Some(rest)) => (i, s.len() - rest.len()),
        _ => (start, end),
    }
}

/// One call body: JSON (repaired if need be) turned into a [`ToolCall`].
fn parse_one(body: &str) -> Result<ToolCall, CallError> {
    if !body.contains('{') {
        return Err(CallError::NoJson);
    }
    call_from_value(value_from(body)?)
}

/// Reads a JSON value from `s`, trying serde_json first and then the repairs in order.
fn value_from(s: &str) -> Result<Value, CallError> {
    let first_error = match serde_json::from_str::<Value>(s.trim()) {
        Ok(v) => return Ok(v),
        // serde quotes the model's text in its message: escaped and capped.
        Err(e) => ingot_core::text::error_text(&e),
    };
    let Some(open) = s.find('{') else { return Err(CallError::InvalidJson { reason: first_error }) };
    let span = &s[open..match_brace(s, open)];
    if let Ok(v) = serde_json::from_str::<Value>(span) {
        return Ok(v);
    }
    if let Some(normalized) = normalize(span) {
        if let Ok(v) = serde_json::from_str::<Value>(&normalized) {
            return Ok(v);
        }
        // Closing may leave a trailing comma before the new bracket; normalize drops it.
        if let Some(closed) = close_open(&normalized).and_then(|c| normalize(&c)) {
            if let Ok(v) = serde_json::from_str::<Value>(&closed) {
                return Ok(v);
            }
        }
    }
    Err(CallError::InvalidJson { reason: first_error })
}

/// A parsed value as a call: `{"name", "arguments" | "parameters"}`, or the same inside `"function"`.
fn call_from_value(v: Value) -> Result<ToolCall, CallError> {
    let Value::Object(mut obj) = v else { return Err(CallError::NotAnObject { found: json_type_name(&v) }) };
    if let Some(Value::Object(f)) = obj.remove("function") {
        obj = f;
    }
    let name = match obj.remove("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_string(),
        _ => return Err(CallError::MissingName),
    };
    let args =
        obj.remove("arguments").or_else(|| obj.remove("parameters")).unwrap_or(Value::Object(Default::default()));
    let arguments = match args {
        Value::Object(_) => args,
        // OpenAI's wire format sends arguments as a string of JSON.
        Value::String(s) => match value_from(&s) {
            Ok(inner @ Value::Object(_)) => inner,
            _ => return Err(CallError::ArgumentsNotObject { name, found: "a string that is not a JSON object" }),
        },
        other => return Err(CallError::ArgumentsNotObject { name, found: json_type_name(&other) }),
    };
    Ok(ToolCall { name, arguments })
}

/// End (exclusive) of the bracketed value opening at `open`, or the end of `s` if it never closes.
/// Quote-aware for both `"` and `'`, iterative, one pass.
fn match_brace(s: &str, open: usize) -> usize {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut i = open;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    s.len()
}

/// One rewriting pass towards strict JSON: single-quoted strings become double-quoted, bare keys
/// are quoted, trailing commas dropped, raw control characters in strings escaped, and Python's
/// `True`/`False`/`None` mapped. Idempotent on valid JSON. `None` when nesting is too deep to bother.
fn normalize(s: &str) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 16);
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut last_significant = ' '; // last non-space char emitted outside strings
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            match c {
                '\\' => {
                    let next = chars.get(i + 1).copied();
                    match next {
                        Some('\'') if q == '\'' => out.push('\''),
                        Some(n) => {
                            out.push('\\');
                            out.push(n);
                        }
                        None => {}
                    }
                    i += 1;
                }
                '"' if q == '\'' => out.push_str("\\\""),
                _ if c == q => {
                    out.push('"');
                    quote = None;
                    last_significant = '"';
                }
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                _ => out.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '"' | '\'' => {
                quote = Some(c);
                out.push('"');
            }
            '{' | '[' => {
                depth += 1;
                if depth > MAX_REPAIR_DEPTH {
                    return None;
                }
                out.push(c);
                last_significant = c;
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                out.push(c);
                last_significant = c;
            }
            ',' => {
                let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                if !matches!(next, Some('}') | Some(']') | None) {
                    out.push(c);
                    last_significant = c;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '$' | '-')) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                if next == Some(&':') && matches!(last_significant, '{' | ',') {
                    out.push('"');
                    out.push_str(&word);
                    out.push('"');
                } else {
                    out.push_str(match word.as_str() {
                        "True" => "true",
                        "False" => "false",
                        "None" => "null",
                        w => w,
                    });
                }
                last_significant = 'a';
                continue;
            }
            c => {
                out.push(c);
                if !c.is_whitespace() {
                    last_significant = c;
                }
            }
        }
        i += 1;
    }
    // An unterminated string is left open here; `close_open` closes it.
    Some(out)
}

/// Closes an unterminated double-quoted string and any unclosed `{` / `[` of (normalized) JSON,
/// innermost first: a reply cut off mid-call. `None` if nothing was open or nesting is too deep.
fn close_open(s: &str) -> Option<String> {
    let mut stack: Vec<char> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in s.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => stack.push('}'),
            '[' => stack.push(']'),
            '}' | ']' => {
                stack.pop();
            }
            _ => {}
        }
        if stack.len() > MAX_REPAIR_DEPTH {
            return None;
        }
    }
    if stack.is_empty() && !in_string {
        return None;
    }
    let mut out = s.trim_end().to_string();
    if escaped {
        out.pop();
    }
    if in_string {
        out.push('"');
    }
    out.extend(stack.iter().rev());
    Some(out)
}

/// The largest index `<= i` that is a char boundary of `s`.
fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    (0..=i).rev().find(|&k| s.is_char_boundary(k)).unwrap_or(0)
}
