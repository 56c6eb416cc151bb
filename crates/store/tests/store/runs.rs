//! Runs: submission and idempotency, reading, listing with filters and cursors, and
//! cancellation requests in every state.

use std::collections::HashSet;

use chrono::{DateTime, SubsecRound, Utc};
use ferry_core::{IdempotencyKey, PoolType, RunState};
use ferry_store::{Error, Run, RunFilter};
use futures::StreamExt;
use serde_json::json;

use crate::harness::{name, new_run, pool, run_at, run_in, workspace, Db};

backend_test!(a_new_run_is_scheduled_with_a_first_event);
async fn a_new_run_is_scheduled_with_a_first_event(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "ecs-prod", PoolType::Ecs).await;
    let mut new = new_run(&p);
    // Nanoseconds are kept to the microsecond, on both backends.
    new.scheduled_at = DateTime::from_timestamp(1_900_000_000, 123_456_789).unwrap();
    new.artifact = None;
    let before = Utc::now().trunc_subsecs(6);
    let (run, created) = s.run_create(&new).await.unwrap();
    assert!(created);
    assert_eq!(run.state, RunState::Scheduled);
    assert_eq!((run.attempt, run.generation, run.max_retries), (1, 0, 1));
    assert_eq!((run.workspace_id, run.pool_id), (ws.id, p.id));
    assert_eq!((&run.pool_name, run.pool_type), (&p.name, PoolType::Ecs));
    assert_eq!(run.parameters, new.parameters);
    assert_eq!(run.job_variables, new.job_variables);
    assert_eq!(run.limits, new.limits);
    assert_eq!(run.artifact, None);
    assert_eq!(
        run.scheduled_at,
        DateTime::from_timestamp(1_900_000_000, 123_456_000).unwrap()
    );
    assert!(run.created_at >= before && run.created_at <= Utc::now());
    assert_eq!(
        (run.lease_owner.as_ref(), run.lease_expires_at),
        (None, None)
    );
    assert_eq!((run.started_at, run.ended_at), (None, None));
    assert_eq!(
        (&run.result, &run.infrastructure, &run.submit_intent),
        (&None, &None, &None)
    );
    assert_eq!((run.state_reason, &run.state_message), (None, &None));
    assert!(!run.log_truncated);
    assert_eq!(run.idempotency_key, None);

    // What was returned is what is stored.
    assert_eq!(s.run_get(ws.id, run.id).await.unwrap(), run);
    assert_eq!(s.run_get_unscoped(run.id).await.unwrap(), run);

    let events = s.run_events(ws.id, run.id).await.unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.seq, e.run_id, e.from_state, e.to_state),
        (1, run.id, None, RunState::Scheduled)
    );
    assert_eq!(
        (e.cause.as_str(), e.attempt, e.generation),
        ("submitted", 1, 0)
    );
    assert_eq!((e.reason, &e.message), (None, &None));
}

backend_test!(an_idempotency_key_returns_the_existing_run);
async fn an_idempotency_key_returns_the_existing_run(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let mut new = new_run(&p);
    new.idempotency_key = Some(IdempotencyKey::parse("order-42/retry:1").unwrap());
    let (first, created) = s.run_create(&new).await.unwrap();
    assert!(created);
    assert_eq!(first.idempotency_key.as_deref(), Some("order-42/retry:1"));

    // Same key, different body: the existing run, unchanged.
    let mut again = new.clone();
    again.parameters = json!({"different": true});
    let (second, created) = s.run_create(&again).await.unwrap();
    assert!(!created);
    assert_eq!(second, first);
    // Also after the run moved on.
    let cancelled = s.run_request_cancel(ws.id, first.id).await.unwrap();
    assert_eq!(s.run_create(&new).await.unwrap(), (cancelled, false));

    // Another key, or no key, is another run.
    let mut other = new.clone();
    other.idempotency_key = Some(IdempotencyKey::parse("order-43").unwrap());
    assert!(s.run_create(&other).await.unwrap().1);
    let mut none = new.clone();
    none.idempotency_key = None;
    assert!(s.run_create(&none).await.unwrap().1);
    assert!(s.run_create(&none).await.unwrap().1);

    // The same key in another workspace is another run.
    let ws2 = workspace(s, "beta").await;
    let p2 = pool(s, ws2.id, "sbx", PoolType::Managed).await;
    let mut foreign = new_run(&p2);
    foreign.idempotency_key = new.idempotency_key.clone();
    let (theirs, created) = s.run_create(&foreign).await.unwrap();
    assert!(created);
    assert_ne!(theirs.id, first.id);

    let all = s.runs_list(ws.id, &RunFilter::default()).await.unwrap();
    assert_eq!(all.items.len(), 4);
}

