//! Bad input, one test per class: each answer has the right status and code, a message that
//! says what to fix, a request id equal to the `x-request-id` header, and nothing was written.

use serde_json::json;

use crate::support::{artifact, spawn_app, App, Reply};

/// Sends `body` as JSON with acme's admin key.
async fn send(app: &App, method: &str, path: &str, body: &str) -> Reply {
    app.call_admin(method, path, Some(body)).await
}

/// (method, path, JSON body, status, error code, what the message must mention).
type Case<'a> = (&'a str, &'a str, &'a str, u16, &'a str, &'a [&'a str]);

/// Sends the cases and checks each error (naming every case answered with another status);
/// then checks nothing was written.
async fn check_cases(app: &App, cases: &[Case<'_>]) {
    let before = app.counts().await;
    let mut wrong = Vec::new();
    for (method, path, body, status, code, mentions) in cases {
        let reply = send(app, method, path, body).await;
        if reply.status != *status {
            let shown: String = body.chars().take(200).collect();
            wrong.push(format!(
                "{method} {path} {shown} -> HTTP {} (want {status}): {}",
                reply.status, reply.text
            ));
            continue;
        }
        reply
            .assert_error(*status, code)
            .assert_message_mentions(mentions);
    }
    assert!(
        wrong.is_empty(),
        "{} case(s) answered wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(
        app.counts().await,
        before,
        "a refused request wrote something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let cases: &[Case] = &[
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed""#,
            400,
            "malformed_json",
            &["not valid JSON"],
        ),
        (
            "POST",
            "/v1/pools",
            "name=x&type=managed",
            400,
            "malformed_json",
            &["not valid JSON"],
        ),
        (
            "POST",
            "/v1/pools",
            "",
            400,
            "malformed_json",
            &["not valid JSON"],
        ),
        (
            "POST",
            "/v1/runs",
            r#"{"pool": "sbx",}"#,
            400,
            "malformed_json",
            &["not valid JSON"],
        ),
        (
            "PATCH",
            "/v1/pools/sbx",
            "{paused: true}",
            400,
            "malformed_json",
            &["not valid JSON"],
        ),
        (
            "POST",
            "/v1/api-keys",
            "[",
            400,
            "malformed_json",
            &["not valid JSON"],
        ),
    ];
    check_cases(&app, cases).await;
    assert!(!app.admin().get_pool("sbx").await.unwrap().paused);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_named() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let a = artifact();
    let run = format!(r#"{{"pool": "sbx", "artifact": "{a}", "priority": 9}}"#);
    let cases: &[Case] = &[
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "colour": "red"}"#,
            422,
            "invalid_request",
            &["colour"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "limits": {"memory": 64}}"#,
            422,
            "invalid_request",
            &["memory"],
        ),
        (
            "POST",
            "/v1/runs",
            &run,
            422,
            "invalid_request",
            &["priority"],
        ),
        (
            "PATCH",
            "/v1/pools/sbx",
            r#"{"pause": true}"#,
            422,
            "invalid_request",
            &["pause"],
        ),
        (
            "POST",
            "/v1/api-keys",
            r#"{"role": "viewer", "name": "ci"}"#,
            422,
            "invalid_request",
            &["name"],
        ),
    ];
    check_cases(&app, cases).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_are_422() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let a = artifact();
    let params = format!(r#"{{"pool": "sbx", "artifact": "{a}", "parameters": [1, 2]}}"#);
    let timeout = format!(r#"{{"pool": "sbx", "artifact": "{a}", "timeout_s": "ten"}}"#);
    let cases: &[Case] = &[
        (
            "POST",
            "/v1/pools",
            r#"{"name": 5, "type": "managed"}"#,
            422,
            "invalid_request",
            &["name", "expected a string"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "paused": "yes"}"#,
            422,
            "invalid_request",
            &["paused", "expected a boolean"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "ecs", "credential": "c", "job_template": "t"}"#,
            422,
            "invalid_request",
            &["job_template", "JSON object"],
        ),
        (
            "POST",
            "/v1/runs",
            &params,
            422,
            "invalid_request",
            &["parameters", "JSON object"],
        ),
        (
            "POST",
            "/v1/runs",
            &timeout,
            422,
            "invalid_request",
            &["timeout_s"],
        ),
        (
            "PATCH",
            "/v1/pools/sbx",
            r#"{"max_retries": "3"}"#,
            422,
            "invalid_request",
            &["max_retries"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"["sbx"]"#,
            422,
            "invalid_request",
            &["expected"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "limits": 64}"#,
            422,
            "invalid_request",
            &["limits"],
        ),
    ];
    check_cases(&app, cases).await;
    app.shutdown().await;
}

/// A JSON array where the API takes an object is a wrong type too. serde's derived structs
/// also accept their fields as an array, in declaration order, so these are taken today (see
/// the report): `limits: [64]` becomes `{"memory_mb": 64}`, and a whole pool can be created
/// from a positional array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_are_not_objects() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let a = artifact();
    let run = format!(r#"{{"pool": "sbx", "artifact": "{a}", "limits": [32]}}"#);
    let cases: &[Case] = &[
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "limits": [64]}"#,
            422,
            "invalid_request",
            &["limits"],
        ),
        (
            "PATCH",
            "/v1/pools/sbx",
            r#"{"limits": [64, 30]}"#,
            422,
            "invalid_request",
            &["limits"],
        ),
        (
            "POST",
            "/v1/runs",
            &run,
            422,
            "invalid_request",
            &["limits"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"["y", "managed", null, null, null, null, null, null]"#,
            422,
            "invalid_request",
            &["expected"],
        ),
        (
            "POST",
            "/v1/api-keys",
            r#"["admin"]"#,
            422,
            "invalid_request",
            &["expected"],
        ),
    ];
    check_cases(&app, cases).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_required_fields_are_named() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let cases: &[Case] = &[
        (
            "POST",
            "/v1/pools",
            r#"{"type": "managed"}"#,
            422,
            "invalid_request",
            &["missing field", "name"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x"}"#,
            422,
            "invalid_request",
            &["missing field", "type"],
        ),
        (
            "POST",
            "/v1/runs",
            r#"{"parameters": {}}"#,
            422,
            "invalid_request",
            &["missing field", "pool"],
        ),
        (
            "POST",
            "/v1/api-keys",
            "{}",
            422,
            "invalid_request",
            &["missing field", "role"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "ecs", "type": "ecs"}"#,
            422,
            "invalid_request",
            &["credential"],
        ),
    ];
    check_cases(&app, cases).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_is_415() {
    let app = spawn_app().await;
    let before = app.counts().await;
    let body = r#"{"name": "x", "type": "managed"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .http
            .post(format!("{}/v1/pools", app.url))
            .bearer_auth(app.acme.key("admin"))
            .body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let reply = crate::support::reply(request.send().await.unwrap()).await;
        reply
            .assert_error(415, "unsupported_media_type")
            .assert_message_mentions(&["Content-Type: application/json"]);
    }
    assert_eq!(app.counts().await, before);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_one_mebibyte_is_413() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let before = app.counts().await;
    let big = "x".repeat(1024 * 1024 + 1);
    let pool =
        json!({"name": "big", "type": "ecs", "credential": "c", "job_template": {"blob": big}})
            .to_string();
    let run =
        json!({"pool": "sbx", "artifact": artifact(), "parameters": {"blob": big}}).to_string();
    for (path, body) in [("/v1/pools", &pool), ("/v1/runs", &run)] {
        let reply = send(&app, "POST", path, body).await;
        reply
            .assert_error(413, "body_too_large")
            .assert_message_mentions(&["larger than this server accepts"]);
    }
    assert_eq!(app.counts().await, before);
    // Just under the limit is fine.
    let fits = json!({"pool": "sbx", "artifact": artifact(), "parameters": {"blob": "x".repeat(1000 * 1000)}}).to_string();
    assert_eq!(send(&app, "POST", "/v1/runs", &fits).await.status, 201);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pool_names_types_and_numbers_are_422() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let long = format!(r#"{{"name": "{}", "type": "managed"}}"#, "a".repeat(64));
    let cases: &[Case] = &[
        (
            "POST",
            "/v1/pools",
            r#"{"name": "Bad_Name", "type": "managed"}"#,
            422,
            "invalid_request",
            &["name", "lowercase letters"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "", "type": "managed"}"#,
            422,
            "invalid_request",
            &["name", "empty"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "-x", "type": "managed"}"#,
            422,
            "invalid_request",
            &["name"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "../x", "type": "managed"}"#,
            422,
            "invalid_request",
            &["name"],
        ),
        (
            "POST",
            "/v1/pools",
            &long,
            422,
            "invalid_request",
            &["name", "at most 63"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "k8s", "type": "kubernetes"}"#,
            422,
            "invalid_request",
            &["kubernetes", "managed, cloud-run, ecs"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "credential": "c"}"#,
            422,
            "invalid_request",
            &["managed pool takes no credential"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "limits": {"memory_mb": 0}}"#,
            422,
            "invalid_request",
            &["limits.memory_mb", "between 1 and 4096"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "limits": {"memory_mb": 5000}}"#,
            422,
            "invalid_request",
            &["limits.memory_mb", "between 1 and 4096"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "limits": {"memory_mb": -1}}"#,
            422,
            "invalid_request",
            &["memory_mb"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "limits": {"timeout_s": 99999999999}}"#,
            422,
            "invalid_request",
            &["timeout_s"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "limits": {"timeout_s": 4000000}}"#,
            422,
            "invalid_request",
            &["limits.timeout_s", "between"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "limits": {"log_bytes": 1e30}}"#,
            422,
            "invalid_request",
            &["log_bytes"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "max_retries": 11}"#,
            422,
            "invalid_request",
            &["max_retries", "at most 10"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "max_retries": -1}"#,
            422,
            "invalid_request",
            &["max_retries"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "x", "type": "managed", "concurrency_limit": 0}"#,
            422,
            "invalid_request",
            &["concurrency_limit", "at least 1"],
        ),
        (
            "PATCH",
            "/v1/pools/sbx",
            r#"{"limits": {"memory_mb": 0}}"#,
            422,
            "invalid_request",
            &["limits.memory_mb"],
        ),
        (
            "PATCH",
            "/v1/pools/sbx",
            r#"{"max_retries": 50}"#,
            422,
            "invalid_request",
            &["max_retries"],
        ),
        (
            "PATCH",
            "/v1/pools/sbx",
            r#"{"concurrency_limit": 0}"#,
            422,
            "invalid_request",
            &["concurrency_limit"],
        ),
        (
            "POST",
            "/v1/api-keys",
            r#"{"role": "root"}"#,
            422,
            "invalid_request",
            &["root", "admin, developer, runner, viewer"],
        ),
    ];
    check_cases(&app, cases).await;
    let sbx = app.admin().get_pool("sbx").await.unwrap();
    assert_eq!(
        (sbx.max_retries, sbx.concurrency_limit),
        (0, None),
        "a refused PATCH changed the pool"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_run_submissions_are_422() {
    let app = spawn_app().await;
    app.admin()
        .create_pool(&ferry_client::NewPool {
            limits: Some(json!({"memory_mb": 64, "timeout_s": 30})),
            ..crate::support::managed_pool("sbx")
        })
        .await
        .unwrap();
    let a = artifact();
    let upper = format!("sha256:{}", "A".repeat(64));
    let run = |extra: &str| format!(r#"{{"pool": "sbx", "artifact": "{a}"{extra}}}"#);
    let no_artifact = r#"{"pool": "sbx", "parameters": {}}"#.to_owned();
    let bad_artifacts: Vec<String> = [
        "sha256:xyz",
        "md5:abc",
        &upper,
        "",
        &format!("sha256:{}", "a".repeat(63)),
    ]
    .iter()
    .map(|bad| format!(r#"{{"pool": "sbx", "artifact": "{bad}"}}"#))
    .collect();
    let over_timeout = run(r#", "timeout_s": 31"#);
    let over_memory = run(r#", "limits": {"memory_mb": 65}"#);
    let disagree = run(r#", "timeout_s": 10, "limits": {"timeout_s": 20}"#);
    let retries = run(r#", "max_retries": 11"#);
    let key = run(r#", "idempotency_key": "has space""#);
    let vars = run(r#", "job_variables": {"image": "x"}"#);
    let no_pool = r#"{"pool": "nope", "artifact": "sha256:0"}"#.to_owned();
    let bad_pool_name = r#"{"pool": "No Such", "artifact": "sha256:0"}"#.to_owned();
    let mut cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/runs",
            &no_artifact,
            422,
            "invalid_request",
            &["needs an artifact", "sha256:"],
        ),
        (
            "POST",
            "/v1/runs",
            &over_timeout,
            422,
            "invalid_request",
            &["timeout_s", "31", "30"],
        ),
        (
            "POST",
            "/v1/runs",
            &over_memory,
            422,
            "invalid_request",
            &["memory_mb", "65", "64"],
        ),
        (
            "POST",
            "/v1/runs",
            &disagree,
            422,
            "invalid_request",
            &["timeout_s"],
        ),
        (
            "POST",
            "/v1/runs",
            &retries,
            422,
            "invalid_request",
            &["max_retries"],
        ),
        (
            "POST",
            "/v1/runs",
            &key,
            422,
            "invalid_request",
            &["idempotency_key"],
        ),
        (
            "POST",
            "/v1/runs",
            &vars,
            422,
            "invalid_request",
            &["job_variables"],
        ),
        (
            "POST",
            "/v1/runs",
            &no_pool,
            422,
            "invalid_request",
            &["nope", "does not exist"],
        ),
        (
            "POST",
            "/v1/runs",
            &bad_pool_name,
            422,
            "invalid_request",
            &["pool"],
        ),
    ];
    for body in &bad_artifacts {
        cases.push((
            "POST",
            "/v1/runs",
            body,
            422,
            "invalid_request",
            &["must look like", "sha256:<64 lowercase hex digits>"],
        ));
    }
    check_cases(&app, &cases).await;
    assert!(
        app.runner.journal.entries().is_empty(),
        "a refused run was executed"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_ids_are_404() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let before = app.counts().await;
    let unknown = uuid::Uuid::new_v4().to_string();
    for id in [unknown.as_str(), "not-a-uuid", "12345", "%20"] {
        for (method, path) in [
            ("GET", format!("/v1/runs/{id}")),
            ("POST", format!("/v1/runs/{id}/cancel")),
            ("GET", format!("/v1/runs/{id}/events")),
            ("GET", format!("/v1/runs/{id}/logs")),
            ("GET", format!("/v1/runs/{id}/logs?follow=true")),
            ("DELETE", format!("/v1/api-keys/{id}")),
        ] {
            let reply = app.call_admin(method, &path, None).await;
            reply
                .assert_error(404, "not_found")
                .assert_message_mentions(&["not found"]);
        }
    }
    for name in ["nope", "Not_A_Name", "a".repeat(64).as_str()] {
        for method in ["GET", "DELETE"] {
            let reply = app
                .call_admin(method, &format!("/v1/pools/{name}"), None)
                .await;
            reply
                .assert_error(404, "not_found")
                .assert_message_mentions(&["pool not found"]);
        }
        let reply = app
            .call_admin(
                "PATCH",
                &format!("/v1/pools/{name}"),
                Some(r#"{"paused": true}"#),
            )
            .await;
        reply.assert_error(404, "not_found");
    }
    assert_eq!(app.counts().await, before);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let app = spawn_app().await;
    let before = app.counts().await;
    for (method, path) in [
        ("GET", "/v1/nope"),
        ("GET", "/v2/pools"),
        ("POST", "/v1/runs/x/retry"),
        ("GET", "/"),
    ] {
        let reply = app.call_admin(method, path, None).await;
        reply
            .assert_error(404, "not_found")
            .assert_message_mentions(&["route not found"]);
        // Without a key too: an unknown route says nothing about authentication.
        app.call(method, path, None, None)
            .await
            .assert_error(404, "not_found");
    }
    for (method, path) in [
        ("PUT", "/v1/pools"),
        ("DELETE", "/v1/runs"),
        ("PUT", "/v1/pools/sbx"),
        ("DELETE", "/v1/runs/00000000-0000-0000-0000-000000000000"),
        (
            "GET",
            "/v1/runs/00000000-0000-0000-0000-000000000000/cancel",
        ),
        (
            "POST",
            "/v1/runs/00000000-0000-0000-0000-000000000000/events",
        ),
        ("PATCH", "/v1/api-keys"),
        ("POST", "/healthz"),
    ] {
        let reply = app.call_admin(method, path, Some("{}")).await;
        reply
            .assert_error(405, "method_not_allowed")
            .assert_message_mentions(&["method"]);
    }
    assert_eq!(app.counts().await, before);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_pool_name_is_409() {
    let app = spawn_app().await;
    let first = app.managed_pool("sbx").await;
    let cases: &[Case] = &[
        (
            "POST",
            "/v1/pools",
            r#"{"name": "sbx", "type": "managed"}"#,
            409,
            "conflict",
            &["sbx", "already exists"],
        ),
        (
            "POST",
            "/v1/pools",
            r#"{"name": "sbx", "type": "ecs", "credential": "c"}"#,
            409,
            "conflict",
            &["sbx", "already exists"],
        ),
    ];
    check_cases(&app, cases).await;
    assert_eq!(
        app.admin().get_pool("sbx").await.unwrap(),
        first,
        "the first pool changed"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_reused_for_another_body_is_409() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    app.managed_pool("other").await;
    let a = artifact();
    let first = format!(
        r#"{{"pool": "sbx", "artifact": "{a}", "parameters": {{"n": 1}}, "idempotency_key": "k-1"}}"#
    );
    let created = send(&app, "POST", "/v1/runs", &first).await;
    assert_eq!(created.status, 201, "{created:#?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let other_params = format!(
        r#"{{"pool": "sbx", "artifact": "{a}", "parameters": {{"n": 2}}, "idempotency_key": "k-1"}}"#
    );
    let other_pool = format!(
        r#"{{"pool": "other", "artifact": "{a}", "parameters": {{"n": 1}}, "idempotency_key": "k-1"}}"#
    );
    let other = crate::support::upload(
        &app.url,
        app.acme.key("admin"),
        crate::support::other_wasm(),
    )
    .await;
    let other_artifact = format!(
        r#"{{"pool": "sbx", "artifact": "{other}", "parameters": {{"n": 1}}, "idempotency_key": "k-1"}}"#
    );
    let cases: &[Case] = &[
        (
            "POST",
            "/v1/runs",
            &other_params,
            409,
            "conflict",
            &["idempotency key", "different", &id],
        ),
        (
            "POST",
            "/v1/runs",
            &other_pool,
            409,
            "conflict",
            &["idempotency key", "different"],
        ),
        (
            "POST",
            "/v1/runs",
            &other_artifact,
            409,
            "conflict",
            &["idempotency key", "different"],
        ),
    ];
    check_cases(&app, cases).await;
    // The same body again is the same run.
    let again = send(&app, "POST", "/v1/runs", &first).await;
    assert_eq!(
        (again.status, again.body["id"].as_str()),
        (200, Some(id.as_str())),
        "{again:#?}"
    );
    app.shutdown().await;
}

/// A body differing only in its limits, timeout or retries is a different submission too.
/// The server compares only pool, parameters, job variables and artifact (see the report).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_reused_with_other_limits_is_409() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let a = artifact();
    let first = format!(
        r#"{{"pool": "sbx", "artifact": "{a}", "timeout_s": 10, "idempotency_key": "k-2"}}"#
    );
    let created = send(&app, "POST", "/v1/runs", &first).await;
    assert_eq!(created.status, 201, "{created:#?}");
    let timeout = format!(
        r#"{{"pool": "sbx", "artifact": "{a}", "timeout_s": 20, "idempotency_key": "k-2"}}"#
    );
    let retries = format!(
        r#"{{"pool": "sbx", "artifact": "{a}", "timeout_s": 10, "max_retries": 3, "idempotency_key": "k-2"}}"#
    );
    let cases: &[Case] = &[
        (
            "POST",
            "/v1/runs",
            &timeout,
            409,
            "conflict",
            &["idempotency key"],
        ),
        (
            "POST",
            "/v1/runs",
            &retries,
            409,
            "conflict",
            &["idempotency key"],
        ),
    ];
    check_cases(&app, cases).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_list_queries_are_400() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    app.submit_later("sbx").await;
    let before = app.counts().await;
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "/v1/runs?state=done",
            "invalid_query",
            &["done", "scheduled, pending, running"],
        ),
        (
            "/v1/runs?limit=0",
            "invalid_query",
            &["limit", "between 1 and 500"],
        ),
        (
            "/v1/runs?limit=501",
            "invalid_query",
            &["limit", "between 1 and 500"],
        ),
        ("/v1/runs?limit=-1", "invalid_query", &["limit"]),
        ("/v1/runs?limit=ten", "invalid_query", &["limit"]),
        ("/v1/runs?pool=Not_A_Pool", "invalid_query", &["pool"]),
        ("/v1/runs?colour=red", "invalid_query", &["colour"]),
        (
            "/v1/runs?cursor=garbage",
            "invalid_cursor",
            &["cursor", "next_cursor"],
        ),
        ("/v1/runs?cursor=", "invalid_cursor", &["cursor"]),
        ("/v1/runs?cursor=6162", "invalid_cursor", &["cursor"]),
        (
            "/v1/runs/00000000-0000-0000-0000-000000000000/logs?limit=0",
            "invalid_query",
            &["limit"],
        ),
    ];
    for (path, code, mentions) in cases {
        let reply = app.call_admin("GET", path, None).await;
        reply
            .assert_error(400, code)
            .assert_message_mentions(mentions);
    }
    assert_eq!(app.counts().await, before);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_malformed_requests_leaves_the_server_healthy() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let before = app.counts().await;
    let bodies = [
        "{",
        "[]",
        "null",
        "{\"name\": 1}",
        "\u{0}\u{1}",
        "{\"pool\": {}}",
    ];
    let replies = futures::future::join_all((0..50).map(|i| {
        let path = if i % 2 == 0 { "/v1/pools" } else { "/v1/runs" };
        let body = bodies[i % bodies.len()];
        app.call_admin("POST", path, Some(body))
    }))
    .await;
    for reply in &replies {
        assert!(matches!(reply.status, 400 | 422), "{reply:#?}");
        reply.assert_error(reply.status, reply.code());
    }
    let ids: std::collections::HashSet<_> = replies
        .iter()
        .map(|r| r.body["error"]["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 50, "every request has its own id");
    assert_eq!(app.call("GET", "/healthz", None, None).await.status, 200);
    assert_eq!(app.call("GET", "/readyz", None, None).await.status, 200);
    assert_eq!(app.counts().await, before);
    // And it still does real work.
    let run = app.submit("sbx", json!({})).await;
    crate::support::wait_for_state(&app.admin(), &run.id, "completed").await;
    app.shutdown().await;
}

/// Idempotency keys may be any printable ASCII ("order-42/retry:1"); the error for a bad one
/// must not send the caller looking for a lowercase-name rule that does not apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_idempotency_key_is_explained_by_its_own_rule() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let a = artifact();
    let good =
        format!(r#"{{"pool": "sbx", "artifact": "{a}", "idempotency_key": "Order-42/retry:1"}}"#);
    assert_eq!(send(&app, "POST", "/v1/runs", &good).await.status, 201);
    let before = app.counts().await;
    let bad = format!(r#"{{"pool": "sbx", "artifact": "{a}", "idempotency_key": "has space"}}"#);
    let reply = send(&app, "POST", "/v1/runs", &bad).await;
    reply
        .assert_error(422, "invalid_request")
        .assert_message_mentions(&["idempotency_key"]);
    assert!(
        !reply.message().contains("lowercase letters"),
        "the message describes the pool-name rule, which idempotency keys do not follow: {:?}",
        reply.message()
    );
    assert_eq!(app.counts().await, before);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pool_with_unfinished_runs_is_409() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let waiting = app.submit_later("sbx").await;
    let reply = app.call_admin("DELETE", "/v1/pools/sbx", None).await;
    reply
        .assert_error(409, "conflict")
        .assert_message_mentions(&["sbx", "not finished", "cancel them or wait"]);
    assert!(
        app.admin().get_pool("sbx").await.is_ok(),
        "the pool is gone"
    );
    assert_eq!(
        app.admin().get_run(&waiting.id).await.unwrap().state,
        "scheduled"
    );
    // Once its runs have ended, it can go; its finished runs stay readable.
    app.admin().cancel_run(&waiting.id).await.unwrap();
    assert_eq!(
        app.call_admin("DELETE", "/v1/pools/sbx", None).await.status,
        204
    );
    assert_eq!(app.admin().get_run(&waiting.id).await.unwrap().pool, "sbx");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_the_caller_sent_is_the_one_answered() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(format!("{}/v1/runs/not-a-run", app.url))
        .bearer_auth(app.acme.key("admin"))
        .header("x-request-id", "caller-chosen-42")
        .send()
        .await
        .unwrap();
    let reply = crate::support::reply(response).await;
    reply.assert_error(404, "not_found");
    assert_eq!(reply.body["error"]["request_id"], "caller-chosen-42");
    // Without one, each answer gets a fresh id, also on success.
    let ok = app.call_admin("GET", "/v1/pools", None).await;
    let id = ok.headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    app.shutdown().await;
}

/// Bodies read whole as bytes (an artifact; a credential validation's optional JSON) are refused
/// in the API's error format like JSON bodies, and the optional JSON is held to the same rules
/// (found by scripts/schemathesis: the 413 was axum's plain text; validation took any
/// content type).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_read_as_bytes_are_refused_in_the_error_format() {
    let app = spawn_app().await;
    let admin = app.acme.key("admin");
    let send = |path: &str, content_type: &'static str, body: Vec<u8>| {
        app.http
            .post(format!("{}{path}", app.url))
            .bearer_auth(admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let over_50_mib = vec![0u8; 50 * 1024 * 1024 + 1];
    let reply = crate::support::reply(
        send("/v1/artifacts", "application/wasm", over_50_mib)
            .await
            .unwrap(),
    )
    .await;
    reply
        .assert_error(413, "body_too_large")
        .assert_message_mentions(&["larger than this server accepts"]);

    let created = send(
        "/v1/credentials",
        "application/json",
        json!({
            "name": "aws", "kind": "aws-access-key", "region": "eu-west-1",
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
        })
        .to_string()
        .into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let validate = format!("/v1/credentials/{id}/validate");
    let over_1_mib = format!(r#"{{"pool": "{}"}}"#, "a".repeat(1024 * 1024));
    for (content_type, body, status, code, mention) in [
        (
            "text/plain",
            r#"{"pool": "p"}"#.to_owned(),
            415,
            "unsupported_media_type",
            "Content-Type: application/json",
        ),
        (
            "application/json",
            r#"{"pool": "#.to_owned(),
            400,
            "malformed_json",
            "not valid JSON",
        ),
        (
            "application/json",
            over_1_mib,
            413,
            "body_too_large",
            "larger than this server accepts",
        ),
        (
            "application/json",
            "[1]".to_owned(),
            422,
            "invalid_request",
            "JSON object",
        ),
        (
            "application/json",
            r#"{"pool": 1}"#.to_owned(),
            422,
            "invalid_request",
            "pool",
        ),
    ] {
        let reply = crate::support::reply(
            send(&validate, content_type, body.into_bytes())
                .await
                .unwrap(),
        )
        .await;
        reply
            .assert_error(status, code)
            .assert_message_mentions(&[mention]);
    }
    // Nothing was validated: a refused body reaches no cloud.
    let shown = app
        .call_admin("GET", &format!("/v1/credentials/{id}"), None)
        .await;
    assert_eq!(
        shown.body["validation"],
        serde_json::Value::Null,
        "{shown:#?}"
    );
    app.shutdown().await;
}
