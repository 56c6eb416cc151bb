//! The work queue: which runs a claim takes, in which order, within which limits; lease
//! takeover and fencing; renewals; concurrent claimers.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use ferry_core::{PoolType, RunId, RunState};
use ferry_store::{Error, NewRun, PoolPatch, Run};
use futures::StreamExt;
use serde_json::json;

use crate::harness::{lease, new_pool, new_run, pool, run_at, run_in, step, workspace, Db};

const ALL: &[PoolType] = &PoolType::ALL;

fn at(pool: &ferry_store::Pool, when: DateTime<Utc>) -> NewRun {
    NewRun {
        scheduled_at: when,
        ..new_run(pool)
    }
}

fn ids(runs: &[Run]) -> Vec<RunId> {
    runs.iter().map(|r| r.id).collect()
}

backend_test!(due_runs_are_claimed_and_future_ones_wait);
async fn due_runs_are_claimed_and_future_ones_wait(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let now = Utc::now();
    let (due, _) = s
        .run_create(&at(&p, now - Duration::seconds(5)))
        .await
        .unwrap();
    let (exactly_now, _) = s.run_create(&at(&p, now)).await.unwrap();
    let (later, _) = s
        .run_create(&at(&p, now + Duration::milliseconds(1)))
        .await
        .unwrap();
    let (future, _) = s
        .run_create(&at(&p, now + Duration::hours(1)))
        .await
        .unwrap();

    // Leases outlast every `now` below, so nothing is taken over.
    let until = now + Duration::days(1);
    let claimed = s.runs_claim("sched-1", now, until, 10, ALL).await.unwrap();
    assert_eq!(ids(&claimed), vec![due.id, exactly_now.id]);
    for r in &claimed {
        assert_eq!(r.state, RunState::Pending);
        assert_eq!(r.generation, 1);
        assert_eq!(r.lease_owner.as_deref(), Some("sched-1"));
        assert_eq!(
            r.lease_expires_at.map(|t| t.timestamp_micros()),
            Some(until.timestamp_micros())
        );
        assert_eq!(s.run_get(ws.id, r.id).await.unwrap(), *r);
        let e = s.run_events(ws.id, r.id).await.unwrap().pop().unwrap();
        assert_eq!(
            (e.from_state, e.to_state),
            (Some(RunState::Scheduled), RunState::Pending)
        );
        assert_eq!((e.cause.as_str(), e.generation), ("claimed by sched-1", 1));
    }
    assert_eq!(
        s.run_get(ws.id, later.id).await.unwrap().state,
        RunState::Scheduled
    );
    // Nothing more is due now; a claimed run is not claimed again.
    assert!(s
        .runs_claim("sched-2", now, until, 10, ALL)
        .await
        .unwrap()
        .is_empty());
    let next = s
        .runs_claim("sched-2", now + Duration::seconds(1), until, 10, ALL)
        .await
        .unwrap();
    assert_eq!(ids(&next), vec![later.id]);
    let last = s
        .runs_claim("sched-2", now + Duration::hours(2), until, 10, ALL)
        .await
        .unwrap();
    assert_eq!(ids(&last), vec![future.id]);
    assert!(s
        .runs_claim("sched-1", now, until, 0, ALL)
        .await
        .unwrap()
        .is_empty());
}

backend_test!(claims_take_the_oldest_first_at_any_precision);
async fn claims_take_the_oldest_first_at_any_precision(db: Db) {
    // On SQLite timestamps compare as text: whole seconds, milliseconds, microseconds and
    // nanoseconds (stored as microseconds) must still order as time does.
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let offsets_ns: [i64; 9] = [
        1_000_000_000,
        500_000_000,
        0,
        1_000_001_000,
        100_000,
        999_999_999,
        10_000_000_000,
        1_000,
        86_400_000_000_000,
    ];
    let mut by_time: Vec<(i64, RunId)> = Vec::new();
    for ns in offsets_ns {
        let (r, _) = s
            .run_create(&at(&p, t0 + Duration::nanoseconds(ns)))
            .await
            .unwrap();
        // Sub-microsecond digits are dropped on write.
        assert_eq!(r.scheduled_at, t0 + Duration::microseconds(ns / 1_000));
        by_time.push((ns, r.id));
    }
    by_time.sort();
    let now = t0 + Duration::days(2);
    let mut order = Vec::new();
    for _ in 0..offsets_ns.len() {
        let c = s
            .runs_claim("sched", now, now + Duration::minutes(1), 1, ALL)
            .await
            .unwrap();
        assert_eq!(c.len(), 1);
        order.push(c[0].id);
    }
    assert_eq!(order, by_time.iter().map(|(_, id)| *id).collect::<Vec<_>>());

    // `scheduled_at <= now` at microsecond resolution.
    let edge = t0 + Duration::microseconds(5);
    let (r, _) = s.run_create(&at(&p, edge)).await.unwrap();
    let early = edge - Duration::microseconds(1);
    assert!(s
        .runs_claim("sched", early, now, 5, ALL)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(&s.runs_claim("sched", edge, now, 5, ALL).await.unwrap()),
        vec![r.id]
    );
}

