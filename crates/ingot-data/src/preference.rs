//! Preference and prompt data for alignment (reward model, DPO, PPO, GRPO), in TRL's formats.
//!
//! ```text
//! load(path, tokenizer, max_len, overlong)   .jsonl   ->  Vec<PreferencePair> {chosen, rejected, margin, line}, PreferenceStats
//! encode_pair(tokenizer, value)              one line ->  PreferencePair
//! load_prompts(path, tokenizer, max_len)     .jsonl   ->  Vec<PromptExample> {ids, line}
//! ```
//!
//! Preference pairs, one per line:
//! - explicit prompt, plain text: `{"prompt": "...", "chosen": "...", "rejected": "..."}`; each
//!   side is encoded as the SFT prompt/completion pair (prompt + answer + EOS, no template);
//! - explicit prompt, conversational: `{"prompt": [messages], "chosen": [messages], "rejected":
//!   [messages]}`, rendered with the model's chat template;
//! - implicit prompt, conversational: `{"chosen": [messages], "rejected": [messages]}`, the prompt
//!   being the messages both share from the start (TRL's `maybe_extract_prompt`);
//! - optionally `"margin": number` (how much better chosen is, for the reward model's margin term)
//!   and `"tools": [schemas]` (offered to the model in the prompt, as in SFT data); other fields
//!   (ids, categories) are ignored, as TRL ignores extra columns.
//!
//! Each side becomes an [`SftExample`] made by exactly the SFT encoder ([`crate::sft`]): its
//! `trained` mask marks the answer's tokens (and the markup that ends the turn), the tokens whose
//! log-probabilities DPO sums and whose last one the reward model scores.
//!
//! Prompt-only sets for RL: `{"prompt": "..."}` (plain text, BOS when the tokenizer adds one) or
//! `{"prompt": [messages], "tools"?: [schemas]}` (rendered as SFT data and the agent show them,
//! with the template's generation prompt, ready for the assistant's turn). Other fields (an
//! expected `answer`) are kept for reward functions.
//!
//! Every problem with a line is an [`Error::BadJsonLine`] naming the file and the 1-based line.

use std::path::Path;

use ingot_tokenizer::Tokenizer;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::sft::{all_dropped, bad_line, encode_lines, fit, ExampleEncoder, Overlong, SftExample, SftStats};

/// One encoded preference pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferencePair {
    pub chosen: SftExample,
    pub rejected: SftExample,
    /// The line's `margin`, if it had one.
    pub margin: Option<f32>,
    /// The 1-based line of the JSONL file it came from (0 when not read from a file).
    pub line: usize,
}

/// What [`load`] kept and left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PreferenceStats {
    pub pairs: usize,
    /// Tokens in the kept pairs (both sides).
    pub tokens: usize,
    /// Pairs with a side cut to `max_len`.
    pub truncated: usize,
    /// Pairs left out (a side longer than `max_len` with [`Overlong::Drop`], or with nothing
    /// trained left after [`Overlong::Truncate`]).
    pub dropped: usize,
}

/// One encoded prompt for generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptExample {
    pub ids: Vec<u32>,
    /// The line's other fields (an expected answer, an id), for reward functions to read.
    pub fields: Map<String, Value>,
    pub line: usize,
}

const PAIR_SHAPES: &str = "{\"prompt\": ..., \"chosen\": ..., \"rejected\": ...} with three strings or three lists \
                           of messages, or {\"chosen\": [messages], \"rejected\": [messages]}";
const PROMPT_SHAPES: &str = "{\"prompt\": \"...\"} or {\"prompt\": [{\"role\": \"user\", \"content\": \"...\"}]}";

/// Read and encode every pair of the JSONL file `path` (see the module docs). A pair is kept or
/// left out whole: both sides must fit `max_len` (as `overlong` decides).
pub fn load(
    path: &Path,
    tokenizer: &Tokenizer,
    max_len: usize,
    overlong: Overlong,
) -> Result<(Vec<PreferencePair>, PreferenceStats)> {
    let encoder = ExampleEncoder::new(tokenizer);
    let encoded = encode_lines(path, "read the preference data", PAIR_SHAPES, |v| encode_with(&encoder, v))?;
    let mut pairs = Vec::with_capacity(encoded.len());
    let mut stats = PreferenceStats::default();
    for (line, pair) in encoded {
        let pair = pair.map_err(|d| bad_line(path, line, d))?;
        let mut sides = SftStats::default();
        let chosen =
            fit(pair.chosen, max_len, overlong, &mut sides).map_err(|d| bad_line(path, line, side("chosen", d)))?;
        let rejected =
            fit(pair.rejected, max_len, overlong, &mut sides).map_err(|d| bad_line(path, line, side("rejected", d)))?;
        match (chosen, rejected) {
            (Some(chosen), Some(rejected)) => {
                stats.pairs += 1;
                stats.tokens += sides.tokens;
                stats.truncated += usize::from(sides.truncated > 0);
                pairs.push(PreferencePair { chosen, rejected, margin: pair.margin, line });
            }
            _ => stats.dropped += 1,
        }
    }
    if pairs.is_empty() {
        return Err(all_dropped(path, stats.dropped, max_len));
    }
    Ok((pairs, stats))
}

fn side(which: &str, detail: String) -> String {
    format!("the {which} answer: {detail}")
}

/// Encode one pair in any of the formats. `line` is 0. Problems are [`Error::Invalid`], without
/// a file name; [`load`] names the file and line.
pub fn encode_pair(tokenizer: &Tokenizer, value: &Value) -> Result<PreferencePair> {
    encode_with(&ExampleEncoder::new(tokenizer), value).map_err(Error::Invalid)
}

