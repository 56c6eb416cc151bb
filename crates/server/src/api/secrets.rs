//! `/v1/secrets/{name}`: a workspace's named secrets, granted to runs by name. Write-only:
//! reads give metadata, never the value.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use ferry_core::{Action, Name};
use ferry_store::{Actor, Secret};
use secrecy::{ExposeSecret, SecretString};

use super::schemas::NamePath;
use super::{ApiJson, ApiPath};
use crate::auth::Caller;
use crate::error::responses::{ApiKeyAuth, JsonBody, PathNotFound, RoleForbidden};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The largest secret value accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// The value (at most 64 KiB of text). Never shown again.
    #[schema(value_type = String, min_length = 1)]
    pub value: SecretString,
}

impl std::fmt::Debug for PutSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PutSecret { value: [REDACTED] }")
    }
}

/// A secret's metadata.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SecretView {
    pub name: String,
    /// 1 when created, plus one per replacement.
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Secret> for SecretView {
    fn from(s: Secret) -> Self {
        SecretView {
            name: s.name.to_string(),
            version: s.version,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SecretList {
    pub items: Vec<SecretView>,
}

fn path_name(name: &str) -> Result<Name, ApiError> {
    Name::parse(name).map_err(|_| ApiError::not_found("secret"))
}

/// Write a secret: 201 when created, 200 when its value was replaced.
#[utoipa::path(put, path = "/v1/secrets/{name}", tag = "secrets", operation_id = "put_secret", params(NamePath), request_body = PutSecret,
    responses((status = 201, body = SecretView, description = "Created", links(
            ("GetSecretByName" = (operation_id = "show_secret", parameters(("name" = "$response.body#/name")))),
            ("DeleteSecretByName" = (operation_id = "delete_secret", parameters(("name" = "$response.body#/name")))),
        )),
        (status = 200, body = SecretView, description = "Its value was replaced"),
        PathNotFound,
        (status = 409, body = ErrorBody, description = "Another write of this secret won; retry (`conflict`)"),
        JsonBody, ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
    ApiJson(body): ApiJson<PutSecret>,
) -> Result<(StatusCode, Json<SecretView>), ApiError> {
    caller.require(Action::SecretWrite)?;
    let name =
        Name::parse(&name).map_err(|e| ApiError::invalid(format!("secret name {name:?} {e}")))?;
    let len = body.value.expose_secret().len();
    if len == 0 {
        return Err(ApiError::invalid("value must not be empty"));
    }
    if len > MAX_SECRET_BYTES {
        return Err(ApiError::invalid(format!(
            "value is {len} bytes; a secret may hold at most {MAX_SECRET_BYTES}"
        )));
    }
    let (secret, created) = state
        .vault
        .secret_put(
            caller.workspace_id,
            &name,
            &body.value,
            Actor::Key(caller.key_id),
        )
        .await?;
    tracing::info!(workspace_id = %caller.workspace_id, key_id = %caller.key_id, secret = %secret.name, version = secret.version, created, "Secret written");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(secret.into())))
}

/// List the workspace's secrets (metadata only).
#[utoipa::path(get, path = "/v1/secrets", tag = "secrets", operation_id = "list_secrets",
    responses((status = 200, body = SecretList), ApiKeyAuth, RoleForbidden), security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SecretList>, ApiError> {
    caller.require(Action::SecretRead)?;
    let items = state
        .store
        .secrets_list(caller.workspace_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(SecretList { items }))
}

/// Show a secret's metadata (never its value).
#[utoipa::path(get, path = "/v1/secrets/{name}", tag = "secrets", operation_id = "show_secret", params(NamePath),
    responses((status = 200, body = SecretView), PathNotFound, ApiKeyAuth, RoleForbidden), security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> Result<Json<SecretView>, ApiError> {
    caller.require(Action::SecretRead)?;
    let name = path_name(&name)?;
    Ok(Json(
        state
            .store
            .secret_get(caller.workspace_id, &name)
            .await?
            .into(),
    ))
}

/// Delete a secret.
#[utoipa::path(delete, path = "/v1/secrets/{name}", tag = "secrets", operation_id = "delete_secret", params(NamePath),
    responses((status = 204, description = "Deleted"), PathNotFound, ApiKeyAuth, RoleForbidden), security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::SecretWrite)?;
    let name = path_name(&name)?;
    state
        .store
        .secret_delete(caller.workspace_id, &name, Actor::Key(caller.key_id))
        .await?;
    tracing::info!(workspace_id = %caller.workspace_id, key_id = %caller.key_id, secret = %name, "Secret deleted");
    Ok(StatusCode::NO_CONTENT)
}
