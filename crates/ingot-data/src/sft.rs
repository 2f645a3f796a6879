//! SFT (instruction tuning) data: JSONL examples in, token ids with a loss mask out, and examples
//! packed into training rows.
//!
//! ```text
//! load(path, tokenizer, max_len, overlong)  .jsonl    ->  Vec<SftExample> {ids, trained, line}, SftStats
//! encode_conversation(tokenizer, value)     one line  ->  SftExample
//! pack(examples, seq_len)                   examples  ->  Vec<Packed> {ids, trained, positions, segments}
//! ```
//!
//! Formats, one example per line (TRL's):
//! - `{"messages": [{"role", "content", "tool_calls"?, "name"?}, ...], "tools"?: [schemas]}`, roles
//!   system, user, assistant, tool; a tool call is `{"type": "function", "function": {"name",
//!   "arguments"}}` with arguments an object or a JSON string; schemas are OpenAI-shaped.
//! - `{"prompt": "...", "completion": "..."}`: plain text, no template. The ids are BOS (when the
//!   tokenizer adds one) + prompt + completion + EOS; the completion and the EOS are trained.
//!   With message lists for both (TRL's conversational prompt/completion, optionally with
//!   `tools`), only the completion's assistant turns are trained.
//!
//! A conversation is shown to the chat template the way the tool-calling agent shows it at
//! inference ([`ingot_tokenizer::tool_format`]), so the model learns the very text it will see:
//! for templates that do not describe tools, a system message from `system_prompt` (the example's
//! own system message becomes its opening text); tool calls become `call_text` appended to the
//! assistant's content; each run of tool messages becomes one `results_message`. Templates that
//! describe tools get the schemas as `tools` instead. The rendered [`Prompt`] is encoded with
//! exactly [`Tokenizer::encode_prompt`]'s ids, so only template markup becomes control tokens.
//!
//! The loss mask: `trained[i]` means `ids[i]` is a target, predicted from `ids[..i]`. Trained are
//! the tokens of each assistant message's content and the template markup that closes its turn,
//! up to and including the first control token after the content (`<|im_end|>`), so the model
//! learns to stop. Which bytes are whose content is found from the template itself, not by
//! searching the text for "assistant": the conversation is rendered once more with each content
//! replaced by a numbered placeholder, and what the template writes around the placeholders is
//! matched against the real render (as `ChatTemplate::render_prompt` finds its markup). Tokens
//! are placed on those bytes by encoding the same pieces `encode_prompt` encodes, with offsets.
//! Every token holding a byte of a reply is trained, as transformers' `return_assistant_tokens_mask`
//! does: a token that starts in the header and runs into the reply (byte-level BPE's `"\n "` when
//! a reply starts with a space, `" hi"` after a header `"assistant: "`) is trained, since leaving it
//! out would leave the reply's first word untrained.
//! `trained[0]` is always false: nothing in the example predicts the first token.
//!
//! Packing is greedy and in order: an example joins the current row while it fits, no example is
//! split, and one longer than the row is a row of its own. Positions restart at 0 for each
//! example and `segments` numbers the examples of a row, for attention kept inside each example.
//!
//! Every problem with a line is an [`Error::BadJsonLine`] naming the file and the 1-based line.

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use ingot_tokenizer::tool_format::{self, ToolResult, ToolStyle, CALL_OPEN};

use ingot_tokenizer::{ChatTemplate, Message, Piece, Prompt, Tokenizer};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// What to do with an example longer than `max_len` tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlong {
    /// Refuse the data set, naming the line (the default: silent loss of data surprises).
    #[default]
    Error,
    /// Keep the first `max_len` tokens. An example left with no trained token is dropped.
    Truncate,
    /// Leave the example out.
    Drop,
}

/// One encoded example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftExample {
    pub ids: Vec<u32>,
    /// `trained[i]`: `ids[i]` is a target of the loss (predicted from `ids[..i]`). Same length as `ids`.
    pub trained: Vec<bool>,
    /// The 1-based line of the JSONL file it came from (0 when not read from a file).
    pub line: usize,
}

