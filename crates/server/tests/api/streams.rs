//! Streams end when their authority ends: a followed log closes, with a last `error` event,
//! within a few seconds of its key being revoked; a stream whose key stays valid stays open.
//! (A workspace cannot be deleted while it has keys, so a key that is still valid also means
//! its workspace exists.)

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{App, Tenant, NOOP_DIGEST};

/// A run that stays `scheduled` (this server has no executors), so its log never ends.
async fn endless_run(app: &App, t: &Tenant) -> String {
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
            json!({"pool": "sbx", "artifact": NOOP_DIGEST}),
        )
        .await;
    run.expect(201);
    run.body["id"].as_str().unwrap().to_owned()
}

/// A viewer key of `t` and its id.
async fn viewer(app: &App, t: &Tenant) -> (String, String) {
    let r = app
        .post(&t.admin, "/v1/api-keys", json!({"role": "viewer"}))
        .await;
    r.expect(201);
    (
        r.body["key"].as_str().unwrap().to_owned(),
        r.body["id"].as_str().unwrap().to_owned(),
    )
}

async fn follow(app: &App, key: &str, run: &str) -> reqwest::Response {
    let r = app
        .http
        .get(format!("{}/v1/runs/{run}/logs?follow=true", app.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r
}

/// What the stream sends within `wait`, and whether it closed meanwhile.
async fn read_for(stream: &mut reqwest::Response, wait: Duration) -> (String, bool) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut text = String::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Err(_) => return (text, false),
            Ok(Ok(Some(bytes))) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(Ok(None)) | Ok(Err(_)) => return (text, true),
        }
    }
}

backend_test!(a_followed_log_ends_when_its_key_is_revoked);
async fn a_followed_log_ends_when_its_key_is_revoked(app: App) {
    let t = app.tenant("acme").await;
    let run = endless_run(&app, &t).await;
    let (doomed, doomed_id) = viewer(&app, &t).await;
    let (kept, _) = viewer(&app, &t).await;
    let mut revoked_stream = follow(&app, &doomed, &run).await;
    let mut kept_stream = follow(&app, &kept, &run).await;
    // Both stay open across a re-check.
    let (_, closed) = read_for(&mut revoked_stream, Duration::from_millis(2500)).await;
    assert!(!closed, "a stream with a valid key closed");

    app.delete(&t.admin, &format!("/v1/api-keys/{doomed_id}"))
        .await
        .expect(200);
    let revoked_at = Instant::now();
    let (text, closed) = read_for(&mut revoked_stream, Duration::from_secs(5)).await;
    assert!(
        closed,
        "still open {:?} after its key was revoked: {text:?}",
        revoked_at.elapsed()
    );
    assert!(text.contains("event: error"), "{text:?}");
    assert!(text.contains("\"code\":\"unauthorized\""), "{text:?}");
    assert!(text.contains("revoked"), "{text:?}");
    // Resuming is refused.
    app.get(&doomed, &format!("/v1/runs/{run}/logs?follow=true"))
        .await
        .expect(401);

    // Positive control: the other key's stream is still open, several re-checks later.
    let (text, closed) = read_for(&mut kept_stream, Duration::from_secs(5)).await;
    assert!(!closed, "a stream with a valid key closed: {text:?}");
    assert!(!text.contains("event: error"), "{text:?}");
}
