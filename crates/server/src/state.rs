//! The state every handler shares: the store, the API-key pepper, the internal token's hash,
//! the in-process scheduler (if this process runs one) and the metrics.

use std::sync::Arc;

use ferry_crypto::Pepper;
use ferry_engine::Scheduler;
use ferry_store::Store;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub pepper: Pepper,
    pub internal_token_hash: [u8; 32],
    pub scheduler: Option<Scheduler>,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
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
