#![no_main]
// The property: fuzz/src/credential.rs (the test suite runs it over fuzz/corpus/credential too).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::credential::check(data));
