//! `run_transition`: every allowed edge, the refused ones, stale owners, and what each kind
//! of transition does to timestamps, the lease, the attempt and the recorded handles.

use chrono::{SubsecRound, Utc};
use ferry_core::{FailureReason, PoolType, RunState, TransitionError};
use ferry_store::Error;
use serde_json::json;

use crate::harness::{claim_one, pool, run_at, run_in, step, workspace, Db};

/// Every edge of the transition table, written out once more.
const ALLOWED: &[(RunState, RunState)] = {
    use RunState::*;
    &[
        (Scheduled, Pending),
        (Scheduled, Cancelled),
        (Pending, Running),
        (Pending, Scheduled),
        (Pending, Failed),
        (Pending, Crashed),
        (Pending, Cancelling),
        (Running, Completed),
        (Running, Failed),
        (Running, Crashed),
        (Running, Cancelling),
        (Running, Scheduled),
        (Cancelling, Cancelled),
        (Cancelling, Completed),
        (Cancelling, Failed),
        (Cancelling, Crashed),
    ]
};

backend_test!(every_allowed_edge_works_and_writes_an_event);
async fn every_allowed_edge_works_and_writes_an_event(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    for &(from, to) in ALLOWED {
        let run = run_at(s, &p, from).await;
        let before = s.run_events(ws.id, run.id).await.unwrap();
        let mut t = step(&run, to, &format!("test {from} -> {to}"));
        t.message = Some("because".to_owned());
        t.reason = to.is_terminal().then_some(FailureReason::Internal);
        let after = s.run_transition(&t).await.unwrap();
        assert_eq!(after.state, to, "{from} -> {to}");
        assert_eq!(
            after.generation, run.generation,
            "transitions never bump the generation"
        );
        assert_eq!(s.run_get(ws.id, run.id).await.unwrap(), after);
        let events = s.run_events(ws.id, run.id).await.unwrap();
        assert_eq!(events.len(), before.len() + 1);
        let e = events.last().unwrap();
        assert_eq!(e.seq, before.len() as i64 + 1);
        assert_eq!((e.from_state, e.to_state), (Some(from), to));
        assert_eq!(e.cause, format!("test {from} -> {to}"));
        assert_eq!(
            (e.reason, e.message.as_deref()),
            (t.reason, Some("because"))
        );
        assert_eq!((e.attempt, e.generation), (after.attempt, after.generation));
        assert_eq!(after.ended_at.is_some(), to.is_terminal(), "{from} -> {to}");
        // The run is its (next) scheduler's again, or no one's once finished.
        if to.is_terminal() || to == RunState::Scheduled {
            assert_eq!(
                (after.lease_owner.as_ref(), after.lease_expires_at),
                (None, None)
            );
        } else if from.is_owned() {
            assert_eq!(after.lease_owner, run.lease_owner);
        }
    }
}

backend_test!(a_forbidden_edge_is_refused_and_writes_nothing);
async fn a_forbidden_edge_is_refused_and_writes_nothing(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    for from in RunState::ALL {
        let run = run_at(s, &p, from).await;
        let events = s.run_events(ws.id, run.id).await.unwrap();
        for to in RunState::ALL
            .into_iter()
            .filter(|to| !ALLOWED.contains(&(from, *to)))
        {
            match s.run_transition(&step(&run, to, "nope")).await {
                Err(Error::Transition(e)) => assert_eq!(e, TransitionError { from, to }),
                other => panic!("{from} -> {to}: expected a transition error, got {other:?}"),
            }
        }
        assert_eq!(s.run_get(ws.id, run.id).await.unwrap(), run);
        assert_eq!(s.run_events(ws.id, run.id).await.unwrap(), events);
    }
}

