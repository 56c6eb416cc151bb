//! Ferry's persistence: the only crate that speaks SQL. One [`Store`] type over SQLite (the
//! embedded default) and PostgreSQL, a file per resource, and the work queue with leases and
//! fencing generations.
//!
//! Architecture invariants:
//! - every query that reads or writes a tenant's object is scoped by its workspace id (the
//!   engine's queue methods, which act for the system, are the only exceptions and say so);
//! - every run state change is a conditional update on (id, state, generation), checked
//!   against `RunState::can_become`, and writes a run event in the same transaction.

mod api_keys;
mod error;
mod logs;
mod models;
mod pools;
mod queue;
mod runs;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod workspaces;

pub use error::Error;
pub use models::*;
pub use store::{Backend, Store};
