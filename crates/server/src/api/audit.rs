//! `/v1/audit`: the workspace's audit log, oldest first (admin).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use ferry_core::Action;
use ferry_store::AuditEvent;
use serde_json::Value;

use super::ApiQuery;
use crate::auth::Caller;
use crate::error::responses::{ApiKeyAuth, Query, RoleForbidden};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries after this sequence number (the previous page's `next_after`).
    pub after: Option<i64>,
    /// Most entries in the answer, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEventView {
    /// 1, 2, 3... in this workspace.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// `key:<api key id>`, `internal` (the internal API) or `cli` (an operator's command).
    pub actor: String,
    /// `credential.create`, `secret.update`, `pool.delete`, `api_key.revoke`, ...
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub detail: Value,
    /// SHA-256 of the previous entry's hash and this entry, in hex.
    pub hash: String,
    pub prev_hash: String,
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        AuditEventView {
            seq: e.seq,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail,
            hash: hex(&e.hash),
            prev_hash: hex(&e.prev_hash),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEventView>,
    /// Pass as `after` for the next page; absent when this page was not full.
    pub next_after: Option<i64>,
}

/// The workspace's audit log (admin): who did what to credentials, secrets, keys, pools and
/// settings, and when.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", operation_id = "list_audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), Query, ApiKeyAuth, RoleForbidden), security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Action::AuditRead)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and 1000 (got {limit})"),
        ));
    }
    let after = q.after.unwrap_or(0).max(0);
    let events = state
        .store
        .audit_list(caller.workspace_id, after, limit)
        .await?;
    let next_after = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        items: events.into_iter().map(Into::into).collect(),
        next_after,
    }))
}
