//! The log sink executors write a run's log lines to: the store, capped per run.

use async_trait::async_trait;
use ferry_core::port::{LogLine, LogSink};
use ferry_core::RunId;
use ferry_store::Store;

/// Appends a run's log lines to the store; past `cap_bytes` lines are discarded and the log
/// is marked truncated (the flow keeps running).
#[derive(Debug, Clone)]
pub struct StoreLogSink {
    store: Store,
    run_id: RunId,
    cap_bytes: u64,
}

impl StoreLogSink {
    pub fn new(store: Store, run_id: RunId, cap_bytes: u64) -> Self {
        Self {
            store,
            run_id,
            cap_bytes,
        }
    }
}

#[async_trait]
impl LogSink for StoreLogSink {
    async fn write(&self, lines: Vec<LogLine>) {
        if let Err(error) = self
            .store
            .run_logs_append(self.run_id, &lines, self.cap_bytes)
            .await
        {
            // Losing log lines must not fail the run; say so where an operator looks.
            tracing::warn!(run_id = %self.run_id, error = %error, "Run log lines not stored");
        }
    }
}
