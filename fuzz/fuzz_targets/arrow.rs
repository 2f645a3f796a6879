//! Benchmark data: Arrow IPC streams (`ingot_eval::data::read_arrow_stream`), rows to JSON.
#![no_main]

use ingot_fuzz::{checked, write_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = write_file("data-00000-of-00001.arrow", data);
    checked("read_arrow_stream", ingot_eval::data::read_arrow_stream(&path));
});
