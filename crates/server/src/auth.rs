//! Who is calling: an API key (public listener) or the service token (internal listener).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ferry_core::{Action, ApiKeyId, Role, WorkspaceId};

use crate::error::ApiError;
use crate::state::AppState;

/// The caller of a public route: a workspace and a role, from a valid API key.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub workspace_id: WorkspaceId,
    pub role: Role,
    pub key_id: ApiKeyId,
}

impl Caller {
    /// Refuses (403) unless the caller's role allows `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.role.allows(action) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the {} role may not do this ({action:?}); use a key with a stronger role",
                self.role
            )))
        }
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized("missing credentials: send `Authorization: Bearer <api key>`")
        })?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <api key>`")
        })?;
    Ok(token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if token.starts_with(crate::run_token::PREFIX) {
            return Err(ApiError::unauthorized(
                "a run token may only post its own run's logs and result; this route needs an API key",
            ));
        }
        let hash = state.pepper.hash(token);
        let (key, allow) = match state.store.api_key_authenticate(&hash).await {
            Ok(found) => found,
            Err(ferry_store::Error::NotFound { .. }) => {
                return Err(ApiError::unauthorized("invalid API key"));
            }
            Err(e) => return Err(e.into()),
        };
        if key.revoked_at.is_some() {
            return Err(ApiError::unauthorized("this API key has been revoked"));
        }
        state
            .edge
            .admit_key(parts, key.workspace_id, key.id, &allow)?;
        Ok(Caller {
            workspace_id: key.workspace_id,
            role: key.role,
            key_id: key.id,
        })
    }
}

/// The caller of an internal route: holds the service token.
#[derive(Debug, Clone, Copy)]
pub struct Internal;

impl FromRequestParts<AppState> for Internal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if ferry_crypto::constant_time_eq(&state.pepper.hash(token), &state.internal_token_hash) {
            Ok(Internal)
        } else {
            Err(ApiError::unauthorized("invalid internal service token"))
        }
    }
}

/// The caller of a run-report route: a pushed run's container, holding its run token.
#[derive(Debug, Clone, Copy)]
pub struct RunCaller {
    pub workspace_id: WorkspaceId,
    pub run_id: ferry_core::RunId,
    pub attempt: u32,
}

impl FromRequestParts<AppState> for RunCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if !token.starts_with(crate::run_token::PREFIX) {
            return Err(ApiError::unauthorized(
                "this route takes the run's FERRY_RUN_TOKEN, not an API key",
            ));
        }
        let claims = state
            .run_tokens
            .verify(token, chrono::Utc::now())
            .map_err(ApiError::unauthorized)?;
        state.edge.admit_run(claims.run_id)?;
        Ok(RunCaller {
            workspace_id: claims.workspace_id,
            run_id: claims.run_id,
            attempt: claims.attempt,
        })
    }
}
