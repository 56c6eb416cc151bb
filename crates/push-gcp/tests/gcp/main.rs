//! The Cloud Run push backend against the in-repo Cloud Run fake (validating every request
//! against the Cloud Run Admin API v2 discovery document and verifying each bearer token):
//! two customers in two projects, submissions found instead of repeated, jobs reused, the
//! execution lifecycle, cancel, idle-job cleanup, credential validation, and the scheduler
//! driving it all on a real store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod canary;
mod engine;
mod federation;
mod fuzz_corpus;
mod issuer;
mod lifecycle;
mod smoke;
mod submit;
mod support;
mod tenants;
mod validate;
