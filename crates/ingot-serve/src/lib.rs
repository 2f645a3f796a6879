//! An OpenAI-compatible HTTP server over the step engine.
//!
//! Endpoints: `POST /v1/chat/completions` (messages through the model's chat template; `stream`
//! as server-sent events in OpenAI's chunk shape ending with `data: [DONE]`, with
//! `stream_options.include_usage`; `temperature`, `top_p`, `max_tokens` /
//! `max_completion_tokens`, `stop`, `seed`, `n`, `presence_penalty`, `frequency_penalty`;
//! `tools` shown as the agent shows them and `tool_calls` parsed from the reply by Ingot's
//! tool-call parser), `POST /v1/completions` (a plain prompt), `GET /v1/models`, `GET /health`,
//! `GET /metrics` (Prometheus text), `POST /tokenize` and `POST /detokenize`, and the web chat
//! page at `/`.
//!
//! Work goes to one engine thread ([`scheduler`]): requests join the running batch at the next
//! step (continuous batching), wait in a bounded queue when every row is busy (503 with
//! Retry-After when that is full), and are cancelled the moment their client goes away. Errors
//! are OpenAI's JSON error shape with the right status ([`api::ApiError`]): malformed JSON or
//! fields (400), a prompt longer than the context (400), a missing or wrong API key (401), a
//! body over the limit (413). SIGTERM (or Ctrl-C) stops accepting, finishes what runs, then exits.
//!
//! Skeleton: [`serve`] binds and runs; [`router`] is the app (tests drive it on loopback).

pub mod api;
pub mod scheduler;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, StreamExt};
use ingot_generate::{FullContext, GenerateParams, Generation, Pipeline, SamplingParams};
use ingot_tokenizer::tool_format::{self, ToolResult, ToolStyle};
use ingot_tokenizer::Message;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use api::{ApiError, ApiResult, Sampling};
use scheduler::{Job, JobEvent, JobGuard, Scheduler, SubmitError};

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub host: String,
    pub port: u16,
    /// Rows decoded together (continuous batching).
    pub parallel: usize,
    /// Requests that may wait for a row; more are refused with 503.
    pub queue: usize,
    pub api_key: Option<String>,
    /// The name `/v1/models` lists and responses carry.
    pub model_name: String,
    /// Default and largest `max_tokens` of a request.
    pub max_tokens: usize,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Cap on prompt + completion tokens (default: the model's context).
    pub ctx: Option<usize>,
    /// Positions of recent prompts kept for reuse by prompts that begin the same way
    /// ([`ingot_generate::Engine::keep_prompts`]); 0 = off.
    pub prompt_cache: usize,
}

struct AppState {
    pipeline: Arc<Pipeline>,
    scheduler: Scheduler,
    cfg: ServeConfig,
}

type Shared = Arc<AppState>;

/// The page served at `/`.
const CHAT_PAGE: &str = include_str!("web/index.html");

/// The app: routes over a scheduler for `pipeline`.
pub fn router(pipeline: Arc<Pipeline>, scheduler: Scheduler, cfg: ServeConfig) -> Router {
    let limit = cfg.body_limit;
    let state = Arc::new(AppState { pipeline, scheduler, cfg });
    Router::new()
        .route("/", get(|| async { Html(CHAT_PAGE) }))
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Bind `cfg.host:cfg.port` and serve until SIGTERM or Ctrl-C, then finish running requests.
/// `on_ready` gets the bound address (port 0 picks a free one).
pub async fn serve(pipeline: Pipeline, cfg: ServeConfig, on_ready: impl FnOnce(SocketAddr)) -> std::io::Result<()> {
    serve_until(pipeline, cfg, on_ready, shutdown_signal()).await
}

/// [`serve`], stopping when `stop` completes instead of on a signal.
pub async fn serve_until(
    pipeline: Pipeline,
    cfg: ServeConfig,
    on_ready: impl FnOnce(SocketAddr),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let pipeline = Arc::new(pipeline);
    let (scheduler, engine) = Scheduler::start(pipeline.clone(), cfg.parallel, cfg.queue, cfg.prompt_cache);
    let listener = tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port)).await?;
    on_ready(listener.local_addr()?);
    let closing = scheduler.clone();
    let app = router(pipeline, scheduler, cfg);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.await;
            closing.close();
        })
        .await?;
    let _ = tokio::task::spawn_blocking(move || engine.join()).await;
    Ok(())
}

