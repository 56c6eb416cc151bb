#![no_main]
// The property: fuzz/src/sse.rs (the test suite runs it over fuzz/corpus/sse too).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::sse::check(data));
