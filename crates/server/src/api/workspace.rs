//! `/v1/workspace`: the caller's own workspace, its data settings and its IP allow-list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use ferry_core::{Action, Cidrs, IpAllowList};
use ferry_store::Actor;

use super::ApiJson;
use crate::auth::Caller;
use crate::edge::ClientIp;
use crate::error::responses::{ApiKeyAuth, JsonBody, RoleForbidden};
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
#[utoipa::path(get, path = "/v1/workspace", tag = "workspace", operation_id = "show_workspace",
    responses((status = 200, body = WorkspaceSettingsView), ApiKeyAuth), security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WorkspaceSettingsView>, ApiError> {
    caller.require(Action::WorkspaceRead)?;
    Ok(Json(view(&state, &caller).await?))
}

/// Change the workspace's data settings (admin).
#[utoipa::path(patch, path = "/v1/workspace", tag = "workspace", operation_id = "update_workspace", request_body = UpdateWorkspace,
    responses((status = 200, body = WorkspaceSettingsView), JsonBody, ApiKeyAuth, RoleForbidden), security(("api_key" = [])))]
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

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct IpAllowListView {
    /// The networks the workspace's API keys may be used from; empty allows every address.
    pub cidrs: Vec<String>,
    /// This request's address as Ferry sees it (behind a trusted proxy, the client it names),
    /// when it could be established.
    pub your_address: Option<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetIpAllowList {
    /// Networks (`203.0.113.0/24`, `2001:db8::/48`) or single addresses; at most 256. Empty
    /// allows every address.
    pub cidrs: Vec<String>,
    /// Set the list even though it leaves out this request's own address (locking this
    /// client out).
    #[serde(default)]
    pub force: bool,
}

fn allowlist_view(list: &IpAllowList, client: ClientIp) -> IpAllowListView {
    IpAllowListView {
        cidrs: list.cidrs().to_strings(),
        your_address: client.0.map(|ip| ip.to_string()),
    }
}

/// The workspace's IP allow-list (admin).
#[utoipa::path(get, path = "/v1/workspace/ip-allowlist", tag = "workspace", operation_id = "show_ip_allowlist",
    responses((status = 200, body = IpAllowListView), ApiKeyAuth, RoleForbidden), security(("api_key" = [])))]
pub async fn ip_allowlist_show(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientIp,
) -> Result<Json<IpAllowListView>, ApiError> {
    caller.require(Action::WorkspaceWrite)?;
    let list = state
        .store
        .workspace_ip_allowlist(caller.workspace_id)
        .await?;
    Ok(Json(allowlist_view(&list, client)))
}

/// Replace the workspace's IP allow-list (admin). Refused (409 `would_lock_out`) when the new
/// list leaves out this request's own address, unless `force` is set. Audited.
#[utoipa::path(put, path = "/v1/workspace/ip-allowlist", tag = "workspace", operation_id = "set_ip_allowlist", request_body = SetIpAllowList,
    responses((status = 200, body = IpAllowListView), (status = 409, description = "The list leaves out the caller's own address (`would_lock_out`)", body = crate::error::ErrorBody), JsonBody, ApiKeyAuth, RoleForbidden), security(("api_key" = [])))]
pub async fn ip_allowlist_set(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientIp,
    ApiJson(body): ApiJson<SetIpAllowList>,
) -> Result<Json<IpAllowListView>, ApiError> {
    caller.require(Action::WorkspaceWrite)?;
    let cidrs = Cidrs::parse(&body.cidrs).map_err(|e| ApiError::invalid(format!("cidrs: {e}")))?;
    let list = IpAllowList::new(cidrs);
    if !body.force && !list.allows(client.0) {
        return Err(would_lock_out(client));
    }
    let actor = Actor::Key(caller.key_id);
    state
        .store
        .workspace_ip_allowlist_set(caller.workspace_id, &list, actor)
        .await?;
    tracing::info!(workspace_id = %caller.workspace_id, key_id = %caller.key_id, cidrs = %list.cidrs(), "Workspace IP allow-list changed");
    Ok(Json(allowlist_view(&list, client)))
}

fn would_lock_out(client: ClientIp) -> ApiError {
    let yours = client.0.map_or(
        "this request's address could not be established".to_owned(),
        |ip| format!("this request comes from {ip}"),
    );
    ApiError::new(
        StatusCode::CONFLICT,
        "would_lock_out",
        format!(
            "the list leaves out the address you are calling from ({yours}); add it, or send \
             \"force\": true to lock this client out"
        ),
    )
}
