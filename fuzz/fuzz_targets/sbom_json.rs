#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| darkport::fuzzing::sbom_json(data));
