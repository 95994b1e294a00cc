#![no_main]
//! Fuzz target `nbdgm_datagram`: see `netbios::fuzzing::nbdgm_datagram` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| netbios::fuzzing::nbdgm_datagram(data));
