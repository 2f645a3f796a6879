//! OpenAI's request and response shapes, and the checks that turn a client's JSON into engine
//! work or into an error in OpenAI's error shape with the right status.
//!
//! Requests are parsed from `serde_json::Value` field by field rather than derived, so that every
//! wrong type or value is named in the error (`"temperature" must be a number between 0 and 2`)
//! and unknown fields are ignored, as OpenAI's server ignores them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// An error as OpenAI returns it: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    /// Seconds a client should wait before retrying (503 when the queue is full).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn invalid(param: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or wrong API key: send `Authorization: Bearer <key>`".into(),
            kind: "authentication_error",
            param: None,
            retry_after: None,
        }
    }

    pub fn busy(retry_after: u64) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server's queue is full; retry shortly".into(),
            kind: "server_busy",
            param: None,
            retry_after: Some(retry_after),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            retry_after: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            kind: "not_found",
            param: None,
            retry_after: None,
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": Value::Null}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        response
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// What both completion endpoints ask of generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub max_tokens: Option<usize>,
    pub temperature: f64,
    pub top_p: f64,
    pub stop: Vec<String>,
    pub seed: Option<u64>,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
    pub presence_penalty: f64,
    pub frequency_penalty: f64,
}

fn number(body: &Map<String, Value>, key: &str, lo: f64, hi: f64, default: f64) -> ApiResult<f64> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite() && (lo..=hi).contains(x))
            .ok_or_else(|| ApiError::invalid(key.to_string(), format!("\"{key}\" must be a number from {lo} to {hi}"))),
    }
}

fn count(body: &Map<String, Value>, key: &str, lo: u64, hi: u64) -> ApiResult<Option<u64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().filter(|x| (lo..=hi).contains(x)).map(Some).ok_or_else(|| {
            ApiError::invalid(key.to_string(), format!("\"{key}\" must be a whole number from {lo} to {hi}"))
        }),
    }
}

fn flag(body: &Map<String, Value>, key: &str) -> ApiResult<bool> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid(key.to_string(), format!("\"{key}\" must be true or false"))),
    }
}

/// The sampling fields shared by both endpoints, checked.
pub fn sampling(body: &Map<String, Value>, max_n: usize) -> ApiResult<Sampling> {
    let max_tokens = match count(body, "max_completion_tokens", 1, 1 << 20)? {
        Some(n) => Some(n as usize),
        None => count(body, "max_tokens", 1, 1 << 20)?.map(|n| n as usize),
    };
    let stop = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.len() <= 4 => {
            items.iter().map(|s| s.as_str().map(str::to_string)).collect::<Option<Vec<_>>>().ok_or_else(|| {
                ApiError::invalid("stop".to_string(), "\"stop\" must be a string or a list of up to 4 strings")
            })?
        }
        Some(_) => {
            return Err(ApiError::invalid("stop".to_string(), "\"stop\" must be a string or a list of up to 4 strings"))
        }
    };
    let include_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => flag(o, "include_usage")?,
        Some(_) => return Err(ApiError::invalid("stream_options".to_string(), "\"stream_options\" must be an object")),
    };
    Ok(Sampling {
        max_tokens,
        temperature: number(body, "temperature", 0.0, 2.0, 1.0)?,
        top_p: number(body, "top_p", 0.0, 1.0, 1.0)?.max(f64::MIN_POSITIVE),
        stop,
        seed: match body.get("seed") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .map(|s| s as u64)
                    .ok_or_else(|| ApiError::invalid("seed".to_string(), "\"seed\" must be an integer"))?,
            ),
        },
        n: count(body, "n", 1, max_n as u64)?.unwrap_or(1) as usize,
        stream: flag(body, "stream")?,
        include_usage,
        presence_penalty: number(body, "presence_penalty", -2.0, 2.0, 0.0)?,
        frequency_penalty: number(body, "frequency_penalty", -2.0, 2.0, 0.0)?,
    })
}

/// The body as a JSON object, or a 400 saying what is wrong with it.
pub fn object(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ApiError::invalid(None, "the request body must be a JSON object")),
        Err(e) => Err(ApiError::invalid(None, format!("the request body is not valid JSON: {e}"))),
    }
}

/// One chat message as the template sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// `messages`, checked: roles system, user, assistant, tool (tool results are shown as the agent
/// shows them); content a string or a list of text parts.
pub fn messages(body: &Map<String, Value>) -> ApiResult<Vec<ChatMessage>> {
    let items = match body.get("messages") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => return Err(ApiError::invalid("messages".to_string(), "\"messages\" is empty")),
        Some(_) => return Err(ApiError::invalid("messages".to_string(), "\"messages\" must be a list of messages")),
        None => return Err(ApiError::invalid("messages".to_string(), "\"messages\" is required")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let at = format!("messages[{i}]");
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid(at.clone(), format!("{at} needs a \"role\" string")))?;
            if !matches!(role, "system" | "developer" | "user" | "assistant" | "tool") {
                return Err(ApiError::invalid(
                    at.clone(),
                    format!("{at} has role {role:?}; use system, user, assistant or tool"),
                ));
            }
            let content = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .map(|p| p.get("text").and_then(Value::as_str).map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        ApiError::invalid(at.clone(), format!("{at}: only text content parts are supported"))
                    })?
                    .join(""),
                None | Some(Value::Null) if role == "assistant" => String::new(),
                _ => return Err(ApiError::invalid(at.clone(), format!("{at} needs a \"content\" string"))),
            };
            let role = if role == "developer" { "system" } else { role };
            Ok(ChatMessage { role: role.to_string(), content })
        })
        .collect()
}

/// Usage as OpenAI counts it.
pub fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// OpenAI's finish_reason for Ingot's.
pub fn finish_reason(reason: ingot_generate::FinishReason, tool_calls: bool) -> &'static str {
    use ingot_generate::FinishReason as F;
    match reason {
        _ if tool_calls => "tool_calls",
        F::Eos | F::Stop => "stop",
        F::Length => "length",
        F::Cancelled => "stop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn sampling_fields_are_checked_and_named() {
        let s =
            sampling(&body(json!({"temperature": 0.5, "max_completion_tokens": 7, "stop": "x", "n": 2})), 4).unwrap();
        assert_eq!((s.temperature, s.max_tokens, s.stop.clone(), s.n), (0.5, Some(7), vec!["x".to_string()], 2));
        for (v, param) in [
            (json!({"temperature": "hot"}), "temperature"),
            (json!({"temperature": 3}), "temperature"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (json!({"n": 9}), "n"),
            (json!({"stop": [1]}), "stop"),
            (json!({"stream": "yes"}), "stream"),
            (json!({"seed": 1.5}), "seed"),
        ] {
            let e = sampling(&body(v.clone()), 4).unwrap_err();
            assert_eq!((e.status, e.param.as_deref()), (StatusCode::BAD_REQUEST, Some(param)), "{v}");
        }
    }

    #[test]
    fn messages_are_checked() {
        assert!(messages(&body(json!({"messages": []}))).unwrap_err().message.contains("empty"));
        assert!(messages(&body(json!({"messages": [{"role": "wizard", "content": "x"}]})))
            .unwrap_err()
            .message
            .contains("wizard"));
        let m = messages(&body(json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})))
            .unwrap();
        assert_eq!(m[0].content, "hi");
        assert!(object(b"{not json").unwrap_err().message.contains("not valid JSON"));
        assert!(object(b"[1]").unwrap_err().message.contains("JSON object"));
    }
}
