//! The routes: public (`/v1/...`, API keys), internal (`/internal/v1/...`, service token),
//! and operational (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`), plus the extractors
//! that turn malformed requests into the API's error format.

pub mod api_keys;
pub mod health;
pub mod internal;
pub mod pools;
pub mod runs;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// The public listener's routes.
pub fn public_router() -> Router<AppState> {
    Router::new()
        .route("/v1/pools", post(pools::create).get(pools::list))
        .route(
            "/v1/pools/{name}",
            get(pools::show).patch(pools::update).delete(pools::delete),
        )
        .route("/v1/runs", post(runs::create).get(runs::list))
        .route("/v1/runs/{id}", get(runs::show))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/v1/runs/{id}/events", get(runs::events))
        .route("/v1/runs/{id}/logs", get(runs::logs))
        .route("/v1/api-keys", post(api_keys::create).get(api_keys::list))
        .route("/v1/api-keys/{id}", axum::routing::delete(api_keys::revoke))
        .merge(health::router())
}

/// The internal listener's routes.
pub fn internal_router() -> Router<AppState> {
    Router::new()
        .route(
            "/internal/v1/workspaces",
            post(internal::workspace_create).get(internal::workspaces_list),
        )
        .route(
            "/internal/v1/workspaces/{id}/api-keys",
            post(internal::api_key_create),
        )
        .merge(health::router())
}

/// JSON body extractor answering malformed bodies in the API's error format.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    let text = r.body_text();
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {}", detail(&text)),
        ),
        JsonRejection::JsonDataError(_) => ApiError::invalid(detail(&text)),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than this server accepts",
        ),
        _ => ApiError::bad_request("bad_request", detail(&text)),
    }
}

/// serde's message without axum's generic preamble.
fn detail(text: &str) -> String {
    text.strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .or_else(|| text.strip_prefix("Failed to parse the request body as JSON: "))
        .unwrap_or(text)
        .to_owned()
}

/// Query-string extractor answering malformed queries in the API's error format.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r: QueryRejection| {
                ApiError::bad_request(
                    "invalid_query",
                    r.body_text()
                        .replace("Failed to deserialize query string: ", ""),
                )
            })
    }
}

/// Path extractor: a path segment that does not parse names nothing that exists (404).
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|_: PathRejection| ApiError::not_found("resource"))
    }
}

/// Parses a user-chosen name from a request field, naming the field on error.
pub fn parse_name(field: &str, s: &str) -> Result<ferry_core::Name, ApiError> {
    ferry_core::Name::parse(s).map_err(|e| ApiError::invalid(format!("{field} {s:?} {e}")))
}
