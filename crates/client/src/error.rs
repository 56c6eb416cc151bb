//! The client's error type, and the decoding of Ferry's JSON error bodies into it.

/// What went wrong talking to Ferry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL given to [`crate::Client::new`] is not an http(s) URL.
    #[error("invalid Ferry URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// The token cannot be sent in an HTTP header (it holds control characters).
    #[error("the API key or token holds characters an HTTP header cannot carry")]
    InvalidToken,

    /// A name or id that cannot be part of a URL path (empty, `.` or `..`).
    #[error("{0:?} is not a valid name or id")]
    InvalidName(String),

    /// The HTTP client could not be built (TLS initialisation).
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),

    /// No connection could be made: refused, DNS failure or timeout.
    #[error("cannot reach Ferry at {url} (is `ferry serve` running? set FERRY_URL)")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// A connection was made but broke before the whole response arrived.
    #[error("the connection to Ferry at {url} broke")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// Ferry answered with an error status.
    #[error("{}", api_display(*.status, .code, .message, .request_id.as_deref()))]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },

    /// Ferry answered with a body that is not the documented shape.
    #[error("cannot decode Ferry's answer to {what}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// A server-sent event stream broke the protocol.
    #[error("malformed event stream from {what}: {reason}")]
    Stream { what: String, reason: String },
}

impl Error {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The machine-readable code of an API error (`not_found`, `conflict`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether retrying the same request later may succeed: the server was not reached, the
    /// connection broke, or a proxy or the server said it is briefly unavailable (502, 503,
    /// 504, as during a restart).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. }
                | Error::Transport { .. }
                | Error::Api {
                    status: 502..=504,
                    ..
                }
        )
    }
}

fn api_display(status: u16, code: &str, message: &str, request_id: Option<&str>) -> String {
    let mut s = format!("{message} ({code}, HTTP {status}");
    if let Some(id) = request_id {
        s.push_str(", request id ");
        s.push_str(id);
    }
    s.push(')');
    if status == 401 {
        s.push_str("; check FERRY_API_KEY (`ferry admin bootstrap` mints the first admin key)");
    }
    s
}

/// Longest error body text kept as a message when the body is not Ferry's JSON error shape.
const MAX_RAW_MESSAGE: usize = 2000;

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
    #[serde(default)]
    request_id: Option<String>,
}

/// Builds the error for a non-success response from its status, its `x-request-id` header (used
/// when the body carries no request id) and its body.
pub(crate) fn api_error(status: u16, header_request_id: Option<String>, body: &[u8]) -> Error {
    if let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) {
        return Error::Api {
            status,
            code: error.code,
            message: error.message,
            request_id: error.request_id.or(header_request_id),
        };
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no message")
            .to_owned()
    } else if text.len() > MAX_RAW_MESSAGE {
        let mut end = MAX_RAW_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    } else {
        text.to_owned()
    };
    Error::Api {
        status,
        code: format!("http_{status}"),
        message,
        request_id: header_request_id,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts(e: Error) -> (u16, String, String, Option<String>) {
        match e {
            Error::Api {
                status,
                code,
                message,
                request_id,
            } => (status, code, message, request_id),
            other => panic!("not an API error: {other:?}"),
        }
    }

    #[test]
    fn decodes_the_documented_shape() {
        let body = br#"{"error":{"code":"not_found","message":"pool \"x\" not found","request_id":"r-1"}}"#;
        let (status, code, message, rid) = parts(api_error(404, None, body));
        assert_eq!(status, 404);
        assert_eq!(code, "not_found");
        assert_eq!(message, "pool \"x\" not found");
        assert_eq!(rid.as_deref(), Some("r-1"));
    }

    #[test]
    fn body_request_id_wins_over_header() {
        let body = br#"{"error":{"code":"c","message":"m","request_id":"body"}}"#;
        let (_, _, _, rid) = parts(api_error(500, Some("header".into()), body));
        assert_eq!(rid.as_deref(), Some("body"));
    }

    #[test]
    fn header_request_id_fills_a_missing_one() {
        let body = br#"{"error":{"code":"c","message":"m"}}"#;
        let (_, _, _, rid) = parts(api_error(500, Some("header".into()), body));
        assert_eq!(rid.as_deref(), Some("header"));
    }

    #[test]
    fn tolerates_extra_fields() {
        let body = br#"{"error":{"code":"c","message":"m","details":{"field":"name"}},"x":1}"#;
        let (_, code, message, _) = parts(api_error(422, None, body));
        assert_eq!((code.as_str(), message.as_str()), ("c", "m"));
    }

    #[test]
    fn other_shapes_become_http_status_codes() {
        let cases: &[(u16, &[u8], &str)] = &[
            (502, b"Bad gateway from proxy\n", "Bad gateway from proxy"),
            (500, br#"{"message":"flat"}"#, r#"{"message":"flat"}"#),
            (
                500,
                br#"{"error":"just a string"}"#,
                r#"{"error":"just a string"}"#,
            ),
            (503, b"", "Service Unavailable"),
            (404, b"  \n", "Not Found"),
            (599, b"", "no message"),
            (400, b"\xff\xfe bad utf8", "\u{fffd}\u{fffd} bad utf8"),
        ];
        for (status, body, want) in cases {
            let (s, code, message, rid) = parts(api_error(*status, None, body));
            assert_eq!(s, *status);
            assert_eq!(code, format!("http_{status}"));
            assert_eq!(message, *want, "body {body:?}");
            assert_eq!(rid, None);
        }
    }

    #[test]
    fn long_raw_bodies_are_cut() {
        let body = "é".repeat(MAX_RAW_MESSAGE);
        let (_, _, message, _) = parts(api_error(500, None, body.as_bytes()));
        assert!(message.len() <= MAX_RAW_MESSAGE + '…'.len_utf8());
        assert!(message.ends_with('…'));
    }

    #[test]
    fn display_names_code_status_and_request_id() {
        let e = api_error(
            409,
            None,
            br#"{"error":{"code":"conflict","message":"pool exists","request_id":"abc"}}"#,
        );
        assert_eq!(
            e.to_string(),
            "pool exists (conflict, HTTP 409, request id abc)"
        );
    }

    #[test]
    fn unauthorized_hints_at_the_api_key() {
        let e = api_error(
            401,
            None,
            br#"{"error":{"code":"unauthorized","message":"invalid API key"}}"#,
        );
        let s = e.to_string();
        assert!(
            s.starts_with("invalid API key (unauthorized, HTTP 401)"),
            "{s}"
        );
        assert!(s.contains("FERRY_API_KEY"), "{s}");
        assert!(s.contains("ferry admin bootstrap"), "{s}");
    }

    #[test]
    fn accessors() {
        let e = api_error(404, None, b"");
        assert_eq!(e.status(), Some(404));
        assert_eq!(e.code(), Some("http_404"));
        assert!(!e.is_transient());
        for (status, transient) in [
            (400, false),
            (500, false),
            (502, true),
            (503, true),
            (504, true),
        ] {
            assert_eq!(
                api_error(status, None, b"").is_transient(),
                transient,
                "{status}"
            );
        }
    }
}
