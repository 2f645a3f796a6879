//! User-defined command tools: a tool described in a TOML or JSON file that runs a program.
//!
//! A tool file (`.toml` or `.json`, chosen by the extension) holds one or more `tool` entries:
//!
//! ```toml
//! [[tool]]
//! name = "word_count"                   # letters, digits, `_`, `-`; at most 64 characters
//! description = "Count the words in a text"
//! command = ["wc", "-w"]                # the program, then its fixed arguments
//! stdin = "text"                        # optional: the parameter piped to the program's stdin
//! timeout_secs = 5                      # optional, default 10, at most 600
//! max_output_bytes = 4096               # optional, default 16 KiB, at most 1 MiB
//! [tool.parameters.text]
//! type = "string"                       # string | integer | number | boolean
//! description = "the text"              # optional, shown to the model
//! required = true                       # optional, default true
//! ```
//!
//! The JSON form is the same tree: `{"tool": [{"name": ..., "command": [...], "parameters": {...}}]}`.
//!
//! Arguments reach the program in two ways. A `{name}` placeholder in an element of `command` is
//! replaced by the argument's text, inside that one element (`"--lang={lang}"` works); the result is
//! always exactly one argv element, whatever spaces, quotes, `;` or `$(...)` it holds. `{{` and `}}`
//! are literal braces. An element that mentions an optional parameter the model left out is dropped
//! whole, so `["grep", "--max-count={n}", ...]` loses the flag rather than passing `--max-count=`.
//! The parameter named by `stdin` is written to the program's standard input.
//!
//! Safety rules, and why:
//! - **No shell, ever.** The program is started with [`std::process::Command`] and an argv list;
//!   model text is never parsed as shell syntax, so it cannot chain, redirect or substitute commands.
//!   The model cannot choose the program either: placeholders are refused in the first element. It
//!   *can* choose where an argument starts with `-`, so a tool whose program treats such arguments as
//!   options should put them after `--` (`["cat", "--", "{file}"]`).
//! - **Arguments are checked** against the declared parameters before anything runs: unknown names,
//!   missing required ones and wrong JSON types are errors the model sees.
//! - **A timeout** kills the program (`timeout_secs`); the model gets an error saying so. Only the
//!   program itself is killed: processes it started in the background are its own business.
//! - **An output cap** (`max_output_bytes`, for stdout and stderr each) is enforced while reading, so a
//!   program like `yes` costs at most the cap in memory: once the cap is passed the program is
//!   killed and the first bytes are returned with a note saying the output was cut.
//! - stdin is `/dev/null` unless `stdin` is set, so a program never reads the user's terminal (or the
//!   turns piped into `ingot chat`).
//!
//! Programs: a bare name (`wc`) is looked up on `PATH`; a path with a `/` that is relative
//! (`./scripts/lookup.sh`) is taken relative to the tool file's folder, so a tool file can sit beside
//! its scripts. Either must exist when the file is loaded. The program runs in the current folder
//! with the current environment.
//!
//! Files are checked whole at load (unknown keys, empty commands, bad names and types, placeholders
//! naming undeclared parameters, parameters nothing uses, names used twice or taken by a built-in
//! tool), and every error names the file and the tool: [`ToolFileError`].

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::tool::{json_type_name, Tool, ToolError};

/// Timeout when a tool gives none: enough for a lookup or a small script, short enough that a hung
/// program does not stall a conversation for long.
pub const DEFAULT_TIMEOUT_SECS: f64 = 10.0;
/// Longest timeout accepted: a tool call blocks the conversation, and ten minutes is past any
/// interactive use (it also keeps `Duration::from_secs_f64` far from its overflow panic).
pub const MAX_TIMEOUT_SECS: f64 = 600.0;
/// Output cap when a tool gives none: about 4,000 tokens, already a large share of a small model's context.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 16 * 1024;
/// Largest output cap accepted: the output goes into a prompt, and no context holds a megabyte.
pub const MAX_OUTPUT_BYTES: u64 = 1024 * 1024;
/// Longest tool or parameter name; OpenAI-style function names allow 64 characters.
const MAX_NAME_CHARS: usize = 64;
/// How often the running program is checked for exit, timeout and overflow (std has no wait-with-timeout).
const POLL: Duration = Duration::from_millis(5);
/// After the program exits, how long its output pipes may take to reach end-of-file even when the
/// deadline has passed; normally they close at once.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Why a tool file could not be loaded. Every message names the file, and the tool when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ToolFileError {
    #[error("cannot read tool file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tool file {path} must end in .toml or .json (that is how its format is chosen)")]
    Extension { path: PathBuf },
    #[error("tool file {path} is not valid {format}: {reason}")]
    Syntax { path: PathBuf, format: &'static str, reason: String },
    #[error("tool file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("tool file {path}, tool `{tool}`: {reason}")]
    Tool { path: PathBuf, tool: String, reason: String },
    #[error("tool `{name}` is defined in both {first} and {second}; tool names must be unique")]
    Duplicate { name: String, first: PathBuf, second: PathBuf },
}

