#![no_main]
//! See `eventide::fuzzing::connection_strings` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventide::fuzzing::connection_strings(data));
