//! The tool-calling loop: ask the model, run the tools it calls, show it the results, repeat until
//! it answers without calling a tool or the step limit is reached.
//!
//! One step is one generation. Each step:
//! 1. renders the conversation with the model's chat template and generates, stopping at
//!    `</tool_call>` as well as end-of-sequence (the closing tag is put back into the transcript,
//!    since the stop string itself is not returned), so one step makes at most one tagged call;
//! 2. reads the calls with [`parse_calls`]; with none, the reply is the final answer;
//! 3. otherwise runs them with [`execute_calls`] (pure: no model, so it is tested on its own) and
//!    appends the results with [`results_message`].
//!
//! How tools are described, how a call is written and how results go back are defined once, in
//! [`ingot_tokenizer::tool_format`], which SFT data uses too, so that a model is tuned on the text
//! this loop shows it. In short: if the chat template's source mentions `tools` (Qwen2.5, Hermes,
//! Llama 3.1 ...), the JSON schemas go to the template, which writes its own, trained-on system
//! prompt; otherwise a system message ([`system_prompt`]) lists each tool's name, description and
//! schema, the exact call format, and tells the model to answer directly when no tool is needed.
//! Templates that handle a `"tool"` role get results as a `tool` message of bare JSON; every other
//! template gets a `user` message `<tool_response>{json}</tool_response>` ([`results_message`]).
//! The JSON is built with serde_json, so a tool result or an error message can never break out of
//! its string.
//!
//! Nor out of its turn: the conversation is rendered as a [`ingot_tokenizer::Prompt`] and encoded
//! with `encode_prompt`, so only the template's own markup becomes control tokens. A tool result,
//! a document or a tool description that spells `<|im_end|>\n<|im_start|>assistant` is read by the
//! model as those characters, not as the end of its turn.
//!
//! Errors: [`AgentError`]. A tool's failure, an unknown tool or an unreadable call is not an error
//! of the loop: it becomes a result the model sees, so it can correct its next call.

use std::sync::atomic::AtomicBool;

use ingot_generate::generate::generate_until;
use ingot_generate::{FinishReason, GenerateParams, Pipeline};
use ingot_tokenizer::tool_format::{self, ToolStyle, CALL_CLOSE as CLOSE_TAG, CALL_OPEN as OPEN_TAG};
use ingot_tokenizer::Message;
use serde_json::{json, Value};

use crate::calls::{parse_calls, CallError, ToolCall};
use crate::tool::Tool;

/// The message that carries results back to the model (see [`ingot_tokenizer::tool_format`]).
pub use ingot_tokenizer::tool_format::results_message;
/// The outcome of one tool call, as the model will see it (defined with the format it is shown in).
pub use ingot_tokenizer::tool_format::ToolResult;

/// Why the loop could not run (tool failures are not here: the model sees those).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Loading the prompt, tokenizing or generating failed (boxed: the generation error is large).
    #[error(transparent)]
    Generate(Box<ingot_generate::Error>),
    /// The agent was set up in a way that cannot work; the message says how to fix it.
    #[error("{0}")]
    Config(String),
    /// The cancel flag ([`Agent::with_cancel`]) was raised during a step.
    #[error("the reply was stopped before it finished")]
    Cancelled,
}

impl From<ingot_generate::Error> for AgentError {
    fn from(e: ingot_generate::Error) -> Self {
        AgentError::Generate(Box::new(e))
    }
}

impl From<ingot_tokenizer::Error> for AgentError {
    fn from(e: ingot_tokenizer::Error) -> Self {
        AgentError::Generate(Box::new(e.into()))
    }
}