/// Why running a command tool failed (after its arguments were accepted).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` did not finish within {secs} s and was killed; try a smaller or simpler request")]
    TimedOut { program: String, secs: f64 },
    #[error("`{program}` failed ({status}): {output}")]
    Exit { program: String, status: String, output: String },
    #[error("lost track of `{program}` while waiting for it: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// The JSON type a parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
}

impl ParamType {
    fn schema_name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
        }
    }

    /// The argument's text as the program sees it, or `None` if `v` is not of this type.
    fn text_of(self, v: &Value) -> Option<String> {
        match (self, v) {
            (ParamType::String, Value::String(s)) => Some(s.clone()),
            (ParamType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            (ParamType::Number, Value::Number(n)) => Some(n.to_string()),
            (ParamType::Boolean, Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            ParamType::String => "a string",
            ParamType::Integer => "an integer",
            ParamType::Number => "a number",
            ParamType::Boolean => "true or false",
        }
    }
}

/// One declared parameter.
#[derive(Debug, Clone)]
struct Param {
    ty: ParamType,
    description: String,
    required: bool,
}

/// A piece of a `command` element: literal text or a `{name}` placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Param(String),
}

/// A tool loaded from a tool file: a program, the argv template and the parameters that fill it.
#[derive(Debug, Clone)]
pub struct CommandTool {
    name: String,
    description: String,
    /// As written for a bare name (looked up on PATH at spawn), or resolved against the file's folder.
    program: PathBuf,
    /// The elements after the program, each a template that becomes one argv element.
    args: Vec<Vec<Piece>>,
    stdin: Option<String>,
    timeout: Duration,
    max_output_bytes: usize,
    params: BTreeMap<String, Param>,
    file: PathBuf,
}

/// One `tool` entry as written, before it is checked.
struct ToolSpec {
    name: String,
    description: String,
    command: Vec<String>,
    stdin: Option<String>,
    timeout_secs: Option<f64>,
    max_output_bytes: Option<u64>,
    /// Kept raw so that each parameter is read on its own and its errors can name it.
    parameters: BTreeMap<String, Value>,
}

const TOOL_KEYS: &[&str] =
    &["name", "description", "command", "stdin", "timeout_secs", "max_output_bytes", "parameters"];
const PARAM_KEYS: &[&str] = &["type", "description", "required"];

impl ToolSpec {
    fn read(entry: Value) -> Result<Self, String> {
        let mut f = Fields::new(entry, TOOL_KEYS, "a tool")?;
        Ok(Self {
            name: f.required("name")?,
            description: f.required("description")?,
            command: f.required("command")?,
            stdin: f.optional("stdin")?,
            timeout_secs: f.optional("timeout_secs")?,
            max_output_bytes: f.optional("max_output_bytes")?,
            parameters: f.optional("parameters")?.unwrap_or_default(),
        })
    }
}

/// A table read key by key, so that a type error names its key (serde reports only the types),
/// and an unknown key is an error rather than silently ignored (a typo such as `timout_secs`
/// would otherwise leave the default in force).
struct Fields(Map<String, Value>);

impl Fields {
    fn new(v: Value, keys: &[&str], what: &str) -> Result<Self, String> {
        let Value::Object(map) = v else { return Err(format!("{what} must be a table, got {}", json_type_name(&v))) };
        if let Some(k) = map.keys().find(|k| !keys.contains(&k.as_str())) {
            let expected: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
            return Err(format!("unknown field `{k}`, expected one of {}", expected.join(", ")));
        }
        Ok(Self(map))
    }

