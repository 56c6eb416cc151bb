//! The `cloud_run_spec` fuzz target's property over its seed corpus
//! `fuzz/corpus/cloud_run_spec/`, as an ordinary test (fuzz/README.md): the property file the
//! fuzz target calls, included by path, checking this crate's `spec`.

mod parsers {
    pub use ferry_push_gcp::spec as cloud_run_spec;
}

#[path = "../../../../fuzz/src/cloud_run_spec.rs"]
mod cloud_run_spec;
#[path = "../../../../fuzz/src/corpus.rs"]
mod corpus;

#[test]
fn cloud_run_spec_seed_corpus() {
    corpus::check("cloud_run_spec", cloud_run_spec::check);
}
