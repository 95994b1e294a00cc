#![no_main]
//! Fuzz target `nbss_framer`: see `netbios::fuzzing::nbss_framer` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| netbios::fuzzing::nbss_framer(data));
