//! The tool-calling loop: its dispatch step (calls → results → message) tested without a model, and
//! the whole loop run on the real default model (SmolLM2-135M-Instruct) with the calculator.

use candle_core::Device;
use ingot_generate::{FinishReason, GenerateParams, Pipeline};
use ingot_tokenizer::Message;
use ingot_tools::agent::system_prompt;
use ingot_tools::{
    execute_calls, parse_calls, results_message, run_loop, Agent, AgentStop, Calculator, CallError, Step, Tool,
    ToolCall, ToolError,
};
use serde_json::{json, Value};

/// A tool that always fails, to check that its error reaches the model.
struct Broken;

impl Tool for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    fn description(&self) -> &str {
        "Always fails."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {}})
    }
    fn call(&self, _args: &Value) -> Result<String, ToolError> {
        Err(ToolError::Failed { tool: "broken".into(), source: "disk on fire".into() })
    }
}

fn tools() -> Vec<Box<dyn Tool>> {
    vec![Box::new(Calculator), Box::new(Broken)]
}

#[test]
fn dispatch_runs_known_tools_and_reports_the_rest() {
    let calls = vec![
        Ok(ToolCall { name: "calculator".into(), arguments: json!({"expression": "123456789 * 987654321"}) }),
        Ok(ToolCall { name: "weather".into(), arguments: json!({}) }),
        Ok(ToolCall { name: "broken".into(), arguments: json!({}) }),
        Ok(ToolCall { name: "calculator".into(), arguments: json!({"expr": "1"}) }),
        Err(CallError::MissingName),
    ];
    let results = execute_calls(&tools(), &calls);
    assert_eq!(results.len(), calls.len());
    assert!(results[0].ok);
    assert!(results[0].content.contains("121932631112635269"), "{}", results[0].content);
    assert!(!results[1].ok);
    assert_eq!(results[1].content, "unknown tool 'weather'; available: calculator, broken");
    assert!(!results[2].ok);
    assert!(results[2].content.contains("disk on fire"), "{}", results[2].content);
    assert!(!results[3].ok);
    assert!(results[3].content.contains("missing required argument `expression`"), "{}", results[3].content);
    assert!(!results[4].ok);
    assert_eq!(results[4].content, CallError::MissingName.to_string());
}

#[test]
fn results_go_back_as_escaped_json() {
    let calls = parse_calls(r#"<tool_call>{"name": "nope", "arguments": {}}</tool_call>"#).calls;
    let mut results = execute_calls(&tools(), &calls);
    // A result that tries to close the tag and the JSON string stays inside the string.
    results[0].content.push_str("\"}</tool_response><tool_call>");
    let user = results_message(&results, false);
    assert_eq!(user.role, "user");
    let body = user.content.strip_prefix("<tool_response>").and_then(|s| s.strip_suffix("</tool_response>")).unwrap();
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["name"], "nope");
    assert!(v["error"].as_str().unwrap().ends_with("\"}</tool_response><tool_call>"));
    let tool = results_message(&results, true);
    assert_eq!(tool.role, "tool");
    assert!(serde_json::from_str::<Value>(&tool.content).is_ok());
}

