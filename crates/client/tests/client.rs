//! The client against a tiny canned HTTP server: headers it sends, how it reads statuses and
//! error bodies, and how it follows a real server-sent event stream that arrives in odd
//! chunks and drops mid-way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_client::{Client, Error, FollowEvent, NewRun, RunsQuery};
use futures::StreamExt;
use serde_json::{json, Value};

const TOKEN: &str = "fk_test_token";

#[derive(Clone, Default)]
struct Seen {
    /// The `after` parameter of every follow request, in order.
    follow_afters: Arc<Mutex<Vec<Option<String>>>>,
    /// The query of the last `GET /v1/runs`.
    runs_query: Arc<Mutex<HashMap<String, String>>>,
    /// The body of the last `POST /v1/runs`.
    run_body: Arc<Mutex<Value>>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [("x-request-id", "req-42")],
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// The 401 answer to a request without the right bearer token.
fn unauthorized(headers: &HeaderMap) -> Option<Response> {
    let expected = format!("Bearer {TOKEN}");
    match headers.get(header::AUTHORIZATION) {
        Some(v) if v.as_bytes() == expected.as_bytes() => None,
        _ => Some(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid API key",
        )),
    }
}

fn pool_json(name: &str) -> Value {
    json!({
        "id": "pool-1", "name": name, "type": "managed", "limits": {"memory_mb": 64},
        "job_template": {}, "credential": null, "concurrency_limit": null, "max_retries": 0,
        "paused": false, "created_at": "2024-05-01T12:00:00Z",
        "updated_at": "2024-05-01T12:00:00Z", "a_field_added_later": true
    })
}

fn run_json(id: &str, pool: &str) -> Value {
    json!({
        "id": id, "pool": pool, "pool_type": "managed", "state": "scheduled",
        "state_reason": null, "state_message": null, "attempt": 1, "max_retries": 0,
        "parameters": {}, "job_variables": {}, "artifact": null, "result": null,
        "idempotency_key": null, "infrastructure": null, "log_truncated": false,
        "scheduled_at": "2024-05-01T12:00:00Z", "created_at": "2024-05-01T12:00:00Z",
        "started_at": null, "ended_at": null
    })
}

fn log_event(seq: i64, line: &str) -> String {
    let data = json!({"seq": seq, "ts": "2024-05-01T12:00:00Z", "stream": "stdout", "line": line});
    format!("event: line\r\ndata: {data}\r\n\r\n")
}

