//! `ingot serve` on the real default model, as a process on loopback: it answers a chat
//! completion ("The capital of France is" → Paris), streams the same text it returns whole, and
//! on SIGTERM stops accepting, finishes the stream that is running, and exits 0. Skips when the
//! model is absent (fails under CI).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.to_string();
    write!(s, "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// The content of every `data:` chunk of a (chunked) SSE body, in order.
fn stream_text(raw: &str) -> (String, bool) {
    let mut text = String::new();
    let mut done = false;
    for line in raw.lines().filter_map(|l| l.trim().strip_prefix("data: ")) {
        if line == "[DONE]" {
            done = true;
        } else if let Ok(v) = serde_json::from_str::<Value>(line) {
            text.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
        }
    }
    (text, done)
}

#[test]
fn serve_answers_streams_and_stops_gracefully_on_sigterm() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args(["serve", "--model", model.to_str().unwrap(), "--port", "0", "--parallel", "2", "--threads", "2"])
        .env_remove("INGOT_HOME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));

    // The same question and length as the CLI's own generate test.
    let ask = json!({"messages": [{"role": "user", "content": "What is the capital of France?"}],
                     "max_tokens": 24, "temperature": 0});
    let (status, body) = post(addr, "/v1/chat/completions", &ask);
    assert_eq!(status, 200, "{body}");
    let whole: Value = serde_json::from_str(&body).unwrap();
    let answer = whole["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert!(answer.contains("Paris"), "{answer}");

    let mut streaming = ask.clone();
    streaming["stream"] = json!(true);
    let (status, raw) = post(addr, "/v1/chat/completions", &streaming);
    assert_eq!(status, 200);
    let (text, done) = stream_text(&raw);
    assert!(done, "{raw}");
    assert_eq!(text, answer, "streamed text equals the whole reply");

    // A long stream is running when SIGTERM arrives: it still finishes, then the process exits.
    let mut long = streaming.clone();
    long["max_tokens"] = json!(48);
    long["messages"] = json!([{"role": "user", "content": "Write a long story about the sea."}]);
    let stream = std::thread::spawn(move || post(addr, "/v1/chat/completions", &long));
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let (status, raw) = stream.join().unwrap();
    assert_eq!(status, 200);
    assert!(stream_text(&raw).1, "the running stream finished after SIGTERM: {raw}");
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(err.contains("server stopped"), "{err}");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "no longer accepting");
}
