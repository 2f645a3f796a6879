//! Benchmark data: Arrow IPC streams (`ingot_eval::data::read_arrow_stream`), rows to JSON.
//!
//! arrow-ipc panics on some damaged buffers; `read_arrow_stream` catches those panics and returns
//! an error, so here a panic counts only if it escapes the reader.
#![no_main]

use ingot_fuzz::{allowing_caught_panics, checked, write_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    allowing_caught_panics(|| {
        let path = write_file("data-00000-of-00001.arrow", data);
        checked("read_arrow_stream", ingot_eval::data::read_arrow_stream(&path));
    });
});
