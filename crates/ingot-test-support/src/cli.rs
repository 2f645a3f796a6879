//! Running the `ingot` binary as a user would: arguments, stdin, environment; what comes back is
//! the exit code and everything printed.
//!
//! Only `ingot-cli`'s own tests know the binary's path (`env!("CARGO_BIN_EXE_ingot")`), so they
//! pass it in.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// What one run of the binary left behind.
#[derive(Debug)]
pub struct Run {
    /// The exit code; a death by signal reads as -1, which no assertion expecting success accepts.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything the run printed, for assertion messages.
    pub fn dump(&self) -> String {
        format!("exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }

    /// Panics with the dump unless the run succeeded.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success:\n{}", self.dump());
        self
    }

    /// Panics unless the run failed with a one-line error on stderr containing `needle`.
    pub fn fails_with(self, needle: &str) -> Self {
        assert_ne!(self.code, 0, "expected a failure:\n{}", self.dump());
        assert!(self.stderr.contains(needle), "stderr should mention {needle:?}:\n{}", self.dump());
        assert!(!self.stderr.contains("panicked"), "a panic is not an error message:\n{}", self.dump());
        self
    }
}

/// Run `bin ARGS` with `stdin` piped in and extra environment variables. The environment that
/// changes Ingot's behaviour (`INGOT_HOME`, `INGOT_LOG`) is cleared first so tests see defaults.
pub fn run_with(bin: impl AsRef<Path>, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin.as_ref());
    cmd.args(args).env_remove("INGOT_HOME").env_remove("INGOT_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.as_ref().display()));
    // The binary may exit before reading all of stdin (e.g. on a load error): ignore EPIPE.
    let _ = child.stdin.take().expect("stdin is piped").write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("cannot wait for the binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run `bin ARGS` with empty stdin.
pub fn run(bin: impl AsRef<Path>, args: &[&str]) -> Run {
    run_with(bin, args, "", &[])
}

/// Run `bin ARGS` with `INGOT_FAULT=fault` and check that it aborted there: the process dies at
/// that point of the atomic write it names (no destructors, no cleanup, as under SIGKILL).
pub fn run_killed_at(bin: impl AsRef<Path>, fault: &str, args: &[&str]) -> Run {
    let run = run_with(bin, args, "", &[("INGOT_FAULT", fault)]);
    assert_eq!(run.code, -1, "expected an abort at {fault}:\n{}", run.dump());
    assert!(run.stderr.contains("INGOT_FAULT: aborting"), "{}", run.dump());
    run
}

/// The hidden entries of a folder, sorted: the temporary and old copies a killed write leaves.
pub fn hidden_entries(dir: impl AsRef<Path>) -> Vec<String> {
    let dir = dir.as_ref();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("a folder entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    names.sort();
    names
}
