#![no_main]
//! Fuzz target `nbss_packet`: see `netbios::fuzzing::nbss_packet` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| netbios::fuzzing::nbss_packet(data));
