//! Panics as one line, and panics that a library catches on purpose kept off the terminal.
//!
//! Ingot never panics on bad input by design, but a dependency may (arrow-ipc 60 panics on some
//! damaged buffers). Code that must survive such a dependency wraps the call in
//! [`catch_quietly`]: the panic becomes an `Err` with its message, and nothing is printed. The
//! binary calls [`install_hook`] once, so any other panic (a bug) prints one line saying so instead
//! of Rust's multi-line report and backtrace.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// Set while this thread runs inside [`catch_quietly`].
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Run `f`; a panic inside it becomes `Err(message)` and is not reported by the panic hook.
pub fn catch_quietly<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let was = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "no reason given".to_string())
    })
}

/// Whether this thread is inside [`catch_quietly`] (its panics are expected and handled).
pub fn is_quiet() -> bool {
    QUIET.with(Cell::get)
}

/// Replace the default panic report with one line on stderr (message and place, escaped and
/// capped), silent inside [`catch_quietly`].
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        if QUIET.with(Cell::get) {
            return;
        }
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("no reason given");
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!(
            "error: internal error (a bug in Ingot, please report it): {}{place}",
            crate::text::escaped(message, 300)
        );
    }));
}