fn encode_with(encoder: &ExampleEncoder, value: &Value) -> std::result::Result<PreferencePair, String> {
    let (chosen, rejected, margin) = as_sft_examples(value)?;
    Ok(PreferencePair {
        chosen: encoder.encode(&chosen).map_err(|d| side("chosen", d))?,
        rejected: encoder.encode(&rejected).map_err(|d| side("rejected", d))?,
        margin,
        line: 0,
    })
}

/// A pair line as two SFT prompt/completion lines (the shared prompt, each answer) and the margin.
fn as_sft_examples(value: &Value) -> std::result::Result<(Value, Value, Option<f32>), String> {
    let object = value.as_object().ok_or_else(|| format!("expected a JSON object, {PAIR_SHAPES}"))?;
    let margin = match object.get("margin") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            Some(n.as_f64().filter(|m| m.is_finite()).ok_or("\"margin\" must be a finite number")? as f32)
        }
        Some(_) => return Err("\"margin\" must be a number".into()),
    };
    let (chosen, rejected) = match (object.get("chosen"), object.get("rejected")) {
        (Some(c), Some(r)) => (c, r),
        _ => return Err(format!("a pair needs \"chosen\" and \"rejected\"; write {PAIR_SHAPES}")),
    };
    let tools = object.get("tools").cloned().unwrap_or(Value::Null);
    let pair = |prompt: &Value, c: &Value, r: &Value| {
        let side = |answer: &Value| json!({"prompt": prompt, "completion": answer, "tools": tools});
        (side(c), side(r))
    };
    let (c, r) = match (object.get("prompt"), chosen, rejected) {
        (Some(p @ Value::String(_)), Value::String(_), Value::String(_)) => pair(p, chosen, rejected),
        (Some(p @ Value::Array(_)), Value::Array(_), Value::Array(_)) => pair(p, chosen, rejected),
        (Some(_), _, _) => {
            return Err("\"prompt\", \"chosen\" and \"rejected\" must all be strings or all be lists of messages".into())
        }
        (None, Value::Array(c), Value::Array(r)) => {
            // Implicit prompt: the messages both sides share from the start.
            let shared = c.iter().zip(r).take_while(|(a, b)| a == b).count();
            if shared == 0 {
                return Err(
                    "\"chosen\" and \"rejected\" share no opening message to use as the prompt; add \"prompt\"".into(),
                );
            }
            if shared == c.len() || shared == r.len() {
                return Err("\"chosen\" and \"rejected\" are the same conversation (or one contains the other)".into());
            }
            let prompt = Value::Array(c[..shared].to_vec());
            pair(&prompt, &Value::Array(c[shared..].to_vec()), &Value::Array(r[shared..].to_vec()))
        }
        (None, _, _) => {
            return Err(
                "without \"prompt\", \"chosen\" and \"rejected\" must be lists of messages sharing their opening turns"
                    .into(),
            )
        }
    };
    Ok((c, r, margin))
}

/// Read and encode every prompt of the JSONL file `path` (see the module docs). Prompts longer
/// than `max_len` tokens are errors naming the line: a generation needs room after its prompt.
pub fn load_prompts(path: &Path, tokenizer: &Tokenizer, max_len: usize) -> Result<Vec<PromptExample>> {
    let encoder = ExampleEncoder::new(tokenizer);
    let encoded = encode_lines(path, "read the prompts", PROMPT_SHAPES, |v| prompt_with(&encoder, tokenizer, v))?;
    let mut prompts = Vec::with_capacity(encoded.len());
    for (line, prompt) in encoded {
        let mut prompt = prompt.map_err(|d| bad_line(path, line, d))?;
        if prompt.ids.len() > max_len {
            return Err(bad_line(
                path,
                line,
                format!(
                    "the prompt is {} tokens long, more than max_len {max_len}; shorten it or raise max_len",
                    prompt.ids.len()
                ),
            ));
        }
        prompt.line = line;
        prompts.push(prompt);
    }
    Ok(prompts)
}

/// One prompt line's ids, ready for generation.
pub fn encode_prompt(tokenizer: &Tokenizer, value: &Value) -> std::result::Result<Vec<u32>, String> {
    prompt_with(&ExampleEncoder::new(tokenizer), tokenizer, value).map(|p| p.ids)
}

fn prompt_with(
    encoder: &ExampleEncoder,
    tokenizer: &Tokenizer,
    value: &Value,
) -> std::result::Result<PromptExample, String> {
    let object: &Map<String, Value> =
        value.as_object().ok_or_else(|| format!("expected a JSON object, {PROMPT_SHAPES}"))?;
    let tools = match object.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(t)) => t.clone(),
        Some(_) => return Err("\"tools\" must be a list of tool schemas".into()),
    };
    let ids = match object.get("prompt") {
        Some(Value::String(text)) if !text.is_empty() => tokenizer.encode(text, true).map_err(|e| e.to_string())?,
        Some(messages @ Value::Array(items)) if !items.is_empty() => encoder.encode_prompt(messages, &tools)?,
        Some(_) => return Err("\"prompt\" must be a non-empty string or list of messages".into()),
        None => return Err(format!("no \"prompt\"; write {PROMPT_SHAPES}")),
    };
    if ids.is_empty() {
        return Err("the prompt encodes to no tokens".into());
    }
    let fields = object
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "prompt" | "tools"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(PromptExample { ids, fields, line: 0 })
}
