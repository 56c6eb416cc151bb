//! `/v1/workspace`: the caller's own workspace and its data settings.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use ferry_core::Action;
use ferry_store::Actor;

use super::ApiJson;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WorkspaceSettingsView {
    pub id: String,
    pub name: String,
    /// Whether run logs are stored. When false, a run's output is discarded and its log
    /// holds one line saying so.
    pub store_logs: bool,
    /// The external id Ferry passes when it assumes this workspace's AWS roles: put it in
    /// each role's trust policy (`sts:ExternalId`).
    pub aws_external_id: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspace {
    /// Turn run-log storage on or off.
    pub store_logs: Option<bool>,
}

async fn view(state: &AppState, caller: &Caller) -> Result<WorkspaceSettingsView, ApiError> {
    let ws = state.store.workspace_get(caller.workspace_id).await?;
    let settings = state.store.workspace_settings(caller.workspace_id).await?;
    Ok(WorkspaceSettingsView {
        id: ws.id.to_string(),
        name: ws.name.to_string(),
        store_logs: settings.store_logs,
        aws_external_id: settings.aws_external_id,
        created_at: ws.created_at,
    })
}

/// The caller's workspace and its settings.
#[utoipa::path(get, path = "/v1/workspace", tag = "workspace", responses((status = 200, body = WorkspaceSettingsView)), security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WorkspaceSettingsView>, ApiError> {
    caller.require(Action::WorkspaceRead)?;
    Ok(Json(view(&state, &caller).await?))
}

/// Change the workspace's data settings (admin).
#[utoipa::path(patch, path = "/v1/workspace", tag = "workspace", request_body = UpdateWorkspace,
    responses((status = 200, body = WorkspaceSettingsView), (status = 403, body = crate::error::ErrorBody)), security(("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateWorkspace>,
) -> Result<Json<WorkspaceSettingsView>, ApiError> {
    caller.require(Action::WorkspaceWrite)?;
    if let Some(store_logs) = body.store_logs {
        state
            .store
            .workspace_store_logs_set(caller.workspace_id, store_logs, Actor::Key(caller.key_id))
            .await?;
        tracing::info!(workspace_id = %caller.workspace_id, key_id = %caller.key_id, store_logs, "Workspace log storage changed");
    }
    Ok(Json(view(&state, &caller).await?))
}
