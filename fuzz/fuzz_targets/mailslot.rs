#![no_main]
//! Fuzz target `mailslot`: see `netbios::fuzzing::mailslot` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| netbios::fuzzing::mailslot(data));
