#![no_main]
//! Fuzz target `smb_request`: see `netbios::fuzzing::smb_request` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| netbios::fuzzing::smb_request(data));