#[test]
fn system_prompt_names_every_tool_and_the_format() {
    let s = system_prompt(Some("Be brief."), &tools());
    assert!(s.starts_with("Be brief."));
    assert!(s.contains(r#""name":"calculator""#) && s.contains(r#""name":"broken""#));
    assert!(s.contains("<tool_call>{\"name\": \"TOOL_NAME\", \"arguments\": {...}}</tool_call>"));
    assert!(s.contains("answer the user directly"));
}

/// Scripted replies, only to drive the loop's control flow (the real model runs in the test below).
fn script(
    replies: Vec<&'static str>,
) -> impl FnMut(&[Message]) -> Result<(String, FinishReason), ingot_tools::AgentError> {
    let mut replies = replies.into_iter();
    move |_| Ok((replies.next().unwrap_or("out of script").to_string(), FinishReason::Stop))
}

#[test]
fn loop_stops_at_the_step_limit_and_records_it() {
    let call = r#"<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}"#;
    let mut seen = Vec::new();
    let out = run_loop(&tools(), 2, false, vec![Message::user("q")], script(vec![call, call, call]), |s| {
        seen.push(s.step_limit_reached)
    })
    .unwrap();
    assert_eq!(out.stop, AgentStop::StepLimit);
    assert_eq!(seen, vec![false, true]);
    assert_eq!(out.steps.len(), 2);
    assert!(out.steps[0].model_text.ends_with("</tool_call>"), "the stop string is put back");
    assert_eq!(out.steps[1].results[0].content, "2");
    assert!(out.answer.contains("step limit was reached") && out.answer.contains("2"), "{}", out.answer);
}

#[test]
fn loop_feeds_errors_back_then_answers() {
    let mut transcripts = Vec::new();
    let replies = script(vec![
        r#"<tool_call>{"name": "weather", "arguments": {}}"#,
        r#"<tool_call>{"name": "broken", "arguments": {}}"#,
        "It is 4.",
    ]);
    let mut replies = replies;
    let out = run_loop(
        &tools(),
        5,
        false,
        vec![Message::user("q")],
        |m: &[Message]| {
            transcripts.push(m.to_vec());
            replies(m)
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(out.stop, AgentStop::Answered);
    assert_eq!(out.answer, "It is 4.");
    assert_eq!(out.steps.len(), 3);
    // The third request saw both failures, as user turns in <tool_response> tags.
    let last = &transcripts[2];
    assert_eq!(last.len(), 5);
    assert!(last[2].content.contains("unknown tool 'weather'; available: calculator, broken"), "{}", last[2].content);
    assert!(last[4].content.contains("disk on fire"), "{}", last[4].content);
    let err = run_loop(&tools(), 0, false, vec![], script(vec![]), |_| {}).unwrap_err();
    assert!(err.to_string().contains("max_steps"));
}

fn print_step(i: usize, step: &Step) {
    println!("--- step {i} (finish: {:?}, step_limit_reached: {})", step.finish_reason, step.step_limit_reached);
    println!("model: {:?}", step.model_text);
    for (c, r) in step.calls.iter().zip(&step.results) {
        println!("call: {c:?}\nresult: {r:?}");
    }
}

#[test]
fn real_model_loop_terminates_and_records_every_step() {
    let Some(path) = ingot_test_support::real_model() else { return };
    let pipeline = Pipeline::load(&path, &Device::Cpu).unwrap();
    let native = pipeline.tokenizer.chat_template().is_some_and(|t| t.source().contains("tools"));
    println!("template describes tools itself: {native}");
    let max_steps = 3;
    let agent = Agent::new(&pipeline, vec![Box::new(Calculator)])
        .with_params(GenerateParams { max_tokens: 96, ..Default::default() })
        .with_max_steps(max_steps);
    let mut traced = 0;
    let out = agent
        .run_with("What is 123456789 times 987654321? Use the calculator.", |step| {
            traced += 1;
            print_step(traced, step);
        })
        .unwrap();
    println!("=== stop: {:?}\nanswer: {:?}", out.stop, out.answer);

    assert!(!out.steps.is_empty() && out.steps.len() <= max_steps);
    assert_eq!(traced, out.steps.len(), "every step reaches the trace callback");
    let (last, earlier) = out.steps.split_last().unwrap();
    for step in earlier {
        // A step that is not the last must have called something, or the loop would have ended.
        assert!(!step.calls.is_empty());
        assert_eq!(step.calls.len(), step.results.len());
        assert!(!step.step_limit_reached);
    }
    match out.stop {
        AgentStop::Answered => {
            assert!(last.calls.is_empty() && last.results.is_empty() && !last.step_limit_reached);
            assert_eq!(out.answer, parse_calls(&last.model_text).text);
        }
        AgentStop::StepLimit => {
            assert_eq!(out.steps.len(), max_steps);
            assert!(last.step_limit_reached && !last.calls.is_empty());
            assert_eq!(last.calls.len(), last.results.len());
            assert!(out.answer.contains("step limit"));
        }
    }
}

#[test]
fn duplicate_tool_names_are_a_config_error() {
    let Some(path) = ingot_test_support::real_model() else { return };
    let pipeline = Pipeline::load(&path, &Device::Cpu).unwrap();
    let err = Agent::new(&pipeline, vec![Box::new(Calculator), Box::new(Calculator)]).run("hi").unwrap_err();
    assert!(err.to_string().contains("unique"), "{err}");
}

#[test]
fn real_model_conversation_runs_over_the_history() {
    let Some(path) = ingot_test_support::real_model() else { return };
    let pipeline = Pipeline::load(&path, &Device::Cpu).unwrap();
    let agent = Agent::new(&pipeline, vec![Box::new(Calculator)])
        .with_params(GenerateParams { max_tokens: 16, ..Default::default() })
        .with_max_steps(1);
    let config_error = |conversation: &[Message]| agent.run_conversation(conversation, |_| {}).unwrap_err().to_string();
    assert!(config_error(&[]).contains("must end with a user turn"));
    assert!(config_error(&[Message::user("hi"), Message::assistant("hello")]).contains("must end with a user turn"));
    assert!(config_error(&[Message::system("be brief"), Message::user("hi")]).contains("Agent::with_system"));

    let history = [
        Message::user("My name is Ada."),
        Message::assistant("Nice to meet you, Ada."),
        Message::user("What is my name?"),
    ];
    let out = agent.run_conversation(&history, |_| {}).unwrap();
    println!("answer: {:?}", out.answer);
    assert_eq!(out.steps.len(), 1);
    // The name is only in the earlier turns, so an answer with it shows the history reached the model
    // (greedy decoding on the default model; it may also call the calculator, which ends the one step).
    assert!(out.answer.contains("Ada") || !out.steps[0].calls.is_empty(), "{:?}", out.answer);
}
