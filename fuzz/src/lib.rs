//! The properties Ferry's fuzz targets check (fuzz/README.md): one module per target, each
//! with `check(data)`, which panics when the parser under test breaks a promise. The targets
//! in `fuzz_targets/` only call them, and the workspace's test suite runs each one over its
//! seed corpus (`fuzz/corpus/<target>/`) through [`corpus::check`], without libFuzzer.
//!
//! A property module names the parser it checks either through a crate that is light enough
//! to build instrumented (`ferry_core`) or through `super::parsers`, which the fuzz crate
//! fills from the parser's source file (src/parsers.rs) and each test host from the real
//! crate. The modules are compiled both here and in those hosts, so they use nothing but
//! `ferry_core`, `serde`, `serde_json`, `url`, `secrecy` and the standard library.

#![forbid(unsafe_code)]

pub mod corpus;
pub mod parsers;

pub mod cloud_run_spec;
pub mod credential;
pub mod ecs_spec;
pub mod endpoints;
pub mod flow_result;
pub mod ip_allowlist;
pub mod job_vars;
pub mod request_fields;
pub mod sse;
