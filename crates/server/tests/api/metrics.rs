//! `/metrics`: open on the internal listener; on the public one it does not exist unless
//! `FERRY_METRICS_TOKEN` is set, and then only for that bearer token. Counters are kept as
//! things happen (no query per scrape) and carry no tenant.

use serde_json::json;

use crate::support::{App, Kind, NOOP_DIGEST};

async fn scrape(app: &App, base: &str, bearer: Option<&str>) -> (u16, String, String) {
    let mut req = app.http.get(format!("{base}/metrics"));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ct, r.text().await.unwrap())
}

backend_test!(metrics_are_internal_and_count_runs_as_they_happen);
async fn metrics_are_internal_and_count_runs_as_they_happen(app: App) {
    // Not on the public listener without a token, whatever the caller sends.
    let t = app.tenant("acme").await;
    assert_eq!(scrape(&app, &app.url, None).await.0, 404);
    assert_eq!(scrape(&app, &app.url, Some(&t.admin)).await.0, 404);

    app.post(
        &t.admin,
        "/v1/pools",
        json!({"name": "sbx", "type": "managed"}),
    )
    .await
    .expect(201);
    let submit = |key: Option<&str>| {
        let mut body = json!({"pool": "sbx", "artifact": NOOP_DIGEST});
        if let Some(k) = key {
            body["idempotency_key"] = json!(k);
        }
        body
    };
    let first = app.post(&t.admin, "/v1/runs", submit(None)).await;
    first.expect(201);
    app.post(&t.admin, "/v1/runs", submit(Some("once")))
        .await
        .expect(201);
    // An idempotent replay is not a submission.
    app.post(&t.admin, "/v1/runs", submit(Some("once")))
        .await
        .expect(200);
    let run = first.body["id"].as_str().unwrap();
    // Not started (this server has no executors): the API's cancel ends it.
    app.post(&t.admin, &format!("/v1/runs/{run}/cancel"), json!({}))
        .await
        .expect(202);

    // Open on the internal listener: Prometheus scrapes it there without credentials.
    let (status, ct, text) = scrape(&app, &app.internal_url, None).await;
    assert_eq!(status, 200, "{text}");
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    for line in [
        r#"ferry_runs_submitted_total{pool_type="managed"} 2"#,
        r#"ferry_runs_finished_total{pool_type="managed",state="cancelled"} 1"#,
        r#"ferry_http_requests_total{method="POST",route="/v1/runs",status="201"} 2"#,
        r#"ferry_http_requests_total{method="POST",route="/v1/runs",status="200"} 1"#,
        r#"ferry_http_requests_total{method="GET",route="/metrics",status="404"} 2"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    assert!(
        text.contains("# TYPE ferry_runs_submitted counter"),
        "{text}"
    );
    // No tenant in the metrics: no workspace, run, key or pool name.
    for tenant in [t.id.as_str(), run, "acme", "sbx"] {
        assert!(!text.contains(tenant), "{tenant} in the metrics:\n{text}");
    }
    // A scrape reads no runs: the counters do not change with the database behind them.
    app.exec("DELETE FROM run_events; DELETE FROM runs").await;
    let (_, _, again) = scrape(&app, &app.internal_url, None).await;
    assert!(again
        .lines()
        .any(|l| l == r#"ferry_runs_submitted_total{pool_type="managed"} 2"#));
}

const TOKEN: &str = "fry_metrics_test_token_0123456789";

/// With a metrics token (`FERRY_METRICS_TOKEN`), the public listener serves `/metrics` to
/// that bearer token only.
mod public_metrics_with_a_token {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        crate::support::run_configured(
            Kind::Sqlite,
            |c| c.metrics_token = Some(TOKEN.to_owned().into()),
            need_the_token,
        )
        .await;
    }

    async fn need_the_token(app: App) {
        let t = app.tenant("acme").await;
        for wrong in [
            None,
            Some("wrong"),
            Some(&t.admin[..]),
            Some(&TOKEN[..TOKEN.len() - 1]),
        ] {
            let (status, _, text) = scrape(&app, &app.url, wrong).await;
            assert_eq!(status, 401, "{wrong:?}: {text}");
        }
        let (status, ct, text) = scrape(&app, &app.url, Some(TOKEN)).await;
        assert_eq!(status, 200, "{text}");
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        assert!(text.contains("ferry_http_requests_total{"), "{text}");
        // The internal listener stays open.
        assert_eq!(scrape(&app, &app.internal_url, None).await.0, 200);
    }
}
