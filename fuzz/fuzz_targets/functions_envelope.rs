#![no_main]
//! See `eventide::fuzzing::functions_envelope` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventide::fuzzing::functions_envelope(data));
