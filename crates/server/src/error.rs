//! The API's one error type and its JSON shape: `{"error": {"code", "message", "request_id"}}`.
//! 4xx says what the caller did wrong; 5xx logs the detail and answers a generic message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An error answered to an API caller.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; quote the request id when reporting it",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database is unavailable; try again",
        )
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `invalid_request`, `conflict`, ...
    pub code: String,
    /// What went wrong and what to fix.
    pub message: String,
    /// The request's id (also in the `x-request-id` header), for support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                request_id: None,
            },
        };
        // The request id is filled in by the middleware, which knows it.
        (self.status, Json(body)).into_response()
    }
}

impl From<ferry_store::Error> for ApiError {
    fn from(e: ferry_store::Error) -> Self {
        use ferry_store::Error as E;
        match e {
            E::NotFound { kind } => ApiError::not_found(kind),
            E::Conflict { .. } => ApiError::conflict(e.to_string()),
            E::InUse(msg) => ApiError::conflict(msg),
            E::Invalid(msg) => ApiError::invalid(msg),
            E::Changed { kind } => ApiError::conflict(format!(
                "the {kind} changed while this request was handled; retry"
            )),
            E::Stale { .. } => {
                ApiError::conflict("the run changed while this request was handled; retry")
            }
            E::Transition(t) => ApiError::conflict(t.to_string()),
            E::BadCursor => ApiError::bad_request("invalid_cursor", e.to_string()),
            ref other if other.is_unavailable() => {
                tracing::error!(error = %other, source = ?std::error::Error::source(other), "Database unavailable");
                ApiError::unavailable()
            }
            other => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "Store error");
                ApiError::internal()
            }
        }
    }
}

impl From<crate::vault::Error> for ApiError {
    fn from(e: crate::vault::Error) -> Self {
        use crate::vault::Error as E;
        match e {
            E::Store(e) => e.into(),
            E::KindMismatch { .. } => ApiError::invalid(e.to_string()),
            E::Crypto { workspace, source } => {
                // The chain names what failed (a moved value, a missing root key), never a
                // secret: ferry-crypto's errors carry none.
                tracing::error!(workspace_id = %workspace, error = %source, source = ?std::error::Error::source(&source), "Sealing or opening failed");
                ApiError::internal()
            }
        }
    }
}