    fn optional<T: serde::de::DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, String> {
        match self.0.remove(key) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| format!("`{key}`: {}", ingot_core::text::error_text(&e))),
        }
    }

    fn required<T: serde::de::DeserializeOwned>(&mut self, key: &str) -> Result<T, String> {
        self.optional(key)?.ok_or_else(|| format!("missing field `{key}`"))
    }
}

/// Loads every tool in one tool file (`.toml` or `.json`), checking it whole.
pub fn load_tool_file(path: &Path) -> Result<Vec<CommandTool>, ToolFileError> {
    let format = match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("toml") => "TOML",
        Some("json") => "JSON",
        _ => return Err(ToolFileError::Extension { path: path.to_path_buf() }),
    };
    let text =
        std::fs::read_to_string(path).map_err(|source| ToolFileError::Read { path: path.to_path_buf(), source })?;
    let syntax = |reason: String| ToolFileError::Syntax { path: path.to_path_buf(), format, reason };
    // Both formats become one JSON tree, so there is a single path from here on.
    let tree: Value = if format == "TOML" {
        toml::from_str(&text).map_err(|e| syntax(toml_error(&text, &e)))?
    } else {
        serde_json::from_str(&text).map_err(|e| syntax(ingot_core::text::error_text(&e)))?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    parse_tools(tree, path, base)
}

/// Loads several tool files, and checks that no tool name appears in two of them.
pub fn load_tool_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<CommandTool>, ToolFileError> {
    let mut tools: Vec<CommandTool> = Vec::new();
    for path in paths {
        for tool in load_tool_file(path.as_ref())? {
            if let Some(first) = tools.iter().find(|t| t.name == tool.name) {
                return Err(ToolFileError::Duplicate {
                    name: tool.name,
                    first: first.file.clone(),
                    second: tool.file.clone(),
                });
            }
            tools.push(tool);
        }
    }
    Ok(tools)
}

/// A TOML error as one line with its position (the crate's own message spans several lines with a
/// source excerpt, which does not survive being printed as one `error:` line).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message().trim())
        }
        None => e.message().trim().to_string(),
    }
}

fn parse_tools(tree: Value, path: &Path, base: &Path) -> Result<Vec<CommandTool>, ToolFileError> {
    let file_error = |reason: String| ToolFileError::File { path: path.to_path_buf(), reason };
    let Value::Object(mut top) = tree else {
        return Err(file_error("the top level must be a table with `tool` entries".into()));
    };
    let entries = match top.remove("tool") {
        Some(Value::Array(entries)) => entries,
        Some(other) => {
            return Err(file_error(format!(
                "`tool` must be a list of tools (`[[tool]]` in TOML), got {}",
                json_type_name(&other)
            )))
        }
        None => Vec::new(),
    };
    if let Some(key) = top.keys().next() {
        return Err(file_error(format!("unknown top-level key `{key}`; a tool file holds only `tool` entries")));
    }
    if entries.is_empty() {
        return Err(file_error("defines no tools; add a `[[tool]]` entry (`{\"tool\": [...]}` in JSON)".into()));
    }
    let mut tools: Vec<CommandTool> = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        // Name the tool in errors by its name if it has one, else by its position.
        let label = match entry.get("name") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            _ => format!("#{}", i + 1),
        };
        let tool_error = |reason: String| ToolFileError::Tool { path: path.to_path_buf(), tool: label.clone(), reason };
        let spec = ToolSpec::read(entry).map_err(&tool_error)?;
        if tools.iter().any(|t| t.name == spec.name) {
            return Err(tool_error("is defined twice in this file; tool names must be unique".into()));
        }
        tools.push(CommandTool::from_spec(spec, path, base).map_err(tool_error)?);
    }
    Ok(tools)
}

