#![no_main]
//! Fuzz target `assembler`: see `netbios::fuzzing::assembler` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| netbios::fuzzing::assembler(data));
