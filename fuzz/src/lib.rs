//! What Ingot's fuzz targets share: a scratch folder for the readers that take a path, a way to
//! carry several files in one fuzz input, and the check that every error a reader returns is a
//! message a user can read.
//!
//! The check is issue 10's rule: an error from untrusted input is one line and under 1 KB,
//! measured as the CLI prints it (the message and its causes joined with ": ", as anyhow's `{:#}`
//! does). A target that gets a longer or multi-line message panics, so libFuzzer reports it
//! with the input that caused it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The longest error message allowed, in bytes (issue 10: "no message over 1 KB").
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Separates the files of a multi-file input (a checkpoint folder, a tokenizer.json with its
/// tokenizer_config.json, a template and its messages). A line of its own, so that libFuzzer's
/// mutations rarely create or destroy one by accident; `fuzz/make-seeds` joins files with it.
pub const SEP: &[u8] = b"\n#ingot-fuzz-part#\n";

/// This process's scratch folder: `$INGOT_FUZZ_SCRATCH/<pid>` (scripts/fuzz sets the variable
/// to a folder in /dev/shm and removes it afterwards), else the system temp folder.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("INGOT_FUZZ_SCRATCH").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("ingot-fuzz-{}", std::process::id()));
        // Not the code under test: if the scratch folder cannot be made, nothing can be fuzzed.
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    })
}

/// Write `bytes` to `rel` under the scratch folder (replacing it) and return its path.
pub fn write_file(rel: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// A fresh, empty folder `rel` under the scratch folder.
pub fn fresh_dir(rel: &str) -> PathBuf {
    let dir = scratch().join(rel);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("cannot remove {}: {e}", dir.display()));
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The parts of a multi-file input, split at [`SEP`]; an input without one is a single part.
pub fn split_parts(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEP.len()).position(|w| w == SEP) {
        parts.push(&rest[..at]);
        rest = &rest[at + SEP.len()..];
    }
    parts.push(rest);
    parts
}

/// The message the CLI would print for `e`: it and its causes, joined with ": ".
pub fn full_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let _ = write!(msg, ": {c}");
        cause = c.source();
    }
    msg
}

/// Panic (so that libFuzzer reports the input) unless `e`'s message is one line and under
/// [`MAX_MESSAGE_BYTES`]. `what` names the call that returned it.
pub fn check_error(what: &str, e: &(dyn std::error::Error + 'static)) {
    check_message(what, &full_message(e));
}

/// As [`check_error`], for a message already formatted (a failed tool result shown to the model).
pub fn check_message(what: &str, msg: &str) {
    let multi_line = msg.contains(['\n', '\r']);
    if msg.len() >= MAX_MESSAGE_BYTES || multi_line {
        let head: String = msg.chars().take(400).collect();
        panic!(
            "{what}: error message is {} bytes{} (limit: one line under {MAX_MESSAGE_BYTES} bytes); it starts {:?}",
            msg.len(),
            if multi_line { " over several lines" } else { "" },
            head
        );
    }
}

/// `Ok` values pass through as `Some`; errors are checked with [`check_error`] and become `None`.
pub fn checked<T, E: std::error::Error + 'static>(what: &str, r: Result<T, E>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            check_error(what, &e);
            None
        }
    }
}

/// Run `body` where the library under test catches some panics on purpose and turns them into
/// errors (ingot-eval's Arrow reader catches arrow-ipc's panics on damaged buffers). libFuzzer's
/// Rust hook aborts on every panic, caught or not; this installs a quiet hook instead and aborts
/// only on a panic that escapes `body`, printing where it was raised.
pub fn allowing_caught_panics(body: impl FnOnce()) {
    use std::cell::RefCell;
    use std::sync::Once;
    thread_local! {
        static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
    }
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let text = info.to_string();
            LAST_PANIC.with(|last| *last.borrow_mut() = text);
        }))
    });
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
        LAST_PANIC.with(|last| eprintln!("uncaught panic: {}", last.borrow()));
        std::process::abort();
    }
}
