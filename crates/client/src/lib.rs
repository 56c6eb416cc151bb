//! A typed async client of Ferry's HTTP API (DESIGN §5), used by the `ferry` CLI and the
//! black-box tests.
//!
//! One [`Client`] talks to one listener with one bearer token: the public listener with an
//! API key, or the internal listener with the internal service token. Methods mirror the
//! routes one to one; see each method for its route.

mod artifacts;
mod credentials;
mod error;
mod follow;
#[cfg(test)]
mod fuzz_corpus;
mod http;
mod internal;
mod models;
mod pools;
mod runs;
mod sse;

pub use artifacts::Artifact;
pub use error::Error;
pub use http::Client;
pub use models::{
    is_terminal_state, ApiKeyCreated, AuditEvent, AuditPage, Credential, FollowEvent, IpAllowList,
    LogLine, Logs, NewPool, NewRun, Page, Pool, PoolPatch, Run, RunEvent, RunsQuery, Secret,
    Workspace, WorkspaceSettings, TERMINAL_STATES,
};