/// What [`load`] kept and left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SftStats {
    /// Examples kept.
    pub examples: usize,
    /// Tokens in the kept examples.
    pub tokens: usize,
    /// Trained tokens in the kept examples.
    pub trained_tokens: usize,
    /// Kept examples that were cut to `max_len`.
    pub truncated: usize,
    /// Examples left out (longer than `max_len` with [`Overlong::Drop`], or with nothing trained
    /// left after [`Overlong::Truncate`]).
    pub dropped: usize,
}

/// Examples packed into one training row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub ids: Vec<u32>,
    pub trained: Vec<bool>,
    /// Position of each token within its own example (restarts at 0).
    pub positions: Vec<u32>,
    /// Which example of this row each token belongs to (0, 1, ...).
    pub segments: Vec<u32>,
    /// Indices into the `examples` given to [`pack`], in row order.
    pub examples: Vec<usize>,
}

/// Read and encode every example of the JSONL file `path` (see the module docs). The chat
/// template is the tokenizer's own; conversations are refused when it has none.
pub fn load(
    path: &Path,
    tokenizer: &Tokenizer,
    max_len: usize,
    overlong: Overlong,
) -> Result<(Vec<SftExample>, SftStats)> {
    let encoder = Encoder::new(tokenizer);
    let encoded = encode_lines(path, "read the SFT data", EXAMPLE_SHAPES, |value| encoder.encode(value))?;
    let mut examples = Vec::with_capacity(encoded.len());
    let mut stats = SftStats::default();
    for (line, example) in encoded {
        let mut example = example.map_err(|detail| bad_line(path, line, detail))?;
        example.line = line;
        if let Some(example) = fit(example, max_len, overlong, &mut stats).map_err(|d| bad_line(path, line, d))? {
            examples.push(example);
        }
    }
    if examples.is_empty() {
        return Err(all_dropped(path, stats.dropped, max_len));
    }
    Ok((examples, stats))
}

pub(crate) fn bad_line(path: &Path, line: usize, detail: String) -> Error {
    Error::BadJsonLine { path: path.to_path_buf(), line, detail }
}

pub(crate) fn all_dropped(path: &Path, dropped: usize, max_len: usize) -> Error {
    Error::BadCorpusFile {
        path: path.to_path_buf(),
        detail: format!("all {dropped} examples were dropped as longer than max_len {max_len} tokens; raise max_len"),
    }
}

/// Each non-blank line of the JSONL file `path` parsed and passed to `encode`, in parallel, in
/// file order: (1-based line, result). `what` names the reading in errors ("read the SFT
/// data"); `shapes` says what a line should look like.
pub(crate) fn encode_lines<T: Send>(
    path: &Path,
    what: &'static str,
    shapes: &str,
    encode: impl Fn(&Value) -> std::result::Result<T, String> + Sync,
) -> Result<Vec<(usize, std::result::Result<T, String>)>> {
    let text = std::fs::read_to_string(path).map_err(Error::io(what, path))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return Err(Error::BadCorpusFile {
            path: path.to_path_buf(),
            detail: format!("holds no examples; write one JSON object per line, {shapes}"),
        });
    }
    // `collect` keeps file order, so the result does not depend on threads.
    Ok(lines
        .par_iter()
        .map(|&(line, text)| {
            let value: std::result::Result<Value, String> = serde_json::from_str(text)
                .map_err(|e| format!("not JSON ({e}); each line must be one JSON object, {shapes}"));
            (line, value.and_then(|v| encode(&v)))
        })
        .collect())
}