backend_test!(concurrent_submissions_with_one_key_make_one_run);
async fn concurrent_submissions_with_one_key_make_one_run(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let mut new = new_run(&p);
    new.idempotency_key = Some(IdempotencyKey::parse("same-key").unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (s, new) = (s.clone(), new.clone());
            tokio::spawn(async move { s.run_create(&new).await.unwrap() })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
    let ids: HashSet<_> = results.iter().map(|(r, _)| r.id).collect();
    assert_eq!(ids.len(), 1);
    let listed = s.runs_list(ws.id, &RunFilter::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        s.run_events(ws.id, listed.items[0].id).await.unwrap().len(),
        1
    );
}

/// Walks every page of `filter`, asserting each page's size, and returns the runs in order.
async fn walk(db: &Db, ws: ferry_core::WorkspaceId, mut filter: RunFilter) -> Vec<Run> {
    let mut all = Vec::new();
    loop {
        let page = db.store.runs_list(ws, &filter).await.unwrap();
        assert!(page.items.len() <= filter.limit as usize);
        all.extend(page.items.iter().cloned());
        match page.next_cursor {
            Some(c) => {
                assert_eq!(
                    page.items.len(),
                    filter.limit as usize,
                    "only full pages go on"
                );
                filter.cursor = Some(c);
            }
            None => return all,
        }
    }
}

fn newest_first(runs: &[Run]) -> bool {
    runs.windows(2)
        .all(|w| (w[0].created_at, w[0].id) > (w[1].created_at, w[1].id))
}

backend_test!(listing_filters_and_pages_through_every_run_once);
async fn listing_filters_and_pages_through_every_run_once(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let a = pool(s, ws.id, "pool-a", PoolType::Managed).await;
    let b = pool(s, ws.id, "pool-b", PoolType::Ecs).await;
    let mut ids = Vec::new();
    for i in 0..23 {
        let run = run_in(s, if i % 3 == 0 { &b } else { &a }).await;
        ids.push(run.id);
    }
    // Some of pool a's runs cancelled.
    for id in ids.iter().skip(1).step_by(6) {
        s.run_request_cancel(ws.id, *id).await.unwrap();
    }
    // Another workspace's runs never show.
    let other = workspace(s, "other").await;
    let op = pool(s, other.id, "pool-a", PoolType::Managed).await;
    run_in(s, &op).await;

    let all = walk(
        &db,
        ws.id,
        RunFilter {
            limit: 5,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all.len(), 23);
    assert!(newest_first(&all));
    let walked: HashSet<_> = all.iter().map(|r| r.id).collect();
    assert_eq!(walked, ids.iter().copied().collect());

    let in_b = walk(
        &db,
        ws.id,
        RunFilter {
            pool: Some(name("pool-b")),
            limit: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(in_b.len(), 8);
    assert!(in_b.iter().all(|r| r.pool_id == b.id) && newest_first(&in_b));

    let cancelled = walk(
        &db,
        ws.id,
        RunFilter {
            state: Some(RunState::Cancelled),
            limit: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(cancelled.len(), 4);
    assert!(cancelled.iter().all(|r| r.state == RunState::Cancelled));

    let both = RunFilter {
        pool: Some(name("pool-a")),
        state: Some(RunState::Scheduled),
        limit: 4,
        ..Default::default()
    };
    let scheduled_a = walk(&db, ws.id, both).await;
    assert_eq!(scheduled_a.len(), 15 - 4);
    assert!(scheduled_a
        .iter()
        .all(|r| r.pool_id == a.id && r.state == RunState::Scheduled));

    let none = RunFilter {
        pool: Some(name("nope")),
        ..Default::default()
    };
    assert!(s.runs_list(ws.id, &none).await.unwrap().items.is_empty());

    // An exact last page has no cursor.
    let exact = s
        .runs_list(
            ws.id,
            &RunFilter {
                limit: 23,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((exact.items.len(), exact.next_cursor), (23, None));
}

backend_test!(pages_are_stable_when_runs_share_a_creation_time);
async fn pages_are_stable_when_runs_share_a_creation_time(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    for _ in 0..12 {
        run_in(s, &p).await;
    }
    // Half the runs at one instant: only the id orders them.
    db.exec(
        "UPDATE runs SET created_at = (SELECT MIN(created_at) FROM runs) \
         WHERE id IN (SELECT id FROM runs ORDER BY id LIMIT 6)",
    )
    .await;
    let all = walk(
        &db,
        ws.id,
        RunFilter {
            limit: 4,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all.len(), 12);
    assert!(newest_first(&all));
    assert_eq!(all.iter().map(|r| r.id).collect::<HashSet<_>>().len(), 12);
}

backend_test!(page_size_defaults_to_50_and_is_at_most_500);
async fn page_size_defaults_to_50_and_is_at_most_500(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    futures::stream::iter(0..501)
        .for_each_concurrent(8, |_| async { drop(run_in(s, &p).await) })
        .await;
    let default = s.runs_list(ws.id, &RunFilter::default()).await.unwrap();
    assert_eq!(default.items.len(), 50);
    assert!(default.next_cursor.is_some());
    let max = s
        .runs_list(
            ws.id,
            &RunFilter {
                limit: 10_000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(max.items.len(), 500);
    let rest = RunFilter {
        limit: 10_000,
        cursor: max.next_cursor,
        ..Default::default()
    };
    let rest = s.runs_list(ws.id, &rest).await.unwrap();
    assert_eq!((rest.items.len(), rest.next_cursor), (1, None));
    let one = s
        .runs_list(
            ws.id,
            &RunFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
}

backend_test!(a_malformed_cursor_is_refused);
async fn a_malformed_cursor_is_refused(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    for _ in 0..3 {
        run_in(s, &p).await;
    }
    let page = s
        .runs_list(
            ws.id,
            &RunFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let good = page.next_cursor.unwrap();
    let garbage = [
        "",
        "not-a-cursor",
        "zz",
        "abc",
        &good[..good.len() - 1],
        &good[2..],
        &format!("{good}7c"),
    ];
    for bad in garbage {
        let filter = RunFilter {
            cursor: Some(bad.to_owned()),
            ..Default::default()
        };
        match s.runs_list(ws.id, &filter).await {
            Err(e @ Error::BadCursor) => assert!(e.to_string().contains("cursor"), "{e}"),
            other => panic!("cursor {bad:?}: expected BadCursor, got {other:?}"),
        }
    }
    let ok = RunFilter {
        cursor: Some(good),
        ..Default::default()
    };
    assert_eq!(s.runs_list(ws.id, &ok).await.unwrap().items.len(), 2);
}

backend_test!(cancel_requests_in_every_state);
async fn cancel_requests_in_every_state(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    for state in RunState::ALL {
        let run = run_at(s, &p, state).await;
        let events_before = s.run_events(ws.id, run.id).await.unwrap();
        let answer = s.run_request_cancel(ws.id, run.id).await;
        let events = s.run_events(ws.id, run.id).await.unwrap();
        match state {
            RunState::Scheduled => {
                let r = answer.unwrap();
                assert_eq!(r.state, RunState::Cancelled);
                assert!(r.ended_at.is_some());
                assert_eq!(r.generation, run.generation);
                let e = events.last().unwrap();
                assert_eq!(
                    (e.from_state, e.to_state),
                    (Some(RunState::Scheduled), RunState::Cancelled)
                );
                assert_eq!(e.cause, "cancel requested");
                assert_eq!(events.len(), events_before.len() + 1);
            }
            RunState::Pending | RunState::Running => {
                let r = answer.unwrap();
                assert_eq!(r.state, RunState::Cancelling);
                // The owner keeps its lease and generation, and stops the run itself.
                assert_eq!(
                    (r.generation, &r.lease_owner),
                    (run.generation, &run.lease_owner)
                );
                assert_eq!(r.lease_expires_at, run.lease_expires_at);
                assert_eq!(r.ended_at, None);
                let e = events.last().unwrap();
                assert_eq!(
                    (e.from_state, e.to_state),
                    (Some(state), RunState::Cancelling)
                );
                assert_eq!(e.cause, "cancel requested");
                assert_eq!(events.len(), events_before.len() + 1);
            }
            RunState::Cancelling => {
                assert_eq!(answer.unwrap(), run, "unchanged");
                assert_eq!(events, events_before);
            }
            done => {
                match answer {
                    Err(Error::InUse(msg)) => assert_eq!(msg, format!("run is already {done}")),
                    other => panic!("{done}: expected InUse, got {other:?}"),
                }
                assert_eq!(s.run_get(ws.id, run.id).await.unwrap(), run);
                assert_eq!(events, events_before);
            }
        }
    }
}

backend_test!(a_corrupt_row_is_reported_as_corrupt);
async fn a_corrupt_row_is_reported_as_corrupt(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let run = run_in(s, &p).await;
    db.exec("UPDATE runs SET state = 'exploded'").await;
    match s.run_get(ws.id, run.id).await {
        Err(Error::Corrupt { what, detail }) => {
            assert_eq!(what, "run state");
            assert!(detail.contains("exploded"));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    db.exec("UPDATE pools SET pool_type = 'kubernetes'").await;
    assert!(matches!(
        s.pools_list(ws.id).await,
        Err(Error::Corrupt {
            what: "pool type",
            ..
        })
    ));
}
