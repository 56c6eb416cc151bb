#![no_main]
// The property: fuzz/src/ip_allowlist.rs (the test suite runs it over fuzz/corpus/ip_allowlist too).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::ip_allowlist::check(data));
