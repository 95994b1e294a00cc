#![no_main]
//! Fuzz target `sanitize`: see `messenger_core::fuzzing::sanitize_check` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| messenger_core::fuzzing::sanitize_check(data));
