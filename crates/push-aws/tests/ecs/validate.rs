//! Credential validation proves that the workspace's external id is required: a role that can
//! be assumed without it fails validation (moto does not enforce trust policies, so it plays
//! that role), and one whose trust policy demands it passes (a proxy in front of moto refuses
//! AssumeRole without an ExternalId, as AWS does for such a policy).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ferry_core::{CheckOutcome, WorkspaceId};
use ferry_moto::moto;
use serde_json::json;

use crate::support::{backend, backend_at, job, template, Secrets};

/// Forwards everything to moto, except an AssumeRole without an ExternalId: refused as AWS
/// refuses it when the trust policy has an `sts:ExternalId` condition.
async fn strict_sts(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let form = String::from_utf8_lossy(&body);
    let params: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    let is = |k: &str, v: Option<&str>| {
        params
            .iter()
            .any(|(pk, pv)| pk == k && v.is_none_or(|v| pv == v))
    };
    if is("Action", Some("AssumeRole")) && !is("ExternalId", None) {
        let xml = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>\
                   <Message>not authorized to perform: sts:AssumeRole</Message></Error>\
                   <RequestId>1</RequestId></ErrorResponse>";
        return (StatusCode::FORBIDDEN, [("content-type", "text/xml")], xml).into_response();
    }
    let url = format!(
        "{}{}",
        moto().endpoint.trim_end_matches('/'),
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut forwarded = reqwest::Client::new()
        .request(method, url)
        .body(body.to_vec());
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            forwarded = forwarded.header(k, v);
        }
    }
    let answer = forwarded.send().await.unwrap();
    let status = answer.status();
    let content_type = answer
        .headers()
        .get("content-type")
        .cloned()
        .unwrap_or_else(|| axum::http::HeaderValue::from_static("text/xml"));
    let bytes = answer.bytes().await.unwrap();
    (status, [("content-type", content_type)], bytes).into_response()
}

async fn strict_proxy() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(strict_sts);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn outcome(checks: &[ferry_core::CredentialCheck], name: &str) -> CheckOutcome {
    checks
        .iter()
        .find(|c| c.check == name)
        .map(|c| c.outcome)
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

#[tokio::test]
async fn a_role_assumable_without_the_external_id_fails_validation() {
    let a = moto().account("111111111111");
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    secrets.assume_role(ws, "aws", &a.id);
    let checks = backend(secrets)
        .validate(&job(ws, "aws", template(&a), json!({})))
        .await;
    assert_eq!(outcome(&checks, "sts:AssumeRole"), CheckOutcome::Passed);
    assert_eq!(
        outcome(&checks, "sts:ExternalId required"),
        CheckOutcome::Failed,
        "{checks:?}"
    );
    let detail = &checks
        .iter()
        .find(|c| c.check == "sts:ExternalId required")
        .unwrap()
        .message;
    assert!(detail.contains("sts:ExternalId"), "{detail}");
}

#[tokio::test]
async fn a_role_that_demands_the_external_id_passes_validation() {
    let a = moto().account("111111111111");
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    secrets.assume_role(ws, "aws", &a.id);
    let proxy = strict_proxy().await;
    let checks = backend_at(secrets, &proxy)
        .validate(&job(ws, "aws", template(&a), json!({})))
        .await;
    for name in [
        "sts:AssumeRole",
        "sts:ExternalId required",
        "sts:GetCallerIdentity",
    ] {
        assert_eq!(
            outcome(&checks, name),
            CheckOutcome::Passed,
            "{name}: {checks:?}"
        );
    }
}
