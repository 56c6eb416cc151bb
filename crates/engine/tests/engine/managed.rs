//! Managed runs through the fake flow runner.

use std::time::Duration;

use ferry_core::{FailureReason, PoolLimits, RunState::*};
use serde_json::json;

use crate::both_backends;
use crate::support::Env;

both_backends!(completes_with_result_events_and_logs, completes);
async fn completes(env: Env) {
    let run = env
        .submit(
            &env.managed,
            json!({"result": {"answer": 42}, "log": ["hello", "world"]}),
        )
        .await;
    let h = env.start("s1");
    let done = env.wait_for(run.id, Completed).await;
    h.stop().await;
    assert_eq!(done.result, Some(json!({"answer": 42})));
    assert!(done.started_at.is_some() && done.ended_at.is_some());
    assert_eq!(
        env.path(run.id).await,
        vec![
            (None, Scheduled),
            (Some(Scheduled), Pending),
            (Some(Pending), Running),
            (Some(Running), Completed)
        ]
    );
    let logs = env.store.run_logs(env.ws, run.id, 0, 100).await.unwrap();
    let lines: Vec<_> = logs.lines.iter().map(|l| l.line.line.as_str()).collect();
    assert_eq!(lines, ["hello", "world"]);
    assert_eq!(env.runner.journal.entries(), vec![(run.id, 1)]);
}

both_backends!(a_failing_flow_fails_with_its_reason, fails);
async fn fails(env: Env) {
    let run = env.submit(&env.managed, json!({"fail": "boom"})).await;
    let h = env.start("s1");
    let done = env.wait_for(run.id, Failed).await;
    h.stop().await;
    assert_eq!(done.state_reason, Some(FailureReason::ExitCode));
    assert_eq!(done.state_message.as_deref(), Some("boom"));
}

both_backends!(a_crash_is_retried_then_ends_crashed, crash_retries);
async fn crash_retries(env: Env) {
    let run = env
        .submit_with(
            &env.managed,
            json!({"crash": "host died"}),
            PoolLimits::default(),
            1,
        )
        .await;
    let h = env.start("s1");
    let done = env.wait_for(run.id, Crashed).await;
    h.stop().await;
    assert_eq!(done.attempt, 2, "one retry, then no more");
    assert_eq!(done.state_reason, Some(FailureReason::WorkerLost));
    assert_eq!(env.runner.journal.entries(), vec![(run.id, 1), (run.id, 2)]);
}

both_backends!(cancel_stops_a_running_flow, cancel_running);
async fn cancel_running(env: Env) {
    let run = env.submit(&env.managed, json!({"sleep_ms": 60_000})).await;
    let h = env.start("s1");
    env.wait_for(run.id, Running).await;
    let asked = env.store.run_request_cancel(env.ws, run.id).await.unwrap();
    assert_eq!(asked.state, Cancelling);
    h.scheduler().notify_cancel_requested();
    env.wait_for(run.id, Cancelled).await;
    h.stop().await;
    let path = env.path(run.id).await;
    assert_eq!(path.last(), Some(&(Some(Cancelling), Cancelled)));
}

both_backends!(cancel_before_claim_never_runs, cancel_scheduled);
async fn cancel_scheduled(env: Env) {
    let run = env.submit(&env.managed, json!({})).await;
    assert_eq!(
        env.store
            .run_request_cancel(env.ws, run.id)
            .await
            .unwrap()
            .state,
        Cancelled
    );
    let h = env.start("s1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.stop().await;
    assert!(env.runner.journal.entries().is_empty());
}

both_backends!(a_flow_past_its_timeout_fails_with_timeout, timeout);
async fn timeout(env: Env) {
    let limits = PoolLimits {
        timeout_s: Some(1),
        ..Default::default()
    };
    let run = env
        .submit_with(&env.managed, json!({"sleep_ms": 60_000}), limits, 0)
        .await;
    let h = env.start("s1");
    let done = env.wait_for(run.id, Failed).await;
    h.stop().await;
    assert_eq!(done.state_reason, Some(FailureReason::Timeout));
}

both_backends!(a_run_without_an_executor_here_waits, waits);
async fn waits(env: Env) {
    let run = env.submit(&env.ecs, json!({})).await;
    // A scheduler with only the managed executor.
    let mut executors = env.executors();
    executors.push.clear();
    let s = ferry_engine::Scheduler::new(
        env.store.clone(),
        executors,
        crate::support::fast_config("s1"),
    );
    let h = s.start();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.run(run.id).await.state, Scheduled);
    h.stop().await;
    // A scheduler that has one picks it up.
    let h = env.start("s2");
    env.wait_for(run.id, Completed).await;
    h.stop().await;
}

/// What a [`ferry_core::port::RunObserver`] is told of one change.
type Observed = (
    ferry_core::PoolType,
    ferry_core::RunState,
    ferry_core::RunState,
    Option<FailureReason>,
);

/// Records what a [`ferry_core::port::RunObserver`] is told.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<Observed>>);

impl ferry_core::port::RunObserver for Recorder {
    fn transitioned(
        &self,
        pool_type: ferry_core::PoolType,
        from: ferry_core::RunState,
        to: ferry_core::RunState,
        reason: Option<FailureReason>,
    ) {
        self.0.lock().unwrap().push((pool_type, from, to, reason));
    }
}

both_backends!(
    the_observer_is_told_of_each_change_the_scheduler_makes,
    observed
);
async fn observed(env: Env) {
    let run = env
        .submit_with(
            &env.managed,
            json!({"crash": "host died"}),
            PoolLimits::default(),
            1,
        )
        .await;
    let recorder = std::sync::Arc::new(Recorder::default());
    let h = ferry_engine::Scheduler::with_observer(
        env.store.clone(),
        env.executors(),
        crate::support::fast_config("s1"),
        recorder.clone(),
    )
    .start();
    env.wait_for(run.id, Crashed).await;
    h.stop().await;
    let seen = recorder.0.lock().unwrap().clone();
    // Every change but the claims (the store's, as it hands runs out), in order, with the
    // failure's reason.
    let made: Vec<_> = env
        .path(run.id)
        .await
        .into_iter()
        .filter(|(from, to)| from.is_some() && *to != Pending)
        .collect();
    assert_eq!(
        seen.iter()
            .map(|(_, from, to, _)| (Some(*from), *to))
            .collect::<Vec<_>>(),
        made
    );
    assert!(seen
        .iter()
        .all(|(t, ..)| *t == ferry_core::PoolType::Managed));
    let last = seen.last().copied();
    assert_eq!(
        last.map(|(_, _, to, reason)| (to, reason)),
        Some((Crashed, Some(FailureReason::WorkerLost)))
    );
    assert!(
        seen.iter()
            .any(|(_, _, to, r)| *to == Scheduled && *r == Some(FailureReason::WorkerLost)),
        "{seen:?}"
    );
}
