#![no_main]
//! See `eventide::fuzzing::observations_message` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventide::fuzzing::observations_message(data));
