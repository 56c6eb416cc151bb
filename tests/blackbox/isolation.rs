//! Tenant isolation: another workspace's objects do not exist for a key of this one. Every
//! route that names an object answers 404 (never 403, which would confirm the object exists),
//! lists show none of them, and nothing of the other workspace changes.

use ferry_client::{NewPool, RunsQuery};
use serde_json::{json, Value};

use crate::support::{all_runs, spawn_app, wait_for_state, Reply, ROLES};

/// Every route that names a pool (`{pool}`), a run (`{run}`) or an API key (`{key}`), with its
/// body. Adding a route to the API means adding a line here.
const ROUTES_NAMING_AN_OBJECT: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/v1/pools/{pool}", None),
    (
        "PATCH",
        "/v1/pools/{pool}",
        Some(r#"{"paused": true, "max_retries": 7}"#),
    ),
    ("DELETE", "/v1/pools/{pool}", None),
    ("GET", "/v1/runs/{run}", None),
    ("POST", "/v1/runs/{run}/cancel", None),
    ("GET", "/v1/runs/{run}/events", None),
    ("GET", "/v1/runs/{run}/logs", None),
    ("GET", "/v1/runs/{run}/logs?after=0&limit=10", None),
    ("GET", "/v1/runs/{run}/logs?follow=true", None),
    ("DELETE", "/v1/api-keys/{key}", None),
    ("GET", "/v1/credentials/{cred}", None),
    (
        "PUT",
        "/v1/credentials/{cred}",
        Some(
            r#"{"kind": "aws-assume-role", "role_arn": "arn:aws:iam::222222222222:role/r", "region": "us-east-1"}"#,
        ),
    ),
    ("POST", "/v1/credentials/{cred}/validate", None),
    ("DELETE", "/v1/credentials/{cred}", None),
    ("GET", "/v1/secrets/{secret}", None),
    ("DELETE", "/v1/secrets/{secret}", None),
    ("GET", "/v1/artifacts/{digest}", None),
];

/// Routes whose path names an object in the caller's own namespace: `PUT /v1/secrets/{name}`
/// writes the caller's secret of that name (checked below to leave A's alone).
const ROUTES_NAMING_THE_CALLERS_OWN: &[(&str, &str)] = &[("PUT", "/v1/secrets/{name}")];

/// Each concrete path of a route template, given A's objects.
fn expand(template: &str, pool: &str, runs: &[String], keys: &[String]) -> Vec<String> {
    if template.contains("{digest}") {
        vec![template.replace("{digest}", crate::support::OTHER_ARTIFACT)]
    } else if template.contains("{cred}") || template.contains("{secret}") {
        vec![template
            .replace("{cred}", &keys[keys.len() - 1])
            .replace("{secret}", "a-secret")]
    } else if template.contains("{pool}") {
        vec![template.replace("{pool}", pool)]
    } else if template.contains("{run}") {
        runs.iter().map(|r| template.replace("{run}", r)).collect()
    } else if template.contains("{key}") {
        keys.iter().map(|k| template.replace("{key}", k)).collect()
    } else {
        vec![template.to_owned()]
    }
}

