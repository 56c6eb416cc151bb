//! Upstream text never reaches a tenant-visible field verbatim: a Cloud Run endpoint answering
//! with a canary in its bodies (errors, garbage) yields typed failures whose messages carry no
//! canary and are at most 512 characters; the cloud's own `message` about the tenant's own
//! resource is shown, cut at 512.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use ferry_core::port::PushBackend;
use ferry_core::testing::canary::{
    assert_cloud_message_cut, assert_hidden, long_message, upstream_answers,
};
use ferry_core::{PoolId, WorkspaceId};
use serde_json::json;

use crate::support::{accounts, backend_at, job, template, Secrets, PROJECT_A};

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
    for (status, content_type, body) in upstream_answers("application/json", "name") {
        let status = StatusCode::from_u16(status).unwrap();
        let e = submit_against(answering(status, content_type, body.clone()).await).await;
        assert_hidden(&e.failure.message, &body);
    }
}

#[tokio::test]
async fn the_clouds_own_message_is_shown_cut_at_512_characters() {
    let message = long_message("job image is not allowed: ");
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
    assert_cloud_message_cut(
        &e.failure.message,
        "INVALID_ARGUMENT",
        "job image is not allowed: ",
    );
}
