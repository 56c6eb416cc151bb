//! The state every handler shares: the store, the vault, the API-key pepper, the internal token's hash,
//! the in-process scheduler (if this process runs one) and the metrics.

use std::sync::Arc;

use ferry_crypto::Pepper;
use ferry_engine::Scheduler;
use ferry_store::Store;

use crate::metrics::Metrics;
use crate::vault::Vault;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    /// Seals and opens the workspaces' secret material.
    pub vault: Vault,
    pub pepper: Arc<Pepper>,
    /// Mints and checks the run tokens pushed runs post their logs and results with.
    pub run_tokens: crate::run_token::RunTokenSigner,
    /// The push backends (validation of credentials; the scheduler drives runs with them).
    pub push: crate::push::Backends,
    /// Ferry's OIDC issuer (its discovery document and JWKS; the push backends' tokens).
    pub issuer: crate::issuer::Issuer,
    pub internal_token_hash: [u8; 32],
    pub scheduler: Option<Scheduler>,
    pub metrics: Metrics,
    /// `FERRY_METRICS_TOKEN`: without it, the public listener has no `/metrics`.
    pub metrics_token: Option<crate::metrics::MetricsToken>,
    /// The public edge's per-process state: rate limits, trusted proxies.
    pub edge: Arc<crate::edge::Edge>,
    pub max_body_bytes: usize,
    /// `FERRY_EXECUTOR_MEMORY_MB`: the most memory a managed pool or run may ask for.
    pub executor_memory_mb: u64,
    /// `FERRY_MAX_LOG_BYTES`: the most log a pool or run may keep per run.
    pub max_log_bytes: u64,
    /// Fired when the server starts shutting down: long-lived responses (log follows) end.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