/// One generation and what came of it.
#[derive(Debug, Clone)]
pub struct Step {
    /// The model's reply, with `</tool_call>` put back when generation stopped on it.
    pub model_text: String,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// The calls read from the reply (unreadable ones as errors).
    pub calls: Vec<Result<ToolCall, CallError>>,
    /// One result per call, in order.
    pub results: Vec<ToolResult>,
    /// True on the last step when it still called tools: the loop stopped at `max_steps`.
    pub step_limit_reached: bool,
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStop {
    /// The model replied without calling a tool.
    Answered,
    /// `max_steps` generations all called tools.
    StepLimit,
}

/// The final answer and every step that led to it.
#[derive(Debug, Clone)]
pub struct AgentAnswer {
    pub answer: String,
    pub stop: AgentStop,
    pub steps: Vec<Step>,
}

/// Sees each step's prompt ids ([`Agent::with_prompt_hook`]).
type PromptHook<'a> = Box<dyn Fn(&[u32]) + 'a>;

/// A model, the tools it may call, and the loop's limits.
pub struct Agent<'a> {
    pipeline: &'a Pipeline,
    tools: Vec<Box<dyn Tool>>,
    params: GenerateParams,
    max_steps: usize,
    system: Option<String>,
    on_prompt: Option<PromptHook<'a>>,
    cancel: Option<&'a AtomicBool>,
}

impl<'a> Agent<'a> {
    /// An agent with greedy decoding, 256 tokens per step and at most 5 steps.
    pub fn new(pipeline: &'a Pipeline, tools: Vec<Box<dyn Tool>>) -> Self {
        Self {
            pipeline,
            tools,
            params: GenerateParams::default(),
            max_steps: 5,
            system: None,
            on_prompt: None,
            cancel: None,
        }
    }

    /// Generation settings for every step; `</tool_call>` is added to the stop strings.
    pub fn with_params(mut self, params: GenerateParams) -> Self {
        self.params = params;
        self
    }

    /// Most generations before the loop gives up (at least 1).
    pub fn with_max_steps(mut self, max_steps: usize) -> Self {
        self.max_steps = max_steps;
        self
    }

    /// Extra instructions put before the tool description (plain templates) or as the system
    /// message (templates that describe tools themselves).
    pub fn with_system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Call `hook` with the token ids of each step's prompt, just before the model reads them
    /// (to inspect exactly what the model is fed).
    pub fn with_prompt_hook(mut self, hook: impl Fn(&[u32]) + 'a) -> Self {
        self.on_prompt = Some(Box::new(hook));
        self
    }