/// Apply `max_len` to one example: Some (kept, maybe cut) or None (dropped), counted in `stats`;
/// an error message when `overlong` refuses it.
pub(crate) fn fit(
    mut example: SftExample,
    max_len: usize,
    overlong: Overlong,
    stats: &mut SftStats,
) -> std::result::Result<Option<SftExample>, String> {
    if max_len == 0 {
        return Err("max_len must be at least 1 token".into());
    }
    if example.ids.len() > max_len {
        match overlong {
            Overlong::Error => {
                return Err(format!(
                    "the example is {} tokens long, more than max_len {max_len}; raise max_len, or set overlong \
                     to \"truncate\" or \"drop\"",
                    example.ids.len()
                ))
            }
            Overlong::Drop => {
                stats.dropped += 1;
                return Ok(None);
            }
            Overlong::Truncate => {
                example.ids.truncate(max_len);
                example.trained.truncate(max_len);
                if !example.trained.contains(&true) {
                    stats.dropped += 1;
                    return Ok(None);
                }
                stats.truncated += 1;
            }
        }
    }
    stats.examples += 1;
    stats.tokens += example.ids.len();
    stats.trained_tokens += example.trained.iter().filter(|&&t| t).count();
    Ok(Some(example))
}

/// Encode one example, in either format (a prompt/completion pair too). `line` is 0. Problems
/// are [`Error::Invalid`], without a file name; [`load`] names the file and line.
pub fn encode_conversation(tokenizer: &Tokenizer, value: &Value) -> Result<SftExample> {
    Encoder::new(tokenizer).encode(value).map_err(Error::Invalid)
}

/// Encodes examples with one tokenizer (and its template) for many lines.
pub(crate) struct ExampleEncoder<'a>(Encoder<'a>);

impl<'a> ExampleEncoder<'a> {
    pub(crate) fn new(tokenizer: &'a Tokenizer) -> Self {
        Self(Encoder::new(tokenizer))
    }

    /// One example in either format (see the module docs).
    pub(crate) fn encode(&self, value: &Value) -> std::result::Result<SftExample, String> {
        self.0.encode(value)
    }

    /// A conversation's opening `messages` (with `tools`, as SFT data shows them) rendered
    /// ready for the assistant's turn: the ids a generation starts from.
    pub(crate) fn encode_prompt(&self, messages: &Value, tools: &[Value]) -> std::result::Result<Vec<u32>, String> {
        let turns = parse_turns(messages, "prompt", false)?;
        let template = self
            .0
            .tokenizer
            .chat_template()
            .ok_or("the prompt is a list of messages but the tokenizer has no chat template; write it as text")?;
        let style = ToolStyle::of(template);
        let shown = for_template(&turns, tools, style)?;
        let messages: Vec<Message> = shown.iter().map(|(m, _)| m.clone()).collect();
        let native = (style.native_tools && !tools.is_empty()).then_some(tools);
        let prompt = template.render_prompt(&messages, native, true).map_err(|e| e.to_string())?;
        Ok(self.0.tokens(&prompt)?.iter().map(|t| t.id).collect())
    }
}

/// Pack `examples` into rows of at most `seq_len` tokens: greedy, in order, deterministic; no
/// example is split, and one longer than `seq_len` is a row of its own.
pub fn pack(examples: &[SftExample], seq_len: usize) -> Vec<Packed> {
    let mut rows = Vec::new();
    let mut row = empty_row();
    for (index, example) in examples.iter().enumerate() {
        if !row.ids.is_empty() && row.ids.len() + example.ids.len() > seq_len {
            rows.push(std::mem::replace(&mut row, empty_row()));
        }
        let segment = row.examples.len() as u32;
        row.ids.extend_from_slice(&example.ids);
        row.trained.extend_from_slice(&example.trained);
        row.positions.extend(0..example.ids.len() as u32);
        row.segments.extend(std::iter::repeat_n(segment, example.ids.len()));
        row.examples.push(index);
    }
    if !row.examples.is_empty() {
        rows.push(row);
    }
    rows
}

fn empty_row() -> Packed {
    Packed { ids: Vec::new(), trained: Vec::new(), positions: Vec::new(), segments: Vec::new(), examples: Vec::new() }
}

const EXAMPLE_SHAPES: &str =
    "either {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}, {\"role\": \"assistant\", \
                              \"content\": \"...\"}]} or {\"prompt\": \"...\", \"completion\": \"...\"}";

// ---------------------------------------------------------------------------------------------
// Reading an example

