//! The internal API (service token): workspaces and their first keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use ferry_core::WorkspaceId;
use ferry_store::{Actor, Workspace};
use secrecy::ExposeSecret;

use super::api_keys::{parse_role, CreateKey, KeyCreated};
use super::{parse_name, ApiJson, ApiPath};
use crate::auth::Internal;
use crate::error::responses::{InternalAuth, JsonBody, PathNotFound};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    #[schema(schema_with = super::schemas::name)]
    pub name: String,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<Workspace> for WorkspaceView {
    fn from(w: Workspace) -> Self {
        WorkspaceView {
            id: w.id.to_string(),
            name: w.name.to_string(),
            created_at: w.created_at,
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WorkspaceList {
    pub items: Vec<WorkspaceView>,
}

/// Create a workspace.
#[utoipa::path(post, path = "/internal/v1/workspaces", tag = "internal", operation_id = "create_workspace", request_body = CreateWorkspace,
    responses((status = 201, body = WorkspaceView, links(
            ("CreateApiKeyByWorkspaceId" = (operation_id = "create_workspace_api_key", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 409, body = ErrorBody, description = "A workspace of this name exists (`conflict`)"),
        JsonBody, InternalAuth),
    security(("internal_token" = [])))]
pub async fn workspace_create(
    State(state): State<AppState>,
    _: Internal,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    let name = parse_name("name", &body.name)?;
    let ws = state
        .store
        .workspace_create_by(&name, Actor::Internal)
        .await?;
    tracing::info!(workspace_id = %ws.id, name = %ws.name, "Workspace created");
    Ok((StatusCode::CREATED, Json(ws.into())))
}

/// List workspaces.
#[utoipa::path(get, path = "/internal/v1/workspaces", tag = "internal", operation_id = "list_workspaces",
    responses((status = 200, body = WorkspaceList), InternalAuth), security(("internal_token" = [])))]
pub async fn workspaces_list(
    State(state): State<AppState>,
    _: Internal,
) -> Result<Json<WorkspaceList>, ApiError> {
    let items = state
        .store
        .workspaces_list()
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(WorkspaceList { items }))
}

/// Mint a key for a workspace (its first admin key, typically).
#[utoipa::path(post, path = "/internal/v1/workspaces/{id}/api-keys", tag = "internal", operation_id = "create_workspace_api_key", params(("id" = String, Path)), request_body = CreateKey,
    responses((status = 201, body = KeyCreated), PathNotFound, JsonBody, InternalAuth), security(("internal_token" = [])))]
pub async fn api_key_create(
    State(state): State<AppState>,
    _: Internal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    let id: WorkspaceId = id.parse().map_err(|_| ApiError::not_found("workspace"))?;
    let role = parse_role(&body.role)?;
    let ws = state.store.workspace_get(id).await?;
    let (key, secret) =
        crate::keys::api_key_mint(&state.store, &state.pepper, ws.id, role, Actor::Internal)
            .await?;
    tracing::info!(workspace_id = %ws.id, key_id = %key.id, role = %role, "API key minted");
    Ok((
        StatusCode::CREATED,
        Json(KeyCreated {
            id: key.id.to_string(),
            role: role.as_str().to_owned(),
            key: secret.expose_secret().to_owned(),
            created_at: key.created_at,
        }),
    ))
}
