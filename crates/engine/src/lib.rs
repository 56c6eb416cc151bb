//! Ferry's scheduler: claims due runs from the store's work queue, drives each through the
//! executor of its pool type, renews its leases, and reconciles pushed runs against their
//! clouds.
//!
//! Architecture invariant: the engine sees executors only through ferry-core's ports
//! ([`ferry_core::port::FlowRunner`], [`ferry_core::port::PushBackend`]); it compiles neither
//! wasmtime nor a cloud SDK.

mod config;
mod drive;
mod logs;
mod scheduler;

pub use config::Config;
pub use logs::StoreLogSink;
pub use scheduler::{Executors, Scheduler, SchedulerHandle};