backend_test!(paused_pools_are_skipped);
async fn paused_pools_are_skipped(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let mut spec = new_pool("paused", PoolType::Managed);
    spec.paused = true;
    let paused = s.pool_create(ws.id, &spec).await.unwrap();
    let open = pool(s, ws.id, "open", PoolType::Managed).await;
    let held = run_in(s, &paused).await;
    let free = run_in(s, &open).await;
    let claimed = s
        .runs_claim("sched", Utc::now(), lease(), 10, ALL)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), vec![free.id]);
    assert!(s
        .runs_claim("sched", Utc::now(), lease(), 10, ALL)
        .await
        .unwrap()
        .is_empty());
    let unpause = PoolPatch {
        paused: Some(false),
        ..Default::default()
    };
    s.pool_update(ws.id, &paused.name, &unpause).await.unwrap();
    let claimed = s
        .runs_claim("sched", Utc::now(), lease(), 10, ALL)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), vec![held.id]);
}

backend_test!(claims_take_only_the_asked_pool_types);
async fn claims_take_only_the_asked_pool_types(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let managed = run_in(s, &pool(s, ws.id, "sbx", PoolType::Managed).await).await;
    let ecs = run_in(s, &pool(s, ws.id, "ecs", PoolType::Ecs).await).await;
    let cr = run_in(s, &pool(s, ws.id, "cr", PoolType::CloudRun).await).await;
    assert!(s
        .runs_claim("x", Utc::now(), lease(), 10, &[])
        .await
        .unwrap()
        .is_empty());
    let got = s
        .runs_claim("x", Utc::now(), lease(), 10, &[PoolType::Ecs])
        .await
        .unwrap();
    assert_eq!(ids(&got), vec![ecs.id]);
    let push = [PoolType::CloudRun, PoolType::Ecs];
    assert_eq!(
        ids(&s
            .runs_claim("x", Utc::now(), lease(), 10, &push)
            .await
            .unwrap()),
        vec![cr.id]
    );
    let got = s
        .runs_claim("x", Utc::now(), lease(), 10, &[PoolType::Managed])
        .await
        .unwrap();
    assert_eq!(ids(&got), vec![managed.id]);
}

backend_test!(a_pools_concurrency_limit_is_respected);
async fn a_pools_concurrency_limit_is_respected(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let mut spec = new_pool("limited", PoolType::Managed);
    spec.concurrency_limit = Some(2);
    let limited = s.pool_create(ws.id, &spec).await.unwrap();
    let open = pool(s, ws.id, "open", PoolType::Managed).await;
    let t0 = Utc::now() - Duration::minutes(10);
    for i in 0..5 {
        s.run_create(&at(&limited, t0 + Duration::seconds(i)))
            .await
            .unwrap();
    }
    // The open pool's runs are younger: they queue behind the limited pool's.
    let mut open_runs = Vec::new();
    for i in 0..3 {
        open_runs.push(
            s.run_create(&at(&open, t0 + Duration::seconds(60 + i)))
                .await
                .unwrap()
                .0,
        );
    }

    let first = s
        .runs_claim("sched", Utc::now(), lease(), 3, ALL)
        .await
        .unwrap();
    assert_eq!(first.iter().filter(|r| r.pool_id == limited.id).count(), 2);
    // The limited pool is full: its runs no longer hold back the open pool's.
    let second = s
        .runs_claim("sched", Utc::now(), lease(), 10, ALL)
        .await
        .unwrap();
    let open_ids: HashSet<_> = open_runs.iter().map(|r| r.id).collect();
    let claimed_open: HashSet<_> = first
        .iter()
        .chain(&second)
        .filter(|r| r.pool_id == open.id)
        .map(|r| r.id)
        .collect();
    assert_eq!(claimed_open, open_ids);
    assert!(second.iter().all(|r| r.pool_id == open.id));
    assert!(s
        .runs_claim("sched", Utc::now(), lease(), 10, ALL)
        .await
        .unwrap()
        .is_empty());

    // Finishing one frees one slot; a cancelling run still holds its slot.
    let running: Vec<&Run> = first.iter().filter(|r| r.pool_id == limited.id).collect();
    let r0 = s
        .run_transition(&step(running[0], RunState::Running, "t"))
        .await
        .unwrap();
    s.run_transition(&step(&r0, RunState::Completed, "t"))
        .await
        .unwrap();
    s.run_request_cancel(ws.id, running[1].id).await.unwrap();
    let third = s
        .runs_claim("sched", Utc::now(), lease(), 10, ALL)
        .await
        .unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].pool_id, limited.id);
    assert!(s
        .runs_claim("sched", Utc::now(), lease(), 10, ALL)
        .await
        .unwrap()
        .is_empty());

    // Raising the limit applies to the next claim.
    let raise = PoolPatch {
        concurrency_limit: Some(Some(4)),
        ..Default::default()
    };
    s.pool_update(ws.id, &limited.name, &raise).await.unwrap();
    assert_eq!(
        s.runs_claim("sched", Utc::now(), lease(), 10, ALL)
            .await
            .unwrap()
            .len(),
        2
    );
}

