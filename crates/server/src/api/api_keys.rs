//! `/v1/api-keys`: an admin mints, lists and revokes the workspace's keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use ferry_core::{Action, ApiKeyId, Role};
use ferry_store::{Actor, ApiKey};
use secrecy::ExposeSecret;

use super::{ApiJson, ApiPath};
use crate::auth::Caller;
use crate::error::responses::{ApiKeyAuth, JsonBody, PathNotFound, RoleForbidden};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// admin, developer, runner or viewer.
    #[schema(schema_with = super::schemas::role)]
    pub role: String,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct KeyCreated {
    pub id: String,
    pub role: String,
    /// The key itself: shown this once, never again.
    pub key: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub role: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        KeyView {
            id: k.id.to_string(),
            role: k.role.as_str().to_owned(),
            prefix: k.prefix,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyView>,
}

pub fn parse_role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s).ok_or_else(|| {
        ApiError::invalid(format!(
            "role {s:?} is not one of admin, developer, runner, viewer"
        ))
    })
}

/// Mint a key for this workspace (admin).
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", operation_id = "create_api_key", request_body = CreateKey,
    responses((status = 201, body = KeyCreated, links(
            ("RevokeApiKeyById" = (operation_id = "revoke_api_key", parameters(("id" = "$response.body#/id")))),
        )),
        JsonBody, ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    caller.require(Action::ApiKeyWrite)?;
    let role = parse_role(&body.role)?;
    let (key, secret) = crate::keys::api_key_mint(
        &state.store,
        &state.pepper,
        caller.workspace_id,
        role,
        Actor::Key(caller.key_id),
    )
    .await?;
    tracing::info!(workspace_id = %caller.workspace_id, key_id = %key.id, role = %role, "API key minted");
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

/// List this workspace's keys (never the secrets).
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", operation_id = "list_api_keys",
    responses((status = 200, body = KeyList), ApiKeyAuth, RoleForbidden), security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<KeyList>, ApiError> {
    caller.require(Action::ApiKeyWrite)?;
    let keys = state.store.api_keys_list(caller.workspace_id).await?;
    Ok(Json(KeyList {
        items: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Revoke a key: it stops working at once.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", operation_id = "revoke_api_key", params(("id" = String, Path)),
    responses((status = 200, body = KeyView, description = "Revoked (also when it already was)"), PathNotFound, ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<KeyView>, ApiError> {
    caller.require(Action::ApiKeyWrite)?;
    let id: ApiKeyId = id.parse().map_err(|_| ApiError::not_found("api key"))?;
    let key = state
        .store
        .api_key_revoke_by(caller.workspace_id, id, Actor::Key(caller.key_id))
        .await?;
    tracing::info!(workspace_id = %caller.workspace_id, key_id = %id, "API key revoked");
    Ok(Json(key.into()))
}
