//! `/v1/credentials`: register, list, show, rotate and delete a workspace's cloud credentials.
//! Write-only: no response, log line or error ever holds the material.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use ferry_core::{Action, CredentialId, CredentialKind};
use ferry_store::{Actor, Credential};
use serde_json::Value;

use super::{parse_name, ApiJson, ApiPath, OptionalApiJson};
use crate::auth::Caller;
use crate::credential;
use crate::error::responses::{ApiKeyAuth, JsonBody, PathNotFound, RoleForbidden};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// A credential as shown: metadata and a fingerprint, never the material.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CredentialView {
    pub id: String,
    pub name: String,
    /// gcp-service-account-key, gcp-workload-identity, aws-access-key, aws-assume-role or
    /// aws-web-identity.
    pub kind: String,
    /// `hmac-sha256:<32 hex>` of the material under a key of this workspace: equal material
    /// has an equal fingerprint; nothing else can be learnt from it.
    pub fingerprint: String,
    /// The external id Ferry passes when it assumes the role (aws-assume-role only): put it in
    /// the role's trust policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Non-secret facts: region, role ARN and account, client email and project, the access
    /// key id's last four characters.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// The last validation's result; null until validated.
    #[schema(value_type = Option<Object>)]
    pub validation: Option<Value>,
    /// 1 at registration, plus one per rotation.
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CredentialView {
    fn new(c: Credential, external_id: Option<&str>) -> Self {
        CredentialView {
            id: c.id.to_string(),
            name: c.name.to_string(),
            kind: c.kind.as_str().to_owned(),
            fingerprint: c.fingerprint,
            external_id: (c.kind == CredentialKind::AwsAssumeRole)
                .then(|| external_id.map(str::to_owned))
                .flatten(),
            metadata: c.metadata,
            validation: c.validation,
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CredentialList {
    pub items: Vec<CredentialView>,
}

fn parse_id(s: &str) -> Result<CredentialId, ApiError> {
    s.parse().map_err(|_| ApiError::not_found("credential"))
}

async fn external_id(state: &AppState, caller: &Caller) -> Result<String, ApiError> {
    Ok(state
        .store
        .workspace_settings(caller.workspace_id)
        .await?
        .aws_external_id)
}

/// Register a credential. The body is `{"name", "kind", ...}` with the kind's fields:
/// `key` (gcp-service-account-key: the JSON key file), `config` (gcp-workload-identity: the
/// external_account configuration), `access_key_id`, `secret_access_key`, `session_token`,
/// `region` (aws-access-key), `role_arn`, `region` (aws-assume-role; Ferry generates the
/// external id), `role_arn`, `region` (aws-web-identity: assumed with Ferry's own OIDC token).
/// Keyless kinds take no `credential_source`: Ferry presents its own token (sub
/// `workspace:<id>:pool:<name>`). Admin only.
#[utoipa::path(post, path = "/v1/credentials", tag = "credentials", operation_id = "create_credential", request_body = Object,
    responses((status = 201, body = CredentialView,
            links(
                ("GetCredentialById" = (operation_id = "show_credential", parameters(("id" = "$response.body#/id")))),
                ("RotateCredentialById" = (operation_id = "rotate_credential", parameters(("id" = "$response.body#/id")))),
                ("ValidateCredentialById" = (operation_id = "validate_credential", parameters(("id" = "$response.body#/id")))),
                ("DeleteCredentialById" = (operation_id = "delete_credential", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 409, body = ErrorBody, description = "A credential of this name exists (`conflict`)"),
        JsonBody, ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<CredentialView>), ApiError> {
    caller.require(Action::CredentialWrite)?;
    let parsed = credential::parse(body, state.push.allowed_endpoints())
        .map_err(|e| ApiError::invalid(e.0))?;
    let name = parsed
        .name
        .as_deref()
        .ok_or_else(|| ApiError::invalid("name is required"))
        .and_then(|n| parse_name("name", n))?;
    let cred = state
        .vault
        .credential_create(
            caller.workspace_id,
            name,
            parsed.kind,
            &parsed.material,
            parsed.metadata,
            Actor::Key(caller.key_id),
        )
        .await?;
    tracing::info!(workspace_id = %caller.workspace_id, key_id = %caller.key_id, credential_id = %cred.id, credential = %cred.name, kind = %cred.kind, fingerprint = %cred.fingerprint, "Credential registered");
    let external = external_id(&state, &caller).await?;
    Ok((
        StatusCode::CREATED,
        Json(CredentialView::new(cred, Some(&external))),
    ))
}

/// List the workspace's credentials (metadata only).
#[utoipa::path(get, path = "/v1/credentials", tag = "credentials", operation_id = "list_credentials",
    responses((status = 200, body = CredentialList), ApiKeyAuth, RoleForbidden), security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CredentialList>, ApiError> {
    caller.require(Action::CredentialRead)?;
    let creds = state.store.credentials_list(caller.workspace_id).await?;
    let external = if creds
        .iter()
        .any(|c| c.kind == CredentialKind::AwsAssumeRole)
    {
        Some(external_id(&state, &caller).await?)
    } else {
        None
    };
    Ok(Json(CredentialList {
        items: creds
            .into_iter()
            .map(|c| CredentialView::new(c, external.as_deref()))
            .collect(),
    }))
}

/// Show a credential (metadata only).
#[utoipa::path(get, path = "/v1/credentials/{id}", tag = "credentials", operation_id = "show_credential", params(("id" = String, Path)),
    responses((status = 200, body = CredentialView), PathNotFound, ApiKeyAuth, RoleForbidden), security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CredentialView>, ApiError> {
    caller.require(Action::CredentialRead)?;
    let id = parse_id(&id)?;
    let cred = state.store.credential_get(caller.workspace_id, id).await?;
    let external = match cred.kind {
        CredentialKind::AwsAssumeRole => Some(external_id(&state, &caller).await?),
        _ => None,
    };
    Ok(Json(CredentialView::new(cred, external.as_deref())))
}

/// Rotate a credential: replace its material with new material of the same kind, under the
/// same name (the body is a registration's; `name`, if given, must be the credential's).
/// Pools using it pick up the new material. Admin only.
#[utoipa::path(put, path = "/v1/credentials/{id}", tag = "credentials", operation_id = "rotate_credential", params(("id" = String, Path)), request_body = Object,
    responses((status = 200, body = CredentialView), PathNotFound,
        (status = 409, body = ErrorBody, description = "The credential changed while this request was handled; retry (`conflict`)"),
        JsonBody, ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<CredentialView>, ApiError> {
    caller.require(Action::CredentialWrite)?;
    let id = parse_id(&id)?;
    let current = state.store.credential_get(caller.workspace_id, id).await?;
    let parsed = credential::parse(body, state.push.allowed_endpoints())
        .map_err(|e| ApiError::invalid(e.0))?;
    if let Some(name) = &parsed.name {
        if name != current.name.as_str() {
            return Err(ApiError::invalid(format!(
                "name {name:?} is not this credential's name ({:?}); a rotation keeps the name",
                current.name.as_str()
            )));
        }
    }
    let cred = state
        .vault
        .credential_rotate(
            caller.workspace_id,
            id,
            parsed.kind,
            &parsed.material,
            parsed.metadata,
            Actor::Key(caller.key_id),
        )
        .await?;
    tracing::info!(workspace_id = %caller.workspace_id, key_id = %caller.key_id, credential_id = %cred.id, credential = %cred.name, version = cred.version, fingerprint = %cred.fingerprint, "Credential rotated");
    let external = external_id(&state, &caller).await?;
    Ok(Json(CredentialView::new(cred, Some(&external))))
}

/// Delete a credential; refused (409, naming them) while pools use it. Admin only.
#[utoipa::path(delete, path = "/v1/credentials/{id}", tag = "credentials", operation_id = "delete_credential", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), PathNotFound,
        (status = 409, body = ErrorBody, description = "Pools use this credential; the message names them (`conflict`)"),
        ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::CredentialWrite)?;
    let id = parse_id(&id)?;
    state
        .store
        .credential_delete(caller.workspace_id, id, Actor::Key(caller.key_id))
        .await?;
    tracing::info!(workspace_id = %caller.workspace_id, key_id = %caller.key_id, credential_id = %id, "Credential deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateCredential {
    /// A pool using this credential: its cluster (ecs) or project (cloud-run) is checked too.
    #[schema(schema_with = super::schemas::name_or_null)]
    pub pool: Option<String>,
}

/// Validate a credential live, without side effects: each permission a pool needs is tried
/// with a read-only call, and each check says what is missing. The outcome is kept on the
/// credential (`validation`) until its next rotation. Admin only.
#[utoipa::path(post, path = "/v1/credentials/{id}/validate", tag = "credentials", operation_id = "validate_credential", params(("id" = String, Path)),
    request_body(content = Option<ValidateCredential>, description = "Optional: {\"pool\": name}"),
    responses((status = 200, body = CredentialView), PathNotFound,
        (status = 409, body = ErrorBody, description = "The credential changed while it was validated; retry (`conflict`)"),
        JsonBody, ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalApiJson(body): OptionalApiJson<ValidateCredential>,
) -> Result<Json<CredentialView>, ApiError> {
    caller.require(Action::CredentialWrite)?;
    let id = parse_id(&id)?;
    let body = body.unwrap_or_default();
    let cred = state.store.credential_get(caller.workspace_id, id).await?;
    let mut pool_name = None;
    let template = match &body.pool {
        None => serde_json::json!({}),
        Some(p) => {
            let name = parse_name("pool", p)?;
            pool_name = Some(name.clone());
            let pool = match state.store.pool_get(caller.workspace_id, &name).await {
                Ok(pool) => pool,
                Err(ferry_store::Error::NotFound { .. }) => {
                    return Err(ApiError::invalid(format!(
                        "pool {p:?} does not exist in this workspace"
                    )))
                }
                Err(e) => return Err(e.into()),
            };
            if pool.credential.as_ref() != Some(&cred.name) {
                return Err(ApiError::invalid(format!(
                    "pool {p:?} does not use credential {}; validate the credential it uses",
                    cred.name
                )));
            }
            pool.job_template
        }
    };
    let checks = state
        .push
        .validate(
            caller.workspace_id,
            &cred.name,
            cred.kind,
            pool_name.as_ref(),
            &template,
        )
        .await;
    let ok = checks
        .iter()
        .all(|c| c.outcome != ferry_core::CheckOutcome::Failed);
    let validation = serde_json::json!({
        "ok": ok,
        "checked_at": Utc::now(),
        "pool": body.pool,
        "checks": checks,
    });
    let cred = state
        .store
        .credential_set_validation(
            caller.workspace_id,
            id,
            cred.version,
            &validation,
            Actor::Key(caller.key_id),
        )
        .await?;
    let external = match cred.kind {
        CredentialKind::AwsAssumeRole => Some(external_id(&state, &caller).await?),
        _ => None,
    };
    Ok(Json(CredentialView::new(cred, external.as_deref())))
}