/// One example as read from its JSON, before any template is involved.
enum Example {
    Chat { turns: Vec<Turn>, tools: Vec<Value> },
    Text { prompt: String, completion: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    System,
    User,
    Assistant,
    Tool,
}

struct Turn {
    role: Role,
    content: String,
    calls: Vec<Call>,
    /// A tool message's tool name.
    name: Option<String>,
    /// False for a conversational prompt's turns: context, not targets.
    train: bool,
}

struct Call {
    name: String,
    arguments: Value,
}

fn parse_example(value: &Value) -> Result<Example, String> {
    let object = value.as_object().ok_or_else(|| format!("expected a JSON object, {EXAMPLE_SHAPES}"))?;
    if let Some(messages) = object.get("messages") {
        let turns = parse_turns(messages, "messages", true)?;
        return Ok(Example::Chat { turns, tools: parse_tools(object)? });
    }
    match (object.get("prompt"), object.get("completion")) {
        (Some(Value::String(prompt)), Some(Value::String(completion))) => {
            Ok(Example::Text { prompt: prompt.clone(), completion: completion.clone() })
        }
        (Some(prompt @ Value::Array(_)), Some(completion @ Value::Array(_))) => {
            let mut turns = parse_turns(prompt, "prompt", false)?;
            turns.extend(parse_turns(completion, "completion", true)?);
            Ok(Example::Chat { turns, tools: parse_tools(object)? })
        }
        (None, None) => Err(format!("neither \"messages\" nor \"prompt\" and \"completion\"; write {EXAMPLE_SHAPES}")),
        _ => Err("\"prompt\" and \"completion\" must both be strings (plain text) or both be lists of messages".into()),
    }
}

fn parse_tools(object: &serde_json::Map<String, Value>) -> Result<Vec<Value>, String> {
    match object.get("tools") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(tools)) => Ok(tools.clone()),
        Some(_) => Err("\"tools\" must be a list of tool schemas".into()),
    }
}

fn parse_turns(value: &Value, field: &str, train: bool) -> Result<Vec<Turn>, String> {
    let items = value.as_array().ok_or_else(|| format!("\"{field}\" must be a list of messages"))?;
    items.iter().enumerate().map(|(i, item)| parse_turn(item, &format!("{field}[{i}]"), train)).collect()
}

fn parse_turn(value: &Value, at: &str, train: bool) -> Result<Turn, String> {
    let object = value.as_object().ok_or_else(|| format!("{at} must be an object with \"role\" and \"content\""))?;
    let role = match object.get("role") {
        Some(Value::String(role)) => match role.as_str() {
            "system" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            other => {
                return Err(format!(
                    "{at} has role {}; use \"system\", \"user\", \"assistant\" or \"tool\"",
                    ingot_core::text::quoted(other)
                ))
            }
        },
        _ => return Err(format!("{at} has no \"role\" string")),
    };
    let content = match object.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("{at}.content must be a string")),
    };
    let calls = match object.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) if calls.is_empty() => Vec::new(),
        Some(Value::Array(calls)) if role == Role::Assistant => calls
            .iter()
            .enumerate()
            .map(|(k, c)| parse_call(c, &format!("{at}.tool_calls[{k}]")))
            .collect::<Result<_, _>>()?,
        Some(Value::Array(_)) => return Err(format!("{at} has tool_calls but only assistant messages make calls")),
        Some(_) => return Err(format!("{at}.tool_calls must be a list")),
    };
    let name = match object.get("name") {
        Some(Value::String(name)) => Some(name.clone()),
        _ => None,
    };
    Ok(Turn { role, content, calls, name, train })
}

/// `{"type": "function", "function": {"name", "arguments"}}`, or the inner object alone.
fn parse_call(value: &Value, at: &str) -> Result<Call, String> {
    let function = value.get("function").filter(|f| f.is_object()).unwrap_or(value);
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at} has no function name; write {{\"type\": \"function\", \"function\": {{\"name\": ..., \"arguments\": {{...}}}}}}"))?;
    let arguments = match function.get("arguments") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::String(s)) => serde_json::from_str(s)
            .map_err(|e| format!("{at}: arguments is a string but not JSON ({e}); give an object or its JSON text"))?,
        Some(v) => v.clone(),
    };
    if !arguments.is_object() {
        return Err(format!("{at}: arguments must be a JSON object (of argument names and values)"));
    }
    Ok(Call { name: name.to_string(), arguments })
}

