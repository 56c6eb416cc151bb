//! Ferry's WebAssembly sandbox: the only crate that links wasmtime (DESIGN §1, §6).
//!
//! A [`Host`] owns the wasmtime engines, the compiled-artifact cache and the epoch ticker; it
//! inspects uploaded artifacts ([`Host::inspect`]), compiles each once per digest
//! ([`Host::prepare`]) and runs flows ([`Host::run`]) under the run's limits. [`WasmRunner`]
//! plugs it into the engine as a [`ferry_core::port::FlowRunner`].
//!
//! Deny by default, per run: no network (no socket may be created, every address is refused,
//! name lookup is off), no environment but what the run grants, no arguments, no stdin but the
//! parameters (kinds 2 and 3), no filesystem but a fresh scratch directory at `/run`. Wall
//! time, memory, CPU (fuel, only when the run asks), stack, log bytes, scratch bytes and host
//! calls are all bounded; a flow that hits a bound fails with that reason and the host goes on.
//!
//! Architecture invariants:
//! - Nothing a flow does may panic the host: no `unwrap`/`expect` on these paths.
//! - A run start is an instantiation: compiled artifacts are cached on disk (keyed by digest
//!   and the engine's compatibility hash) and their instance templates in memory.
//! - The one `unsafe` block of this crate is in `cache::load` (loading a precompiled
//!   artifact); the crate denies unsafe code everywhere else.

mod cache;
mod capture;
mod config;
#[cfg(target_os = "linux")]
pub mod confine;
mod engine;
mod flow_host;
mod host;
mod inspect;
mod limiter;
mod run;
mod runner;
mod scratch;
pub mod worker;

pub use config::{HostCallLimits, HostConfig};
pub use host::{Host, HostError, Prepared};
pub use inspect::ArtifactError;
/// Inspects an artifact without an engine: is it wasm, which of the three flow kinds, does it
/// import only what Ferry provides (see [`Host::inspect`]). CPU work proportional to its size.
pub fn inspect(bytes: &[u8], max_bytes: u64) -> Result<ArtifactInfo, ArtifactError> {
    inspect::inspect(bytes, max_bytes)
}

pub use runner::{ArtifactSource, Grants, NoGrants, SourceError, WasmRunner};

use std::collections::HashMap;

use ferry_core::port::FlowOutcome;
use ferry_core::PoolLimits;
use secrecy::SecretString;

/// What kind of flow an artifact is (DESIGN §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// A component of the `ferry:flow` world: exports `run(params) -> result<string, string>`.
    Component,
    /// A WASI 0.2 command component (exports `wasi:cli/run`).
    Command,
    /// A WASI preview1 core module with `_start`.
    Preview1,
}

impl ArtifactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Component => "component",
            ArtifactKind::Command => "command",
            ArtifactKind::Preview1 => "preview1",
        }
    }

    pub fn parse(s: &str) -> Option<ArtifactKind> {
        [
            ArtifactKind::Component,
            ArtifactKind::Command,
            ArtifactKind::Preview1,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What [`Host::inspect`] learned about an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactInfo {
    /// `sha256:<hex>` of the artifact's bytes.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    pub kind: ArtifactKind,
}

/// One run of a prepared flow.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The run's parameters: the argument of `run` (kind 1) or stdin (kinds 2 and 3).
    pub params: serde_json::Value,
    /// The effective limits (the pool's, narrowed by the run's). An unset field falls back to
    /// [`PoolLimits::DEFAULT`]; `cpu_fuel_m` unset means no fuel metering.
    pub limits: PoolLimits,
    /// Secrets granted to the run, readable through `ferry:flow/host.secret`.
    pub secrets: HashMap<String, SecretString>,
    /// Environment variables granted to the run; the flow sees these and no others.
    pub env: Vec<(String, String)>,
}

/// How much of a run's output was kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Bytes of log lines handed to the sink (newlines included).
    pub kept_bytes: u64,
    /// Bytes counted and discarded past the log limit.
    pub dropped_bytes: u64,
    /// Whether anything was discarded.
    pub truncated: bool,
}

/// A run's outcome together with what happened to its log.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub outcome: FlowOutcome,
    pub log: LogStats,
}