    /// Stop generating as soon as `cancel` is set (Ctrl-C); the run then fails with
    /// [`AgentError::Cancelled`] and runs no tool the unfinished step may have named.
    pub fn with_cancel(mut self, cancel: &'a AtomicBool) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Runs the loop on `question`.
    pub fn run(&self, question: &str) -> Result<AgentAnswer, AgentError> {
        self.run_with(question, |_| {})
    }

    /// Runs the loop on `question`, calling `on_step` after each step (for tracing).
    pub fn run_with(&self, question: &str, on_step: impl FnMut(&Step)) -> Result<AgentAnswer, AgentError> {
        self.run_conversation(&[Message::user(question)], on_step)
    }

    /// Runs the loop on a conversation of user and assistant turns that ends with a user turn (a
    /// chat's history), calling `on_step` after each step. The system message is the agent's own
    /// ([`Agent::with_system`] and the tool description), so the conversation may not hold one:
    /// two system messages break many templates. Tool calls and results of this run are not added
    /// to `conversation`; the caller keeps the final answer if it wants it in the history.
    pub fn run_conversation(
        &self,
        conversation: &[Message],
        on_step: impl FnMut(&Step),
    ) -> Result<AgentAnswer, AgentError> {
        self.check()?;
        if conversation.last().is_none_or(|m| m.role != "user") {
            return Err(AgentError::Config(
                "the conversation must end with a user turn for the model to answer".into(),
            ));
        }
        if conversation.iter().any(|m| m.role == "system") {
            return Err(AgentError::Config(
                "the conversation holds a system message; pass it with Agent::with_system instead".into(),
            ));
        }
        let template = self.pipeline.tokenizer.chat_template().ok_or_else(|| {
            AgentError::Config("tool calling needs a chat model; this model has no chat template".into())
        })?;
        let ToolStyle { native_tools, tool_role } = ToolStyle::of(template);
        let schemas: Vec<Value> = self.tools.iter().map(|t| tool_schema(t.as_ref())).collect();

        let mut messages = Vec::new();
        if native_tools {
            if let Some(system) = &self.system {
                messages.push(Message::system(system.clone()));
            }
        } else {
            messages.push(Message::system(tool_format::system_prompt(self.system.as_deref(), &schemas)));
        }
        messages.extend_from_slice(conversation);

        let mut params = self.params.clone();
        if !params.stop.iter().any(|s| s == CLOSE_TAG) {
            params.stop.push(CLOSE_TAG.to_string());
        }
        let p = self.pipeline;
        let reply = |messages: &[Message]| -> Result<(String, FinishReason), AgentError> {
            let tools = if native_tools { Some(schemas.as_slice()) } else { None };
            let prompt = template.render_prompt(messages, tools, true)?;
            let ids = p.tokenizer.encode_prompt(&prompt, false)?;
            if let Some(hook) = &self.on_prompt {
                hook(&ids);
            }
            let never = AtomicBool::new(false);
            let cancel = self.cancel.unwrap_or(&never);
            let generation = generate_until(&p.model, &p.tokenizer, &ids, &params, &p.device, cancel, |_| {})?;
            if generation.finish_reason == FinishReason::Cancelled {
                return Err(AgentError::Cancelled);
            }
            Ok((generation.text, generation.finish_reason))
        };
        run_loop(&self.tools, self.max_steps, tool_role, messages, reply, on_step)
    }

    fn check(&self) -> Result<(), AgentError> {
        let mut names: Vec<&str> = self.tools.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(AgentError::Config(format!("two tools are named `{}`; tool names must be unique", w[0])));
        }
        Ok(())
    }
}

/// The loop itself, over any source of replies: `reply` gets the conversation so far and returns the
/// model's text and why it stopped. [`Agent::run_with`] passes the real model; tests can pass a script.
pub fn run_loop(
    tools: &[Box<dyn Tool>],
    max_steps: usize,
    tool_role: bool,
    mut messages: Vec<Message>,
    mut reply: impl FnMut(&[Message]) -> Result<(String, FinishReason), AgentError>,
    mut on_step: impl FnMut(&Step),
) -> Result<AgentAnswer, AgentError> {
    if max_steps == 0 {
        return Err(AgentError::Config("max_steps must be at least 1".into()));
    }
    let mut steps = Vec::new();
    for step_no in 1..=max_steps {
        let (mut model_text, finish_reason) = reply(&messages)?;
        // Generation stopped on `</tool_call>`, which is not returned: put it back, so the
        // transcript shows the model a well-formed call.
        if finish_reason == FinishReason::Stop && has_open_call(&model_text) {
            model_text.push_str(CLOSE_TAG);
        }
        let parsed = parse_calls(&model_text);
        if parsed.calls.is_empty() {
            let step =
                Step { model_text, finish_reason, calls: Vec::new(), results: Vec::new(), step_limit_reached: false };
            on_step(&step);
            steps.push(step);
            return Ok(AgentAnswer { answer: parsed.text, stop: AgentStop::Answered, steps });
        }
        let results = execute_calls(tools, &parsed.calls);
        messages.push(Message::assistant(model_text.clone()));
        messages.push(results_message(&results, tool_role));
        let step =
            Step { model_text, finish_reason, calls: parsed.calls, results, step_limit_reached: step_no == max_steps };
        on_step(&step);
        steps.push(step);
    }
    let answer = step_limit_answer(max_steps, steps.last().map(|s| s.results.as_slice()).unwrap_or(&[]));
    Ok(AgentAnswer { answer, stop: AgentStop::StepLimit, steps })
}

/// A tool in the OpenAI `tools` shape that chat templates expect.
pub fn tool_schema(tool: &dyn Tool) -> Value {
    json!({
        "type": "function",
        "function": {"name": tool.name(), "description": tool.description(), "parameters": tool.parameters()},
    })
}

