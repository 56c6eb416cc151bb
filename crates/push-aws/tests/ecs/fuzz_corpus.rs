//! The `ecs_spec` fuzz target's property over its seed corpus `fuzz/corpus/ecs_spec/`, as an
//! ordinary test (fuzz/README.md): the property file the fuzz target calls, included by path,
//! checking this crate's `spec`.

mod parsers {
    pub use ferry_push_aws::spec as ecs_spec;
}

#[path = "../../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../../fuzz/src/ecs_spec.rs"]
mod ecs_spec;

#[test]
fn ecs_spec_seed_corpus() {
    corpus::check("ecs_spec", ecs_spec::check);
}
