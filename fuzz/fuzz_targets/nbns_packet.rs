#![no_main]
//! Fuzz target `nbns_packet`: see `netbios::fuzzing::nbns_packet` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| netbios::fuzzing::nbns_packet(data));