backend_test!(concurrent_claimers_respect_a_concurrency_limit);
async fn concurrent_claimers_respect_a_concurrency_limit(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let mut spec = new_pool("limited", PoolType::Managed);
    spec.concurrency_limit = Some(3);
    let limited = s.pool_create(ws.id, &spec).await.unwrap();
    for _ in 0..30 {
        run_in(s, &limited).await;
    }
    let claimers: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..5 {
                    let owner = format!("sched-{i}");
                    got.extend(
                        s.runs_claim(&owner, Utc::now(), lease(), 2, ALL)
                            .await
                            .unwrap(),
                    );
                }
                got
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for c in claimers {
        claimed.extend(c.await.unwrap());
    }
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    let counts = s.runs_count_by_state().await.unwrap();
    assert!(
        counts.contains(&(RunState::Pending, 3)) && counts.contains(&(RunState::Scheduled, 27))
    );
}

backend_test!(an_expired_lease_is_taken_over_and_fences_the_old_owner);
async fn an_expired_lease_is_taken_over_and_fences_the_old_owner(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "ecs", PoolType::Ecs).await;
    let run = run_in(s, &p).await;
    let t0 = Utc::now();
    let a = s
        .runs_claim("sched-a", t0, t0 + Duration::seconds(30), 1, ALL)
        .await
        .unwrap();
    let a = a.into_iter().next().unwrap();
    let a = s
        .run_transition(&step(&a, RunState::Running, "started"))
        .await
        .unwrap();

    // Before expiry, or for another pool type, nothing is taken over.
    let lease_b = t0 + Duration::seconds(100);
    assert!(s
        .runs_claim("sched-b", t0 + Duration::seconds(29), lease_b, 5, ALL)
        .await
        .unwrap()
        .is_empty());
    let later = t0 + Duration::seconds(31);
    let managed_only = [PoolType::Managed];
    assert!(s
        .runs_claim("sched-b", later, lease_b, 5, &managed_only)
        .await
        .unwrap()
        .is_empty());

    let taken = s
        .runs_claim("sched-b", later, lease_b, 5, ALL)
        .await
        .unwrap();
    assert_eq!(ids(&taken), vec![run.id]);
    let b = &taken[0];
    assert_eq!(b.state, RunState::Running, "a takeover keeps the state");
    assert_eq!(b.generation, a.generation + 1);
    assert_eq!(b.lease_owner.as_deref(), Some("sched-b"));
    assert_eq!(b.started_at, a.started_at);
    let e = s.run_events(ws.id, run.id).await.unwrap().pop().unwrap();
    assert_eq!(
        (e.from_state, e.to_state),
        (Some(RunState::Running), RunState::Running)
    );
    assert_eq!(e.cause, "lease of sched-a expired; taken over by sched-b");
    assert_eq!(e.generation, b.generation);

    // The old owner is fenced off everywhere.
    let late = step(&a, RunState::Completed, "late");
    assert!(matches!(
        s.run_transition(&late).await,
        Err(Error::Stale { expected: RunState::Running, generation }) if generation == a.generation
    ));
    let held = [(run.id, a.generation)];
    let lost = s
        .runs_renew_leases("sched-a", &held, later + Duration::minutes(5))
        .await;
    assert_eq!(lost.unwrap(), vec![run.id]);
    assert!(matches!(
        s.run_set_infrastructure(run.id, a.generation, &json!({"task": "old"}))
            .await,
        Err(Error::Stale { .. })
    ));
    assert_eq!(s.run_get(ws.id, run.id).await.unwrap(), *b);

    // A cancelling run is taken over as cancelling, and the new owner can finish it.
    let cancelling = s.run_request_cancel(ws.id, run.id).await.unwrap();
    let after_b = lease_b + Duration::seconds(1);
    let c = s
        .runs_claim("sched-c", after_b, after_b + Duration::seconds(30), 5, ALL)
        .await
        .unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].state, c[0].generation),
        (RunState::Cancelling, cancelling.generation + 1)
    );
    let done = s
        .run_transition(&step(&c[0], RunState::Cancelled, "stopped"))
        .await
        .unwrap();
    assert_eq!(done.state, RunState::Cancelled);
    // Finished runs are never taken over.
    let far = after_b + Duration::days(1);
    assert!(s
        .runs_claim("sched-d", far, far, 5, ALL)
        .await
        .unwrap()
        .is_empty());
}

