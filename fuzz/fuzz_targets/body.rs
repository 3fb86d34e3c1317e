#![no_main]
//! See `eventide::fuzzing::body` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventide::fuzzing::body(data));
