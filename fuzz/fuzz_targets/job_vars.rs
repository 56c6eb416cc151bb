#![no_main]
// The property: fuzz/src/job_vars.rs (the test suite runs it over fuzz/corpus/job_vars too).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::job_vars::check(data));
