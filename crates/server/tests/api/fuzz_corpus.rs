//! The `credential` fuzz target's property over its seed corpus `fuzz/corpus/credential/`, as
//! an ordinary test (fuzz/README.md): the property file the fuzz target calls, included by
//! path, checking this crate's `credential` module.

mod parsers {
    pub use ferry_server::credential;
}

#[path = "../../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../../fuzz/src/credential.rs"]
mod credential;

#[test]
fn credential_seed_corpus() {
    corpus::check("credential", credential::check);
}