// ---------------------------------------------------------------------------------------------
// Shown to the template

/// The messages the template renders, each with whether its content is trained.
fn for_template(turns: &[Turn], schemas: &[Value], style: ToolStyle) -> Result<Vec<(Message, bool)>, String> {
    let uses_tools = !schemas.is_empty() || turns.iter().any(|t| !t.calls.is_empty() || t.role == Role::Tool);
    let mut out = Vec::with_capacity(turns.len() + 1);
    let mut rest = turns;
    if uses_tools && !style.native_tools {
        // The tool description is the system message; the example's own one opens it.
        let extra = match turns.first() {
            Some(first) if first.role == Role::System => {
                rest = &turns[1..];
                Some(first.content.as_str())
            }
            _ => None,
        };
        out.push((Message::system(tool_format::system_prompt(extra, schemas)), false));
    }

    let offset = turns.len() - rest.len();
    let mut i = 0;
    while i < rest.len() {
        let turn = &rest[i];
        match turn.role {
            Role::System => out.push((Message::system(turn.content.clone()), false)),
            Role::User => out.push((Message::user(turn.content.clone()), false)),
            Role::Assistant => {
                let mut text = turn.content.clone();
                for call in &turn.calls {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&tool_format::call_text(&call.name, &call.arguments));
                }
                out.push((Message::assistant(text), turn.train));
            }
            Role::Tool => {
                // A run of tool messages answers the calls of the assistant turn before it, in order.
                let caller = rest[..i].iter().rev().find(|t| t.role != Role::Tool);
                let calls = caller.filter(|t| t.role == Role::Assistant).map_or(0, |t| {
                    if t.calls.is_empty() {
                        t.content.matches(CALL_OPEN).count()
                    } else {
                        t.calls.len()
                    }
                });
                let start = i;
                let mut results = Vec::new();
                while i < rest.len() && rest[i].role == Role::Tool {
                    let k = i - start;
                    if k >= calls {
                        let index = offset + i;
                        return Err(if calls == 0 {
                            format!(
                                "messages[{index}] is a tool result but no tool call precedes it; put the assistant \
                                 message with the matching \"tool_calls\" before it"
                            )
                        } else {
                            format!(
                                "messages[{index}] is tool result {} but the assistant turn before it made {calls} \
                                 call(s); each tool message answers one call",
                                k + 1
                            )
                        });
                    }
                    let name = rest[i]
                        .name
                        .clone()
                        .or_else(|| caller.and_then(|c| c.calls.get(k)).map(|c| c.name.clone()))
                        .unwrap_or_default();
                    results.push(ToolResult { name, ok: true, content: rest[i].content.clone() });
                    i += 1;
                }
                out.push((tool_format::results_message(&results, style.tool_role), false));
                continue;
            }
        }
        i += 1;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Encoding with a loss mask

/// What encoding needs, set up once per data set.
struct Encoder<'t> {
    tokenizer: &'t Tokenizer,
    /// The HF tokenizer with no post-processor: the same ids (no BOS/EOS is added either way, as
    /// `add_special_tokens` is false), but offsets as they are, where a ByteLevel post-processor
    /// would trim spaces off them.
    hf: Cow<'t, tokenizers::Tokenizer>,
    /// The special tokens' spellings and ids, longest first, as `Tokenizer::encode_prompt` looks
    /// for them in markup.
    specials: Vec<(String, u32)>,
}

/// One token and the bytes of the prompt it stands for.
struct Token {
    id: u32,
    span: Range<usize>,
    /// A special token found in markup (`<|im_end|>`): what ends a turn.
    special: bool,
}

