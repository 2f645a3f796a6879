//! Chat templates: HF's Jinja `chat_template`, rendered with minijinja the way `transformers`
//! renders it (`apply_chat_template`).
//!
//! What HF's environment has and minijinja needs told: `trim_blocks` and `lstrip_blocks` on,
//! Python string/dict methods (`.strip()`, `.startswith()`, `.items()`) through
//! minijinja-contrib's pycompat, `raise_exception(msg)`, `strftime_now(fmt)`, and a `tojson` that
//! prints like Python's `json.dumps` (`{"a": 1}`, non-ASCII kept) rather than minijinja's compact,
//! HTML-safe form, so tool descriptions look the way the model saw them in training.
//! Variables: `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, `tools` (none unless
//! given).
//!
//! Which text may hold control tokens: only the template's own markup. A message's content (what a
//! user typed, a tool returned, a document said) is text even where it spells `<|im_end|>`, or a
//! tool result could forge a turn. [`ChatTemplate::render_prompt`] therefore returns a [`Prompt`]
//! that knows which bytes are markup, and `Tokenizer::encode_prompt` recognises special tokens
//! there only. The markup is found by rendering a second time with each content replaced by a
//! placeholder: what the template writes around the placeholders is its markup, and it cannot
//! depend on what the contents say.

use std::io;
use std::ops::Range;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Serde};
use minijinja::{context, Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// "system", "user", "assistant" (or "tool", where a template knows it).
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Text for a model, with the byte ranges that are markup written by the program (a chat
/// template's `<|im_start|>user\n`, ...). Only there may a special token's spelling become its
/// id; everything else, content, is encoded as ordinary text. Unmarked means untrusted, so a
/// mistake in marking can only turn a control token into text, never text into a control token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompt {
    text: String,
    /// Sorted, disjoint, non-empty, each between char boundaries of `text`.
    markup: Vec<Range<usize>>,
}

impl Prompt {
    /// All content: special-token spellings in `text` stay text.
    pub fn text_only(text: impl Into<String>) -> Self {
        Self { text: text.into(), markup: Vec::new() }
    }

    /// All markup: for text the program wrote itself, never for anything a user supplied.
    pub fn markup(text: impl Into<String>) -> Self {
        let mut prompt = Self::default();
        prompt.push_markup(&text.into());
        prompt
    }

    /// Append program-written markup.
    pub fn push_markup(&mut self, markup: &str) {
        if markup.is_empty() {
            return;
        }
        let start = self.text.len();
        self.text.push_str(markup);
        match self.markup.last_mut() {
            Some(last) if last.end == start => last.end = self.text.len(),
            _ => self.markup.push(start..self.text.len()),
        }
    }

    /// Append content (user, tool or document text).
    pub fn push_text(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Keep the first `len` bytes (rounded down to a character boundary) and the markup in them.
    pub fn truncate(&mut self, len: usize) {
        let mut len = len.min(self.text.len());
        while !self.text.is_char_boundary(len) {
            len -= 1;
        }
        self.text.truncate(len);
        self.markup.retain_mut(|range| {
            range.end = range.end.min(len);
            range.start < range.end
        });
    }

    /// The whole text, markup and content together.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn into_string(self) -> String {
        self.text
    }

    /// The byte ranges of [`Prompt::as_str`] that are markup.
    pub fn markup_ranges(&self) -> &[Range<usize>] {
        &self.markup
    }
}

impl std::fmt::Display for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A compiled-once-to-check Jinja chat template with the special tokens it may refer to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Check that `source` compiles. `bos_token` / `eos_token` are the token texts the template
    /// sees as variables (empty when the model has none).
    pub fn new(source: impl Into<String>, bos_token: impl Into<String>, eos_token: impl Into<String>) -> Result<Self> {
        let template = Self { source: source.into(), bos_token: bos_token.into(), eos_token: eos_token.into() };
        environment()?.template_from_str(&template.source).map_err(template_error)?;
        Ok(template)
    }

    /// The Jinja source, as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The prompt text for `messages`; with `add_generation_prompt`, ending with the header of
    /// an assistant turn so that the model's continuation is its reply.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// As [`ChatTemplate::render`], with tool descriptions (JSON schemas) for templates that
    /// support tool calling.
    pub fn render_with_tools(
        &self,
        messages: &[Message],
        tools: Option<&[serde_json::Value]>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        // Compiling again per render costs microseconds and spares a self-referential struct.
        let env = environment()?;
        let template = env.template_from_str(&self.source).map_err(template_error)?;
        let ctx = context! {
            messages => Value::from(Serde(messages)),
            tools => tools.map(|t| Value::from(Serde(t))),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        };
        template.render(ctx).map_err(template_error)
    }

    /// As [`ChatTemplate::render_with_tools`], knowing which text is the template's markup (see
    /// the module docs). The text is exactly what `render_with_tools` gives whenever the template
    /// writes each content as given or trimmed (every common template); one that reshapes content
    /// in other ways gets the contents as given, placed where the template puts them.
    pub fn render_prompt(
        &self,
        messages: &[Message],
        tools: Option<&[serde_json::Value]>,
        add_generation_prompt: bool,
    ) -> Result<Prompt> {
        let text = self.render_with_tools(messages, tools, add_generation_prompt)?;
        let pieces = self.skeleton(messages, tools, add_generation_prompt)?;
        Ok(align(&text, &pieces, messages).unwrap_or_else(|| fill(&pieces, messages)))
    }
}

