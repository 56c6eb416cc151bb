//! Roles: every public route against a key of every role, with the policy written out here by
//! hand (not derived from the server's own table), and what a denial must leave unchanged;
//! then authentication: no key, a garbage key, a revoked key, and each listener's credential
//! on the other listener.

use serde_json::json;

use crate::support::{call, spawn_app, wait_for_state, App, ROLES};

const Y: bool = true;
const N: bool = false;

type Row = (
    &'static str,
    &'static str,
    Option<&'static str>,
    [bool; 4],
    u16,
);

/// (method, path, body, allowed for [admin, developer, runner, viewer], status when allowed).
/// `{role}` is the calling role, `{run}` a not-yet-due run and `{key}` a spare key of that
/// role's own fixtures, so one role's success does not change what the next one sees.
///
/// The policy: admin may do everything; developer reads and writes pools and reads, submits
/// and cancels runs, but manages no keys; runner reads pools and reads, submits and cancels
/// runs; viewer only reads pools and runs. Credentials: admin writes, developer and viewer
/// read (metadata). Secrets: admin and developer write, developer and viewer read (metadata).
/// The audit log and workspace settings: admin only, though every role reads its workspace.
/// Operational routes need no key.
const MATRIX: &[Row] = &[
    ("GET", "/v1/pools", None, [Y, Y, Y, Y], 200),
    (
        "POST",
        "/v1/pools",
        Some(r#"{"name": "new-{role}", "type": "managed"}"#),
        [Y, Y, N, N],
        201,
    ),
    ("GET", "/v1/pools/p-{role}", None, [Y, Y, Y, Y], 200),
    (
        "PATCH",
        "/v1/pools/p-{role}",
        Some(r#"{"max_retries": 3}"#),
        [Y, Y, N, N],
        200,
    ),
    ("DELETE", "/v1/pools/del-{role}", None, [Y, Y, N, N], 204),
    ("GET", "/v1/runs", None, [Y, Y, Y, Y], 200),
    (
        "GET",
        "/v1/runs?pool=p-{role}&state=scheduled&limit=5",
        None,
        [Y, Y, Y, Y],
        200,
    ),
    (
        "POST",
        "/v1/runs",
        Some(r#"{"pool": "p-{role}", "artifact": "{artifact}", "parameters": {"by": "{role}"}}"#),
        [Y, Y, Y, N],
        201,
    ),
    ("GET", "/v1/runs/{run}", None, [Y, Y, Y, Y], 200),
    ("GET", "/v1/runs/{run}/events", None, [Y, Y, Y, Y], 200),
    ("GET", "/v1/runs/{run}/logs", None, [Y, Y, Y, Y], 200),
    ("POST", "/v1/runs/{run}/cancel", None, [Y, Y, Y, N], 202),
    ("GET", "/v1/api-keys", None, [Y, N, N, N], 200),
    (
        "POST",
        "/v1/api-keys",
        Some(r#"{"role": "viewer"}"#),
        [Y, N, N, N],
        201,
    ),
    ("DELETE", "/v1/api-keys/{key}", None, [Y, N, N, N], 200),
    ("GET", "/v1/credentials", None, [Y, Y, N, Y], 200),
    (
        "POST",
        "/v1/credentials",
        Some(
            r#"{"name": "new-{role}", "kind": "aws-assume-role", "role_arn": "arn:aws:iam::111111111111:role/r", "region": "us-east-1"}"#,
        ),
        [Y, N, N, N],
        201,
    ),
    ("GET", "/v1/credentials/{cred}", None, [Y, Y, N, Y], 200),
    // Role checks come first; the admin's request then names a pool that does not exist
    // (422), so no cloud is called.
    (
        "POST",
        "/v1/credentials/{cred}/validate",
        Some(r#"{"pool": "no-such-pool"}"#),
        [Y, N, N, N],
        422,
    ),
    (
        "PUT",
        "/v1/credentials/{cred}",
        Some(
            r#"{"kind": "aws-assume-role", "role_arn": "arn:aws:iam::222222222222:role/r", "region": "us-east-1"}"#,
        ),
        [Y, N, N, N],
        200,
    ),
    (
        "DELETE",
        "/v1/credentials/{delcred}",
        None,
        [Y, N, N, N],
        204,
    ),
    ("GET", "/v1/secrets", None, [Y, Y, N, Y], 200),
    ("GET", "/v1/secrets/sec-{role}", None, [Y, Y, N, Y], 200),
    (
        "PUT",
        "/v1/secrets/new-{role}",
        Some(r#"{"value": "v"}"#),
        [Y, Y, N, N],
        201,
    ),
    ("DELETE", "/v1/secrets/del-{role}", None, [Y, Y, N, N], 204),
    ("GET", "/v1/audit", None, [Y, N, N, N], 200),
    ("GET", "/v1/artifacts", None, [Y, Y, Y, Y], 200),
    ("GET", "/v1/artifacts/{digest}", None, [Y, Y, Y, Y], 200),
    // Allowed roles get past the role check to the upload's validation (a JSON body is not
    // WebAssembly); a viewer is stopped first.
    (
        "POST",
        "/v1/artifacts",
        Some(r#"{"not": "wasm"}"#),
        [Y, Y, Y, N],
        422,
    ),
    ("GET", "/v1/workspace", None, [Y, Y, Y, Y], 200),
    (
        "PATCH",
        "/v1/workspace",
        Some(r#"{"store_logs": true}"#),
        [Y, N, N, N],
        200,
    ),
    ("GET", "/v1/workspace/ip-allowlist", None, [Y, N, N, N], 200),
    (
        "PUT",
        "/v1/workspace/ip-allowlist",
        Some(r#"{"cidrs": []}"#),
        [Y, N, N, N],
        200,
    ),
    ("GET", "/healthz", None, [Y, Y, Y, Y], 200),
    ("GET", "/readyz", None, [Y, Y, Y, Y], 200),
    // Not on the public listener unless FERRY_METRICS_TOKEN is set (then for that token only).
    ("GET", "/metrics", None, [Y, Y, Y, Y], 404),
    ("GET", "/openapi.json", None, [Y, Y, Y, Y], 200),
    // Ferry's OIDC issuer: public, like the health routes.
    (
        "GET",
        "/.well-known/openid-configuration",
        None,
        [Y, Y, Y, Y],
        200,
    ),
    ("GET", "/.well-known/jwks.json", None, [Y, Y, Y, Y], 200),
];

/// The routes that take an API key: the matrix's `/v1/` rows, and following a log (which the
/// matrix leaves out because an allowed follow of a waiting run streams until it ends).
fn authenticated() -> Vec<(&'static str, &'static str, Option<&'static str>)> {
    let mut routes: Vec<_> = MATRIX
        .iter()
        .filter(|r| r.1.starts_with("/v1/"))
        .map(|r| (r.0, r.1, r.2))
        .collect();
    routes.push(("GET", "/v1/runs/{run}/logs?follow=true", None));
    routes
}

/// What each role's routes act on.
struct Fixtures {
    run: String,
    spare_key_id: String,
    spare_key: String,
    cred: String,
    delcred: String,
}

async fn fixtures(app: &App, role: &str) -> Fixtures {
    let admin = app.admin();
    admin
        .create_pool(&crate::support::managed_pool(&format!("p-{role}")))
        .await
        .unwrap();
    admin
        .create_pool(&crate::support::managed_pool(&format!("del-{role}")))
        .await
        .unwrap();
    let run = app.submit_later(&format!("p-{role}")).await;
    let spare = app
        .call_admin("POST", "/v1/api-keys", Some(r#"{"role": "viewer"}"#))
        .await;
    assert_eq!(spare.status, 201, "{spare:#?}");
    let mut creds = Vec::new();
    for name in [format!("cred-{role}"), format!("delcred-{role}")] {
        let body = format!(
            r#"{{"name": "{name}", "kind": "aws-assume-role", "role_arn": "arn:aws:iam::111111111111:role/r", "region": "us-east-1"}}"#
        );
        let c = app.call_admin("POST", "/v1/credentials", Some(&body)).await;
        assert_eq!(c.status, 201, "{c:#?}");
        creds.push(c.body["id"].as_str().unwrap().to_owned());
    }
    for name in [format!("sec-{role}"), format!("del-{role}")] {
        let s = app
            .call_admin(
                "PUT",
                &format!("/v1/secrets/{name}"),
                Some(r#"{"value": "v"}"#),
            )
            .await;
        assert_eq!(s.status, 201, "{s:#?}");
    }
    Fixtures {
        run: run.id,
        spare_key_id: spare.body["id"].as_str().unwrap().to_owned(),
        spare_key: spare.body["key"].as_str().unwrap().to_owned(),
        cred: creds[0].clone(),
        delcred: creds[1].clone(),
    }
}

fn fill(template: &str, role: &str, f: &Fixtures) -> String {
    template
        .replace("{role}", role)
        .replace("{run}", &f.run)
        .replace("{key}", &f.spare_key_id)
        .replace("{cred}", &f.cred)
        .replace("{delcred}", &f.delcred)
        .replace("{artifact}", &crate::support::artifact())
        .replace("{digest}", &crate::support::artifact())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_role() {
    let app = spawn_app().await;
    let mut all = Vec::new();
    for role in ROLES {
        all.push((role, fixtures(&app, role).await));
    }

    // The table covers every public route the server documents.
    for (method, template) in crate::support::public_routes(&app).await {
        if crate::support::RUN_TOKEN_ROUTES.contains(&(method.as_str(), template.as_str())) {
            continue;
        }
        assert!(
            MATRIX
                .iter()
                .any(|r| r.0 == method && crate::support::template_of(r.1) == template),
            "{method} {template} is missing from the role matrix"
        );
    }

    for (method, path, body, allowed, ok_status) in MATRIX {
        for (i, (role, f)) in all.iter().enumerate() {
            let path = fill(path, role, f);
            let body = body.map(|b| fill(b, role, f));
            let reply = app
                .call(method, &path, Some(app.acme.key(role)), body.as_deref())
                .await;
            if allowed[i] {
                assert_eq!(
                    reply.status, *ok_status,
                    "{role} {method} {path} must be allowed: {reply:#?}"
                );
            } else {
                reply
                    .assert_error(403, "forbidden")
                    .assert_message_mentions(&[role]);
            }
        }
    }

    crate::support::assert_run_token_routes_refuse_keys(&app, &all[0].1.run).await;

    // What a denial must not have done (and what an allowed call did).
    let admin = app.admin();
    for (i, (role, f)) in all.iter().enumerate() {
        let allowed = |method: &str, path: &str| {
            MATRIX
                .iter()
                .find(|r| r.0 == method && r.1 == path)
                .unwrap()
                .3[i]
        };
        let pool_exists = |name: String| {
            let admin = admin.clone();
            async move { admin.get_pool(&name).await.is_ok() }
        };
        assert_eq!(
            pool_exists(format!("new-{role}")).await,
            allowed("POST", "/v1/pools"),
            "{role}: POST /v1/pools"
        );
        let p = admin.get_pool(&format!("p-{role}")).await.unwrap();
        assert_eq!(
            p.max_retries == 3,
            allowed("PATCH", "/v1/pools/p-{role}"),
            "{role}: PATCH /v1/pools/p-{role}"
        );
        assert_eq!(
            pool_exists(format!("del-{role}")).await,
            !allowed("DELETE", "/v1/pools/del-{role}"),
            "{role}: DELETE /v1/pools/del-{role}"
        );
        let runs = crate::support::all_runs(
            &admin,
            ferry_client::RunsQuery {
                pool: Some(format!("p-{role}")),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            runs.len(),
            if allowed("POST", "/v1/runs") { 2 } else { 1 },
            "{role}: POST /v1/runs"
        );
        let state = admin.get_run(&f.run).await.unwrap().state;
        let want = if allowed("POST", "/v1/runs/{run}/cancel") {
            "cancelled"
        } else {
            "scheduled"
        };
        assert_eq!(state, want, "{role}: POST /v1/runs/{{id}}/cancel");
        let spare = app.call("GET", "/v1/runs", Some(&f.spare_key), None).await;
        let want = if allowed("DELETE", "/v1/api-keys/{key}") {
            401
        } else {
            200
        };
        assert_eq!(
            spare.status, want,
            "{role}: DELETE /v1/api-keys/{{id}}: {spare:#?}"
        );
        let status = |path: String| {
            let app = &app;
            async move { app.call_admin("GET", &path, None).await.status }
        };
        assert_eq!(
            status(format!("/v1/credentials/{}", f.delcred)).await == 404,
            allowed("DELETE", "/v1/credentials/{delcred}"),
            "{role}: DELETE /v1/credentials/{{id}}"
        );
        let rotated = app
            .call_admin("GET", &format!("/v1/credentials/{}", f.cred), None)
            .await;
        assert_eq!(
            rotated.body["version"] == 2,
            allowed("PUT", "/v1/credentials/{cred}"),
            "{role}: PUT /v1/credentials/{{id}}"
        );
        assert_eq!(
            status(format!("/v1/secrets/new-{role}")).await == 200,
            allowed("PUT", "/v1/secrets/new-{role}"),
            "{role}: PUT /v1/secrets/{{name}}"
        );
        assert_eq!(
            status(format!("/v1/secrets/del-{role}")).await == 404,
            allowed("DELETE", "/v1/secrets/del-{role}"),
            "{role}: DELETE /v1/secrets/{{name}}"
        );
    }
    let creds = app.call_admin("GET", "/v1/credentials", None).await;
    let names: Vec<&str> = creds.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .filter(|n| n.starts_with("new-"))
        .collect();
    assert_eq!(
        names,
        ["new-admin"],
        "only the admin registered a credential"
    );
    // Only the admin minted a key through the matrix: 4 role keys + 4 spares + 1.
    let keys = app.call_admin("GET", "/v1/api-keys", None).await;
    assert_eq!(keys.body["items"].as_array().unwrap().len(), 9, "{keys:#?}");

    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_key_are_401() {
    let app = spawn_app().await;
    let f = fixtures(&app, "admin").await;
    let garbage = "fry_key_0000000000000000000000000000000000000000";
    for (method, path, body) in authenticated() {
        let path = fill(path, "admin", &f);
        let body = body.map(|b| fill(b, "admin", &f));
        let body = body.as_deref();
        let none = app.call(method, &path, None, body).await;
        none.assert_error(401, "unauthorized")
            .assert_message_mentions(&["Authorization: Bearer"]);
        let bad = app.call(method, &path, Some(garbage), body).await;
        bad.assert_error(401, "unauthorized")
            .assert_message_mentions(&["invalid API key"]);
        // The right key under the wrong scheme is no key either.
        let url = format!("{}{path}", app.url);
        let basic = app
            .http
            .request(method.parse().unwrap(), &url)
            .header("authorization", format!("Basic {}", app.acme.key("admin")))
            .send()
            .await
            .unwrap();
        crate::support::reply(basic)
            .await
            .assert_error(401, "unauthorized");
    }
    // None of it did anything.
    assert_eq!(
        app.admin().get_run(&f.run).await.unwrap().state,
        "scheduled"
    );
    assert!(app.admin().get_pool("p-admin").await.is_ok());
    assert_eq!(app.counts().await, (2, 1, 5));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stops_working_at_once() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let minted = app
        .call_admin("POST", "/v1/api-keys", Some(r#"{"role": "developer"}"#))
        .await;
    assert_eq!(minted.status, 201, "{minted:#?}");
    assert_eq!(minted.body["role"], "developer");
    let id = minted.body["id"].as_str().unwrap();
    let key = minted.body["key"].as_str().unwrap();
    let works = app.call("GET", "/v1/pools", Some(key), None).await;
    assert_eq!(works.status, 200, "{works:#?}");

    let revoked = app
        .call_admin("DELETE", &format!("/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(revoked.status, 200, "{revoked:#?}");
    assert!(revoked.body["revoked_at"].is_string(), "{revoked:#?}");
    assert!(
        !revoked.text.contains(key),
        "the revoke answer shows the secret"
    );

    let after = app.call("GET", "/v1/pools", Some(key), None).await;
    after
        .assert_error(401, "unauthorized")
        .assert_message_mentions(&["revoked"]);
    let submit = format!(
        r#"{{"pool": "sbx", "artifact": "{}"}}"#,
        crate::support::artifact()
    );
    app.call("POST", "/v1/runs", Some(key), Some(&submit))
        .await
        .assert_error(401, "unauthorized");

    // The list still shows it, revoked, without its secret.
    let list = app.call_admin("GET", "/v1/api-keys", None).await;
    let listed = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .cloned()
        .unwrap();
    assert!(listed["revoked_at"].is_string(), "{listed}");
    assert!(!list.text.contains(key), "the key list shows a secret");
    // Revoking again is harmless and keeps the first time.
    let again = app
        .call_admin("DELETE", &format!("/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(again.body["revoked_at"], revoked.body["revoked_at"]);
    assert_eq!(
        app.counts().await.1,
        0,
        "no run was submitted with the revoked key"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_refuses_the_other_ones_credential() {
    let app = spawn_app().await;
    let api_key = app.acme.key("admin");
    let internal = [
        ("GET", "/internal/v1/workspaces".to_owned(), None),
        (
            "POST",
            "/internal/v1/workspaces".to_owned(),
            Some(r#"{"name": "sneaky"}"#),
        ),
        (
            "POST",
            format!("/internal/v1/workspaces/{}/api-keys", app.acme.id),
            Some(r#"{"role": "admin"}"#),
        ),
    ];
    for (method, path, body) in &internal {
        let url = format!("{}{path}", app.internal_url);
        call(&app.http, method, &url, Some(api_key), *body)
            .await
            .assert_error(401, "unauthorized");
        call(&app.http, method, &url, None, *body)
            .await
            .assert_error(401, "unauthorized");
        // The public listener does not serve the internal routes at all.
        app.call(method, path, Some(&app.internal_token), *body)
            .await
            .assert_error(404, "not_found");
    }
    for (method, path, body) in authenticated().into_iter().filter(|r| !r.1.contains('{')) {
        app.call(method, path, Some(&app.internal_token), body)
            .await
            .assert_error(401, "unauthorized");
    }
    // The internal token does work where it belongs; and nothing above created anything.
    let ws = call(
        &app.http,
        "GET",
        &format!("{}/internal/v1/workspaces", app.internal_url),
        Some(&app.internal_token),
        None,
    )
    .await;
    assert_eq!(ws.status, 200, "{ws:#?}");
    let names: Vec<&str> = ws.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["acme"]);
    assert_eq!(app.counts().await, (0, 0, 4));
    // A run submitted by a runner can be watched through to its end by the viewer.
    app.managed_pool("sbx").await;
    let (run, _) = app
        .client("runner")
        .create_run(&crate::support::managed_run("sbx", json!({"result": 7})))
        .await
        .unwrap();
    let done = wait_for_state(&app.client("viewer"), &run.id, "completed").await;
    assert_eq!(done.result, Some(json!(7)));
    app.shutdown().await;
}
