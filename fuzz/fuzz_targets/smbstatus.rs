#![no_main]
//! Fuzz target `smbstatus`: see `messenger_core::fuzzing::smbstatus_check` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| messenger_core::fuzzing::smbstatus_check(data));
