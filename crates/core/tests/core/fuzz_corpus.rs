//! The fuzz targets whose parsers live in ferry-core, each property run over its seed corpus
//! `fuzz/corpus/<target>/` as an ordinary test (fuzz/README.md): the same property files the
//! fuzz targets call, included by path.

#[path = "../../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../../fuzz/src/endpoints.rs"]
mod endpoints;
#[path = "../../../../fuzz/src/flow_result.rs"]
mod flow_result;
#[path = "../../../../fuzz/src/ip_allowlist.rs"]
mod ip_allowlist;
#[path = "../../../../fuzz/src/job_vars.rs"]
mod job_vars;
#[path = "../../../../fuzz/src/request_fields.rs"]
mod request_fields;

#[test]
fn job_vars_seed_corpus() {
    corpus::check("job_vars", job_vars::check);
}

#[test]
fn ip_allowlist_seed_corpus() {
    corpus::check("ip_allowlist", ip_allowlist::check);
}

#[test]
fn endpoints_seed_corpus() {
    corpus::check("endpoints", endpoints::check);
}

#[test]
fn request_fields_seed_corpus() {
    corpus::check("request_fields", request_fields::check);
}

#[test]
fn flow_result_seed_corpus() {
    corpus::check("flow_result", flow_result::check);
}