impl<'t> Encoder<'t> {
    fn new(tokenizer: &'t Tokenizer) -> Self {
        let hf = if tokenizer.hf().get_post_processor().is_some() {
            let mut hf = tokenizer.hf().clone();
            hf.with_post_processor(None::<tokenizers::PostProcessorWrapper>);
            Cow::Owned(hf)
        } else {
            Cow::Borrowed(tokenizer.hf())
        };
        let added = tokenizer.hf().get_added_tokens_decoder();
        let mut specials: Vec<(String, u32)> = added
            .iter()
            .filter(|(_, t)| t.special && !t.content.is_empty())
            .map(|(&id, t)| (t.content.clone(), id))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Self { tokenizer, hf, specials }
    }

    fn encode(&self, value: &Value) -> Result<SftExample, String> {
        let (ids, mut trained) = match parse_example(value)? {
            Example::Text { prompt, completion } => self.encode_text(&prompt, &completion)?,
            Example::Chat { turns, tools } => self.encode_chat(&turns, &tools)?,
        };
        if let Some(first) = trained.first_mut() {
            *first = false;
        }
        Ok(SftExample { ids, trained, line: 0 })
    }

    fn encode_text(&self, prompt: &str, completion: &str) -> Result<(Vec<u32>, Vec<bool>), String> {
        let tok = self.tokenizer;
        let eos = tok.eos_id().ok_or("the tokenizer has no EOS token to end a completion with")?;
        let mut ids: Vec<u32> = if tok.add_bos() { tok.bos_id().into_iter().collect() } else { Vec::new() };
        ids.extend(tok.encode(prompt, false).map_err(|e| e.to_string())?);
        let n_prompt = ids.len();
        ids.extend(tok.encode(completion, false).map_err(|e| e.to_string())?);
        ids.push(eos);
        let trained = (0..ids.len()).map(|i| i >= n_prompt).collect();
        Ok((ids, trained))
    }

    fn encode_chat(&self, turns: &[Turn], schemas: &[Value]) -> Result<(Vec<u32>, Vec<bool>), String> {
        if !turns.iter().any(|t| t.role == Role::Assistant && t.train) {
            return Err("the conversation has no assistant turn to learn from; add a message with \
                        \"role\": \"assistant\""
                .into());
        }
        let template = self.tokenizer.chat_template().ok_or(
            "a conversation needs a chat template and this tokenizer has none; use a chat model's tokenizer, \
             or write the example as {\"prompt\": ..., \"completion\": ...}",
        )?;
        let style = ToolStyle::of(template);
        let shown = for_template(turns, schemas, style)?;
        let messages: Vec<Message> = shown.iter().map(|(m, _)| m.clone()).collect();
        let tools = (style.native_tools && !schemas.is_empty()).then_some(schemas);
        let prompt = template.render_prompt(&messages, tools, false).map_err(|e| e.to_string())?;
        let contents = content_ranges(template, &messages, tools, &prompt)?;
        let tokens = self.tokens(&prompt)?;

        let assistant: Vec<&Range<usize>> = contents.iter().filter(|(i, _)| shown[*i].1).map(|(_, r)| r).collect();
        let in_content = |span: &Range<usize>| contents.iter().any(|(_, r)| overlaps(span, r));
        let mut trained: Vec<bool> = tokens.iter().map(|t| assistant.iter().any(|r| overlaps(&t.span, r))).collect();
        for range in assistant {
            // The turn's closing markup, up to and including its first control token; none
            // before the next content (a template that writes no end-of-turn token) adds nothing.
            let first = tokens.partition_point(|t| t.span.start < range.end);
            for j in first..tokens.len() {
                if in_content(&tokens[j].span) {
                    break;
                }
                if tokens[j].special {
                    trained[first..=j].iter_mut().for_each(|t| *t = true);
                    break;
                }
            }
        }
        Ok((tokens.iter().map(|t| t.id).collect(), trained))
    }