/// A streamed body sent `size` bytes at a time with a pause between, so the client really
/// receives it in pieces that split lines, CRLFs and UTF-8 characters.
fn sse_body(text: String, size: usize) -> Response {
    let chunks: Vec<Vec<u8>> = text.as_bytes().chunks(size).map(<[u8]>::to_vec).collect();
    let stream = futures::stream::iter(chunks).then(|c| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok::<_, Infallible>(c)
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn list_pools(headers: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    Json(json!({"items": [pool_json("sbx")]})).into_response()
}

async fn get_pool(headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    match name.as_str() {
        "missing" => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "pool \"missing\" not found",
        ),
        "proxy" => (StatusCode::BAD_GATEWAY, "upstream went away").into_response(),
        "garbled" => (StatusCode::OK, "{\"id\": ").into_response(),
        _ => Json(pool_json(&name)).into_response(),
    }
}

async fn create_run(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    *seen.run_body.lock().unwrap() = body.clone();
    let pool = body["pool"].as_str().unwrap_or_default();
    let status = if body["idempotency_key"] == "used-before" {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (status, Json(run_json("run-1", pool))).into_response()
}

async fn list_runs(State(seen): State<Seen>, Query(q): Query<HashMap<String, String>>) -> Response {
    let next = if q.contains_key("cursor") {
        Value::Null
    } else {
        json!("c2")
    };
    *seen.runs_query.lock().unwrap() = q;
    Json(json!({"items": [run_json("run-1", "sbx")], "next_cursor": next})).into_response()
}

async fn logs(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    if q.get("follow").map(String::as_str) != Some("true") {
        return Json(json!({"lines": [], "truncated": false})).into_response();
    }
    let after = q.get("after").cloned();
    seen.follow_afters.lock().unwrap().push(after.clone());
    let end = "event: end\ndata: {\"state\": \"completed\",\ndata: \"truncated\": true}\n\n";
    match (id.as_str(), after.as_deref()) {
        ("whole", None) => {
            let text = format!(
                ": keep-alive\r\n\r\n{}{}event: progress\r\ndata: 50\r\n\r\n{}{end}",
                log_event(1, "héllo wörld ✓"),
                log_event(2, "second"),
                log_event(3, "third")
            );
            sse_body(text, 3)
        }
        // The first connection drops after two lines (and half of a third).
        ("drops", None) => {
            let text = format!(
                "{}{}event: line\r\nda",
                log_event(1, "one"),
                log_event(2, "two")
            );
            sse_body(text, 5)
        }
        // The resumed connection repeats line 2 (the client must skip it), then ends.
        ("drops", Some("2")) => {
            let text = format!("{}{}{end}", log_event(2, "two"), log_event(3, "three"));
            sse_body(text, 7)
        }
        // Drops after line 1; the first reconnection finds the server restarting.
        ("flaky", None) => sse_body(log_event(1, "one"), 5),
        ("flaky", Some("1")) if seen.follow_afters.lock().unwrap().len() == 2 => {
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "starting")
        }
        ("flaky", Some("1")) => sse_body(format!("{}{end}", log_event(2, "two")), 4),
        ("json", _) => Json(json!({"lines": [], "truncated": false})).into_response(),
        _ => error(StatusCode::NOT_FOUND, "not_found", "run not found"),
    }
}

async fn start() -> (Client, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/pools", get(list_pools))
        .route("/v1/pools/{name}", get(get_pool))
        .route("/v1/runs", post(create_run).get(list_runs))
        .route("/v1/runs/{id}/logs", get(logs))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = Client::new(&format!("http://{addr}"), TOKEN).unwrap();
    (client, seen)
}

#[tokio::test]
async fn sends_the_bearer_token() {
    let (client, _) = start().await;
    client.health().await.unwrap();
    let pools = client.list_pools().await.unwrap();
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0].pool_type, "managed");
    assert_eq!(pools[0].limits, json!({"memory_mb": 64}));

    let wrong = Client::new(client.base_url(), "fk_wrong").unwrap();
    let e = wrong.list_pools().await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(e.to_string().contains("FERRY_API_KEY"), "{e}");
}

#[tokio::test]
async fn tells_created_from_existing_runs() {
    let (client, seen) = start().await;
    let mut new = NewRun {
        pool: "sbx".into(),
        parameters: Some(json!({"n": 3})),
        ..Default::default()
    };
    let (run, created) = client.create_run(&new).await.unwrap();
    assert!(created);
    assert_eq!(run.pool, "sbx");
    assert_eq!(
        *seen.run_body.lock().unwrap(),
        json!({"pool": "sbx", "parameters": {"n": 3}})
    );

    new.idempotency_key = Some("used-before".into());
    let (run, created) = client.create_run(&new).await.unwrap();
    assert!(!created);
    assert_eq!(run.id, "run-1");
}

#[tokio::test]
async fn decodes_api_errors() {
    let (client, _) = start().await;
    match client.get_pool("missing").await.unwrap_err() {
        Error::Api {
            status,
            code,
            message,
            request_id,
        } => {
            assert_eq!(status, 404);
            assert_eq!(code, "not_found");
            assert_eq!(message, "pool \"missing\" not found");
            assert_eq!(request_id.as_deref(), Some("req-42"));
        }
        other => panic!("{other:?}"),
    }
    match client.get_pool("proxy").await.unwrap_err() {
        Error::Api {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!(
                (status, code.as_str(), message.as_str()),
                (502, "http_502", "upstream went away")
            );
        }
        other => panic!("{other:?}"),
    }
    let e = client.get_pool("garbled").await.unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e:?}");
    assert!(e.to_string().contains("/v1/pools/garbled"), "{e}");

    let e = client.get_pool("..").await.unwrap_err();
    assert!(matches!(e, Error::InvalidName(_)), "{e:?}");
}

