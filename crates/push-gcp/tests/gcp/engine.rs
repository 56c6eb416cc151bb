//! The engine's scheduler driving the Cloud Run backend against the fake and a real store
//! (SQLite): a scheduler killed while its `jobs.run` was in flight (the intent stored, the
//! execution started, no answer recorded) is succeeded by another that finds the execution
//! instead of starting a second; a run past its maximum runtime is stopped and fails with
//! `timeout`; a cancelled run is stopped and recorded cancelled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ferry_cloudrun_fake::{ExecutionPlan, Fault};
use ferry_core::port::PushBackend;
use ferry_core::{FailureReason, Name, PoolLimits, PoolType, RunState, WorkspaceId};
use ferry_engine::{Config, Executors, Scheduler};
use ferry_store::testing::TestDb;
use ferry_store::{NewPool, NewRun, Store};
use serde_json::json;

use crate::support::{accounts, backend, template, Env, PROJECT_A};

async fn wait_for(
    store: &Store,
    ws: WorkspaceId,
    id: ferry_core::RunId,
    state: RunState,
) -> ferry_store::Run {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let run = store.run_get(ws, id).await.unwrap();
        if run.state == state {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {id} is {} not {state}: {:#?}",
            run.state,
            store.run_events(ws, id).await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(owner: &str) -> Config {
    Config {
        poll_interval: Duration::from_millis(20),
        push_poll_interval: Duration::from_millis(100),
        lease_ttl: Duration::from_secs(2),
        renew_interval: Duration::from_millis(300),
        ..Config::with_owner(owner)
    }
}

fn executors(push: Arc<dyn PushBackend>) -> Executors {
    Executors {
        managed: None,
        push: HashMap::from([(PoolType::CloudRun, push)]),
    }
}

struct Setup {
    db: TestDb,
    store: Store,
    ws: WorkspaceId,
    pool: ferry_store::Pool,
    env: Env,
}

async fn setup() -> Setup {
    let env = Env::start().await;
    let db = TestDb::new(ferry_store::Backend::Sqlite).await.unwrap();
    let store = db.store().clone();
    let ws = store
        .workspace_create(&Name::parse("acme").unwrap())
        .await
        .unwrap()
        .id;
    env.secrets.key(ws, "gcp", &accounts().0.key_json());
    let pool = store
        .pool_create(
            ws,
            &NewPool {
                name: Name::parse("cr").unwrap(),
                pool_type: PoolType::CloudRun,
                limits: PoolLimits::default(),
                job_template: template(PROJECT_A),
                credential: Some(Name::parse("gcp").unwrap()),
                concurrency_limit: None,
                max_retries: 0,
                paused: false,
            },
        )
        .await
        .unwrap();
    Setup {
        db,
        store,
        ws,
        pool,
        env,
    }
}

fn new_run(s: &Setup, limits: PoolLimits) -> NewRun {
    NewRun {
        workspace_id: s.ws,
        pool_id: s.pool.id,
        artifact: None,
        parameters: json!({"n": 1}),
        job_variables: json!({}),
        limits,
        max_retries: 0,
        idempotency_key: None,
        scheduled_at: Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_killed_mid_submission_is_resumed_without_a_duplicate() {
    let s = setup().await;
    // The first scheduler's jobs.run takes effect, then never answers.
    s.env
        .fake
        .inject_fault(Some("jobs.run"), Fault::TimeoutAfterSuccess);
    let first = Scheduler::new(
        s.store.clone(),
        executors(Arc::new(backend(&s.env.fake, s.env.secrets.clone()))),
        config("s1"),
    )
    .start();
    let run = s
        .store
        .run_create(&new_run(&s, PoolLimits::default()))
        .await
        .unwrap()
        .0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while s.env.fake.executions().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no execution started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Killed: the intent is stored, the execution exists, no answer was recorded.
    first.stop().await;
    let stored = s.store.run_get(s.ws, run.id).await.unwrap();
    assert_eq!(stored.state, RunState::Pending);
    assert!(stored.submit_intent.is_some());
    assert!(stored.infrastructure.is_none());

    // A new process takes over once the lease expires, and finds the execution.
    let second = Scheduler::new(
        s.store.clone(),
        executors(Arc::new(backend(&s.env.fake, s.env.secrets.clone()))),
        config("s2"),
    )
    .start();
    let done = wait_for(&s.store, s.ws, run.id, RunState::Completed).await;
    second.stop().await;
    let started = s.env.fake.executions();
    assert_eq!(started.len(), 1, "{started:#?}");
    assert_eq!(s.env.fake.calls("jobs.run"), 1);
    let infra = done.infrastructure.unwrap();
    assert_eq!(infra["execution"], started[0]["name"]);
    assert_eq!(infra["project"], PROJECT_A);
    let events = s.store.run_events(s.ws, run.id).await.unwrap();
    assert!(
        format!("{events:?}").contains("found attempt 1's earlier submission"),
        "{events:#?}"
    );
    s.db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_runtime_fails_with_timeout_and_cancel_is_recorded() {
    let s = setup().await;
    s.env.fake.set_execution_plan(ExecutionPlan::NeverFinish);
    let handle = Scheduler::new(
        s.store.clone(),
        executors(s.env.backend.clone()),
        config("s1"),
    )
    .start();

    // Past its one-second maximum runtime: stopped, failed with timeout.
    let limits = PoolLimits {
        timeout_s: Some(1),
        ..PoolLimits::default()
    };
    let run = s.store.run_create(&new_run(&s, limits)).await.unwrap().0;
    let failed = wait_for(&s.store, s.ws, run.id, RunState::Failed).await;
    assert_eq!(
        failed.state_reason,
        Some(FailureReason::Timeout),
        "{failed:#?}"
    );
    let name = failed.infrastructure.as_ref().unwrap()["execution"]
        .as_str()
        .unwrap()
        .to_owned();
    let exec = s.env.fake.execution(&name).unwrap();
    assert_eq!(exec["cancelledCount"], 1, "{exec:#}");
    assert_eq!(exec["template"]["timeout"], "1s");

    // Cancelled on request while running: executions.cancel, then verified by a poll.
    let run = s
        .store
        .run_create(&new_run(&s, PoolLimits::default()))
        .await
        .unwrap()
        .0;
    wait_for(&s.store, s.ws, run.id, RunState::Running).await;
    s.store.run_request_cancel(s.ws, run.id).await.unwrap();
    handle.scheduler().notify_cancel_requested();
    let cancelled = wait_for(&s.store, s.ws, run.id, RunState::Cancelled).await;
    handle.stop().await;
    let name = cancelled.infrastructure.as_ref().unwrap()["execution"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(s.env.fake.execution(&name).unwrap()["cancelledCount"], 1);
    assert_eq!(s.env.fake.executions().len(), 2);
    s.db.teardown().await;
}