backend_test!(renewing_leases_reports_the_runs_lost);
async fn renewing_leases_reports_the_runs_lost(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    for _ in 0..4 {
        run_in(s, &p).await;
    }
    let t0 = Utc::now();
    let held = s
        .runs_claim("sched-a", t0, t0 + Duration::seconds(10), 4, ALL)
        .await
        .unwrap();
    assert_eq!(held.len(), 4);
    let (kept, finished, taken, renamed) = (&held[0], &held[1], &held[2], &held[3]);
    let f = s
        .run_transition(&step(finished, RunState::Crashed, "t"))
        .await
        .unwrap();
    assert_eq!(f.state, RunState::Crashed);
    // `taken` expires and is taken over: renew the others first so only it is expired.
    let until = t0 + Duration::seconds(60);
    let pairs = [(kept.id, kept.generation), (renamed.id, renamed.generation)];
    assert!(s
        .runs_renew_leases("sched-a", &pairs, until)
        .await
        .unwrap()
        .is_empty());
    let b = s
        .runs_claim("sched-b", t0 + Duration::seconds(11), until, 4, ALL)
        .await
        .unwrap();
    assert_eq!(ids(&b), vec![taken.id]);

    let all: Vec<_> = held.iter().map(|r| (r.id, r.generation)).collect();
    let until2 = t0 + Duration::seconds(120);
    let lost = s.runs_renew_leases("sched-a", &all, until2).await.unwrap();
    assert_eq!(lost, vec![finished.id, taken.id]);
    let k = s.run_get(ws.id, kept.id).await.unwrap();
    assert_eq!(
        k.lease_expires_at.map(|t| t.timestamp_micros()),
        Some(until2.timestamp_micros())
    );
    // Another owner's name, or a wrong generation, renews nothing.
    let lost = s
        .runs_renew_leases("sched-z", &[(kept.id, kept.generation)], until2)
        .await
        .unwrap();
    assert_eq!(lost, vec![kept.id]);
    let lost = s
        .runs_renew_leases("sched-a", &[(renamed.id, 99)], until2)
        .await
        .unwrap();
    assert_eq!(lost, vec![renamed.id]);
    assert!(s
        .runs_renew_leases("sched-a", &[], until2)
        .await
        .unwrap()
        .is_empty());
}

