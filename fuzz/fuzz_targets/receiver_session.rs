#![no_main]
//! Fuzz target `receiver_session`: see `netbios::fuzzing::receiver_session` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| netbios::fuzzing::receiver_session(data));
