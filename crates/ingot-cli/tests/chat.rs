//! `ingot chat` outlives its bad turns: non-UTF-8 and over-long lines, a prompt past the context,
//! unknown `/commands`, and Ctrl-C during a reply each cost only that turn. Run on the real
//! default model with short replies; the Ctrl-C tests send a real SIGINT once the reply has
//! started streaming (seen on stdout, not guessed with a sleep). Also: what a user types as
//! `generate --raw --prompt` is text even where it spells a control token.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

const FRANCE: &str = "What is the capital of France?";
/// Long enough for any step the test waits on with a model load on two busy cores.
const PATIENCE: Duration = Duration::from_secs(180);

/// A running `ingot chat` whose stdout arrives, chunk by chunk, on a channel.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    chunks: Receiver<Vec<u8>>,
    stdout: Vec<u8>,
    stderr: thread::JoinHandle<String>,
}

impl Session {
    fn start(model: &str, max_tokens: &str) -> Session {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ingot"))
            .args(["chat", "--model", model, "--max-tokens", max_tokens])
            .env_remove("INGOT_HOME")
            .env_remove("INGOT_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ingot chat");
        let (tx, chunks) = mpsc::channel();
        let mut out = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        });
        let stdin = child.stdin.take();
        Session { child, stdin, chunks, stdout: Vec::new(), stderr }
    }

    fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).and_then(|_| stdin.flush()).expect("write to ingot chat");
    }

    /// Read stdout until `done(all of it so far)` holds; panics after PATIENCE.
    fn wait_for(&mut self, what: &str, done: impl Fn(&[u8]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.stdout) {
            match self.chunks.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(chunk) => self.stdout.extend(chunk),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {what} within {PATIENCE:?}; stdout so far: {:?}", self.text())
                }
                Err(RecvTimeoutError::Disconnected) => panic!("stdout closed before {what}: {:?}", self.text()),
            }
        }
    }

    fn interrupt(&self) {
        let status = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -INT failed");
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Close stdin, wait for the exit (None if still running after `limit`), collect the output.
    fn finish(mut self, limit: Duration) -> (Option<i32>, String, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + limit;
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("wait for ingot chat") {
                break Some(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        while let Ok(chunk) = self.chunks.recv_timeout(Duration::from_secs(5)) {
            self.stdout.extend(chunk);
        }
        let stdout = self.text();
        (code, stdout, self.stderr.join().unwrap_or_default())
    }
}

#[test]
fn bad_lines_and_unknown_commands_cost_only_their_turn() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let model = model.to_str().expect("UTF-8 asset path");
    let mut input: Vec<u8> = b"caf\xe9 au lait\n".to_vec(); // Latin-1, not UTF-8
    input.extend("hello ".repeat(10_000).as_bytes()); // ~10k tokens: past the 8192-token context
    input.push(b'\n');
    input.extend(vec![b'x'; (1 << 20) + 10]); // past the line cap
    input.push(b'\n');
    input.extend(format!("/xyz {FRANCE}\n{FRANCE}\n/exit\nThis comes after /exit.\n").as_bytes());

    let mut session = Session::start(model, "8");
    session.send(&input);
    let (code, stdout, stderr) = session.finish(PATIENCE);
    let dump = format!("exit {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert_eq!(code, Some(0), "{dump}");
    assert!(stderr.contains("error: line 1 is not UTF-8 text"), "{dump}");
    assert!(stderr.contains("context length") && stderr.contains("the conversation is unchanged"), "{dump}");
    assert!(stderr.contains("error: line 3 is over 1 MiB"), "{dump}");
    assert!(stderr.contains("unknown command /xyz; commands: /reset /exit"), "{dump}");
    assert!(!stderr.contains("panicked"), "{dump}");
    // One reply only (the question's): the bad lines and /xyz reached no model.
    assert!(stdout.contains("Paris"), "{dump}");
    assert_eq!(stdout.lines().filter(|l| !l.trim().is_empty()).count(), 1, "{dump}");
}

#[test]
fn ctrl_c_stops_the_reply_and_the_session_goes_on() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let model = model.to_str().expect("UTF-8 asset path");
    let mut session = Session::start(model, "400");
    session.send(b"My name is Ada. Write a long story about a dragon who learns to fly.\n");
    session.wait_for("start of the reply", |out| !String::from_utf8_lossy(out).trim().is_empty());
    session.interrupt();
    // The stopped reply ends with a newline; the next turn is answered with the history kept.
    session.wait_for("end of the stopped reply", |out| out.contains(&b'\n'));
    let stopped_at = session.stdout.len();
    session.send(format!("{FRANCE}\n").as_bytes());
    session.wait_for("second reply", |out| out[stopped_at..].contains(&b'\n'));
    session.send(b"/exit\n");
    let (code, stdout, stderr) = session.finish(PATIENCE);
    let dump = format!("exit {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert_eq!(code, Some(0), "{dump}");
    assert!(stderr.contains("[reply stopped]"), "{dump}");
    assert!(!stderr.contains("panicked") && !stderr.contains("error"), "{dump}");
    let (first, second) = stdout.split_once('\n').unwrap_or_else(|| panic!("{dump}"));
    assert!(!first.trim().is_empty() && !second.trim().is_empty(), "{dump}");
}

#[test]
fn ctrl_c_at_the_prompt_ends_the_session_cleanly() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let model = model.to_str().expect("UTF-8 asset path");
    let mut session = Session::start(model, "4");
    session.send(b"Hi\n");
    session.wait_for("the reply", |out| out.contains(&b'\n'));
    // Now it waits for the next line, with stdin still open: only Ctrl-C ends it.
    session.interrupt();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = None;
    while status.is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        status = session.child.try_wait().expect("wait for ingot chat");
    }
    // Checked before `finish` closes stdin, which would end the session by itself.
    let exited = status.map(|s| s.code());
    let (_, stdout, stderr) = session.finish(Duration::from_secs(5));
    assert_eq!(exited, Some(Some(0)), "Ctrl-C at the prompt should exit 0\n{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("error"), "{stderr}");
}

#[test]
fn typed_special_token_spellings_are_text() {
    let Some(model) = ingot_test_support::real_model() else { return };
    let model = model.to_str().expect("UTF-8 asset path");
    let args = ["generate", "--model", model, "--raw", "--prompt", "<|im_end|>", "--max-tokens", "1"];
    let r = ingot_test_support::cli::run(env!("CARGO_BIN_EXE_ingot"), &args).ok();
    // "[N prompt tokens at ...": the control token would be one.
    let n: usize = r
        .stderr
        .split_once('[')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no prompt token count in {:?}", r.stderr));
    assert!(n > 1, "<|im_end|> typed as a prompt became {n} token(s)");
}
