//! A hang guard for tests of work that must stay bounded (hostile input, runaway programs).
//!
//! Tests run on shared machines whose load nobody controls, so a test never asserts that work is
//! fast: it asserts the counts that bound the work (bytes read, depth reached, calls parsed) and
//! only guards against a hang, with a limit far above the time the work takes.

use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

/// How long guarded work may run before the test fails: thousands of times what any guarded work
/// takes, so only a hang (or an accidental exponential) reaches it.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// Run `f` on its own thread and return its result. Fails the test, naming `what`, if `f` panics
/// or has not finished within [`HANG_GUARD`] (the thread is then left behind; the test process
/// ends soon after).
pub fn finishes<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not finish within {HANG_GUARD:?}: a hang"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}
