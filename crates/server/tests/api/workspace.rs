//! `/v1/workspace`: the AWS external id and log storage; sensitive run parameters stored
//! sealed and never shown.

use ferry_core::port::{LogLine, LogStream};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::support::App;

fn line(text: &str) -> LogLine {
    LogLine {
        ts: chrono::Utc::now(),
        stream: LogStream::Stdout,
        line: text.to_owned(),
    }
}

backend_test!(log_storage_can_be_turned_off);
async fn log_storage_can_be_turned_off(app: App) {
    let t = app.tenant("acme").await;
    let viewer = app.key(&t, "viewer").await;
    let dev = app.key(&t, "developer").await;
    let shown = app.get(&viewer, "/v1/workspace").await;
    shown.expect(200);
    assert_eq!(shown.body["store_logs"], true);
    assert_eq!(shown.body["name"], "acme");
    let patch = |token: String, body: Value| {
        let app = &app;
        async move {
            app.request(&token, reqwest::Method::PATCH, "/v1/workspace", Some(body))
                .await
        }
    };
    patch(dev.clone(), json!({"store_logs": false}))
        .await
        .expect(403);
    patch(t.admin.clone(), json!({"store_logs": "no"}))
        .await
        .expect(422);
    patch(t.admin.clone(), json!({"logs": false}))
        .await
        .expect(422);
    let off = patch(t.admin.clone(), json!({"store_logs": false})).await;
    off.expect(200);
    assert_eq!(off.body["store_logs"], false);
    assert_eq!(off.body["aws_external_id"], shown.body["aws_external_id"]);

    app.post(
        &t.admin,
        "/v1/pools",
        json!({"name": "sbx", "type": "managed"}),
    )
    .await
    .expect(201);
    let run = app
        .post(
            &t.admin,
            "/v1/runs",
            json!({"pool": "sbx", "artifact": crate::support::NOOP_DIGEST}),
        )
        .await;
    run.expect(201);
    let id: ferry_core::RunId = run.body["id"].as_str().unwrap().parse().unwrap();
    app.store()
        .run_logs_append(id, &[line("LOG-CANARY-1"), line("LOG-CANARY-2")], 1 << 20)
        .await
        .unwrap();
    let logs = app.get(&t.admin, &format!("/v1/runs/{id}/logs")).await;
    logs.expect(200);
    assert!(!logs.text.contains("LOG-CANARY"));
    let lines = logs.body["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["stream"], "ferry");
    assert!(lines[0]["line"]
        .as_str()
        .unwrap()
        .contains("Log storage is turned off"));
    assert_eq!(logs.body["truncated"], false);
}

backend_test!(sensitive_parameters_are_sealed_and_never_shown);
async fn sensitive_parameters_are_sealed_and_never_shown(app: App) {
    let t = app.tenant("acme").await;
    app.post(
        &t.admin,
        "/v1/pools",
        json!({"name": "sbx", "type": "managed"}),
    )
    .await
    .expect(201);
    let artifact = crate::support::NOOP_DIGEST;
    let run = app
        .post(
            &t.admin,
            "/v1/runs",
            json!({"pool": "sbx", "artifact": artifact, "parameters": {"n": 1},
            "sensitive_parameters": {"password": "PARAM-CANARY"}}),
        )
        .await;
    run.expect(201);
    assert_eq!(run.body["has_sensitive_parameters"], true);
    assert_eq!(run.body["parameters"], json!({"n": 1}));
    let id = run.body["id"].as_str().unwrap().to_owned();
    for reply in [
        run,
        app.get(&t.admin, &format!("/v1/runs/{id}")).await,
        app.get(&t.admin, "/v1/runs").await,
    ] {
        assert!(!reply.text.contains("PARAM-CANARY"), "{}", reply.text);
    }
    let revealed = app
        .vault()
        .run_parameters_reveal(t.id.parse().unwrap(), id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(revealed.expose_secret()).unwrap();
    assert_eq!(v, json!({"password": "PARAM-CANARY"}));
    let plain = app
        .post(
            &t.admin,
            "/v1/runs",
            json!({"pool": "sbx", "artifact": crate::support::NOOP_DIGEST}),
        )
        .await;
    assert_eq!(plain.body["has_sensitive_parameters"], false);
    app.post(
        &t.admin,
        "/v1/runs",
        json!({"pool": "sbx", "artifact": crate::support::NOOP_DIGEST, "sensitive_parameters": ["x"]}),
    )
    .await
    .expect_error(422, &["sensitive_parameters must be a JSON object"]);
}