impl ChatTemplate {
    /// The conversation rendered with each content replaced by a placeholder, cut into the
    /// template's own markup and the places where each message's content goes: which text of a
    /// render is whose (what `render_prompt` marks, and SFT's assistant masks).
    pub fn skeleton(
        &self,
        messages: &[Message],
        tools: Option<&[serde_json::Value]>,
        add_generation_prompt: bool,
    ) -> Result<Vec<Piece>> {
        let slotted: Vec<Message> =
            messages.iter().enumerate().map(|(i, m)| Message::new(m.role.clone(), slot(i))).collect();
        let skeleton = self.render_with_tools(&slotted, tools, add_generation_prompt)?;
        Ok(skeleton_pieces(&skeleton, messages.len()))
    }
}

/// Placeholder delimiters: private-use characters, which no template alters (no case, no
/// whitespace) and `tojson` keeps as they are.
const SLOT_OPEN: char = '\u{E000}';
const SLOT_CLOSE: char = '\u{E001}';

fn slot(i: usize) -> String {
    format!("{SLOT_OPEN}{i}{SLOT_CLOSE}")
}

/// A skeleton render cut into the template's markup and the places where a message's content goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text the template writes itself.
    Markup(String),
    /// Where the content of message `i` goes.
    Content(usize),
}

/// Cut `skeleton` at its placeholders; anything that only looks like one stays markup.
fn skeleton_pieces(skeleton: &str, n_messages: usize) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut markup = String::new();
    let mut rest = skeleton;
    while let Some(open) = rest.find(SLOT_OPEN) {
        let after = &rest[open + SLOT_OPEN.len_utf8()..];
        let index = after
            .find(SLOT_CLOSE)
            .and_then(|close| after[..close].parse::<usize>().ok().map(|i| (i, close)))
            .filter(|&(i, _)| i < n_messages);
        match index {
            Some((i, close)) => {
                markup.push_str(&rest[..open]);
                if !markup.is_empty() {
                    pieces.push(Piece::Markup(std::mem::take(&mut markup)));
                }
                pieces.push(Piece::Content(i));
                rest = &after[close + SLOT_CLOSE.len_utf8()..];
            }
            None => {
                markup.push_str(&rest[..open + SLOT_OPEN.len_utf8()]);
                rest = after;
            }
        }
    }
    markup.push_str(rest);
    if !markup.is_empty() {
        pieces.push(Piece::Markup(markup));
    }
    pieces
}

/// Match the real render against the skeleton: each markup piece must appear verbatim, and each
/// content as given, trimmed, or JSON-escaped (a template's `tojson`). None when they disagree.
fn align(text: &str, pieces: &[Piece], messages: &[Message]) -> Option<Prompt> {
    let mut prompt = Prompt::default();
    let mut rest = text;
    for (k, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Markup(markup) => {
                rest = rest.strip_prefix(markup.as_str())?;
                prompt.push_markup(markup);
            }
            Piece::Content(i) => {
                let next = match pieces.get(k + 1) {
                    Some(Piece::Markup(m)) => Some(m.as_str()),
                    Some(Piece::Content(_)) => Some(""),
                    None => None,
                };
                let fits = |candidate: &str| match rest.strip_prefix(candidate) {
                    Some(after) => next.map_or(after.is_empty(), |next| after.starts_with(next)),
                    None => false,
                };
                let found = content_forms(&messages[*i].content).into_iter().find(|c| fits(c))?;
                prompt.push_text(&found);
                rest = &rest[found.len()..];
            }
        }
    }
    rest.is_empty().then_some(prompt)
}

/// The forms in which templates write a message's content, most faithful first.
fn content_forms(content: &str) -> Vec<String> {
    let mut forms = vec![content.to_string(), content.trim().to_string()];
    forms.push(content.trim_start().to_string());
    forms.push(content.trim_end().to_string());
    if let Ok(json) = serde_json::to_string(content) {
        forms.push(json[1..json.len() - 1].to_string());
    }
    forms
}

