//! Ferry's persistence: the only crate that speaks SQL. One [`Store`] type over SQLite (the
//! embedded default) and PostgreSQL, a file per resource, and the work queue with leases and
//! fencing generations.
//!
//! Architecture invariants:
//! - every query that reads or writes a tenant's object is scoped by its workspace id (the
//!   engine's queue methods, which act for the system, are the only exceptions and say so);
//! - secret material never reaches it in the clear: credentials, secrets and sensitive run
//!   parameters arrive sealed by ferry-crypto and leave the same way;
//! - every change a tenant or operator makes to credentials, secrets, keys, pools or settings
//!   is recorded in the workspace's audit log, chained under the audit key (HMAC-SHA-256), in
//!   the same transaction (the `*_by` methods and those taking an [`Actor`]; the plain
//!   `pool_create` & co. are for tests and system use); a store that was not given the key
//!   ([`Store::set_audit_key`]) makes no audited change at all;
//! - every run state change is a conditional update on (id, state, generation), checked
//!   against `RunState::can_become`, and writes a run event in the same transaction.

mod api_keys;
mod artifacts;
mod audit;
mod audit_key;
mod credentials;
mod error;
mod issuer_keys;
mod logs;
mod models;
mod pools;
mod queue;
mod runs;
mod secrets;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod workspace_keys;
mod workspaces;

pub use artifacts::Artifact;
pub use audit::AuditKey;
pub use audit_key::{NewAuditKey, Resealed, StoredAuditKey};
pub use error::Error;
pub use issuer_keys::{IssuerKey, NewIssuerKey};
pub use logs::LOGS_DISCARDED_NOTICE;
pub use models::*;
pub use store::{Backend, Store};
