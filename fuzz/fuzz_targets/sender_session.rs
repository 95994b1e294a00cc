#![no_main]
//! Fuzz target `sender_session`: see `netbios::fuzzing::sender_session` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| netbios::fuzzing::sender_session(data));
