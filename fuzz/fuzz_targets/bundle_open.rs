#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| darkport::fuzzing::bundle_open(data));