impl CommandTool {
    /// Checks one tool's spec and resolves it; the error is the reason alone (the caller adds file and tool).
    fn from_spec(spec: ToolSpec, file: &Path, base: &Path) -> Result<Self, String> {
        check_name(&spec.name, "tool name")?;
        if crate::BUILTIN_TOOLS.contains(&spec.name.as_str()) {
            return Err(format!("`{}` is the name of a built-in tool; choose another name", spec.name));
        }
        if spec.description.trim().is_empty() {
            return Err("`description` is empty; say what the tool does, for the model to read".into());
        }

        let mut params = BTreeMap::new();
        for (name, raw) in spec.parameters {
            check_name(&name, "parameter name")?;
            let in_param = |e: String| format!("parameter `{name}`: {e}");
            let mut f = Fields::new(raw, PARAM_KEYS, "a parameter").map_err(in_param)?;
            let param = Param {
                ty: f.required("type").map_err(in_param)?,
                description: f.optional("description").map_err(in_param)?.unwrap_or_default(),
                required: f.optional("required").map_err(in_param)?.unwrap_or(true),
            };
            params.insert(name, param);
        }

        let Some((program, rest)) = spec.command.split_first() else {
            return Err("`command` is empty; give the program and its fixed arguments, e.g. [\"wc\", \"-w\"]".into());
        };
        let program = match parse_template(program)?.as_slice() {
            [] => return Err("the program (first element of `command`) is empty".into()),
            [Piece::Text(p)] => resolve_program(p, base)?,
            _ => {
                return Err("the program (first element of `command`) cannot hold a placeholder: \
                            the model must not choose which program runs"
                    .into())
            }
        };
        let args = rest.iter().map(|a| parse_template(a)).collect::<Result<Vec<_>, _>>()?;

        let mut used: Vec<&str> = Vec::new();
        for piece in args.iter().flatten() {
            if let Piece::Param(name) = piece {
                if !params.contains_key(name) {
                    return Err(format!(
                        "placeholder `{{{name}}}` in `command` names no declared parameter; {}",
                        declared(&params)
                    ));
                }
                used.push(name);
            }
        }
        if let Some(name) = &spec.stdin {
            if !params.contains_key(name) {
                return Err(format!("`stdin = \"{name}\"` names no declared parameter; {}", declared(&params)));
            }
            used.push(name);
        }
        // An unused parameter would be accepted from the model and silently ignored.
        if let Some(unused) = params.keys().find(|p| !used.contains(&p.as_str())) {
            return Err(format!(
                "parameter `{unused}` is used neither in `command` (as `{{{unused}}}`) nor as `stdin`"
            ));
        }

        let secs = spec.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
        // Negated so that NaN (`timeout_secs = nan` is valid TOML) fails too.
        if !(secs > 0.0 && secs <= MAX_TIMEOUT_SECS) {
            return Err(format!("`timeout_secs` is {secs}; it must be more than 0 and at most {MAX_TIMEOUT_SECS}"));
        }
        let max_output = spec.max_output_bytes.unwrap_or(DEFAULT_MAX_OUTPUT_BYTES);
        if !(1..=MAX_OUTPUT_BYTES).contains(&max_output) {
            return Err(format!("`max_output_bytes` is {max_output}; it must be 1 to {MAX_OUTPUT_BYTES}"));
        }

        Ok(Self {
            name: spec.name,
            description: spec.description,
            program,
            args,
            stdin: spec.stdin,
            timeout: Duration::from_secs_f64(secs),
            max_output_bytes: max_output as usize,
            params,
            file: file.to_path_buf(),
        })
    }

    /// The tool file this tool came from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// How long one call may run before the program is killed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks the model's arguments against the declared parameters; returns each given one's text.
    fn check_args(&self, args: &Value) -> Result<HashMap<String, String>, ToolError> {
        let tool = || self.name.clone();
        let obj = args
            .as_object()
            .ok_or_else(|| ToolError::ArgumentsNotObject { tool: tool(), found: json_type_name(args) })?;
        if let Some(unknown) = obj.keys().find(|k| !self.params.contains_key(*k)) {
            let known: Vec<&str> = self.params.keys().map(String::as_str).collect();
            return Err(ToolError::UnknownArgument {
                tool: tool(),
                field: unknown.clone(),
                known: if known.is_empty() { "none".into() } else { known.join(", ") },
            });
        }
        let mut values = HashMap::new();
        for (name, param) in &self.params {
            // Models often send `null` for an argument they mean to leave out.
            let Some(v) = obj.get(name).filter(|v| !v.is_null()) else {
                if param.required {
                    return Err(ToolError::MissingArgument { tool: tool(), field: name.clone() });
                }
                continue;
            };
            let wrong =
                |expected, found| ToolError::WrongArgumentType { tool: tool(), field: name.clone(), expected, found };
            let text = param.ty.text_of(v).ok_or_else(|| wrong(param.ty.expected(), json_type_name(v)))?;
            // The OS cannot pass a NUL byte inside an argv element (stdin can carry one).
            if text.contains('\0') && self.stdin.as_deref() != Some(name.as_str()) {
                return Err(wrong("text without NUL characters", "a string containing NUL"));
            }
            values.insert(name.clone(), text);
        }
        Ok(values)
    }

