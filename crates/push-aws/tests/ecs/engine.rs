//! The engine's scheduler driving the ECS backend against moto and a real store (SQLite):
//! a pushed run is submitted once into its workspace's account and reconciled to completed;
//! a cancelled one is stopped and recorded cancelled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ferry_core::port::PushBackend;
use ferry_core::{Name, PoolLimits, PoolType, RunState};
use ferry_engine::{Config, Executors, Scheduler};
use ferry_store::testing::TestDb;
use ferry_store::{NewPool, NewRun, Store};
use serde_json::json;

use crate::support::{backend, ecs_as, tasks_in, template, Secrets};
use ferry_moto::moto;

async fn wait_for(
    store: &Store,
    ws: ferry_core::WorkspaceId,
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

/// A SQLite store with workspace `acme`, its ecs pool `ecs` in `account` and its credential.
async fn setup(
    account: &ferry_moto::Account,
) -> (
    TestDb,
    Store,
    ferry_core::WorkspaceId,
    ferry_store::Pool,
    Arc<Secrets>,
) {
    let db = TestDb::new(ferry_store::Backend::Sqlite).await.unwrap();
    let store = db.store().clone();
    let ws = store
        .workspace_create(&Name::parse("acme").unwrap())
        .await
        .unwrap()
        .id;
    let pool = store
        .pool_create(
            ws,
            &NewPool {
                name: Name::parse("ecs").unwrap(),
                pool_type: PoolType::Ecs,
                limits: PoolLimits::default(),
                job_template: template(account),
                credential: Some(Name::parse("aws").unwrap()),
                concurrency_limit: None,
                max_retries: 0,
                paused: false,
            },
        )
        .await
        .unwrap();
    let secrets = Arc::new(Secrets::default());
    secrets.assume_role(ws, "aws", &account.id);
    (db, store, ws, pool, secrets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_pushes_a_run_into_moto_and_sees_it_complete_or_cancelled() {
    let account = moto().account("111111111111");
    let (db, store, ws, pool, secrets) = setup(&account).await;
    let push: Arc<dyn PushBackend> = Arc::new(backend(secrets));
    let config = Config {
        poll_interval: Duration::from_millis(20),
        push_poll_interval: Duration::from_millis(100),
        ..Config::with_owner("s1")
    };
    let executors = Executors {
        managed: None,
        push: HashMap::from([(PoolType::Ecs, push)]),
    };
    let new_run = || NewRun {
        workspace_id: ws,
        pool_id: pool.id,
        artifact: None,
        parameters: json!({"n": 1}),
        job_variables: json!({}),
        limits: PoolLimits::default(),
        max_retries: 0,
        idempotency_key: None,
        scheduled_at: Utc::now(),
    };
    let handle = Scheduler::new(store.clone(), executors, config).start();

    // moto stops the task after a few DescribeTasks, with exit code 0.
    let run = store.run_create(&new_run()).await.unwrap().0;
    let done = wait_for(&store, ws, run.id, RunState::Completed).await;
    let task_arn = done.infrastructure.as_ref().unwrap()["task_arn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(task_arn.contains(":111111111111:"), "{task_arn}");
    assert!(done.submit_intent.is_some());

    // Cancelled while running: StopTask, then verified by a poll. (moto must not end the
    // task on its own first.)
    moto().set_task_transition(json!({"progression": "manual", "times": 1_000_000}));
    let run = store.run_create(&new_run()).await.unwrap().0;
    wait_for(&store, ws, run.id, RunState::Running).await;
    store.run_request_cancel(ws, run.id).await.unwrap();
    handle.scheduler().notify_cancel_requested();
    wait_for(&store, ws, run.id, RunState::Cancelled).await;
    handle.stop().await;

    // One task per run, in the workspace's account.
    let tasks = tasks_in(&ecs_as(&account.id).await, "flows").await;
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    assert!(tasks.contains(&task_arn));
    db.teardown().await;
}

/// A scheduler dies after storing a run's intent: once before RunTask, once after it (the task
/// exists, unrecorded). The scheduler that takes the runs over submits the first once and
/// finds the second's task: one task per run, never two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_killed_mid_submission_is_resumed_without_a_duplicate() {
    let account = moto().account("333333333333");
    moto().set_task_transition(json!({"progression": "manual", "times": 1_000_000}));
    let (db, store, ws, pool, secrets) = setup(&account).await;
    let backend = Arc::new(backend(secrets));
    let new_run = || NewRun {
        workspace_id: ws,
        pool_id: pool.id,
        artifact: None,
        parameters: json!({}),
        job_variables: json!({}),
        limits: PoolLimits::default(),
        max_retries: 0,
        idempotency_key: None,
        scheduled_at: Utc::now(),
    };
    let before_call = store.run_create(&new_run()).await.unwrap().0;
    let after_call = store.run_create(&new_run()).await.unwrap().0;

    // The scheduler that dies: claims both with a short lease, stores both intents, and gets
    // as far as RunTask for the second only.
    let now = Utc::now();
    let claimed = store
        .runs_claim(
            "dead",
            now,
            now + chrono::Duration::milliseconds(300),
            10,
            &[PoolType::Ecs],
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    for run in &claimed {
        store
            .run_record_intent(
                run.id,
                run.generation,
                &json!({"attempt": 1, "owner": "dead"}),
            )
            .await
            .unwrap();
    }
    let dead_job = |id| {
        let run = claimed.iter().find(|r| r.id == id).unwrap();
        ferry_core::port::RunJob {
            run_id: run.id,
            workspace_id: ws,
            pool_id: pool.id,
            pool: pool.name.clone(),
            pool_type: PoolType::Ecs,
            attempt: run.attempt,
            artifact: None,
            parameters: run.parameters.clone(),
            job_template: pool.job_template.clone(),
            job_variables: run.job_variables.clone(),
            credential: pool.credential.clone(),
            limits: PoolLimits::default(),
            has_sensitive_parameters: false,
            infrastructure: None,
        }
    };
    let orphan = backend.submit(&dead_job(after_call.id)).await.unwrap();

    // Its successor takes over once the leases expire.
    let executors = Executors {
        managed: None,
        push: HashMap::from([(PoolType::Ecs, backend.clone() as Arc<dyn PushBackend>)]),
    };
    let config = Config {
        poll_interval: Duration::from_millis(20),
        push_poll_interval: Duration::from_millis(100),
        ..Config::with_owner("s2")
    };
    let handle = Scheduler::new(store.clone(), executors, config).start();
    let resumed = wait_for(&store, ws, after_call.id, RunState::Running).await;
    let submitted = wait_for(&store, ws, before_call.id, RunState::Running).await;
    handle.stop().await;

    assert_eq!(resumed.infrastructure.as_ref(), Some(&orphan));
    let ecs = ecs_as(&account.id).await;
    let tasks = tasks_in(&ecs, "flows").await;
    assert_eq!(tasks.len(), 2, "one task per run: {tasks:?}");
    let arn_of = |r: &ferry_store::Run| {
        r.infrastructure.as_ref().unwrap()["task_arn"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(tasks.contains(&arn_of(&resumed)) && tasks.contains(&arn_of(&submitted)));
    let events = store.run_events(ws, after_call.id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.cause.contains("found attempt 1's earlier submission")),
        "{events:#?}"
    );
    db.teardown().await;
}

/// The ECS backend, except that the answer of its first RunTask is lost (a timeout after
/// AWS acted).
struct LosesFirstAnswer {
    inner: Arc<ferry_push_aws::EcsBackend>,
    lost: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl PushBackend for LosesFirstAnswer {
    async fn find(
        &self,
        job: &ferry_core::port::RunJob,
    ) -> Result<Option<serde_json::Value>, ferry_core::port::PushError> {
        self.inner.find(job).await
    }

    async fn submit(
        &self,
        job: &ferry_core::port::RunJob,
    ) -> Result<serde_json::Value, ferry_core::port::PushError> {
        let answer = self.inner.submit(job).await;
        if !self.lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
            answer?;
            return Err(ferry_core::port::PushError::new(
                ferry_core::FailureReason::Internal,
                "RunTask: timed out waiting for the answer",
            ));
        }
        answer
    }

    async fn poll(
        &self,
        jobs: &[ferry_core::port::RunJob],
    ) -> Vec<Result<ferry_core::port::PushStatus, ferry_core::port::PushError>> {
        self.inner.poll(jobs).await
    }

    async fn cancel(
        &self,
        job: &ferry_core::port::RunJob,
    ) -> Result<(), ferry_core::port::PushError> {
        self.inner.cancel(job).await
    }
}

/// RunTask's answer is lost after AWS started the task: the engine's retry looks for the task
/// before submitting again (moto ignores `clientToken`, so a blind retry would start a second
/// task here), and the run goes on with the one task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_retried_after_a_timeout_after_success_starts_one_task() {
    let account = moto().account("444444444444");
    moto().set_task_transition(json!({"progression": "manual", "times": 1_000_000}));
    let (db, store, ws, pool, secrets) = setup(&account).await;
    let flaky = Arc::new(LosesFirstAnswer {
        inner: Arc::new(backend(secrets)),
        lost: std::sync::atomic::AtomicBool::new(false),
    });
    let executors = Executors {
        managed: None,
        push: HashMap::from([(PoolType::Ecs, flaky as Arc<dyn PushBackend>)]),
    };
    let config = Config {
        poll_interval: Duration::from_millis(20),
        push_poll_interval: Duration::from_millis(100),
        ..Config::with_owner("s1")
    };
    let run = store
        .run_create(&NewRun {
            workspace_id: ws,
            pool_id: pool.id,
            artifact: None,
            parameters: json!({}),
            job_variables: json!({}),
            limits: PoolLimits::default(),
            max_retries: 0,
            idempotency_key: None,
            scheduled_at: Utc::now(),
        })
        .await
        .unwrap()
        .0;
    let handle = Scheduler::new(store.clone(), executors, config).start();
    let running = wait_for(&store, ws, run.id, RunState::Running).await;
    handle.stop().await;
    let tasks = tasks_in(&ecs_as(&account.id).await, "flows").await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(
        running.infrastructure.as_ref().unwrap()["task_arn"],
        json!(tasks[0])
    );
    db.teardown().await;
}
