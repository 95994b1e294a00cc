#![no_main]
//! Fuzz target `name`: see `netbios::fuzzing::name` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| netbios::fuzzing::name(data));