/// [`serve`] on a runtime of its own (two threads: the model's work runs on the engine thread),
/// blocking until the server stops.
pub fn serve_blocking(pipeline: Pipeline, cfg: ServeConfig, on_ready: impl FnOnce(SocketAddr)) -> std::io::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("ingot-http").enable_all().build()?;
    runtime.block_on(serve(pipeline, cfg, on_ready))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn authorize(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(key) = &state.cfg.api_key else { return Ok(()) };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Constant-time comparison: the key's length is not a secret, its bytes are.
    let ok = given.is_some_and(|g| {
        g.len() == key.len() && g.bytes().zip(key.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

async fn metrics(State(state): State<Shared>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.scheduler.stats.prometheus())
        .into_response()
}

async fn models(State(state): State<Shared>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    authorize(&state, &headers)?;
    Ok(Json(json!({
        "object": "list",
        "data": [{"id": state.cfg.model_name, "object": "model", "created": now(), "owned_by": "ingot",
                  "context_length": state.pipeline.model.context_length()}],
    })))
}

async fn tokenize(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> ApiResult<Json<Value>> {
    authorize(&state, &headers)?;
    let body = api::object(&body)?;
    let content = body
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid("content".to_string(), "\"content\" must be a string"))?;
    let add_special = body.get("add_special").and_then(Value::as_bool).unwrap_or(false);
    let ids =
        state.pipeline.tokenizer.encode(content, add_special).map_err(|e| ApiError::invalid(None, e.to_string()))?;
    Ok(Json(json!({"tokens": ids})))
}

async fn detokenize(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> ApiResult<Json<Value>> {
    authorize(&state, &headers)?;
    let body = api::object(&body)?;
    let vocab = state.pipeline.model.vocab_size() as u64;
    let ids = body
        .get("tokens")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter().map(|t| t.as_u64().filter(|&t| t < vocab).map(|t| t as u32)).collect::<Option<Vec<u32>>>()
        })
        .ok_or_else(|| {
            ApiError::invalid("tokens".to_string(), format!("\"tokens\" must be a list of token ids below {vocab}"))
        })?;
    let text = state.pipeline.tokenizer.decode(&ids, false).map_err(|e| ApiError::invalid(None, e.to_string()))?;
    Ok(Json(json!({"content": text})))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The chat prompt's ids: messages (and tools) rendered as the tool-calling agent renders them.
fn chat_prompt(p: &Pipeline, messages: &[api::ChatMessage], tools: &[Value], raw: &[Value]) -> ApiResult<Vec<u32>> {
    let template = p.tokenizer.chat_template().ok_or_else(|| {
        ApiError::invalid("messages".to_string(), "this model has no chat template; use /v1/completions")
    })?;
    let style = ToolStyle::of(template);
    let mut shown: Vec<Message> = Vec::new();
    let mut results: Vec<ToolResult> = Vec::new();
    let flush = |shown: &mut Vec<Message>, results: &mut Vec<ToolResult>| {
        if !results.is_empty() {
            shown.push(tool_format::results_message(results, style.tool_role));
            results.clear();
        }
    };
    for (m, raw) in messages.iter().zip(raw) {
        if m.role == "tool" {
            let name = raw.get("name").and_then(Value::as_str).unwrap_or("tool").to_string();
            results.push(ToolResult { name, ok: true, content: m.content.clone() });
            continue;
        }
        flush(&mut shown, &mut results);
        let mut content = m.content.clone();
        if m.role == "assistant" {
            for call in raw.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                let f = &call["function"];
                let name = f["name"].as_str().unwrap_or_default();
                let arguments = match &f["arguments"] {
                    Value::String(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
                    other => other.clone(),
                };
                content.push_str(&tool_format::call_text(name, &arguments));
            }
        }
        shown.push(Message::new(m.role.clone(), content));
    }
    flush(&mut shown, &mut results);
    if !tools.is_empty() && !style.native_tools {
        let system = match shown.first() {
            Some(m) if m.role == "system" => Some(shown.remove(0).content),
            _ => None,
        };
        shown.insert(0, Message::system(tool_format::system_prompt(system.as_deref(), tools)));
    }
    let native = (style.native_tools && !tools.is_empty()).then_some(tools);
    let prompt = template
        .render_prompt(&shown, native, true)
        .map_err(|e| ApiError::invalid("messages".to_string(), e.to_string()))?;
    p.tokenizer.encode_prompt(&prompt, false).map_err(|e| ApiError::invalid("messages".to_string(), e.to_string()))
}

/// The engine job of a request, checked against the model's context.
fn job_params(state: &AppState, prompt: &[u32], s: &Sampling) -> ApiResult<(GenerateParams, Vec<SamplingParams>)> {
    let ctx = state.pipeline.model.context_length().min(state.cfg.ctx.unwrap_or(usize::MAX));
    if prompt.len() >= ctx {
        return Err(ApiError::invalid(
            "messages".to_string(),
            format!("the prompt is {} tokens, but the model's context is {ctx}; shorten it", prompt.len()),
        ));
    }
    let room = ctx - prompt.len();
    let max_tokens = s.max_tokens.unwrap_or(state.cfg.max_tokens).min(state.cfg.max_tokens).min(room);
    let seed = s.seed.unwrap_or_else(|| now() ^ 0x5EED);
    let samplings = (0..s.n)
        .map(|k| SamplingParams {
            temperature: s.temperature,
            top_p: s.top_p,
            presence_penalty: s.presence_penalty as f32,
            frequency_penalty: s.frequency_penalty as f32,
            seed: seed.wrapping_add(k as u64),
            ..SamplingParams::default()
        })
        .collect();
    let params = GenerateParams {
        max_tokens,
        stop: s.stop.clone(),
        full_context: FullContext::Finish,
        ..GenerateParams::default()
    };
    Ok((params, samplings))
}

fn submit(
    state: &AppState,
    prompt: Vec<u32>,
    params: GenerateParams,
    samplings: Vec<SamplingParams>,
) -> ApiResult<(JobGuard, UnboundedReceiver<JobEvent>)> {
    let (tx, rx) = unbounded_channel();
    let guard = state.scheduler.submit(Job { prompt, params, samplings, events: tx }).map_err(|e| match e {
        SubmitError::Busy => ApiError::busy(1),
        SubmitError::Closed => ApiError::busy(5),
    })?;
    Ok((guard, rx))
}

/// Every choice's generation, in order.
async fn collect(mut rx: UnboundedReceiver<JobEvent>, n: usize) -> ApiResult<Vec<Generation>> {
    let mut done: Vec<Option<Generation>> = vec![None; n];
    while let Some(event) = rx.recv().await {
        match event {
            JobEvent::Text { .. } => {}
            JobEvent::Done { choice, generation } => {
                if let Some(slot) = done.get_mut(choice) {
                    *slot = Some(generation);
                }
                if done.iter().all(Option::is_some) {
                    break;
                }
            }
            JobEvent::Failed(e) => return Err(ApiError::internal(e)),
        }
    }
    done.into_iter()
        .map(|g| g.ok_or_else(|| ApiError::internal("the engine stopped before the reply finished")))
        .collect()
}

/// Tool calls found in a reply (when tools were offered): OpenAI's `tool_calls` and the text
/// left over.
fn tool_calls(text: &str, offered: bool) -> (Option<Vec<Value>>, String) {
    if !offered {
        return (None, text.to_string());
    }
    let parsed = ingot_tools::parse_calls(text);
    let calls: Vec<Value> = parsed
        .calls
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            json!({"id": format!("call_{i}"), "type": "function",
                   "function": {"name": c.name, "arguments": c.arguments.to_string()}})
        })
        .collect();
    if calls.is_empty() {
        (None, text.to_string())
    } else {
        (Some(calls), parsed.text)
    }
}

fn tools_of(body: &Map<String, Value>) -> ApiResult<Vec<Value>> {
    match body.get("tools") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(t))
            if t.iter().all(|x| x.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).is_some()) =>
        {
            let choice = body.get("tool_choice").and_then(Value::as_str).unwrap_or("auto");
            Ok(if choice == "none" { Vec::new() } else { t.clone() })
        }
        Some(_) => Err(ApiError::invalid(
            "tools".to_string(),
            "\"tools\" must be a list of {\"type\": \"function\", \"function\": {\"name\", ...}}",
        )),
    }
}

