//! The routes: public (`/v1/...`, API keys), internal (`/internal/v1/...`, service token),
//! and operational (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`), plus the extractors
//! that turn malformed requests into the API's error format.

pub mod api_keys;
pub mod artifacts;
pub mod audit;
pub mod credentials;
pub mod health;
pub mod internal;
pub mod oidc;
pub mod pools;
pub mod reports;
pub mod runs;
pub mod schemas;
pub mod secrets;
pub mod streams;
pub mod workspace;

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
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
        .route(
            "/v1/artifacts",
            post(artifacts::upload).get(artifacts::list).layer(
                axum::extract::DefaultBodyLimit::max(artifacts::MAX_ARTIFACT_BYTES),
            ),
        )
        .route("/v1/artifacts/{digest}", get(artifacts::show))
        .route("/v1/runs", post(runs::create).get(runs::list))
        .route("/v1/runs/{id}", get(runs::show))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/v1/runs/{id}/events", get(runs::events))
        .route(
            "/v1/runs/{id}/logs",
            get(runs::logs).post(reports::post_logs),
        )
        .route("/v1/runs/{id}/result", post(reports::post_result))
        .route(
            "/v1/credentials",
            post(credentials::create).get(credentials::list),
        )
        .route(
            "/v1/credentials/{id}",
            get(credentials::show)
                .put(credentials::rotate)
                .delete(credentials::delete),
        )
        .route("/v1/credentials/{id}/validate", post(credentials::validate))
        .route("/v1/secrets", get(secrets::list))
        .route(
            "/v1/secrets/{name}",
            get(secrets::show).put(secrets::put).delete(secrets::delete),
        )
        .route("/v1/audit", get(audit::list))
        .route(
            "/v1/workspace",
            get(workspace::show).patch(workspace::update),
        )
        .route(
            "/v1/workspace/ip-allowlist",
            get(workspace::ip_allowlist_show).put(workspace::ip_allowlist_set),
        )
        .route("/v1/api-keys", post(api_keys::create).get(api_keys::list))
        .route("/v1/api-keys/{id}", axum::routing::delete(api_keys::revoke))
        .route("/metrics", get(health::public_metrics))
        .merge(health::router())
        .merge(oidc::router())
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
        .route("/metrics", get(health::metrics))
        .merge(health::router())
}

/// JSON body extractor answering malformed bodies in the API's error format.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => object_body(value).map(ApiJson),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// An optional JSON body: none at all (or only whitespace) is `None`; any other body is taken
/// as [`ApiJson`] takes it (`Content-Type: application/json`, valid JSON, an object).
pub struct OptionalApiJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalApiJson(None));
        }
        if !json {
            return Err(unsupported_media_type());
        }
        match axum::Json::<serde_json::Value>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => object_body(value).map(|v| OptionalApiJson(Some(v))),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// Whether the request says its body is JSON (`application/json` or `application/*+json`),
/// as axum's `Json` decides it.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// A request body's JSON as `T`: an object with named fields, nothing else (serde's derived
/// structs would also take their fields as a positional array).
fn object_body<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid(format!(
            "expected a JSON object with named fields as the body, got {}",
            json_kind(&value)
        )));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::invalid(inner.to_string())
        } else {
            ApiError::invalid(format!("{path}: {inner}"))
        }
    })
}

/// `deserialize_with` for a nested struct field: accepts only a JSON object (or null), never
/// the positional array serde's derive would also take.
pub fn object_only<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    use serde::Deserialize;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => {
            serde_path_to_error::deserialize(v).map(Some).map_err(|e| {
                let path = e.path().to_string();
                serde::de::Error::custom(format!("{path}: {}", e.into_inner()))
            })
        }
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a JSON object, got {}",
            json_kind(&other)
        ))),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    if body_timed_out(&r) {
        return body_timeout();
    }
    let status = r.status();
    let text = r.body_text();
    match r {
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {}", detail(&text)),
        ),
        JsonRejection::JsonDataError(_) => ApiError::invalid(detail(&text)),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => body_too_large(),
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

/// Raw body extractor (an artifact's bytes, an optional JSON body parsed by hand) answering a
/// body it cannot read, one over the route's size limit above all, in the API's error format.
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|r: BytesRejection| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    body_too_large()
                } else if body_timed_out(&r) {
                    body_timeout()
                } else {
                    ApiError::bad_request("bad_request", r.body_text())
                }
            })
    }
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON with `Content-Type: application/json`",
    )
}

/// Whether reading the body failed because it stalled (`FERRY_BODY_TIMEOUT_S`).
fn body_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

fn body_timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the request body stopped arriving (FERRY_BODY_TIMEOUT_S); send it without pauses",
    )
}

fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the request body is larger than this server accepts",
    )
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