/// The system message for templates that do not describe tools themselves
/// ([`tool_format::system_prompt`] of the tools' schemas).
pub fn system_prompt(extra: Option<&str>, tools: &[Box<dyn Tool>]) -> String {
    let schemas: Vec<Value> = tools.iter().map(|t| tool_schema(t.as_ref())).collect();
    tool_format::system_prompt(extra, &schemas)
}

/// Runs each call against `tools`. Pure apart from the tools themselves: no model involved.
///
/// An unreadable call, an unknown tool name and a tool error each become a failed result whose
/// content tells the model what went wrong and what it can call instead.
pub fn execute_calls(tools: &[Box<dyn Tool>], calls: &[Result<ToolCall, CallError>]) -> Vec<ToolResult> {
    calls
        .iter()
        .map(|call| match call {
            Err(e) => ToolResult { name: String::new(), ok: false, content: e.to_string() },
            Ok(call) => match tools.iter().find(|t| t.name() == call.name) {
                None => {
                    let available: Vec<&str> = tools.iter().map(|t| t.name()).collect();
                    ToolResult {
                        name: call.name.clone(),
                        ok: false,
                        content: format!(
                            "unknown tool {}; available: {}",
                            ingot_core::text::quoted(&call.name),
                            available.join(", ")
                        ),
                    }
                }
                Some(tool) => match tool.call(&call.arguments) {
                    Ok(out) => ToolResult { name: call.name.clone(), ok: true, content: out },
                    Err(e) => ToolResult { name: call.name.clone(), ok: false, content: e.to_string() },
                },
            },
        })
        .collect()
}

/// The answer when every step called tools: says so, with the last results.
fn step_limit_answer(max_steps: usize, last: &[ToolResult]) -> String {
    let mut s = format!("Stopped after {max_steps} steps without a final answer (the step limit was reached).");
    for r in last {
        s.push_str(&format!("\nLast {} from `{}`: {}", if r.ok { "result" } else { "error" }, r.name, r.content));
    }
    s
}

/// True when the last `<tool_call>` in `text` is not followed by a `</tool_call>`.
fn has_open_call(text: &str) -> bool {
    match text.rfind(OPEN_TAG) {
        None => false,
        Some(open) => text.rfind(CLOSE_TAG).is_none_or(|close| close < open),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calculator::Calculator;

    /// What the SFT data teaches a model to write is what this loop reads back.
    #[test]
    fn call_text_parses_back_to_the_same_call() {
        let cases = [
            ("calculator", json!({"expression": "123456789 * 987654321"})),
            ("search", json!({"query": "naïve \"café\" 日本", "k": 3, "filters": {"tags": ["a", "b"], "x": null}})),
            ("no_args", json!({})),
        ];
        for (name, arguments) in cases {
            let text = tool_format::call_text(name, &arguments);
            let parsed = parse_calls(&text);
            assert_eq!(parsed.text, "", "{text}");
            assert_eq!(parsed.calls, vec![Ok(ToolCall { name: name.into(), arguments: arguments.clone() })], "{text}");
            // With the model's own words around it, and two calls in one reply.
            let reply = format!("Let me check.\n{text}\n{text}");
            let parsed = parse_calls(&reply);
            assert_eq!(parsed.text, "Let me check.");
            assert_eq!(parsed.calls.len(), 2);
        }
    }

    #[test]
    fn system_prompt_is_the_tool_format_one() {
        let tools: Vec<Box<dyn Tool>> = vec![Box::new(Calculator)];
        let schema = tool_schema(&Calculator);
        assert_eq!(system_prompt(Some("Be brief."), &tools), tool_format::system_prompt(Some("Be brief."), &[schema]));
        let line = json!({"name": "calculator", "description": Calculator.description(), "parameters": Calculator.parameters()});
        assert!(system_prompt(None, &tools).contains(&format!("JSON:\n{line}\n\nTo call a tool")));
    }
}