backend_test!(a_stale_owner_is_refused_and_writes_nothing);
async fn a_stale_owner_is_refused_and_writes_nothing(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let run = run_at(s, &p, RunState::Running).await;
    let events = s.run_events(ws.id, run.id).await.unwrap();

    let mut old_generation = step(&run, RunState::Completed, "late");
    old_generation.generation -= 1;
    match s.run_transition(&old_generation).await {
        Err(Error::Stale {
            expected,
            generation,
        }) => {
            assert_eq!(
                (expected, generation),
                (RunState::Running, run.generation - 1)
            );
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    // Right generation, wrong state (the owner thinks it is still pending).
    let mut wrong_state = step(&run, RunState::Running, "late");
    wrong_state.from = RunState::Pending;
    assert!(matches!(
        s.run_transition(&wrong_state).await,
        Err(Error::Stale {
            expected: RunState::Pending,
            ..
        })
    ));
    let mut unknown = step(&run, RunState::Completed, "late");
    unknown.run_id = ferry_core::RunId::new();
    assert!(matches!(
        s.run_transition(&unknown).await,
        Err(Error::Stale { .. })
    ));

    assert_eq!(s.run_get(ws.id, run.id).await.unwrap(), run);
    assert_eq!(s.run_events(ws.id, run.id).await.unwrap(), events);
}

backend_test!(timestamps_results_and_handles_follow_the_state);
async fn timestamps_results_and_handles_follow_the_state(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "ecs", PoolType::Ecs).await;
    let run = run_in(s, &p).await;
    let pending = claim_one(s, "sched-1", &run).await;
    assert_eq!((pending.started_at, pending.ended_at), (None, None));

    let mut t = step(&pending, RunState::Running, "task started");
    t.infrastructure = Some(json!({"task": "arn:1"}));
    let running = s.run_transition(&t).await.unwrap();
    let started = running
        .started_at
        .expect("entering running sets started_at");
    assert_eq!(running.infrastructure, Some(json!({"task": "arn:1"})));
    assert_eq!(running.lease_owner.as_deref(), Some("sched-1"));
    assert_eq!(running.ended_at, None);

    // A transition without a handle keeps the recorded one; reason and message are cleared.
    let mut t = step(&running, RunState::Cancelling, "cancel requested");
    t.reason = Some(FailureReason::Timeout);
    t.message = Some("deadline".to_owned());
    let cancelling = s.run_transition(&t).await.unwrap();
    assert_eq!(cancelling.state_reason, Some(FailureReason::Timeout));
    assert_eq!(cancelling.state_message.as_deref(), Some("deadline"));
    assert_eq!(cancelling.infrastructure, Some(json!({"task": "arn:1"})));

    let mut t = step(&cancelling, RunState::Completed, "finished before the stop");
    t.result = Some(json!({"answer": 42}));
    let done = s.run_transition(&t).await.unwrap();
    assert_eq!(done.result, Some(json!({"answer": 42})));
    assert_eq!(
        (done.state_reason, done.state_message.as_ref()),
        (None, None)
    );
    assert_eq!(done.started_at, Some(started));
    let ended = done.ended_at.expect("a terminal state sets ended_at");
    assert!(ended >= started && ended <= Utc::now());
    assert_eq!(
        (done.lease_owner.as_ref(), done.lease_expires_at),
        (None, None)
    );
    assert_eq!(done.infrastructure, Some(json!({"task": "arn:1"})));
}

backend_test!(a_retry_requeues_with_the_next_attempt);
async fn a_retry_requeues_with_the_next_attempt(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "ecs", PoolType::Ecs).await;
    let run = run_in(s, &p).await;
    let pending = claim_one(s, "sched-1", &run).await;
    s.run_record_intent(pending.id, pending.generation, &json!({"token": "a1"}))
        .await
        .unwrap();
    s.run_set_infrastructure(pending.id, pending.generation, &json!({"task": "arn:1"}))
        .await
        .unwrap();
    let pending = s.run_get(ws.id, run.id).await.unwrap();
    assert_eq!(pending.submit_intent, Some(json!({"token": "a1"})));
    let running = s
        .run_transition(&step(&pending, RunState::Running, "started"))
        .await
        .unwrap();
    let first_start = running.started_at.unwrap();

    let before = Utc::now();
    let mut t = step(&running, RunState::Scheduled, "spot interruption; retrying");
    t.reason = Some(FailureReason::SpotInterruption);
    let requeued = s.run_transition(&t).await.unwrap();
    assert_eq!(requeued.state, RunState::Scheduled);
    assert_eq!(requeued.attempt, 2);
    assert_eq!(requeued.generation, running.generation);
    assert_eq!(
        (requeued.lease_owner.as_ref(), requeued.lease_expires_at),
        (None, None)
    );
    assert_eq!(
        (
            requeued.infrastructure.as_ref(),
            requeued.submit_intent.as_ref()
        ),
        (None, None)
    );
    assert!(requeued.scheduled_at >= before.trunc_subsecs(6));
    assert_eq!(requeued.state_reason, Some(FailureReason::SpotInterruption));
    assert_eq!(requeued.ended_at, None);
    // The new attempt has not started: its clock (deadlines, max runtime) starts afresh.
    assert_eq!(requeued.started_at, None);
    let e = s.run_events(ws.id, run.id).await.unwrap().pop().unwrap();
    assert_eq!((e.attempt, e.to_state), (2, RunState::Scheduled));

    // Claimed again: a new generation, and a start time of the new attempt's own.
    let again = claim_one(s, "sched-2", &requeued).await;
    assert_eq!(
        (again.attempt, again.generation),
        (2, running.generation + 1)
    );
    let running2 = s
        .run_transition(&step(&again, RunState::Running, "started"))
        .await
        .unwrap();
    assert!(running2.started_at.is_some_and(|t| t >= first_start));
}
