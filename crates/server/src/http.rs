//! The HTTP stack around the routes: the body limit and timeouts, request ids, error bodies
//! that carry the request id, and the per-request log line and counter. (The listeners
//! themselves are the edge's: `crate::edge::listener`.)

use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

use crate::error::ApiError;
use crate::state::AppState;

/// Wraps routes with the body limit, request ids, error bodies, tracing and metrics.
pub(crate) fn app(routes: Router<AppState>, state: &AppState) -> Router {
    let header = axum::http::HeaderName::from_static("x-request-id");
    routes
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.edge.settings.body_timeout,
        ))
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
        .with_state(state.clone())
}

/// Bounds the time from a request's head to its response's head (`FERRY_REQUEST_TIMEOUT_S`;
/// ten times that for artifact uploads): 408 `request_timeout` after it. A followed stream is
/// bounded only until it starts.
async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let base = state.edge.settings.request_timeout;
    let limit = if req.uri().path() == "/v1/artifacts" && req.method() == axum::http::Method::POST {
        base * 10
    } else {
        base
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => request_timeout(limit).into_response(),
    }
}

/// 408: the request (or its body) took longer than `limit`.
pub(crate) fn request_timeout(limit: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request was not completed within {} s; send the whole body promptly, or ask the \
             operator about FERRY_REQUEST_TIMEOUT_S and FERRY_BODY_TIMEOUT_S",
            limit.as_secs()
        ),
    )
}

/// Logs and counts each request under its route template, and puts the request id into
/// error bodies.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("")
        .to_owned();
    let span = tracing::info_span!("request", %request_id, %method, %route);
    let started = std::time::Instant::now();
    let response = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = response.status();
    state
        .metrics
        .record_request(method.as_str(), &route, status.as_u16());
    span.in_scope(|| {
        tracing::debug!(
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Request handled"
        );
    });
    if status.is_client_error() || status.is_server_error() {
        return with_request_id(response, &request_id).await;
    }
    response
}

/// Adds `request_id` to a JSON error body.
async fn with_request_id(response: Response, request_id: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (parts.status, "").into_response();
    };
    let mut value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    if let Some(err) = value.get_mut("error").and_then(|e| e.as_object_mut()) {
        err.insert(
            "request_id".into(),
            serde_json::Value::String(request_id.to_owned()),
        );
    }
    let body = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}
