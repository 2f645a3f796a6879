//! The web chat page in a real browser: headless Chromium (Debian's `chromium`, started here
//! with `--headless --no-sandbox --disable-gpu --disable-background-networking`) driven over the
//! DevTools protocol against `ingot serve`'s app on loopback with the default model. A question
//! typed into the page gets a streamed answer containing "Paris"; a long answer is stopped with
//! the Stop button and stops growing. The page is photographed into `target/web-chat.png`.
//!
//! Needs the default model and `chromium`: under CI both must be there (a failure), locally the
//! test is SKIPPED without them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;
use ingot_generate::Pipeline;
use ingot_serve::ServeConfig;
use serde_json::{json, Value};

fn chromium() -> Option<String> {
    for name in ["chromium", "chromium-browser"] {
        if Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return Some(name.to_string());
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("chromium is missing; CI must install Debian's `chromium` (scripts/test does)");
    }
    eprintln!("SKIPPED: chromium is missing (apt-get install chromium)");
    None
}

/// A DevTools session with one page.
struct Page {
    ws: tungstenite::WebSocket<TcpStream>,
    next: u64,
}

impl Page {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.ws
            .send(tungstenite::Message::text(json!({"id": id, "method": method, "params": params}).to_string()))
            .unwrap();
        loop {
            let msg = self.ws.read().unwrap();
            if let Ok(text) = msg.to_text() {
                let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                if v["id"] == json!(id) {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    /// Evaluate `js` in the page and return its value.
    fn eval(&mut self, js: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": js, "returnByValue": true, "awaitPromise": true}));
        r["result"]["value"].clone()
    }

    /// Wait (up to `secs`) until `js` is truthy.
    fn wait_for(&mut self, js: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.eval(js).as_bool() == Some(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }
}

struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET, reading the body by its Content-Length (Chromium's DevTools server keeps the
/// connection open whatever the request asks).
fn http_get(port: u16, path: &str) -> String {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    (&s).write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut reader = BufReader::new(&s);
    let mut length: Option<usize> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok();
            }
        }
    }
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body).unwrap();
        }
        None => {
            reader.read_to_end(&mut body).unwrap();
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

#[test]
fn the_chat_page_streams_an_answer_and_stops_a_long_one() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let Some(chromium) = chromium() else { return };
    let dir = ingot_test_support::temp_dir("browser");

    // The server, in this process.
    let pipeline = Pipeline::load(&model, &Device::Cpu).unwrap();
    let cfg = ServeConfig {
        host: "127.0.0.1".into(),
        port: 0,
        parallel: 2,
        queue: 8,
        api_key: None,
        model_name: "SmolLM2".into(),
        max_tokens: 512,
        body_limit: 1 << 20,
        ctx: None,
        prompt_cache: 4096,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(ingot_serve::serve_until(pipeline, cfg, move |a| tx.send(a).unwrap(), std::future::pending()))
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).unwrap();

    // The browser, with its DevTools port printed on stderr.
    let mut child = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--remote-debugging-port=0",
            "--window-size=1100,760",
            &format!("--user-data-dir={}", dir.join("profile").display()),
            "about:blank",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let browser = Browser(child);
    let mut port: Option<u16> = None;
    let mut line = String::new();
    while port.is_none() && stderr.read_line(&mut line).unwrap_or(0) > 0 {
        port = line.split("ws://127.0.0.1:").nth(1).and_then(|r| r.split('/').next()).and_then(|p| p.parse().ok());
        line.clear();
    }
    let port = port.expect("chromium prints its DevTools address");
    // Keep reading what it prints, so a full pipe never stalls it.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let targets: Value = serde_json::from_str(&http_get(port, "/json/list")).unwrap();
    let ws_url = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .unwrap()
        .to_string();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (ws, _) = tungstenite::client(ws_url.as_str(), stream).unwrap();
    let mut page = Page { ws, next: 0 };
    eprintln!("browser: connected to {ws_url}");
    page.call("Page.enable", json!({}));
    page.call("Runtime.enable", json!({}));
    page.call("Page.navigate", json!({"url": format!("http://{addr}/")}));
    assert!(page.wait_for("document.readyState === 'complete' && !!document.getElementById('prompt')", 30));
    eprintln!("browser: page loaded");

    // Type a question and send it as a user would (Enter in the box).
    page.eval("document.getElementById('temperature').value = '0'; true");
    page.eval(
        "const p = document.getElementById('prompt'); p.focus(); p.value = 'What is the capital of France?';
         p.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true})); true",
    );
    let answered = page.wait_for(
        "(() => { const a = document.querySelectorAll('.assistant'); return a.length > 0 && a[a.length - 1].textContent.includes('Paris') && !document.getElementById('send').disabled; })()",
        120,
    );
    let answer = page.eval("[...document.querySelectorAll('.assistant')].map(e => e.textContent).join(' | ')");
    assert!(answered, "no streamed answer with Paris: {answer}");
    assert!(page.eval("document.getElementById('status').textContent").as_str().unwrap_or("").contains("tokens/s"));
    let shot = page.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = base64_decode(shot["data"].as_str().unwrap());
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/web-chat.png");
    std::fs::write(&target, png).unwrap();

    // A long answer, stopped while it streams.
    page.eval("document.getElementById('temperature').value = '0.8'; document.getElementById('max_tokens').value = '400'; true");
    page.eval(
        "const q = document.getElementById('prompt'); q.value = 'Write a very long story about a lighthouse keeper.';
         document.getElementById('form').requestSubmit(); true",
    );
    assert!(page.wait_for(
        "(() => { const a = document.querySelectorAll('.assistant'); return a.length > 1 && a[a.length - 1].textContent.length > 20; })()",
        120
    ));
    page.eval("document.getElementById('stop').click(); true");
    assert!(page.wait_for(
        "document.getElementById('status').textContent === 'stopped' && !document.getElementById('send').disabled",
        30
    ));
    let len = |page: &mut Page| {
        page.eval("(() => { const a = document.querySelectorAll('.assistant'); return a[a.length - 1].textContent.length; })()")
    };
    let stopped_at = len(&mut page);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(len(&mut page), stopped_at, "the answer kept growing after Stop");
    // The server freed the row (the client went away).
    let metrics = http_get(addr.port(), "/metrics");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut m = metrics;
    while !m.contains("ingot_busy_rows 0") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        m = http_get(addr.port(), "/metrics");
    }
    assert!(m.contains("ingot_busy_rows 0"), "{m}");
    drop(browser);
}

/// Standard base64 (the screenshot), without a dependency.
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| acc | (value(c) << (18 - 6 * i)));
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}
