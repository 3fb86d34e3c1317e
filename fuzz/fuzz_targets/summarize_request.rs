#![no_main]
//! See `eventide::fuzzing::summarize_request` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventide::fuzzing::summarize_request(data));