    /// The argv after the program: each template filled in, elements naming an absent optional
    /// parameter dropped.
    fn argv(&self, values: &HashMap<String, String>) -> Vec<String> {
        self.args
            .iter()
            .filter_map(|pieces| {
                let mut element = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => element.push_str(t),
                        Piece::Param(p) => element.push_str(values.get(p)?),
                    }
                }
                Some(element)
            })
            .collect()
    }

    /// Runs the program with `argv` and `input` on stdin, under the timeout and output cap.
    fn run(&self, argv: &[String], input: Option<String>) -> Result<String, RunError> {
        let program = self.program.display().to_string();
        let mut child = Command::new(&self.program)
            .args(argv)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RunError::Spawn { program: program.clone(), source })?;
        let start = Instant::now();
        let deadline = start + self.timeout;

        // Stdin is written from its own thread: a program that writes output before it has read all
        // of its input would otherwise block on a full stdout pipe while we block on a full stdin one.
        // A program that exits without reading everything makes the write fail; that is its choice.
        if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = pipe.write_all(input.as_bytes());
            });
        }
        let overflow = Arc::new(AtomicBool::new(false));
        let stdout = Capture::start(child.stdout.take(), self.max_output_bytes, &overflow);
        let stderr = Capture::start(child.stderr.take(), self.max_output_bytes, &overflow);

        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) => {}
                Err(source) => {
                    kill(&mut child);
                    return Err(RunError::Wait { program, source });
                }
            }
            // Past the cap the rest of the output would be thrown away, so stop the program now
            // instead of letting it run (`yes` never stops by itself).
            if overflow.load(Ordering::Relaxed) {
                kill(&mut child);
                break None;
            }
            if Instant::now() >= deadline {
                kill(&mut child);
                return Err(RunError::TimedOut { program, secs: self.timeout.as_secs_f64() });
            }
            std::thread::sleep(POLL);
        };

        // The pipes reach end-of-file as soon as the program is gone, unless it left a background
        // process holding them; that one is not waited for past the deadline.
        let drain_until = deadline.max(Instant::now() + DRAIN_GRACE);
        let (out, out_cut) = stdout.finish(drain_until);
        let (err, err_cut) = stderr.finish(drain_until);
        let cap = self.max_output_bytes;
        let cut_note = format!("[output cut at {cap} bytes: the command was stopped there]");

        // Cut output means we stopped the program, so its exit status says nothing about the request.
        if let Some(status) = status.filter(|s| !s.success() && !out_cut && !err_cut) {
            // The error output says what went wrong; a program that reports on stdout gets that instead.
            let output = if err.trim().is_empty() { out } else { err };
            let output =
                if output.trim().is_empty() { "(no output)".to_string() } else { output.trim_end().to_string() };
            return Err(RunError::Exit { program, status: status.to_string(), output });
        }
        let mut text = out;
        if out_cut {
            end_line(&mut text);
            text.push_str(&cut_note);
        }
        if !err.is_empty() {
            end_line(&mut text);
            text.push_str("[stderr]\n");
            text.push_str(&err);
            if err_cut {
                end_line(&mut text);
                text.push_str(&cut_note);
            }
        }
        if text.is_empty() {
            text.push_str("(the command printed nothing)");
        }
        Ok(text)
    }
}

impl Tool for CommandTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        let mut properties = Map::new();
        for (name, p) in &self.params {
            let mut prop = json!({"type": p.ty.schema_name()});
            if !p.description.is_empty() {
                prop["description"] = Value::String(p.description.clone());
            }
            properties.insert(name.clone(), prop);
        }
        let required: Vec<&str> = self.params.iter().filter(|(_, p)| p.required).map(|(n, _)| n.as_str()).collect();
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
    }

    fn call(&self, args: &Value) -> Result<String, ToolError> {
        let values = self.check_args(args)?;
        let argv = self.argv(&values);
        // An optional stdin parameter left out means empty input, not the terminal.
        let input = self.stdin.as_ref().map(|p| values.get(p).cloned().unwrap_or_default());
        self.run(&argv, input).map_err(|e| ToolError::Failed { tool: self.name.clone(), source: Box::new(e) })
    }
}

