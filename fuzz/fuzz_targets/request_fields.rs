#![no_main]
// The property: fuzz/src/request_fields.rs (the test suite runs it over fuzz/corpus/request_fields too).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::request_fields::check(data));
