//! Ferry as an OIDC issuer: its discovery document and JWKS, public and unauthenticated on the
//! public listener, for customers' clouds to verify the identity tokens Ferry presents
//! (see `issuer.rs`).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::error::ApiError;
use crate::issuer::{DISCOVERY_PATH, JWKS_PATH};
use crate::state::AppState;

/// How long verifiers may cache the documents. The next key is published up to a day before
/// it signs, so a cached JWKS knows it in time.
const CACHE: &str = "public, max-age=300";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(DISCOVERY_PATH, get(discovery))
        .route(JWKS_PATH, get(jwks))
}

/// OpenID Provider metadata of Ferry's issuer: `issuer` (FERRY_PUBLIC_URL) and `jwks_uri`.
/// Trust this issuer in a Google workload identity pool or an AWS IAM OIDC provider.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "identity", operation_id = "openid_configuration",
    responses((status = 200, description = "OpenID Provider metadata: issuer, jwks_uri, ES256", content_type = "application/json")))]
pub async fn discovery(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, CACHE)],
        Json(state.issuer.discovery()),
    )
}

/// The public keys (JWK set) that verify Ferry's identity tokens: the signing key, the next
/// one once due, and retired ones until their last token has expired.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "identity", operation_id = "jwks",
    responses((status = 200, description = "JWK set: {\"keys\": [ES256 P-256 keys]}", content_type = "application/json"),
        (status = 500, body = crate::error::ErrorBody, description = "An internal error; quote the request id when reporting it (`internal`)"),
        (status = 503, body = crate::error::ErrorBody, description = "The database is unavailable; try again (`unavailable`)")))]
pub async fn jwks(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match state.issuer.jwks().await {
        Ok(keys) => Ok(([(header::CACHE_CONTROL, CACHE)], Json(keys))),
        Err(crate::issuer::Error::Store(e)) => Err(e.into()),
        Err(e) => {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "Serving the JWKS failed");
            Err(ApiError::internal())
        }
    }
}
