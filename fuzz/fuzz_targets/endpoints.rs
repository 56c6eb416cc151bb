#![no_main]
// The property: fuzz/src/endpoints.rs (the test suite runs it over fuzz/corpus/endpoints too).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::endpoints::check(data));
