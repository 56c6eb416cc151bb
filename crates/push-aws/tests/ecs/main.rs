//! The ECS push backend against moto in server mode: two workspaces in two AWS accounts,
//! submission found instead of repeated, task definitions reused, the task lifecycle, cancel,
//! and bad job variables stopped before AWS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod canary;
mod engine;
mod fuzz_corpus;
mod lifecycle;
mod submit;
mod support;
mod tenants;
mod validate;
mod web_identity;
