//! Long-lived answers end when their authority ends. A followed log is authorised once, when
//! it is opened; while it streams, [`guarded`] re-checks every [`RECHECK`] that the API key it
//! was opened with still exists unrevoked (its workspace with it: a key cannot outlive its
//! workspace, the foreign key sees to that). When it does not, the stream gets one last
//! server-sent event and closes:
//!
//! ```text
//! event: error
//! data: {"error": {"code": "unauthorized", "message": "the API key this stream was opened with has been revoked"}}
//! ```
//!
//! — the API's error body, as a 401 would carry it; a client must not resume after it (a
//! client that does not know the event resumes, and its reconnection is refused with that
//! 401). A stream whose re-check cannot reach the database closes without an event, like a
//! dropped connection: the client resumes and is authenticated again. A stalled reader does
//! not hold a revoked stream open: the check does not wait for the reader.
//!
//! Run tokens stream nothing (their routes only post), so no stream ends at a run token's
//! expiry; a streaming route that took them would add that deadline here.

use std::time::Duration;

use axum::response::sse::Event;
use ferry_core::{ApiKeyId, WorkspaceId};
use ferry_store::Store;
use tokio::sync::mpsc::Sender;

use crate::auth::Caller;

/// How often a stream re-checks its key: a revoked key's streams end within this, plus one
/// database round trip.
pub const RECHECK: Duration = Duration::from_secs(2);

/// How long the final event may wait for a slow reader before the stream just closes.
const LAST_EVENT_WAIT: Duration = Duration::from_secs(1);

/// What a stream was opened with.
#[derive(Debug, Clone, Copy)]
pub struct Authority {
    workspace_id: WorkspaceId,
    key_id: ApiKeyId,
}

impl Authority {
    pub fn of(caller: &Caller) -> Authority {
        Authority {
            workspace_id: caller.workspace_id,
            key_id: caller.key_id,
        }
    }

    /// Resolves when the authority has ended, with the final event to send (`None`: the
    /// database could not say; close without one). Never resolves while the key is valid.
    async fn ended(self, store: &Store) -> Option<Event> {
        loop {
            tokio::time::sleep(RECHECK).await;
            match store
                .api_key_is_active(self.workspace_id, self.key_id)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Some(self.why(store).await),
                Err(error) => {
                    tracing::warn!(error = %error, key_id = %self.key_id, "A stream's key could not be re-checked; closing it");
                    return None;
                }
            }
        }
    }

    async fn why(self, store: &Store) -> Event {
        let message = match store.workspace_get(self.workspace_id).await {
            Err(ferry_store::Error::NotFound { .. }) => {
                "the workspace this stream belongs to has been deleted"
            }
            _ => "the API key this stream was opened with has been revoked",
        };
        tracing::info!(key_id = %self.key_id, workspace_id = %self.workspace_id, message, "Stream ended: its authority ended");
        let body = serde_json::json!({"error": {"code": "unauthorized", "message": message}});
        Event::default().event("error").data(body.to_string())
    }
}

/// Runs `produce` (which sends the stream's events into `tx`) until it finishes or
/// `authority` ends; then sends the final event, if any, and returns (dropping `tx` closes
/// the stream).
pub async fn guarded(
    authority: Authority,
    store: &Store,
    tx: &Sender<Event>,
    produce: impl std::future::Future<Output = ()>,
) {
    tokio::select! {
        () = produce => {}
        last = authority.ended(store) => {
            if let Some(event) = last {
                let _ = tokio::time::timeout(LAST_EVENT_WAIT, tx.send(event)).await;
            }
        }
    }
}
