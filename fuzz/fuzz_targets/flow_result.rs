#![no_main]
// The property: fuzz/src/flow_result.rs (the test suite runs it over fuzz/corpus/flow_result too).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::flow_result::check(data));