/// The skeleton with each placeholder replaced by its content as given.
fn fill(pieces: &[Piece], messages: &[Message]) -> Prompt {
    let mut prompt = Prompt::default();
    for piece in pieces {
        match piece {
            Piece::Markup(markup) => prompt.push_markup(markup),
            Piece::Content(i) => prompt.push_text(&messages[*i].content),
        }
    }
    prompt
}

/// An environment configured like transformers' `ImmutableSandboxedEnvironment` for chat templates.
fn environment() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    let syntax = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().map_err(template_error)?;
    env.set_syntax(syntax);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    Ok(env)
}

/// The message a template passed to `raise_exception`, carried as the minijinja error's source
/// so that it can be told apart from a template bug.
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, "raise_exception called").with_source(Raised(message)))
}

fn template_error(err: minijinja::Error) -> Error {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = cause {
        if let Some(Raised(message)) = e.downcast_ref::<Raised>() {
            return Error::TemplateRaised { message: message.clone() };
        }
        cause = e.source();
    }
    Error::Template { detail: err.to_string() }
}

/// Python's `json.dumps(value, indent=indent, ensure_ascii=False)`.
fn tojson(value: &Value, indent: Option<usize>, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let indent = match indent {
        Some(n) => Some(n),
        None => kwargs.get::<Option<usize>>("indent")?,
    };
    // Accepted for compatibility; the output is always what ensure_ascii=False gives, and key
    // order is the template's own.
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;

    let mut out = Vec::new();
    let result = match indent {
        None => value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, PythonCompact)),
        Some(n) => {
            let spaces = vec![b' '; n];
            let formatter = serde_json::ser::PrettyFormatter::with_indent(&spaces);
            value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, formatter))
        }
    };
    result.map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    String::from_utf8(out).map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))
}

/// `value` as Python's `json.dumps(value, ensure_ascii=False)` prints it: `", "` between items,
/// `": "` after keys, keys in the order given.
pub(crate) fn python_json(value: &serde_json::Value) -> String {
    let mut out = Vec::new();
    // Serializing a Value into a Vec cannot fail, and the bytes are UTF-8 (serde_json writes
    // strings as given, escaping only what JSON requires).
    if value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, PythonCompact)).is_err() {
        return value.to_string();
    }
    String::from_utf8(out).unwrap_or_else(|_| value.to_string())
}

/// serde_json output with Python's default separators: `", "` between items, `": "` after keys.
struct PythonCompact;

impl serde_json::ser::Formatter for PythonCompact {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }
}

/// Python's `datetime.now().strftime(format)`, in UTC (HF uses local time; a server's local zone
/// is rarely what the user means either). Supports %Y %y %m %d %e %B %b %A %a %H %I %M %S %p %j %%;
/// other directives are copied through.
fn strftime_now(format: &str) -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    strftime(format, secs)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Format a Unix time (UTC) with a subset of C `strftime`.
pub(crate) fn strftime(format: &str, unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs_of_day = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday (index 3)
    let day_of_year = days - days_from_civil(year, 1, 1) + 1;
    let month_name = MONTHS[(month - 1) as usize];

    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out += &year.to_string(),
            Some('y') => out += &format!("{:02}", year.rem_euclid(100)),
            Some('m') => out += &format!("{month:02}"),
            Some('d') => out += &format!("{day:02}"),
            Some('e') => out += &format!("{day:>2}"),
            Some('B') => out += month_name,
            Some('b') => out += &month_name[..3],
            Some('A') => out += WEEKDAYS[weekday],
            Some('a') => out += &WEEKDAYS[weekday][..3],
            Some('H') => out += &format!("{hour:02}"),
            Some('I') => out += &format!("{:02}", (hour + 11) % 12 + 1),
            Some('M') => out += &format!("{minute:02}"),
            Some('S') => out += &format!("{second:02}"),
            Some('p') => out += if hour < 12 { "AM" } else { "PM" },
            Some('j') => out += &format!("{day_of_year:03}"),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_known_dates() {
        // 2024-07-23 14:05:09 UTC was a Tuesday, day 205 of a leap year.
        let t = 1_721_743_509;
        assert_eq!(strftime("%d %b %Y", t), "23 Jul 2024");
        assert_eq!(strftime("%A %B %e, %y %H:%M:%S %I%p %j %%", t), "Tuesday July 23, 24 14:05:09 02PM 205 %");
        assert_eq!(strftime("%Y-%m-%d %a", 0), "1970-01-01 Thu");
        assert_eq!(strftime("%Y-%m-%d", 951_782_400), "2000-02-29");
    }
}
