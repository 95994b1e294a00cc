#![no_main]
//! Fuzz target `smb_response`: see `netbios::fuzzing::smb_response` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| netbios::fuzzing::smb_response(data));
