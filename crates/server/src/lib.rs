//! Ferry's HTTP API: the public listener (API keys, per-workspace) and the internal one
//! (service token), plus configuration, start-up and telemetry.
//!
//! Architecture invariant: handlers are thin — they parse the request into domain types,
//! check the caller's role, call the store, and shape the answer. Only this crate knows HTTP.

mod api;
mod auth;
mod config;
pub mod credential;
mod error;
mod executors;
pub mod issuer;
mod keys;
mod metrics;
mod openapi;
pub mod permissions;
mod push;
pub mod run_token;
mod server;
mod state;
mod timings;
pub mod vault;

pub use config::{Config, ConfigOverrides, ServerRole};
pub use issuer::Issuer;
pub use server::{
    audit_verify, bootstrap, executor_worker, migrate, root_key_rotate, serve, Bootstrapped,
    RootKeyRotation, Server,
};
pub use vault::Vault;
