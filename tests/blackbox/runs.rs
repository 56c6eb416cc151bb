//! Runs end to end through the HTTP API, on the fake executors: completion with results,
//! events and logs, failures, push runs, idempotent submission, cancellation, listing with
//! filters and cursors, following a log, and the operational endpoints.

use std::collections::HashSet;

use ferry_client::{FollowEvent, NewPool, NewRun, RunsQuery};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::support::{all_runs, managed_run, spawn_app, wait_for_state, wait_until};

/// A run's (from, to) pairs, oldest first.
async fn path_of(client: &ferry_client::Client, id: &str) -> Vec<(Option<String>, String)> {
    let events = client.run_events(id).await.unwrap();
    events.into_iter().map(|e| (e.from, e.to)).collect()
}

fn edge(from: Option<&str>, to: &str) -> (Option<String>, String) {
    (from.map(str::to_owned), to.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_run_completes_with_its_result_events_and_logs() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.managed_pool("sbx").await;
    let params = json!({"log": ["hello", "wörld ✓", ""], "result": {"answer": 42, "list": [1, 2]}});
    let (run, created) = admin
        .create_run(&managed_run("sbx", params.clone()))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        (
            run.state.as_str(),
            run.pool.as_str(),
            run.pool_type.as_str()
        ),
        ("scheduled", "sbx", "managed")
    );
    assert_eq!(run.parameters, params);

    let done = wait_for_state(&admin, &run.id, "completed").await;
    assert_eq!(done.result, Some(json!({"answer": 42, "list": [1, 2]})));
    assert_eq!((done.state_reason.as_deref(), done.attempt), (None, 1));
    assert!(
        done.started_at.is_some() && done.ended_at.is_some(),
        "{done:#?}"
    );
    assert!(done.ended_at >= done.started_at);

    let events = admin.run_events(&run.id).await.unwrap();
    let path: Vec<_> = events
        .iter()
        .map(|e| edge(e.from.as_deref(), &e.to))
        .collect();
    assert_eq!(
        path,
        vec![
            edge(None, "scheduled"),
            edge(Some("scheduled"), "pending"),
            edge(Some("pending"), "running"),
            edge(Some("running"), "completed"),
        ]
    );
    assert!(
        events[1].cause.starts_with("claimed by blackbox-"),
        "{:?}",
        events[1].cause
    );
    assert!(
        events
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].at <= w[1].at),
        "{events:#?}"
    );

    let logs = admin.run_logs(&run.id, None, None).await.unwrap();
    let lines: Vec<&str> = logs.lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(lines, vec!["hello", "wörld ✓", ""]);
    assert!(!logs.truncated);
    // Paging through the log with `after` and `limit`.
    let second = admin
        .run_logs(&run.id, Some(logs.lines[0].seq), Some(1))
        .await
        .unwrap();
    assert_eq!(second.lines.len(), 1);
    assert_eq!(second.lines[0].line, "wörld ✓");
    assert_eq!(app.runner.journal.entries().len(), 1, "executed once");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_ends_failed_with_its_reason() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.managed_pool("sbx").await;
    let run = app
        .submit(
            "sbx",
            json!({"fail": "division by zero", "log": ["about to fail"]}),
        )
        .await;
    let done = wait_for_state(&admin, &run.id, "failed").await;
    assert_eq!(done.state_reason.as_deref(), Some("exit_code"));
    assert_eq!(done.state_message.as_deref(), Some("division by zero"));
    assert_eq!(done.result, None);
    let last = admin.run_events(&run.id).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.from.as_deref(), last.to.as_str()),
        (Some("running"), "failed")
    );
    assert_eq!(last.reason.as_deref(), Some("exit_code"));
    let logs = admin.run_logs(&run.id, None, None).await.unwrap();
    assert_eq!(logs.lines[0].line, "about to fail");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_run_completes_through_the_fake_cloud() {
    let app = spawn_app().await;
    let admin = app.admin();
    // A push pool names an existing credential of its workspace.
    admin
        .create_credential(&json!({"name": "prod-aws", "kind": "aws-assume-role",
            "role_arn": "arn:aws:iam::111111111111:role/ferry", "region": "us-east-1"}))
        .await
        .unwrap();
    let pool = admin
        .create_pool(&NewPool {
            name: "ecs".into(),
            pool_type: "ecs".into(),
            credential: Some("prod-aws".into()),
            job_template: Some(
                json!({"cluster": "c1", "image": "python:3.12", "subnets": ["subnet-0abc"]}),
            ),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (pool.pool_type.as_str(), pool.credential.as_deref()),
        ("ecs", Some("prod-aws"))
    );
    let body = NewRun {
        pool: "ecs".into(),
        parameters: Some(json!({"polls": 2, "x": 1})),
        job_variables: Some(json!({"command": ["python", "flow.py"]})),
        ..Default::default()
    };
    let (run, _) = admin.create_run(&body).await.unwrap();
    assert_eq!(run.pool_type, "ecs");
    let done = wait_for_state(&admin, &run.id, "completed").await;
    let infra = done.infrastructure.clone().unwrap_or(Value::Null);
    let task = infra["task"].as_str().unwrap_or("");
    assert!(
        task.starts_with(&format!("fake-task/{}/", run.id)),
        "infrastructure: {infra}"
    );
    assert_eq!(
        done.job_variables,
        json!({"command": ["python", "flow.py"]})
    );
    assert_eq!(
        path_of(&admin, &run.id).await,
        vec![
            edge(None, "scheduled"),
            edge(Some("scheduled"), "pending"),
            edge(Some("pending"), "running"),
            edge(Some("running"), "completed"),
        ]
    );
    let submitted: Vec<_> = app
        .cloud
        .journal
        .entries()
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    assert_eq!(
        submitted,
        vec![run.id.clone()],
        "submitted to the cloud exactly once"
    );
    // An artifact makes no sense for a push pool.
    let with_artifact = NewRun {
        artifact: Some(crate::support::artifact()),
        ..body
    };
    let e = admin.create_run(&with_artifact).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(422), Some("invalid_request")),
        "{e}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitting_again_with_the_same_key_returns_the_same_run() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.managed_pool("sbx").await;
    let body = NewRun {
        idempotency_key: Some("deploy-7".into()),
        ..managed_run("sbx", json!({"n": 1}))
    };
    let (first, created) = admin.create_run(&body).await.unwrap();
    assert!(created);
    assert_eq!(first.idempotency_key.as_deref(), Some("deploy-7"));
    let raw = app
        .call_admin(
            "POST",
            "/v1/runs",
            Some(&serde_json::to_string(&body).unwrap()),
        )
        .await;
    assert_eq!(raw.status, 200, "{raw:#?}");
    assert_eq!(raw.body["id"], first.id.as_str());
    wait_for_state(&admin, &first.id, "completed").await;
    // Still the same run once it has finished; and a runner of the workspace gets it too.
    let (again, created) = app.client("runner").create_run(&body).await.unwrap();
    assert!(!created);
    assert_eq!(
        (again.id.as_str(), again.state.as_str()),
        (first.id.as_str(), "completed")
    );
    assert_eq!(all_runs(&admin, RunsQuery::default()).await.len(), 1);
    assert_eq!(app.runner.journal.entries().len(), 1, "executed once");
    // Keys are per workspace: another workspace's same key makes its own run.
    let beta = app.tenant("beta").await;
    beta.client("admin")
        .create_pool(&crate::support::managed_pool("sbx"))
        .await
        .unwrap();
    let (theirs, created) = beta.client("admin").create_run(&body).await.unwrap();
    assert!(created);
    assert_ne!(theirs.id, first.id);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_submits_with_one_key_make_one_run() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.managed_pool("sbx").await;
    let body = NewRun {
        idempotency_key: Some("burst".into()),
        ..managed_run("sbx", json!({"sleep_ms": 50}))
    };
    let answers = futures::future::join_all((0..20).map(|_| {
        let admin = admin.clone();
        let body = body.clone();
        async move { admin.create_run(&body).await }
    }))
    .await;
    let answers: Vec<_> = answers.into_iter().map(|a| a.unwrap()).collect();
    let ids: HashSet<&str> = answers.iter().map(|(r, _)| r.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "one run for one key: {ids:?}");
    let created = answers.iter().filter(|(_, c)| *c).count();
    assert_eq!(created, 1, "exactly one answer is 201 Created");
    let id = ids.into_iter().next().unwrap().to_owned();
    wait_for_state(&admin, &id, "completed").await;
    assert_eq!(all_runs(&admin, RunsQuery::default()).await.len(), 1);
    assert_eq!(app.runner.journal.entries().len(), 1, "executed once");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_run_ends_it_cancelled() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.managed_pool("sbx").await;
    let run = app
        .submit("sbx", json!({"sleep_ms": 600_000, "log": ["working"]}))
        .await;
    wait_for_state(&admin, &run.id, "running").await;
    let answer = app
        .call(
            "POST",
            &format!("/v1/runs/{}/cancel", run.id),
            Some(app.acme.key("runner")),
            None,
        )
        .await;
    assert_eq!(answer.status, 202, "{answer:#?}");
    assert!(
        matches!(
            answer.body["state"].as_str(),
            Some("cancelling" | "cancelled")
        ),
        "{answer:#?}"
    );
    let done = wait_for_state(&admin, &run.id, "cancelled").await;
    assert!(done.ended_at.is_some());
    let path = path_of(&admin, &run.id).await;
    assert_eq!(
        path[path.len() - 2..],
        [
            edge(Some("running"), "cancelling"),
            edge(Some("cancelling"), "cancelled")
        ],
        "{path:?}"
    );
    let events = admin.run_events(&run.id).await.unwrap();
    assert_eq!(events[events.len() - 2].cause, "cancel requested");
    // Cancelling again now: the run has ended.
    let again = app
        .call_admin("POST", &format!("/v1/runs/{}/cancel", run.id), None)
        .await;
    again
        .assert_error(409, "conflict")
        .assert_message_mentions(&["already cancelled"]);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_finished_run_is_409_and_a_waiting_one_is_immediate() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.managed_pool("sbx").await;
    let run = app.submit("sbx", json!({})).await;
    let done = wait_for_state(&admin, &run.id, "completed").await;
    let reply = app
        .call_admin("POST", &format!("/v1/runs/{}/cancel", run.id), None)
        .await;
    reply
        .assert_error(409, "conflict")
        .assert_message_mentions(&["already completed"]);
    assert_eq!(
        admin.get_run(&run.id).await.unwrap(),
        done,
        "the finished run changed"
    );

    let later = app.submit_later("sbx").await;
    let cancelled = admin.cancel_run(&later.id).await.unwrap();
    assert_eq!(cancelled.state, "cancelled");
    assert_eq!(
        path_of(&admin, &later.id).await,
        vec![
            edge(None, "scheduled"),
            edge(Some("scheduled"), "cancelled")
        ]
    );
    assert_eq!(
        app.runner.journal.entries().len(),
        1,
        "the cancelled run never executed"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_and_paginate_over_120_runs() {
    let app = spawn_app().await;
    let admin = app.admin();
    admin
        .create_pool(&NewPool {
            paused: Some(true),
            ..crate::support::managed_pool("held")
        })
        .await
        .unwrap();
    app.managed_pool("fast").await;
    let submitted: Vec<(String, String)> = futures::stream::iter(0..120)
        .map(|i| {
            let admin = admin.clone();
            async move {
                let pool = if i % 12 < 7 { "held" } else { "fast" };
                let (run, _) = admin
                    .create_run(&managed_run(pool, json!({"i": i})))
                    .await
                    .unwrap();
                (run.id, pool.to_owned())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let held: HashSet<String> = submitted
        .iter()
        .filter(|(_, p)| p == "held")
        .map(|(id, _)| id.clone())
        .collect();
    let fast: HashSet<String> = submitted
        .iter()
        .filter(|(_, p)| p == "fast")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!((held.len(), fast.len()), (70, 50));
    wait_until("the fast pool's 50 runs to complete", || {
        let admin = admin.clone();
        async move {
            let q = RunsQuery {
                state: Some("completed".into()),
                ..Default::default()
            };
            let n = all_runs(&admin, q).await.len();
            if n == 50 {
                Ok(())
            } else {
                Err(format!("{n} completed"))
            }
        }
    })
    .await;

    /// Pages through a query; checks each page's size, the order and the last page's cursor.
    async fn pages(admin: &ferry_client::Client, mut q: RunsQuery) -> Vec<ferry_client::Run> {
        let limit = q.limit.unwrap() as usize;
        let mut seen = Vec::new();
        loop {
            let page = admin.list_runs(&q).await.unwrap();
            assert!(page.items.len() <= limit);
            let last = page.next_cursor.is_none();
            if !last {
                assert_eq!(page.items.len(), limit, "only the last page may be short");
            }
            seen.extend(page.items);
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        assert!(
            seen.windows(2).all(|w| w[0].created_at >= w[1].created_at),
            "newest first"
        );
        seen
    }
    fn ids(runs: &[ferry_client::Run]) -> Vec<String> {
        runs.iter().map(|r| r.id.clone()).collect()
    }
    fn as_set(ids: &[String]) -> HashSet<String> {
        let set: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(set.len(), ids.len(), "a run was listed twice");
        set
    }

    let everything = pages(
        &admin,
        RunsQuery {
            limit: Some(7),
            ..Default::default()
        },
    )
    .await;
    let all_ids: HashSet<String> = held.union(&fast).cloned().collect();
    assert_eq!(as_set(&ids(&everything)), all_ids, "every run exactly once");

    let q = RunsQuery {
        pool: Some("held".into()),
        limit: Some(9),
        ..Default::default()
    };
    let in_held = pages(&admin, q).await;
    assert_eq!(as_set(&ids(&in_held)), held);
    assert!(in_held
        .iter()
        .all(|r| r.pool == "held" && r.state == "scheduled"));

    let q = RunsQuery {
        state: Some("completed".into()),
        limit: Some(11),
        ..Default::default()
    };
    let completed = pages(&admin, q).await;
    assert_eq!(as_set(&ids(&completed)), fast);

    let q = RunsQuery {
        pool: Some("fast".into()),
        state: Some("scheduled".into()),
        limit: Some(5),
        ..Default::default()
    };
    assert!(pages(&admin, q).await.is_empty());
    let q = RunsQuery {
        pool: Some("nope".into()),
        limit: Some(5),
        ..Default::default()
    };
    assert!(pages(&admin, q).await.is_empty());
    let q = RunsQuery {
        limit: Some(120),
        ..Default::default()
    };
    let one_page = admin.list_runs(&q).await.unwrap();
    assert_eq!((one_page.items.len(), one_page.next_cursor), (120, None));
    // The default page is 50.
    let page = admin.list_runs(&RunsQuery::default()).await.unwrap();
    assert_eq!(page.items.len(), 50);
    assert!(page.next_cursor.is_some());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_log_streams_its_lines_then_end() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.managed_pool("sbx").await;
    let run = app
        .submit(
            "sbx",
            json!({"log": ["one", "two", "three"], "sleep_ms": 700}),
        )
        .await;
    let events: Vec<FollowEvent> = admin
        .follow_logs(&run.id, None)
        .map(|e| e.unwrap())
        .collect()
        .await;
    let (end, lines) = events.split_last().unwrap();
    assert_eq!(
        end,
        &FollowEvent::End {
            state: "completed".into(),
            truncated: false
        }
    );
    let text: Vec<&str> = lines
        .iter()
        .map(|e| match e {
            FollowEvent::Line(l) => l.line.as_str(),
            other => panic!("{other:?} before the end"),
        })
        .collect();
    assert_eq!(text, vec!["one", "two", "three"]);
    // Following a finished run's log from after its first line: the rest, then end.
    let FollowEvent::Line(first) = &lines[0] else {
        unreachable!()
    };
    let rest: Vec<FollowEvent> = admin
        .follow_logs(&run.id, Some(first.seq))
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(rest.len(), 3, "{rest:?}");
    assert!(matches!(&rest[0], FollowEvent::Line(l) if l.line == "two"));
    // The raw stream is server-sent events.
    let raw = app
        .http
        .get(format!("{}/v1/runs/{}/logs?follow=true", app.url, run.id))
        .bearer_auth(app.acme.key("viewer"))
        .send()
        .await
        .unwrap();
    assert!(raw.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let body = raw.text().await.unwrap();
    assert!(
        body.contains("event: line") && body.contains("event: end"),
        "{body}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_log_ends_with_an_error_once_its_key_is_revoked() {
    let app = spawn_app().await;
    app.managed_pool("sbx").await;
    let run = app
        .submit("sbx", json!({"log": ["hello"], "sleep_ms": 60_000}))
        .await;
    let minted = app
        .call_admin("POST", "/v1/api-keys", Some(r#"{"role": "viewer"}"#))
        .await;
    assert_eq!(minted.status, 201, "{minted:#?}");
    let key = minted.body["key"].as_str().unwrap();
    let key_id = minted.body["id"].as_str().unwrap();
    let follower = ferry_client::Client::new(&app.url, key).unwrap();
    let mut stream = Box::pin(follower.follow_logs(&run.id, None));
    let first = stream.next().await.unwrap().unwrap();
    assert!(
        matches!(&first, FollowEvent::Line(l) if l.line == "hello"),
        "{first:?}"
    );

    let revoked = app
        .call_admin("DELETE", &format!("/v1/api-keys/{key_id}"), None)
        .await;
    assert_eq!(revoked.status, 200, "{revoked:#?}");
    // Within the re-check period and a round trip: an error, not a silent resumption.
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .expect("the stream outlived its key by 5 s")
        .expect("the stream ended without saying why");
    let err = next.expect_err("a revoked key's stream went on");
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(err.to_string().contains("revoked"), "{err}");
    assert!(
        stream.next().await.is_none(),
        "the stream went on after its error"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_template_and_runs_as_they_end() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.managed_pool("sbx").await;
    let run = app.submit("sbx", json!({})).await;
    wait_for_state(&admin, &run.id, "completed").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    admin.run_events(&run.id).await.unwrap();
    admin.get_pool("sbx").await.unwrap();
    assert!(admin.get_run(&unknown).await.is_err());
    app.call_admin("GET", "/v1/definitely-not-a-route", None)
        .await;

    // Not on the public listener (no FERRY_METRICS_TOKEN); open on the internal one.
    assert_eq!(app.call("GET", "/metrics", None, None).await.status, 404);
    let reply = crate::support::call(
        &app.http,
        "GET",
        &format!("{}/metrics", app.internal_url),
        None,
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    let ct = reply.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = reply.text;
    let has = |needle: &str| text.lines().any(|l| l.starts_with(needle));
    assert!(
        has(r#"ferry_http_requests_total{method="GET",route="/v1/runs/{id}",status="200"}"#),
        "{text}"
    );
    assert!(
        has(r#"ferry_http_requests_total{method="GET",route="/v1/runs/{id}",status="404"}"#),
        "{text}"
    );
    assert!(
        has(r#"ferry_http_requests_total{method="GET",route="/v1/runs/{id}/events",status="200"}"#),
        "{text}"
    );
    assert!(
        has(r#"ferry_http_requests_total{method="POST",route="/v1/runs",status="201"}"#),
        "{text}"
    );
    assert!(
        has(r#"ferry_http_requests_total{method="GET",route="/v1/pools/{name}",status="200"}"#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE ferry_http_requests counter"),
        "{text}"
    );
    // Runs counted by this process's scheduler as it ended them.
    for line in [
        r#"ferry_runs_submitted_total{pool_type="managed"} 1"#,
        r#"ferry_runs_started_total{pool_type="managed"} 1"#,
        r#"ferry_runs_finished_total{pool_type="managed",state="completed"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing:
{text}"
        );
    }
    for raw in [
        run.id.as_str(),
        unknown.as_str(),
        "definitely-not-a-route",
        "/v1/pools/sbx",
    ] {
        assert!(
            !text.contains(raw),
            "a raw path or id in the metrics: {raw}\n{text}"
        );
    }
    // Every counter line is a route template.
    for line in text
        .lines()
        .filter(|l| l.starts_with("ferry_http_requests_total{"))
    {
        let route = line
            .split("route=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let known = [
            "/v1/pools",
            "/v1/pools/{name}",
            "/v1/runs",
            "/v1/runs/{id}",
            "/v1/runs/{id}/cancel",
            "/v1/runs/{id}/events",
            "/v1/runs/{id}/logs",
            "/v1/api-keys",
            "/v1/api-keys/{id}",
            "/v1/artifacts",
            "/v1/artifacts/{digest}",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "unmatched",
            "/internal/v1/workspaces",
            "/internal/v1/workspaces/{id}/api-keys",
        ];
        assert!(
            known.contains(&route),
            "unexpected route label {route:?} in {line}"
        );
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_the_routes_and_the_probes_answer() {
    let app = spawn_app().await;
    let reply = app.call("GET", "/openapi.json", None, None).await;
    assert_eq!(reply.status, 200);
    let doc: Value = serde_json::from_str(&reply.text).expect("openapi.json is JSON");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let routes: &[(&str, &[&str])] = &[
        ("/v1/pools", &["get", "post"]),
        ("/v1/pools/{name}", &["get", "patch", "delete"]),
        ("/v1/runs", &["get", "post"]),
        ("/v1/runs/{id}", &["get"]),
        ("/v1/runs/{id}/cancel", &["post"]),
        ("/v1/runs/{id}/events", &["get"]),
        ("/v1/runs/{id}/logs", &["get"]),
        ("/v1/api-keys", &["get", "post"]),
        ("/v1/api-keys/{id}", &["delete"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
    ];
    for (path, methods) in routes {
        for method in *methods {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing from openapi.json"
            );
        }
    }
    let ready = app.call("GET", "/readyz", None, None).await;
    assert_eq!(
        (ready.status, ready.body["status"].as_str()),
        (200, Some("ready"))
    );
    let health = app.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    let internal = crate::support::call(
        &app.http,
        "GET",
        &format!("{}/readyz", app.internal_url),
        None,
        None,
    )
    .await;
    assert_eq!(internal.status, 200);
    app.shutdown().await;
}
