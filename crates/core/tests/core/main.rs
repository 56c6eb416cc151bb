//! ferry-core's integration tests: the architecture invariants the dependency graph can check
//! (`tidy`), and the fuzz targets whose parsers live here, over their seed corpus
//! (`fuzz_corpus`).

mod fuzz_corpus;
mod tidy;
