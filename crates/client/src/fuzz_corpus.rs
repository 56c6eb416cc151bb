//! The `sse` fuzz target's property over its seed corpus `fuzz/corpus/sse/`, as an ordinary
//! test (fuzz/README.md): the property file the fuzz target calls, included by path, checking
//! this crate's (private) `sse` parser.

mod parsers {
    pub(crate) use crate::sse;
}

#[path = "../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/src/sse.rs"]
mod sse;

#[test]
fn sse_seed_corpus() {
    corpus::check("sse", sse::check);
}
