//! Ferry's HTTP API: the public listener (API keys, per-workspace) and the internal one
//! (service token), plus configuration, start-up and telemetry.
//!
//! Architecture invariant: handlers are thin — they parse the request into domain types,
//! check the caller's role, call the store, and shape the answer. Only this crate knows HTTP.

mod admin;
mod api;
mod audit_key;
mod auth;
mod boot;
mod config;
pub mod credential;
mod edge;
mod error;
mod executors;
mod http;
pub mod issuer;
mod keys;
mod metrics;
mod openapi;
pub mod permissions;
mod push;
pub mod run_token;
mod server;
mod state;
mod telemetry;
mod timings;
pub mod vault;

pub use admin::{audit_verify, bootstrap, migrate, root_key_rotate, Bootstrapped, RootKeyRotation};
pub use config::{Config, ConfigOverrides, ServerRole};
pub use edge::settings::Bucket;
pub use edge::EdgeSettings;
pub use issuer::Issuer;
pub use server::{executor_worker, serve, Server};
pub use vault::Vault;
