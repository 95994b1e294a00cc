#![no_main]
//! Fuzz target `nbns_service`: see `netbios::fuzzing::nbns_service` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| netbios::fuzzing::nbns_service(data));
