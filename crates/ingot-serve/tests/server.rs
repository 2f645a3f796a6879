//! The server on loopback with a tiny llama (a character tokenizer with a ChatML template), driven
//! by a plain HTTP/1.1 client over TCP: every endpoint; streamed text equals the non-streamed
//! text; the same request gives the same text alone and inside a busy batch (greedy); errors in
//! OpenAI's shape with the right status; a full queue answers 503 with Retry-After; a client that
//! disconnects mid-stream leaves no busy row; shutdown finishes what runs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::Device;
use ingot_generate::{generate, GenerateParams, Pipeline};
use ingot_serve::ServeConfig;
use ingot_test_support::models::{write_model_folder, LLAMA};
use ingot_test_support::temp_dir;
use serde_json::{json, Value};

const CHATML: &str = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// A tiny llama folder whose tokenizer has ChatML's control tokens and template.
fn model_folder(dir: &Path) -> std::path::PathBuf {
    let folder = write_model_folder(&dir.join("model"), LLAMA, 4);
    let specials: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"].map(String::from).to_vec();
    let tok = ingot_tokenizer::char_level([ingot_test_support::tokenizer::ascii_text()], &specials).unwrap();
    tok.save(folder.join("tokenizer.json")).unwrap();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap()).unwrap();
    config["vocab_size"] = json!(tok.vocab_size());
    std::fs::write(folder.join("config.json"), config.to_string()).unwrap();
    // The weights were made for the old vocabulary size: remake them for the new one.
    let cfg: ingot_models::HfConfig = serde_json::from_value(config.clone()).unwrap();
    let (_, varmap) = ingot_test_support::random_model(&cfg, 4);
    varmap.save(folder.join("model.safetensors")).unwrap();
    std::fs::write(
        folder.join("tokenizer_config.json"),
        json!({"eos_token": "<|im_end|>", "chat_template": CHATML}).to_string(),
    )
    .unwrap();
    folder
}

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    fn start(folder: &Path, parallel: usize, queue: usize, api_key: Option<&str>) -> Self {
        let pipeline = Pipeline::load(folder, &Device::Cpu).unwrap();
        let cfg = ServeConfig {
            host: "127.0.0.1".into(),
            port: 0,
            parallel,
            queue,
            api_key: api_key.map(str::to_string),
            model_name: "tiny".into(),
            max_tokens: 40,
            body_limit: 64 << 10,
            ctx: None,
            prompt_cache: 4096,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(ingot_serve::serve_until(pipeline, cfg, move |addr| tx.send(addr).unwrap(), async move {
                let _ = stopped.await;
            }))
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server starts");
        Server { addr, stop: Some(stop), thread: Some(thread) }
    }

    fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..at]).unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&rest[at + 2..at + 2 + size]);
        rest = &rest[at + 2 + size + 2..];
    }
    out
}

fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Reply { status, headers, body: String::from_utf8_lossy(&body).to_string() }
}

fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    send(addr, "POST", path, &[], body.to_string().as_bytes())
}

/// The text of an SSE stream's chunks, and whether it ended with [DONE].
fn streamed_text(body: &str, chat: bool) -> (String, bool, Vec<Value>) {
    let mut text = String::new();
    let mut done = false;
    let mut chunks = Vec::new();
    for line in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            done = true;
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap();
        for c in v["choices"].as_array().unwrap() {
            let piece = if chat { &c["delta"]["content"] } else { &c["text"] };
            text.push_str(piece.as_str().unwrap_or(""));
        }
        chunks.push(v);
    }
    (text, done, chunks)
}

