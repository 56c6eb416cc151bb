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
    /// Headers the answer carries besides the body (`Retry-After`, `RateLimit-*`); boxed, as
    /// few errors have any and every `Result<_, ApiError>` carries the field.
    pub headers: Option<Box<axum::http::HeaderMap>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: None,
        }
    }

    /// Adds a header to the answer.
    pub fn with_header(
        mut self,
        name: impl axum::http::header::IntoHeaderName,
        value: axum::http::HeaderValue,
    ) -> Self {
        self.headers
            .get_or_insert_with(Default::default)
            .insert(name, value);
        self
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

/// The error answers that many routes share, for the OpenAPI document: each is an
/// [`ErrorBody`]. A handler's `#[utoipa::path]` lists the sets its extractors and checks can
/// answer (`responses((status = 200, ...), ApiKeyAuth, JsonBody)`); the route-specific ones
/// (404, 409, a 422 of its own) stay beside them as tuples. `tests/blackbox/openapi.rs`
/// checks that the sets are where the extractors are.
pub mod responses {
    use std::collections::BTreeMap;

    use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

    /// One error answer: `description`, with an [`super::ErrorBody`] as `application/json`.
    pub fn error(description: &str) -> RefOr<Response> {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
            .into()
    }

    macro_rules! error_responses {
        ($($(#[$doc:meta])* $name:ident { $($status:literal => $description:literal,)+ })+) => {$(
            $(#[$doc])*
            pub struct $name;

            impl utoipa::IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    [$(($status.to_string(), error($description)),)+].into_iter().collect()
                }
            }
        )+};
    }

    error_responses! {
        /// What `Caller` (an API key) and the store behind every such route can answer.
        ApiKeyAuth {
            401 => "No API key, an invalid or revoked one, or a run token (`unauthorized`)",
            403 => "The key's role may not do this (`forbidden`), or the workspace's IP allow-list does not include the caller's address (`ip_not_allowed`)",
            408 => "The request or its body did not arrive in time (`request_timeout`)",
            429 => "Over the key's or the workspace's rate limit (`rate_limited`); see `Retry-After`",
            500 => "An internal error; quote the request id when reporting it (`internal`)",
            503 => "The database is unavailable; try again (`unavailable`)",
        }
        /// What `Caller::require` answers to a role that may not do this.
        RoleForbidden {
            403 => "The key's role may not do this (`forbidden`), or the workspace's IP allow-list does not include the caller's address (`ip_not_allowed`)",
        }
        /// What `RunCaller` (a pushed run's `FERRY_RUN_TOKEN`) and the store can answer.
        RunTokenAuth {
            401 => "No run token, an invalid or expired one, or an API key (`unauthorized`)",
            403 => "The run token is another run's (`forbidden`)",
            408 => "The request or its body did not arrive in time (`request_timeout`)",
            429 => "Over the run's rate limit (`rate_limited`); see `Retry-After`",
            500 => "An internal error; quote the request id when reporting it (`internal`)",
            503 => "The database is unavailable; try again (`unavailable`)",
        }
        /// What a report answers when its token's attempt is not the run's in-flight one.
        RunNotInFlight {
            409 => "The token's attempt is not the run's current one, or the run has ended (`conflict`)",
        }
        /// What `Internal` (the internal listener's service token) and the store can answer.
        InternalAuth {
            401 => "No service token, or a wrong one (`unauthorized`)",
            500 => "An internal error; quote the request id when reporting it (`internal`)",
            503 => "The database is unavailable; try again (`unavailable`)",
        }
        /// What `ApiJson` answers to a body it cannot take.
        JsonBody {
            400 => "The body is not valid JSON (`malformed_json`)",
            413 => "The body is larger than this server accepts (`body_too_large`)",
            415 => "The body is not sent as `Content-Type: application/json` (`unsupported_media_type`)",
            422 => "The body is not an object of the documented fields and types, or a value is invalid (`invalid_request`)",
        }
        /// What `ApiQuery` and the handlers' checks of its values answer.
        Query {
            400 => "A query parameter is unknown or its value is invalid (`invalid_query`, `invalid_cursor`)",
        }
        /// What `ApiPath` answers to a segment that does not parse, and a lookup to one that
        /// names nothing in the caller's workspace.
        PathNotFound {
            404 => "Nothing of this id or name in the caller's workspace (`not_found`)",
        }
    }
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
        let headers = self.headers.map(|h| *h).unwrap_or_default();
        (self.status, headers, Json(body)).into_response()
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
