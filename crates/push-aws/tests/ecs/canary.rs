//! Upstream text never reaches a tenant-visible field verbatim: an ECS endpoint answering with
//! a canary in its bodies (errors, garbage) yields typed failures whose messages carry no
//! canary and are at most 512 characters; ECS's own `message` about the tenant's own resource
//! is shown, cut at 512.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use ferry_core::port::PushBackend;
use ferry_core::testing::canary::{
    assert_cloud_message_cut, assert_hidden, long_message, upstream_answers,
};
use ferry_core::WorkspaceId;
use ferry_moto::moto;
use serde_json::json;

use crate::support::{backend_at, job, template, Secrets};

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
    let a = moto().account("123456789012");
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    // An access key: every call goes to `endpoint`, none to STS first.
    secrets.access_key(ws, "aws");
    backend_at(secrets, &endpoint)
        .submit(&job(ws, "aws", template(&a), json!({})))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn upstream_bodies_never_reach_the_tenant() {
    for (status, content_type, body) in
        upstream_answers("application/x-amz-json-1.1", "taskDefinition")
    {
        let status = StatusCode::from_u16(status).unwrap();
        let e = submit_against(answering(status, content_type, body.clone()).await).await;
        assert_hidden(&e.failure.message, &body);
    }
}

#[tokio::test]
async fn the_clouds_own_message_is_shown_cut_at_512_characters() {
    let message = long_message("Container image is not valid: ");
    let body = json!({"__type": "ClientException", "message": message});
    let e = submit_against(
        answering(
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.1",
            body.to_string(),
        )
        .await,
    )
    .await;
    assert_cloud_message_cut(
        &e.failure.message,
        "ClientException",
        "Container image is not valid: ",
    );
}