    /// The ids of `Tokenizer::encode_prompt(prompt, false)`, found the same way (special tokens
    /// in markup only, the text between them encoded alone), with the bytes each stands for.
    fn tokens(&self, prompt: &Prompt) -> Result<Vec<Token>, String> {
        let text = prompt.as_str();
        let mut tokens = Vec::with_capacity(text.len() / 3 + 2);
        let mut piece_start = 0;
        for range in prompt.markup_ranges() {
            let mut at = range.start;
            while at < range.end {
                let markup = &text[at..range.end];
                match self.specials.iter().find(|(spelling, _)| markup.starts_with(spelling.as_str())) {
                    Some((spelling, id)) => {
                        self.text_tokens(text, piece_start..at, &mut tokens)?;
                        tokens.push(Token { id: *id, span: at..at + spelling.len(), special: true });
                        at += spelling.len();
                        piece_start = at;
                    }
                    None => at += markup.chars().next().map_or(1, char::len_utf8),
                }
            }
        }
        self.text_tokens(text, piece_start..text.len(), &mut tokens)?;
        Ok(tokens)
    }

    fn text_tokens(&self, text: &str, range: Range<usize>, tokens: &mut Vec<Token>) -> Result<(), String> {
        if range.is_empty() {
            return Ok(());
        }
        let encoding = self
            .hf
            .encode(&text[range.clone()], false)
            .map_err(|e| format!("encoding {} bytes of text: {e}", range.len()))?;
        for (&id, &(start, end)) in encoding.get_ids().iter().zip(encoding.get_offsets()) {
            tokens.push(Token { id, span: range.start + start..range.start + end, special: false });
        }
        Ok(())
    }
}

/// Whether two byte ranges share a byte.
fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

// ---------------------------------------------------------------------------------------------
// Whose content is where

/// The byte range of `prompt` that holds each message's content, as (message index, range), in
/// text order. The skeleton (the conversation rendered with numbered placeholders) gives the
/// markup and the order of contents; each content then runs from the end of the markup before it
/// to the next markup range of `prompt` (contents are never markup). A template that writes a
/// content twice gives it two ranges; one that leaves a message out gives it none.
fn content_ranges(
    template: &ChatTemplate,
    messages: &[Message],
    tools: Option<&[Value]>,
    prompt: &Prompt,
) -> Result<Vec<(usize, Range<usize>)>, String> {
    let pieces = template.skeleton(messages, tools, false).map_err(|e| e.to_string())?;
    let unclear = || {
        "the chat template writes this conversation differently when the contents change, so its \
         markup cannot be told from the messages' text"
            .to_string()
    };

    let text = prompt.as_str();
    let markup = prompt.markup_ranges();
    let mut ranges = Vec::new();
    let mut pos = 0;
    for (k, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Markup(m) => {
                if !text[pos..].starts_with(m.as_str()) {
                    return Err(unclear());
                }
                pos += m.len();
            }
            Piece::Content(i) => {
                // The first markup range not yet passed. `pos` inside it means an empty content
                // (the markup around it merged into one range); else the content runs up to it.
                let next = markup.get(markup.partition_point(|r| r.end <= pos));
                let gap_end = next.map_or(text.len(), |r| r.start.max(pos));
                let end = match pieces.get(k + 1) {
                    // Two contents with no markup between: the first takes the form of its
                    // text that the gap starts with.
                    Some(Piece::Content(_)) => content_forms(&messages[*i].content)
                        .into_iter()
                        .find(|form| text[pos..gap_end].starts_with(form.as_str()))
                        .map_or(gap_end, |form| pos + form.len()),
                    _ => gap_end,
                };
                ranges.push((*i, pos..end));
                pos = end;
            }
        }
    }
    if pos != text.len() {
        return Err(unclear());
    }
    Ok(ranges)
}

/// The forms in which templates write a message's content (as `ChatTemplate::render_prompt`
/// accepts them), most faithful first.
fn content_forms(content: &str) -> Vec<String> {
    let mut forms = vec![content.to_string(), content.trim().to_string()];
    forms.push(content.trim_start().to_string());
    forms.push(content.trim_end().to_string());
    if let Ok(json) = serde_json::to_string(content) {
        forms.push(json[1..json.len() - 1].to_string());
    }
    forms
}