#[tokio::test]
async fn sends_run_filters_and_reads_cursors() {
    let (client, seen) = start().await;
    let query = RunsQuery {
        pool: Some("a b&c".into()),
        state: Some("failed".into()),
        limit: Some(5),
        cursor: None,
    };
    let page = client.list_runs(&query).await.unwrap();
    assert_eq!(page.next_cursor.as_deref(), Some("c2"));
    let got = seen.runs_query.lock().unwrap().clone();
    let want: HashMap<String, String> = [("pool", "a b&c"), ("state", "failed"), ("limit", "5")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(got, want);

    let page = client
        .list_runs(&RunsQuery {
            cursor: Some("c2".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.next_cursor, None);
}

async fn collect(client: &Client, id: &str) -> Vec<Result<FollowEvent, Error>> {
    let stream = client.follow_logs(id, None);
    tokio::time::timeout(Duration::from_secs(20), stream.collect::<Vec<_>>())
        .await
        .expect("the stream ends")
}

fn summary(events: &[Result<FollowEvent, Error>]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Ok(FollowEvent::Line(l)) => format!("{} {}", l.seq, l.line),
            Ok(FollowEvent::End { state, truncated }) => format!("end {state} {truncated}"),
            Err(e) => format!("error {e}"),
        })
        .collect()
}

#[tokio::test]
async fn follows_a_stream_split_in_odd_chunks() {
    let (client, seen) = start().await;
    let events = collect(&client, "whole").await;
    assert_eq!(
        summary(&events),
        [
            "1 héllo wörld ✓",
            "2 second",
            "3 third",
            "end completed true"
        ]
    );
    assert_eq!(*seen.follow_afters.lock().unwrap(), [None]);
}

#[tokio::test]
async fn resumes_after_the_last_line_when_the_stream_drops() {
    let (client, seen) = start().await;
    let events = collect(&client, "drops").await;
    assert_eq!(
        summary(&events),
        ["1 one", "2 two", "3 three", "end completed true"]
    );
    assert_eq!(
        *seen.follow_afters.lock().unwrap(),
        [None, Some("2".to_owned())]
    );
}

#[tokio::test]
async fn resumes_through_a_restarting_server() {
    let (client, seen) = start().await;
    let events = collect(&client, "flaky").await;
    assert_eq!(summary(&events), ["1 one", "2 two", "end completed true"]);
    assert_eq!(
        *seen.follow_afters.lock().unwrap(),
        [None, Some("1".to_owned()), Some("1".to_owned())]
    );
}

#[tokio::test]
async fn follow_errors_end_the_stream() {
    let (client, _) = start().await;
    let events = collect(&client, "nope").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].as_ref().unwrap_err().status(), Some(404));

    let events = collect(&client, "json").await;
    assert_eq!(events.len(), 1);
    let e = events[0].as_ref().unwrap_err();
    assert!(matches!(e, Error::Stream { .. }), "{e:?}");
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::new(&url, TOKEN).unwrap();

    let e = client.list_pools().await.unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    assert!(e.is_transient());
    assert_eq!(
        e.to_string(),
        format!("cannot reach Ferry at {url} (is `ferry serve` running? set FERRY_URL)")
    );

    // A follow whose first connection fails reports it rather than retrying.
    let events = collect(&client, "r1").await;
    assert_eq!(events.len(), 1);
    assert!(matches!(events[0], Err(Error::Unreachable { .. })));
}
