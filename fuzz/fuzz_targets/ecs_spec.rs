#![no_main]
// The property: fuzz/src/ecs_spec.rs (the test suite runs it over fuzz/corpus/ecs_spec too).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::ecs_spec::check(data));