#[test]
fn completions_stream_and_batch_give_the_same_text_as_a_lone_generation() {
    let dir = temp_dir("serve-basic");
    let folder = model_folder(&dir);
    let server = Server::start(&folder, 4, 16, None);
    let addr = server.addr;
    let p = Pipeline::load(&folder, &Device::Cpu).unwrap();

    // The reference: the library's own greedy generation of the same prompt.
    let prompt = "The sea is";
    let ids = p.tokenizer.encode(prompt, true).unwrap();
    let alone = generate(
        &p.model,
        &p.tokenizer,
        &ids,
        &GenerateParams { max_tokens: 20, ..Default::default() },
        &p.device,
        |_| {},
    )
    .unwrap();
    let request = json!({"prompt": prompt, "max_tokens": 20, "temperature": 0});
    let r = post(addr, "/v1/completions", &request);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["choices"][0]["text"], json!(alone.text));
    assert_eq!(v["usage"]["prompt_tokens"], json!(ids.len()));
    assert_eq!(v["usage"]["completion_tokens"], json!(alone.tokens.len()));
    assert_eq!(v["object"], "text_completion");

    // Streamed: the same text, chunk by chunk, then the usage chunk and [DONE].
    let mut streaming = request.clone();
    streaming["stream"] = json!(true);
    streaming["stream_options"] = json!({"include_usage": true});
    let r = post(addr, "/v1/completions", &streaming);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap_or("").starts_with("text/event-stream"), "{:?}", r.headers);
    let (text, done, chunks) = streamed_text(&r.body, false);
    assert_eq!(text, alone.text);
    assert!(done, "{}", r.body);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], json!(alone.tokens.len()));

    // Inside a busy batch: 6 clients at once, 4 rows, same text for the same request.
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let body = if i % 2 == 0 {
                request.clone()
            } else {
                json!({"prompt": format!("Other prompt {i}"), "max_tokens": 30, "temperature": 0.8, "seed": i})
            };
            std::thread::spawn(move || post(addr, "/v1/completions", &body))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        if i % 2 == 0 {
            assert_eq!(r.json()["choices"][0]["text"], json!(alone.text), "client {i} in a busy batch");
        }
    }

    // Chat: the template renders the messages; n = 2 gives two choices; seeded sampling repeats.
    let chat = json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                      "max_completion_tokens": 12, "temperature": 0.9, "seed": 7, "n": 2});
    let a = post(addr, "/v1/chat/completions", &chat);
    assert_eq!(a.status, 200, "{}", a.body);
    let a = a.json();
    assert_eq!(a["object"], "chat.completion");
    assert_eq!(a["choices"].as_array().unwrap().len(), 2);
    assert_eq!(a["choices"][0]["message"]["role"], "assistant");
    let b = post(addr, "/v1/chat/completions", &chat).json();
    assert_eq!(a["choices"], b["choices"], "the same seed gives the same choices");
    let mut streaming = chat.clone();
    streaming["stream"] = json!(true);
    streaming["n"] = json!(1);
    let single = {
        let mut c = chat.clone();
        c["n"] = json!(1);
        post(addr, "/v1/chat/completions", &c).json()
    };
    let r = post(addr, "/v1/chat/completions", &streaming);
    let (text, done, chunks) = streamed_text(&r.body, true);
    assert!(done);
    assert_eq!(json!(text), single["choices"][0]["message"]["content"]);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    // Tools are shown to the model in a system message, as the agent shows them: here that
    // message alone outgrows the tiny model's 64 positions, which the error says.
    let tools = json!({"messages": [{"role": "user", "content": "2+2?"}], "max_tokens": 8,
                       "tools": [{"type": "function", "function": {"name": "calculator", "description": "Exact arithmetic",
                                  "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}}}}]});
    let r = post(addr, "/v1/chat/completions", &tools);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("context"), "{}", r.body);
    let mut no_tools = tools.clone();
    no_tools["tool_choice"] = json!("none");
    assert_eq!(post(addr, "/v1/chat/completions", &no_tools).status, 200, "tool_choice none leaves the tools out");

    // The other endpoints.
    let models = send(addr, "GET", "/v1/models", &[], b"").json();
    assert_eq!(models["data"][0]["id"], "tiny");
    assert_eq!(send(addr, "GET", "/health", &[], b"").json()["status"], "ok");
    let tokens = post(addr, "/tokenize", &json!({"content": "hello"})).json()["tokens"].clone();
    assert_eq!(post(addr, "/detokenize", &json!({"tokens": tokens})).json()["content"], "hello");
    let metrics = send(addr, "GET", "/metrics", &[], b"").body;
    assert!(metrics.contains("ingot_requests_total") && metrics.contains("ingot_busy_rows 0"), "{metrics}");
    // The repeated prompts above continued from the prompt cache (and still gave equal text).
    let cached: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ingot_prompt_tokens_cached_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no cached-prompt counter in {metrics}"));
    assert!(cached > 0, "{metrics}");
    let page = send(addr, "GET", "/", &[], b"");
    assert!(page.status == 200 && page.body.contains("/v1/chat/completions"));
    server.stop();
}

#[test]
fn bad_requests_get_openai_errors_with_the_right_status() {
    let dir = temp_dir("serve-errors");
    let folder = model_folder(&dir);
    let server = Server::start(&folder, 2, 4, Some("sesame"));
    let addr = server.addr;
    let key = [("Authorization", "Bearer sesame")];
    let call = |body: &[u8]| send(addr, "POST", "/v1/chat/completions", &key, body);
    let error = |r: &Reply| r.json()["error"].clone();
    // Missing and wrong keys.
    let r = send(addr, "POST", "/v1/chat/completions", &[], b"{}");
    assert_eq!((r.status, error(&r)["type"].as_str()), (401, Some("authentication_error")));
    let r = send(addr, "GET", "/v1/models", &[("Authorization", "Bearer nope")], b"");
    assert_eq!(r.status, 401);
    assert_eq!(send(addr, "GET", "/health", &[], b"").status, 200, "health needs no key");
    for (body, status, needle) in [
        (&b"{not json"[..], 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b"{\"messages\": []}", 400, "empty"),
        (b"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": \"hot\"}", 400, "temperature"),
        (b"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": -3}", 400, "max_tokens"),
        (b"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"logprobs\": true}", 400, "logprobs"),
        (b"{\"messages\": [{\"role\": \"robot\", \"content\": \"hi\"}]}", 400, "robot"),
    ] {
        let r = call(body);
        assert_eq!(r.status, status, "{}: {}", String::from_utf8_lossy(body), r.body);
        let e = error(&r);
        assert!(e["message"].as_str().unwrap().contains(needle), "{e}");
        assert_eq!(e["type"], "invalid_request_error");
    }
    // A prompt longer than the context (64 positions) is refused before any work.
    let long = json!({"messages": [{"role": "user", "content": "x".repeat(200)}]});
    let r = call(long.to_string().as_bytes());
    assert_eq!(r.status, 400);
    assert!(error(&r)["message"].as_str().unwrap().contains("context"), "{}", r.body);
    // A body over the limit.
    let big = json!({"messages": [{"role": "user", "content": "y".repeat(100_000)}]});
    assert_eq!(call(big.to_string().as_bytes()).status, 413);
    assert_eq!(send(addr, "GET", "/v2/nothing", &key, b"").status, 404);
    // The server still serves.
    let ok = call(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).to_string().as_bytes());
    assert_eq!(ok.status, 200, "{}", ok.body);
    server.stop();
}

#[test]
fn a_full_queue_is_refused_and_disconnected_clients_free_their_rows() {
    let dir = temp_dir("serve-load");
    let folder = model_folder(&dir);
    let server = Server::start(&folder, 1, 1, None);
    let addr = server.addr;
    // Streams whose clients read a little and leave: their rows must be freed.
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).unwrap();
        let body = json!({"prompt": "Once", "max_tokens": 40, "stream": true, "temperature": 0.7}).to_string();
        write!(s, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf).unwrap();
        drop(s);
    }
    let idle = |addr| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let m = send(addr, "GET", "/metrics", &[], b"").body;
            if m.contains("ingot_busy_rows 0") && m.contains("ingot_queue_length 0") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    assert!(idle(addr), "disconnected clients left rows busy");
    // One row and a queue of one: of many requests at once, some are refused with 503 and
    // Retry-After, and every other one completes.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                post(
                    addr,
                    "/v1/completions",
                    &json!({"prompt": format!("Prompt {i}"), "max_tokens": 40, "temperature": 0}),
                )
            })
        })
        .collect();
    let replies: Vec<Reply> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(!refused.is_empty(), "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(refused.iter().all(|r| r.header("retry-after").is_some() && r.json()["error"]["type"] == "server_busy"));
    assert!(
        replies.iter().all(|r| r.status == 200 || r.status == 503),
        "{:?}",
        replies.iter().map(|r| (r.status, r.body.clone())).collect::<Vec<_>>()
    );
    assert!(idle(addr));
    let metrics = send(addr, "GET", "/metrics", &[], b"").body;
    assert!(!metrics.contains("ingot_requests_rejected_total 0\n"), "{metrics}");
    server.stop();
}
