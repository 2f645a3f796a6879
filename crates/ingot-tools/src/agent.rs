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
//! How tools are described to the model: if the chat template's source mentions `tools` (Qwen2.5,
//! Hermes, Llama 3.1 ...), the JSON schemas go to `render_with_tools` and the template writes its
//! own, trained-on system prompt. Otherwise a system message written here lists each tool's name,
//! description and schema, the exact call format, and tells the model to answer directly when no
//! tool is needed.
//!
//! How results go back: templates that handle a `"tool"` role get a `tool` message whose content is
//! the JSON result (they wrap it themselves, e.g. in `<tool_response>`). Every other template gets a
//! `user` message `<tool_response>{json}</tool_response>`: any template renders a user turn, and the
//! tags are the ones the system prompt names. The JSON is built with serde_json, so a tool result or
//! an error message can never break out of its string.
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
use ingot_tokenizer::Message;
use serde::Serialize;
use serde_json::{json, Value};

use crate::calls::{parse_calls, CallError, ToolCall};
use crate::tool::Tool;

const CLOSE_TAG: &str = "</tool_call>";
const OPEN_TAG: &str = "<tool_call>";

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

/// The outcome of one tool call, as the model will see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolResult {
    /// The tool the model named (empty if the call could not be read).
    pub name: String,
    /// True when the tool ran and returned text.
    pub ok: bool,
    /// The tool's output, or the error message.
    pub content: String,
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
        let source = template.source();
        let native_tools = source.contains("tools");
        let tool_role = source.contains("\"tool\"") || source.contains("'tool'");
        let schemas: Vec<Value> = self.tools.iter().map(|t| tool_schema(t.as_ref())).collect();

        let mut messages = Vec::new();
        if native_tools {
            if let Some(system) = &self.system {
                messages.push(Message::system(system.clone()));
            }
        } else {
            messages.push(Message::system(system_prompt(self.system.as_deref(), &self.tools)));
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

/// The system message for templates that do not describe tools themselves.
pub fn system_prompt(extra: Option<&str>, tools: &[Box<dyn Tool>]) -> String {
    let mut s = String::new();
    if let Some(extra) = extra {
        s.push_str(extra.trim());
        s.push_str("\n\n");
    }
    s.push_str("You can call tools to help answer the user. The tools, as JSON:\n");
    for tool in tools {
        let line = json!({"name": tool.name(), "description": tool.description(), "parameters": tool.parameters()});
        s.push_str(&line.to_string());
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

/// The message that carries results back to the model: role `tool` with bare JSON when the
/// template handles that role, else role `user` with each result in `<tool_response>` tags.
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
        let wrapped: Vec<String> = bodies.iter().map(|b| format!("<tool_response>{b}</tool_response>")).collect();
        Message::user(wrapped.join("\n"))
    }
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
