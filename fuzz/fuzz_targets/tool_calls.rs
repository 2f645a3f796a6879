//! The tool-call parser (`ingot_tools::calls::parse_calls`) on a fuzzed model reply, and the calls
//! it finds run through the calculator as the agent loop would (`execute_calls`).
#![no_main]

use ingot_fuzz::{check_error, check_message};
use ingot_tools::agent::execute_calls;
use ingot_tools::calculator::Calculator;
use ingot_tools::calls::{parse_calls, MAX_CALLS};
use ingot_tools::tool::Tool;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let reply = String::from_utf8_lossy(data);
    let parsed = parse_calls(&reply);
    assert!(parsed.calls.len() <= MAX_CALLS, "{} calls read, limit {MAX_CALLS}", parsed.calls.len());
    for call in &parsed.calls {
        match call {
            Ok(call) => assert!(call.arguments.is_object(), "arguments of `{}` are not an object", call.name),
            Err(e) => check_error("parse_calls", e),
        }
    }
    let tools: Vec<Box<dyn Tool>> = vec![Box::new(Calculator)];
    for result in execute_calls(&tools, &parsed.calls) {
        if !result.ok {
            // What the model is shown when a call fails: the same rule as errors a user sees.
            check_message("execute_calls", &result.content);
        }
    }
});
