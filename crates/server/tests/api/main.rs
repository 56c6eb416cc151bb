//! ferry-server's API tests: credentials, secrets, envelope encryption, root-key rotation, the
//! audit log and workspace data settings, through the HTTP handlers of an in-process server,
//! each on SQLite and on PostgreSQL (`FERRY_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

mod audit;
mod canaries;
mod credentials;
mod edge;
mod envelope;
mod fuzz_corpus;
mod kms;
mod metrics;
mod oidc;
mod secrets;
mod streams;
mod trust;
mod workspace;