backend_test!(intent_and_infrastructure_are_fenced_by_generation);
async fn intent_and_infrastructure_are_fenced_by_generation(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "ecs", PoolType::Ecs).await;
    let scheduled = run_in(s, &p).await;
    // Not claimed: nobody may record anything.
    assert!(matches!(
        s.run_record_intent(scheduled.id, 0, &json!({"n": 1})).await,
        Err(Error::Stale {
            expected: RunState::Pending,
            generation: 0
        })
    ));
    assert!(matches!(
        s.run_set_infrastructure(scheduled.id, 0, &json!({"n": 1}))
            .await,
        Err(Error::Stale { .. })
    ));
    let pending = crate::harness::claim_one(s, "sched", &scheduled).await;
    let events = s.run_events(ws.id, pending.id).await.unwrap();
    assert!(matches!(
        s.run_record_intent(pending.id, pending.generation + 1, &json!({"n": 1}))
            .await,
        Err(Error::Stale { .. })
    ));
    s.run_record_intent(
        pending.id,
        pending.generation,
        &json!({"client_token": "r1-a1"}),
    )
    .await
    .unwrap();
    s.run_set_infrastructure(pending.id, pending.generation, &json!({"task": "arn:1"}))
        .await
        .unwrap();
    let r = s.run_get(ws.id, pending.id).await.unwrap();
    assert_eq!(r.submit_intent, Some(json!({"client_token": "r1-a1"})));
    assert_eq!(r.infrastructure, Some(json!({"task": "arn:1"})));
    assert_eq!(
        (r.state, r.generation),
        (RunState::Pending, pending.generation)
    );
    // Neither is a state change, so neither is an event.
    assert_eq!(s.run_events(ws.id, pending.id).await.unwrap(), events);

    // Infrastructure may change while running; an intent is for submissions (pending) only.
    let running = s
        .run_transition(&step(&r, RunState::Running, "t"))
        .await
        .unwrap();
    s.run_set_infrastructure(running.id, running.generation, &json!({"task": "arn:2"}))
        .await
        .unwrap();
    assert!(matches!(
        s.run_record_intent(running.id, running.generation, &json!({}))
            .await,
        Err(Error::Stale { .. })
    ));
    let done = s
        .run_transition(&step(&running, RunState::Completed, "t"))
        .await
        .unwrap();
    assert_eq!(done.infrastructure, Some(json!({"task": "arn:2"})));
    assert!(matches!(
        s.run_set_infrastructure(done.id, done.generation, &json!({"task": "arn:3"}))
            .await,
        Err(Error::Stale { .. })
    ));
}

backend_test!(an_owner_lists_its_unfinished_runs);
async fn an_owner_lists_its_unfinished_runs(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let pending = run_at(s, &p, RunState::Pending).await;
    let running = run_at(s, &p, RunState::Running).await;
    let cancelling = run_at(s, &p, RunState::Cancelling).await;
    run_at(s, &p, RunState::Completed).await;
    run_at(s, &p, RunState::Crashed).await;
    run_at(s, &p, RunState::Scheduled).await;
    let mine = s.runs_owned("owner-0").await.unwrap();
    assert_eq!(ids(&mine), vec![pending.id, running.id, cancelling.id]);
    assert_eq!(mine[1], running);
    assert!(s.runs_owned("someone-else").await.unwrap().is_empty());
}

backend_test!(runs_are_counted_by_state);
async fn runs_are_counted_by_state(db: Db) {
    let s = &db.store;
    let zero = s.runs_count_by_state().await.unwrap();
    assert_eq!(
        zero,
        RunState::ALL.iter().map(|st| (*st, 0)).collect::<Vec<_>>()
    );
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    for (state, n) in [
        (RunState::Scheduled, 3),
        (RunState::Running, 2),
        (RunState::Failed, 1),
    ] {
        for _ in 0..n {
            run_at(s, &p, state).await;
        }
    }
    let counts = s.runs_count_by_state().await.unwrap();
    let expect: Vec<_> = RunState::ALL
        .iter()
        .map(|st| {
            let n = match st {
                RunState::Scheduled => 3,
                RunState::Running => 2,
                RunState::Failed => 1,
                _ => 0,
            };
            (*st, n)
        })
        .collect();
    assert_eq!(counts, expect);
}

