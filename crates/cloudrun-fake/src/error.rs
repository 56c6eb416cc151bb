//! Errors in Google's JSON shape: `{"error": {"code", "message", "status", "details"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::validate::Violation;

/// An error answer, as Google's front end renders a `google.rpc.Status`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: StatusCode,
    /// The canonical code name: `INVALID_ARGUMENT`, `NOT_FOUND`, ...
    pub status: &'static str,
    pub message: String,
    pub details: Vec<Value>,
}

impl ApiError {
    pub fn new(code: StatusCode, status: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 400 with one `BadRequest` detail listing every violation; the message is the first one's.
    pub fn invalid(violations: &[Violation]) -> Self {
        let message = violations
            .first()
            .map_or_else(|| "Invalid request.".to_owned(), |v| v.description.clone());
        let field_violations: Vec<Value> = violations
            .iter()
            .map(|v| json!({"field": v.field, "description": v.description}))
            .collect();
        Self {
            details: vec![json!({
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": field_violations,
            })],
            ..Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
        }
    }

    pub fn invalid_field(field: &str, description: impl Into<String>) -> Self {
        Self::invalid(&[Violation {
            field: field.to_owned(),
            description: description.into(),
        }])
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn unauthenticated(why: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            format!(
                "Request had invalid authentication credentials. Expected OAuth 2 access token, \
                 login cookie or other valid authentication credential. ({why})"
            ),
        )
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "ALREADY_EXISTS", message)
    }

    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "FAILED_PRECONDITION", message)
    }

    pub fn aborted(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "ABORTED", message)
    }

    pub fn unimplemented(method: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "UNIMPLEMENTED",
            format!("The fake does not implement {method}."),
        )
    }

    /// An injected fault: 429 `RESOURCE_EXHAUSTED`, 503 `UNAVAILABLE`, or another status.
    pub fn injected(code: StatusCode) -> Self {
        let (status, message) = match code.as_u16() {
            429 => (
                "RESOURCE_EXHAUSTED",
                "Quota exceeded (injected by the fake).",
            ),
            503 => (
                "UNAVAILABLE",
                "The service is currently unavailable (injected by the fake).",
            ),
            500 => ("INTERNAL", "Internal error (injected by the fake)."),
            504 => (
                "DEADLINE_EXCEEDED",
                "Deadline exceeded (injected by the fake).",
            ),
            _ => ("UNKNOWN", "Error injected by the fake."),
        };
        Self::new(code, status, message)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut error = json!({
            "code": self.code.as_u16(),
            "message": self.message,
            "status": self.status,
        });
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details.clone());
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, axum::Json(self.body())).into_response()
    }
}
