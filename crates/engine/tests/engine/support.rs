//! Test support: a store per test on either backend, a workspace with pools, schedulers with
//! short timings, and waiting for a run to reach a state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ferry_core::port::PushBackend;
use ferry_core::testing::{FakeFlowRunner, FakePushBackend};
use ferry_core::{Name, PoolLimits, PoolType, RunId, RunState, WorkspaceId};
use ferry_engine::{Config, Executors, Scheduler, SchedulerHandle};
use ferry_store::testing::TestDb;
use ferry_store::{NewPool, NewRun, Pool, Run, Store};
use serde_json::{json, Value};

/// Declares a test that runs once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::support::with_db(ferry_store::Backend::Sqlite, super::$body).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::support::with_db(ferry_store::Backend::Postgres, super::$body).await
            }
        }
    };
}

pub async fn with_db<F, Fut>(backend: ferry_store::Backend, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let db = TestDb::new(backend).await.expect("test database");
    let env = Env::new(db.store().clone(), db.url().to_owned()).await;
    body(env).await;
    db.teardown().await;
}

/// A workspace with a managed pool and an ecs pool, and the fakes behind them.
#[derive(Clone)]
pub struct Env {
    pub store: Store,
    /// The database's URL, for schedulers with a connection pool of their own.
    pub url: String,
    pub ws: WorkspaceId,
    pub managed: Pool,
    pub ecs: Pool,
    pub runner: FakeFlowRunner,
    pub cloud: FakePushBackend,
}

impl Env {
    async fn new(store: Store, url: String) -> Env {
        let ws = store
            .workspace_create(&Name::parse("acme").unwrap())
            .await
            .unwrap()
            .id;
        let managed = store
            .pool_create(ws, &new_pool("sbx", PoolType::Managed, 0))
            .await
            .unwrap();
        let ecs = store
            .pool_create(ws, &new_pool("ecs", PoolType::Ecs, 0))
            .await
            .unwrap();
        Env {
            store,
            url,
            ws,
            managed,
            ecs,
            runner: FakeFlowRunner::default(),
            cloud: FakePushBackend::default(),
        }
    }

    pub fn executors(&self) -> Executors {
        let push: Arc<dyn PushBackend> = Arc::new(self.cloud.clone());
        Executors {
            managed: Some(Arc::new(self.runner.clone())),
            push: HashMap::from([(PoolType::Ecs, push)]),
        }
    }

    pub fn scheduler(&self, owner: &str) -> Scheduler {
        Scheduler::new(self.store.clone(), self.executors(), fast_config(owner))
    }

    pub fn start(&self, owner: &str) -> SchedulerHandle {
        self.scheduler(owner).start()
    }

    /// A scheduler with [`fast_config`] changed by `configure`, started.
    pub fn start_with(&self, owner: &str, configure: impl FnOnce(&mut Config)) -> SchedulerHandle {
        let mut config = fast_config(owner);
        configure(&mut config);
        Scheduler::new(self.store.clone(), self.executors(), config).start()
    }

    pub async fn submit(&self, pool: &Pool, parameters: Value) -> Run {
        self.submit_with(pool, parameters, PoolLimits::default(), 0)
            .await
    }

    pub async fn submit_with(
        &self,
        pool: &Pool,
        parameters: Value,
        limits: PoolLimits,
        max_retries: u32,
    ) -> Run {
        let artifact =
            (pool.pool_type == PoolType::Managed).then(|| format!("sha256:{}", "a".repeat(64)));
        let new = NewRun {
            workspace_id: self.ws,
            pool_id: pool.id,
            artifact,
            parameters,
            job_variables: json!({}),
            limits,
            max_retries,
            idempotency_key: None,
            scheduled_at: Utc::now(),
        };
        self.store.run_create(&new).await.unwrap().0
    }

    pub async fn run(&self, id: RunId) -> Run {
        self.store.run_get(self.ws, id).await.unwrap()
    }

    /// Waits (up to 20 s) until the run is in `state`; panics with its events otherwise.
    pub async fn wait_for(&self, id: RunId, state: RunState) -> Run {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let run = self.run(id).await;
            if run.state == state {
                return run;
            }
            if tokio::time::Instant::now() > deadline {
                let events = self.store.run_events(self.ws, id).await.unwrap();
                panic!("run {id} is {} not {state}; events: {events:#?}", run.state);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The (from, to) pairs of a run's events.
    pub async fn path(&self, id: RunId) -> Vec<(Option<RunState>, RunState)> {
        let events = self.store.run_events(self.ws, id).await.unwrap();
        events
            .into_iter()
            .map(|e| (e.from_state, e.to_state))
            .collect()
    }

    /// The causes of the run's events, in order.
    pub async fn events(&self, id: RunId) -> Vec<String> {
        let events = self.store.run_events(self.ws, id).await.unwrap();
        events.into_iter().map(|e| e.cause).collect()
    }
}

pub fn new_pool(name: &str, pool_type: PoolType, max_retries: u32) -> NewPool {
    NewPool {
        name: Name::parse(name).unwrap(),
        pool_type,
        limits: PoolLimits::default(),
        job_template: json!({}),
        credential: pool_type.is_push().then(|| Name::parse("cred").unwrap()),
        concurrency_limit: None,
        max_retries,
        paused: false,
    }
}

pub fn fast_config(owner: &str) -> Config {
    Config {
        poll_interval: Duration::from_millis(20),
        lease_ttl: Duration::from_millis(1500),
        renew_interval: Duration::from_millis(300),
        push_poll_interval: Duration::from_millis(30),
        timeout_grace: Duration::from_millis(200),
        start_deadline: Duration::from_millis(500),
        failed_poll_limit: 10,
        ..Config::with_owner(owner)
    }
}