fn refuse_unsupported(body: &Map<String, Value>) -> ApiResult<()> {
    if body.get("logprobs").and_then(Value::as_bool) == Some(true)
        || body.get("top_logprobs").is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::invalid("logprobs".to_string(), "logprobs are not supported by this server yet"));
    }
    Ok(())
}

async fn chat_completions(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    match chat_inner(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat_inner(state: Shared, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    authorize(&state, &headers)?;
    let body = api::object(&body)?;
    refuse_unsupported(&body)?;
    let messages = api::messages(&body)?;
    let raw: Vec<Value> = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let s = api::sampling(&body, state.cfg.parallel.max(1))?;
    let tools = tools_of(&body)?;
    let prompt = chat_prompt(&state.pipeline, &messages, &tools, &raw)?;
    let (params, samplings) = job_params(&state, &prompt, &s)?;
    let prompt_len = prompt.len();
    let (guard, rx) = submit(&state, prompt, params, samplings)?;
    let id = format!("chatcmpl-{}", now());
    let model = state.cfg.model_name.clone();
    if s.stream {
        return Ok(stream_response(
            rx,
            guard,
            s.n,
            id,
            model,
            prompt_len,
            s.include_usage,
            "chat.completion.chunk",
            !tools.is_empty(),
        ));
    }
    let generations = collect(rx, s.n).await?;
    drop(guard);
    let completion: usize = generations.iter().map(|g| g.tokens.len()).sum();
    let choices: Vec<Value> = generations
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (calls, text) = tool_calls(&g.text, !tools.is_empty());
            let mut message = json!({"role": "assistant", "content": if calls.is_some() && text.is_empty() { Value::Null } else { Value::String(text) }});
            if let Some(c) = &calls {
                message["tool_calls"] = json!(c);
            }
            json!({"index": i, "message": message, "logprobs": Value::Null,
                   "finish_reason": api::finish_reason(g.finish_reason, calls.is_some())})
        })
        .collect();
    Ok(Json(json!({
        "id": id, "object": "chat.completion", "created": now(), "model": model,
        "choices": choices, "usage": api::usage(prompt_len, completion),
    }))
    .into_response())
}

