//! The interface every callable tool implements, and the one error type tools return.
//!
//! A tool is described to the model by a name, a one-paragraph description and a JSON schema of its
//! arguments object (the shape OpenAI-style `tools` arrays expect); the tool-calling loop hands the
//! model's parsed arguments to [`Tool::call`] and feeds the returned text back to the model. Errors are
//! text too in the end, so every message says what was wrong and what the model should send instead.

use serde_json::Value;

/// Something a language model can call: a name, a description, an argument schema and the call itself.
pub trait Tool: Send + Sync {
    /// Short identifier the model uses to call the tool, e.g. `"calculator"`.
    fn name(&self) -> &str;
    /// What the tool does and when to use it, written for the model.
    fn description(&self) -> &str;
    /// JSON schema of the arguments object (`{"type": "object", "properties": ..., "required": ...}`).
    fn parameters(&self) -> Value;
    /// Runs the tool on the model's arguments and returns the text to show the model.
    fn call(&self, args: &Value) -> Result<String, ToolError>;
}

/// Why a tool call did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The arguments were not a JSON object at all.
    #[error("tool `{tool}`: arguments must be a JSON object, got {found}")]
    ArgumentsNotObject { tool: String, found: &'static str },
    /// A required field is absent.
    #[error("tool `{tool}`: missing required argument `{field}`")]
    MissingArgument { tool: String, field: String },
    /// A field is present but of the wrong JSON type.
    #[error("tool `{tool}`: argument `{field}` must be {expected}, got {found}")]
    WrongArgumentType { tool: String, field: String, expected: &'static str, found: &'static str },
    /// An argument the tool does not take (a typo, or a parameter of another tool).
    #[error("tool `{tool}`: unknown argument `{field}`; the arguments it takes: {known}")]
    UnknownArgument { tool: String, field: String, known: String },
    /// The arguments were well-formed but the tool could not do the work.
    #[error("tool `{tool}` failed: {source}")]
    Failed {
        tool: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Name of a JSON value's type, for error messages.
pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads the required string field `field` from `args`, with errors that name the tool and the field.
pub fn required_str<'a>(tool: &str, args: &'a Value, field: &str) -> Result<&'a str, ToolError> {
    let obj = args
        .as_object()
        .ok_or_else(|| ToolError::ArgumentsNotObject { tool: tool.to_string(), found: json_type_name(args) })?;
    let value = obj
        .get(field)
        .ok_or_else(|| ToolError::MissingArgument { tool: tool.to_string(), field: field.to_string() })?;
    value.as_str().ok_or_else(|| ToolError::WrongArgumentType {
        tool: tool.to_string(),
        field: field.to_string(),
        expected: "a string",
        found: json_type_name(value),
    })
}
