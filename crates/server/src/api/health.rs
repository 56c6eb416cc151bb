//! Liveness, readiness, metrics and the OpenAPI document.
//!
//! `/metrics` is served on the internal listener, open like the probes (Prometheus inside the
//! cluster scrapes it there; the listener is on a private network, and the metrics name no
//! tenant). On the public listener it does not exist (404) unless `FERRY_METRICS_TOKEN` is
//! set; then it answers only `Authorization: Bearer <that token>` (401 otherwise).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

/// The routes both listeners serve (`/metrics` is each listener's own: see the module).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The process can serve: its database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready"), (status = 503, description = "Database unavailable")))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(error) => {
            tracing::warn!(error = %error, "Not ready: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": "database"})),
            )
        }
    }
}

/// Prometheus exposition (OpenMetrics text) of this process's counters. On the internal
/// listener, open; on the public one, see [`public_metrics`].
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus metrics (on the public listener only with FERRY_METRICS_TOKEN as a bearer token)", content_type = "application/openmetrics-text"),
    (status = 401, description = "Public listener with FERRY_METRICS_TOKEN set: no bearer, or not that token (`unauthorized`)", body = crate::error::ErrorBody),
    (status = 404, description = "Public listener without FERRY_METRICS_TOKEN: not served here (`not_found`)", body = crate::error::ErrorBody),
))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
}

/// `/metrics` on the public listener: 404 unless `FERRY_METRICS_TOKEN` is set, then only for
/// that token as a bearer (compared in constant time), 401 for anything else.
pub async fn public_metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, crate::error::ApiError> {
    let Some(token) = &state.metrics_token else {
        return Err(crate::error::ApiError::not_found("route"));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    if !given.is_some_and(|g| token.matches(g)) {
        return Err(crate::error::ApiError::unauthorized(
            "/metrics on this listener needs `Authorization: Bearer <FERRY_METRICS_TOKEN>`",
        ));
    }
    Ok(metrics(State(state)).await.into_response())
}

/// This API's OpenAPI 3.1 document, generated from the code.
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}