fn assert_reveals_nothing(reply: &Reply, secrets: &[&str], what: &str) {
    for s in secrets {
        assert!(
            !reply.text.contains(s),
            "{what} leaked {s:?}: {}",
            reply.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workspaces_objects_are_404_on_every_route() {
    let app = spawn_app().await;
    let a = app.acme.clone();
    let b = app.tenant("beta").await;
    assert_eq!((a.name.as_str(), b.name.as_str()), ("acme", "beta"));
    assert_ne!(a.id, b.id);
    let a_admin = a.client("admin");

    // A: a pool with a finished run (events and logs) and a run that is not due yet.
    a_admin
        .create_pool(&NewPool {
            limits: Some(json!({"memory_mb": 64})),
            ..crate::support::managed_pool("a-pool")
        })
        .await
        .unwrap();
    let done = app
        .submit(
            "a-pool",
            json!({"log": ["a-secret-line-1", "a-secret-line-2"], "result": {"a": 1}}),
        )
        .await;
    let done = wait_for_state(&a_admin, &done.id, "completed").await;
    let waiting = app.submit_later("a-pool").await;
    let a_runs = vec![done.id.clone(), waiting.id.clone()];
    let a_keys: Vec<String> = ROLES.iter().map(|r| a.key_id(r).to_owned()).collect();
    // A: a credential and a secret.
    let cred = a_admin
        .create_credential(&json!({"name": "a-cred", "kind": "aws-assume-role",
            "role_arn": "arn:aws:iam::111111111111:role/a", "region": "us-east-1"}))
        .await
        .unwrap();
    a_admin
        .put_secret("a-secret", "a-secret-value")
        .await
        .unwrap();
    // An artifact only A has.
    let a_only = crate::support::upload(
        &app.url,
        app.acme.key("admin"),
        crate::support::other_wasm(),
    )
    .await;
    assert_eq!(a_only, crate::support::OTHER_ARTIFACT);
    // `expand` takes A's credential id from the end of this list.
    let mut a_keys_and_cred = a_keys.clone();
    a_keys_and_cred.push(cred.id.clone());

    let pool_before = a_admin.get_pool("a-pool").await.unwrap();
    let mut runs_before = Vec::new();
    for id in &a_runs {
        let run = a_admin.get_run(id).await.unwrap();
        let events = a_admin.run_events(id).await.unwrap();
        let logs = a_admin.run_logs(id, None, None).await.unwrap();
        runs_before.push((run, events, logs));
    }
    assert_eq!(
        runs_before[0].2.lines.len(),
        2,
        "A's finished run has its log"
    );

    // The table covers every public route that names an object.
    for (method, template) in crate::support::public_routes(&app).await {
        if template.contains('{')
            && !crate::support::RUN_TOKEN_ROUTES.contains(&(method.as_str(), template.as_str()))
        {
            let covered = ROUTES_NAMING_AN_OBJECT
                .iter()
                .any(|r| r.0 == method && crate::support::template_of(r.1) == template)
                || ROUTES_NAMING_THE_CALLERS_OWN
                    .iter()
                    .any(|r| r.0 == method && r.1 == template);
            assert!(
                covered,
                "{method} {template} is missing from the isolation table"
            );
        }
    }

    // B's admin, on every route naming one of A's objects: 404 not_found.
    let secrets = ["a-secret-line", "a-pool", "\"a\":1"];
    let mut checked = 0;
    for (method, template, body) in ROUTES_NAMING_AN_OBJECT {
        let keys = if template.contains("{cred}") {
            &a_keys_and_cred
        } else {
            &a_keys
        };
        for path in expand(template, "a-pool", &a_runs, keys) {
            let reply = app.call(method, &path, Some(b.key("admin")), *body).await;
            assert_eq!(
                reply.status, 404,
                "{method} {path} with B's admin key: {reply:#?}"
            );
            reply.assert_error(404, "not_found");
            assert_reveals_nothing(&reply, &secrets, &format!("{method} {path}"));
            checked += 1;
        }
    }
    assert!(
        checked > ROUTES_NAMING_AN_OBJECT.len(),
        "the templates were expanded"
    );

    // Submitting to A's pool by name: the pool does not exist in B.
    let submit = format!(
        r#"{{"pool": "a-pool", "artifact": "{}"}}"#,
        crate::support::artifact()
    );
    let reply = app
        .call("POST", "/v1/runs", Some(b.key("admin")), Some(&submit))
        .await;
    reply
        .assert_error(422, "invalid_request")
        .assert_message_mentions(&["a-pool", "does not exist in this workspace"]);

    // B's lists hold nothing of A's.
    let b_admin = b.client("admin");
    assert!(
        b_admin.list_pools().await.unwrap().is_empty(),
        "B sees no pools"
    );
    assert!(
        all_runs(&b_admin, RunsQuery::default()).await.is_empty(),
        "B sees no runs"
    );
    let by_pool = RunsQuery {
        pool: Some("a-pool".into()),
        ..Default::default()
    };
    assert!(
        all_runs(&b_admin, by_pool).await.is_empty(),
        "B sees no runs of A's pool name"
    );
    let b_keys = app
        .call("GET", "/v1/api-keys", Some(b.key("admin")), None)
        .await;
    assert_eq!(b_keys.status, 200, "{b_keys:#?}");
    let b_key_ids: Vec<&str> = b_keys.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        b_key_ids.len(),
        4,
        "B sees its own four keys only: {b_keys:#?}"
    );
    for id in &a_keys {
        assert!(
            !b_key_ids.contains(&id.as_str()),
            "B's key list shows A's key {id}"
        );
    }

    // Secret names are per workspace too: B's PUT writes B's own "a-secret"; A's keeps its
    // value and version, and A's credential is as it was.
    let (b_secret, created) = b_admin.put_secret("a-secret", "b-value").await.unwrap();
    assert!(created && b_secret.version == 1);
    assert_eq!(a_admin.get_secret("a-secret").await.unwrap().version, 1);
    assert_eq!(a_admin.get_credential(&cred.id).await.unwrap(), cred);
    assert!(b_admin.list_credentials().await.unwrap().is_empty());

    // Names are per workspace: B may have its own pool "a-pool", distinct from A's.
    let b_pool = b_admin
        .create_pool(&crate::support::managed_pool("a-pool"))
        .await
        .unwrap();
    assert_ne!(b_pool.id, pool_before.id);
    assert_eq!(b_admin.list_pools().await.unwrap().len(), 1);

    // A is unchanged: the same pool, runs not cancelled, the same events and logs, and every
    // key still works.
    assert_eq!(a_admin.get_pool("a-pool").await.unwrap(), pool_before);
    for (before, id) in runs_before.iter().zip(&a_runs) {
        assert_eq!(
            &a_admin.get_run(id).await.unwrap(),
            &before.0,
            "run {id} changed"
        );
        assert_eq!(
            a_admin.run_events(id).await.unwrap(),
            before.1,
            "events of {id} changed"
        );
        assert_eq!(
            a_admin.run_logs(id, None, None).await.unwrap(),
            before.2,
            "log of {id} changed"
        );
    }
    assert_eq!(
        a_admin.get_run(&waiting.id).await.unwrap().state,
        "scheduled"
    );
    for role in ROLES {
        let reply = app.call("GET", "/v1/pools", Some(a.key(role)), None).await;
        assert_eq!(
            reply.status, 200,
            "A's {role} key stopped working: {reply:#?}"
        );
    }
    let a_list = app
        .call("GET", "/v1/api-keys", Some(a.key("admin")), None)
        .await;
    for key in a_list.body["items"].as_array().unwrap() {
        assert_eq!(key["revoked_at"], Value::Null, "A's key was revoked: {key}");
    }
    let a_pools: Vec<String> = a_admin
        .list_pools()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(
        a_pools,
        vec![pool_before.id.clone()],
        "A sees only its own pool"
    );

    app.shutdown().await;
}