/// One output pipe read on its own thread into a buffer of at most `cap` bytes.
struct Capture {
    captured: Arc<Mutex<(Vec<u8>, bool)>>,
    /// Disconnects when the reader thread ends (end-of-file, error or cap reached).
    done: mpsc::Receiver<()>,
}

impl Capture {
    fn start(pipe: Option<impl Read + Send + 'static>, cap: usize, overflow: &Arc<AtomicBool>) -> Self {
        let captured = Arc::new(Mutex::new((Vec::new(), false)));
        let (tx, done) = mpsc::channel::<()>();
        if let Some(mut pipe) = pipe {
            let (captured, overflow) = (Arc::clone(&captured), Arc::clone(overflow));
            std::thread::spawn(move || {
                let _tx = tx; // dropped when this thread ends, which is the "done" signal
                let mut buf = [0u8; 8192];
                loop {
                    let n = match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    let Ok(mut guard) = captured.lock() else { break };
                    let (bytes, cut) = &mut *guard;
                    let room = cap - bytes.len();
                    bytes.extend_from_slice(&buf[..n.min(room)]);
                    if n > room {
                        *cut = true;
                        overflow.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        Self { captured, done }
    }

    /// Waits for the reader until `until` at most, then returns the text so far and whether it was cut.
    fn finish(self, until: Instant) -> (String, bool) {
        let _ = self.done.recv_timeout(until.saturating_duration_since(Instant::now()));
        let guard = match self.captured.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        (text_of(&guard.0), guard.1)
    }
}

/// Bytes as text: invalid UTF-8 replaced, and a character cut in half by the cap dropped.
fn text_of(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        // `error_len() == None`: the bytes end inside a character, and everything before is valid.
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn end_line(s: &mut String) {
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
}

fn kill(child: &mut Child) {
    // Both fail only if the child is already gone, which is what we want anyway.
    let _ = child.kill();
    let _ = child.wait();
}

/// Tool and parameter names: what OpenAI-style function names allow, so they survive any template.
fn check_name(name: &str, what: &str) -> Result<(), String> {
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || !ok_chars {
        return Err(format!(
            "{what} `{name}` is not allowed: use 1 to {MAX_NAME_CHARS} ASCII letters, digits, `_` or `-`"
        ));
    }
    Ok(())
}

fn declared(params: &BTreeMap<String, Param>) -> String {
    if params.is_empty() {
        "the tool declares no parameters (add them under `[tool.parameters.NAME]`)".into()
    } else {
        format!("declared: {}", params.keys().cloned().collect::<Vec<_>>().join(", "))
    }
}

/// Splits one `command` element into text and `{name}` placeholders; `{{` and `}}` are literal braces.
fn parse_template(element: &str) -> Result<Vec<Piece>, String> {
    let literal_hint = "write `{{` and `}}` for literal braces";
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = element.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(format!("`command` element `{element}` has an unclosed `{{`; {literal_hint}"))
                        }
                    }
                }
                if check_name(&name, "").is_err() {
                    return Err(format!(
                        "`command` element `{element}`: `{{{name}}}` is not a placeholder (parameter names use \
                         ASCII letters, digits, `_` and `-`); {literal_hint}"
                    ));
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Param(name));
            }
            '}' => {
                return Err(format!("`command` element `{element}` has a `}}` with no `{{` before it; {literal_hint}"))
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// A bare program name must be on PATH; a path is taken relative to the tool file's folder and must exist.
fn resolve_program(program: &str, base: &Path) -> Result<PathBuf, String> {
    let path = Path::new(program);
    if path.components().count() > 1 || path.is_absolute() {
        let resolved = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
        if !resolved.is_file() {
            return Err(format!(
                "program {} does not exist (a relative path is taken from the tool file's folder)",
                resolved.display()
            ));
        }
        return Ok(resolved);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    if !on_path {
        return Err(format!("program `{program}` was not found on PATH; install it or give its path"));
    }
    Ok(path.to_path_buf())
}
