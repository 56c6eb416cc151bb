//! Upstream text never reaches a tenant-visible field verbatim: a Cloud Run endpoint answering
//! with a canary in its bodies (errors, garbage) yields typed failures whose messages carry no
//! canary and are at most 512 characters; the cloud's own `message` about the tenant's own
//! resource is shown, cut at 512.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use ferry_core::port::PushBackend;
use ferry_core::{Failure, PoolId, WorkspaceId};
use serde_json::json;

use crate::support::{accounts, backend_at, job, template, Secrets, PROJECT_A};

const CANARY: &str = "FERRY-CANARY-7f3a";

/// An endpoint answering every request with `status` and `body`.
async fn answering(status: StatusCode, content_type: &'static str, body: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { (status, [("content-type", content_type)], body).into_response() }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn submit_against(endpoint: String) -> ferry_core::port::PushError {
    let (a, _) = accounts();
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    secrets.key(ws, "gcp", &a.key_json());
    let backend = backend_at(endpoint, secrets);
    backend
        .submit(&job(ws, PoolId::new(), template(PROJECT_A), json!({})))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn upstream_bodies_never_reach_the_tenant() {
    let cases = [
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("{CANARY} stack trace"),
        ),
        (
            StatusCode::BAD_GATEWAY,
            "text/html",
            format!("<h1>{CANARY}</h1>"),
        ),
        (
            StatusCode::OK,
            "application/json",
            format!("{{\"name\": {CANARY}"),
        ),
        (StatusCode::OK, "text/plain", CANARY.repeat(100)),
    ];
    for (status, content_type, body) in cases {
        let e = submit_against(answering(status, content_type, body.clone()).await).await;
        let shown = &e.failure.message;
        assert!(!shown.contains(CANARY), "{status} {body:.40}: {shown}");
        assert!(
            shown.chars().count() <= Failure::MAX_MESSAGE_CHARS,
            "{shown}"
        );
        assert!(!shown.is_empty());
    }
}

#[tokio::test]
async fn the_clouds_own_message_is_shown_cut_at_512_characters() {
    let message = format!("job image is not allowed: {}", "x".repeat(2000));
    let body = json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}});
    let e = submit_against(
        answering(
            StatusCode::BAD_REQUEST,
            "application/json",
            body.to_string(),
        )
        .await,
    )
    .await;
    let shown = &e.failure.message;
    assert!(shown.contains("INVALID_ARGUMENT"), "{shown}");
    assert!(shown.contains("job image is not allowed"), "{shown}");
    assert_eq!(shown.chars().count(), Failure::MAX_MESSAGE_CHARS, "{shown}");
}
