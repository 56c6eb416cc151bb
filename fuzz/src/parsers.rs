//! The parsers whose crates are too heavy for an instrumented build (ferry-server, the push
//! crates with their cloud SDKs, the HTTP client), compiled here from their own source files:
//! the code fuzzed is the code shipped, without wasmtime, axum or an SDK in the build. Each
//! file is pure (no `crate::` paths, no I/O); if one stops being so, this build fails, and the
//! fix is to move the parser into a light crate (fuzz/README.md).

/// `ferry_push_aws::spec`: an ecs pool's template and a run's variables → `EcsJobSpec`.
#[path = "../../crates/push-aws/src/spec.rs"]
pub mod ecs_spec;

/// `ferry_push_gcp::spec`: a cloud-run pool's template and a run's variables → `CloudRunJobSpec`.
#[path = "../../crates/push-gcp/src/spec.rs"]
pub mod cloud_run_spec;

/// `ferry_server::credential`: `POST`/`PUT /v1/credentials` bodies → sealed material and metadata.
#[path = "../../crates/server/src/credential.rs"]
#[allow(dead_code)]
pub mod credential;

/// `ferry_client`'s server-sent events parser (`sse.rs`, private to the client).
#[path = "../../crates/client/src/sse.rs"]
#[allow(dead_code)]
pub mod sse;
