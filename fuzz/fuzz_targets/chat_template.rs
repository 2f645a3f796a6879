//! Chat-template rendering (`ingot_tokenizer::ChatTemplate`): a fuzzed Jinja template with fuzzed
//! special tokens and messages, rendered with and without tools.
//!
//! Input, joined with `ingot_fuzz::SEP`: the template, the BOS text, the EOS text, then
//! role, content, role, content, ...
#![no_main]

use ingot_fuzz::{checked, split_parts};
use ingot_tokenizer::{ChatTemplate, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parts: Vec<String> = split_parts(data).iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    let text = |i: usize| parts.get(i).cloned().unwrap_or_default();
    let Some(template) = checked("ChatTemplate::new", ChatTemplate::new(text(0), text(1), text(2))) else { return };
    let messages: Vec<Message> = parts
        .get(3..)
        .unwrap_or_default()
        .chunks(2)
        .map(|pair| Message::new(pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
        .collect();
    checked("render", template.render(&messages, data.len() % 2 == 0));
    let tools = [serde_json::json!({
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}
        }
    })];
    checked("render_with_tools", template.render_with_tools(&messages, Some(&tools), true));
});
