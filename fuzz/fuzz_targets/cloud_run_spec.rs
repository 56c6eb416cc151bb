#![no_main]
// The property: fuzz/src/cloud_run_spec.rs (the test suite runs it over fuzz/corpus/cloud_run_spec too).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::cloud_run_spec::check(data));