async fn completions(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    match completions_inner(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn completions_inner(state: Shared, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    authorize(&state, &headers)?;
    let body = api::object(&body)?;
    refuse_unsupported(&body)?;
    let text = match body.get("prompt") {
        Some(Value::String(p)) if !p.is_empty() => p.clone(),
        _ => return Err(ApiError::invalid("prompt".to_string(), "\"prompt\" must be a non-empty string")),
    };
    let s = api::sampling(&body, state.cfg.parallel.max(1))?;
    let prompt = state
        .pipeline
        .tokenizer
        .encode(&text, true)
        .map_err(|e| ApiError::invalid("prompt".to_string(), e.to_string()))?;
    if prompt.is_empty() {
        return Err(ApiError::invalid("prompt".to_string(), "the prompt encodes to no tokens"));
    }
    let (params, samplings) = job_params(&state, &prompt, &s)?;
    let prompt_len = prompt.len();
    let (guard, rx) = submit(&state, prompt, params, samplings)?;
    let id = format!("cmpl-{}", now());
    let model = state.cfg.model_name.clone();
    if s.stream {
        return Ok(stream_response(rx, guard, s.n, id, model, prompt_len, s.include_usage, "text_completion", false));
    }
    let generations = collect(rx, s.n).await?;
    drop(guard);
    let completion: usize = generations.iter().map(|g| g.tokens.len()).sum();
    let choices: Vec<Value> = generations
        .iter()
        .enumerate()
        .map(|(i, g)| json!({"index": i, "text": g.text, "logprobs": Value::Null, "finish_reason": api::finish_reason(g.finish_reason, false)}))
        .collect();
    Ok(Json(json!({
        "id": id, "object": "text_completion", "created": now(), "model": model,
        "choices": choices, "usage": api::usage(prompt_len, completion),
    }))
    .into_response())
}

/// Server-sent events in OpenAI's chunk shape; the guard lives as long as the stream, so a client
/// that disconnects cancels its rows.
#[allow(clippy::too_many_arguments)]
fn stream_response(
    rx: UnboundedReceiver<JobEvent>,
    guard: JobGuard,
    n: usize,
    id: String,
    model: String,
    prompt_len: usize,
    include_usage: bool,
    object: &'static str,
    tools: bool,
) -> Response {
    let chat = object == "chat.completion.chunk";
    let created = now();
    let chunk = move |choices: Value, usage: Option<Value>| -> SseEvent {
        let mut v = json!({"id": id, "object": object, "created": created, "model": model, "choices": choices});
        if let Some(u) = usage {
            v["usage"] = u;
        }
        SseEvent::default().data(v.to_string())
    };
    struct St {
        rx: UnboundedReceiver<JobEvent>,
        _guard: JobGuard,
        started: Vec<bool>,
        texts: Vec<String>,
        done: usize,
        completion: usize,
        finished: bool,
    }
    let st = St {
        rx,
        _guard: guard,
        started: vec![false; n],
        texts: vec![String::new(); n],
        done: 0,
        completion: 0,
        finished: false,
    };
    let events = stream::unfold((st, chunk), move |(mut st, chunk)| async move {
        if st.finished {
            return None;
        }
        let mut out: Vec<SseEvent> = Vec::new();
        match st.rx.recv().await {
            Some(JobEvent::Text { choice, text }) => {
                if chat && !st.started[choice] {
                    st.started[choice] = true;
                    out.push(chunk(json!([{"index": choice, "delta": {"role": "assistant", "content": ""}, "finish_reason": Value::Null}]), None));
                }
                st.texts[choice].push_str(&text);
                let delta = if chat { json!({"index": choice, "delta": {"content": text}, "finish_reason": Value::Null}) } else { json!({"index": choice, "text": text, "finish_reason": Value::Null}) };
                out.push(chunk(json!([delta]), None));
            }
            Some(JobEvent::Done { choice, generation }) => {
                if chat && !st.started[choice] {
                    st.started[choice] = true;
                    out.push(chunk(json!([{"index": choice, "delta": {"role": "assistant", "content": ""}, "finish_reason": Value::Null}]), None));
                }
                st.completion += generation.tokens.len();
                let (calls, _) = tool_calls(&generation.text, tools);
                let reason = api::finish_reason(generation.finish_reason, calls.is_some());
                let last = if chat {
                    let mut delta = json!({});
                    if let Some(c) = calls {
                        let indexed: Vec<Value> = c.into_iter().enumerate().map(|(k, mut v)| { v["index"] = json!(k); v }).collect();
                        delta["tool_calls"] = json!(indexed);
                    }
                    json!({"index": choice, "delta": delta, "finish_reason": reason})
                } else {
                    json!({"index": choice, "text": "", "finish_reason": reason})
                };
                out.push(chunk(json!([last]), None));
                st.done += 1;
                if st.done == n {
                    if include_usage {
                        out.push(chunk(json!([]), Some(api::usage(prompt_len, st.completion))));
                    }
                    out.push(SseEvent::default().data("[DONE]"));
                    st.finished = true;
                }
            }
            Some(JobEvent::Failed(e)) => {
                out.push(SseEvent::default().data(ApiError::internal(e).body().to_string()));
                st.finished = true;
            }
            None => st.finished = true,
        }
        Some((stream::iter(out.into_iter().map(Ok::<_, std::convert::Infallible>)), (st, chunk)))
    })
    .flatten();
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}