backend_test!(concurrent_claimers_claim_every_run_exactly_once);
async fn concurrent_claimers_claim_every_run_exactly_once(db: Db) {
    const RUNS: usize = 1000;
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let pools = [
        pool(s, ws.id, "sbx", PoolType::Managed).await,
        pool(s, ws.id, "ecs", PoolType::Ecs).await,
        pool(s, ws.id, "cr", PoolType::CloudRun).await,
    ];
    futures::stream::iter(0..RUNS)
        .for_each_concurrent(8, |i| {
            let p = &pools[i % pools.len()];
            async move {
                s.run_create(&new_run(p)).await.unwrap();
            }
        })
        .await;

    let claimers: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let owner = format!("sched-{i}");
                let mut got = Vec::new();
                loop {
                    let batch = s
                        .runs_claim(&owner, Utc::now(), lease(), 16, ALL)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    for r in &batch {
                        assert_eq!((r.state, r.generation), (RunState::Pending, 1));
                        assert_eq!(r.lease_owner.as_deref(), Some(owner.as_str()));
                    }
                    got.extend(batch.into_iter().map(|r| r.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut per_claimer = Vec::new();
    for c in claimers {
        let got = c.await.unwrap();
        per_claimer.push(got.len());
        all.extend(got);
    }
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a run was claimed twice");
    assert_eq!(all.len(), RUNS, "claims per claimer: {per_claimer:?}");
    assert!(s
        .runs_claim("late", Utc::now(), lease(), 16, ALL)
        .await
        .unwrap()
        .is_empty());
    let counts = s.runs_count_by_state().await.unwrap();
    assert!(
        counts.contains(&(RunState::Pending, RUNS as i64)),
        "{counts:?}"
    );
    assert!(counts.contains(&(RunState::Scheduled, 0)));
}

backend_test!(claims_favour_the_workspace_with_the_fewest_runs_in_flight);
async fn claims_favour_the_workspace_with_the_fewest_runs_in_flight(db: Db) {
    // A floods the queue with old runs; B submits two later. With A already running some,
    // B's runs are claimed first: one tenant cannot starve another.
    let s = &db.store;
    let a = workspace(s, "flood").await;
    let b = workspace(s, "quiet").await;
    let pa = pool(s, a.id, "sbx", PoolType::Managed).await;
    let pb = pool(s, b.id, "sbx", PoolType::Managed).await;
    let t0 = Utc::now() - Duration::hours(1);
    for i in 0..20 {
        s.run_create(&at(&pa, t0 + Duration::seconds(i)))
            .await
            .unwrap();
    }
    let now = Utc::now();
    let first = s.runs_claim("sched", now, lease(), 3, ALL).await.unwrap();
    assert!(
        first.iter().all(|r| r.workspace_id == a.id),
        "only A has due runs"
    );
    let mut b_runs = HashSet::new();
    for i in 0..2 {
        let (r, _) = s
            .run_create(&at(&pb, t0 + Duration::minutes(30) + Duration::seconds(i)))
            .await
            .unwrap();
        b_runs.insert(r.id);
    }
    let next = s
        .runs_claim("sched", Utc::now(), lease(), 2, ALL)
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|r| r.id).collect::<HashSet<_>>(),
        b_runs,
        "B (0 in flight) goes before A (3 in flight)"
    );
    // With B at 2 in flight and A at 3, B has nothing left due: A's oldest come next.
    let rest = s
        .runs_claim("sched", Utc::now(), lease(), 2, ALL)
        .await
        .unwrap();
    assert!(rest.iter().all(|r| r.workspace_id == a.id));
}

backend_test!(claims_fit_a_memory_budget_and_the_rest_waits);
async fn claims_fit_a_memory_budget_and_the_rest_waits(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    // The pool allows 64 MiB; one run asks for less.
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let now = Utc::now();
    let mut runs = Vec::new();
    for i in 0..4 {
        let (r, _) = s
            .run_create(&at(&p, now - Duration::seconds(10 - i)))
            .await
            .unwrap();
        runs.push(r);
    }
    let small = NewRun {
        limits: ferry_core::PoolLimits {
            memory_mb: Some(16),
            ..Default::default()
        },
        ..at(&p, now - Duration::seconds(1))
    };
    let (small, _) = s.run_create(&small).await.unwrap();
    let until = now + Duration::days(1);
    let managed = &[PoolType::Managed];

    // 150 MiB: two 64 MiB runs fit, the third does not; the 16 MiB one fits in what is left.
    let first = s
        .runs_claim_within("exec-1", now, until, 10, managed, Some(150))
        .await
        .unwrap();
    assert_eq!(ids(&first), vec![runs[0].id, runs[1].id, small.id]);
    for r in &runs[2..] {
        assert_eq!(
            s.run_get(ws.id, r.id).await.unwrap().state,
            RunState::Scheduled
        );
    }
    // What it holds counts: nothing more fits until a held run ends.
    assert!(s
        .runs_claim_within("exec-1", now, until, 10, managed, Some(150))
        .await
        .unwrap()
        .is_empty());
    // Another process has a budget of its own (positive control).
    let other = s
        .runs_claim_within("exec-2", now, until, 1, managed, Some(64))
        .await
        .unwrap();
    assert_eq!(ids(&other), vec![runs[2].id]);
    // A held run ends: its memory is free at once.
    let running = s
        .run_transition(&step(&first[0], RunState::Running, "t"))
        .await
        .unwrap();
    s.run_transition(&step(&running, RunState::Completed, "t"))
        .await
        .unwrap();
    let next = s
        .runs_claim_within("exec-1", now, until, 10, managed, Some(150))
        .await
        .unwrap();
    assert_eq!(ids(&next), vec![runs[3].id]);
}
