#![no_main]
//! See `eventide::fuzzing::cosmos_codec` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| eventide::fuzzing::cosmos_codec(data));
