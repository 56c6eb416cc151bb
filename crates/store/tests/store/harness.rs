//! Fresh databases for tests, on either backend, and fixtures for the objects most tests need.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use chrono::{DateTime, Duration, Utc};
use ferry_core::{Name, PoolLimits, PoolType, RunState, WorkspaceId};
use ferry_store::{NewPool, NewRun, Pool, Run, Store, Transition, Workspace};
use futures::FutureExt;
use serde_json::json;
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// One test's database.
#[derive(Clone)]
pub struct Db {
    pub store: Store,
    /// The URL the store was opened with (for raw SQL in tests).
    pub url: String,
    pub kind: Kind,
}

impl Db {
    /// Runs `sql` (no binds) on a connection of its own, around the store: for putting the
    /// database in states the API cannot reach.
    pub async fn exec(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
        }
    }
}

/// Runs `test` on a fresh database of `kind`, then removes the database, also when the test
/// panicked (the panic is passed on).
pub async fn run<F, Fut>(kind: Kind, test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ferry.db");
            let url = format!("sqlite://{}", path.display());
            let store = Store::open_sqlite(&path).await.unwrap();
            store.migrate().await.unwrap();
            store
                .set_audit_key(ferry_store::AuditKey::for_tests())
                .unwrap();
            let db = Db {
                store: store.clone(),
                url,
                kind,
            };
            let outcome = AssertUnwindSafe(test(db)).catch_unwind().await;
            store.close().await;
            drop(dir);
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
        Kind::Postgres => {
            let (url, name) = ferry_store::testing::create_postgres_database()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL at {} is unreachable ({e}); the postgres tests need it \
                         (set FERRY_TEST_DATABASE_URL)",
                        ferry_store::testing::admin_url()
                    )
                });
            let store = Store::connect(&url).await.unwrap();
            store.migrate().await.unwrap();
            store
                .set_audit_key(ferry_store::AuditKey::for_tests())
                .unwrap();
            let db = Db {
                store: store.clone(),
                url,
                kind,
            };
            let outcome = AssertUnwindSafe(test(db)).catch_unwind().await;
            store.close().await;
            ferry_store::testing::drop_postgres_database(&name)
                .await
                .unwrap();
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

// Fixtures.

pub fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

pub async fn workspace(s: &Store, n: &str) -> Workspace {
    s.workspace_create(&name(n)).await.unwrap()
}

pub fn new_pool(n: &str, pool_type: PoolType) -> NewPool {
    NewPool {
        name: name(n),
        pool_type,
        limits: PoolLimits {
            memory_mb: Some(64),
            timeout_s: Some(30),
            ..Default::default()
        },
        job_template: json!({"image": "python:3.12", "cpu": 256}),
        credential: pool_type.is_push().then(|| name("cred")),
        concurrency_limit: None,
        max_retries: 2,
        paused: false,
    }
}

pub async fn pool(s: &Store, ws: WorkspaceId, n: &str, pool_type: PoolType) -> Pool {
    s.pool_create(ws, &new_pool(n, pool_type)).await.unwrap()
}

/// A run of `pool`, due a second ago.
pub fn new_run(pool: &Pool) -> NewRun {
    NewRun {
        workspace_id: pool.workspace_id,
        pool_id: pool.id,
        artifact: Some(format!("sha256:{}", "ab".repeat(32))),
        parameters: json!({"x": 1, "nested": {"list": [1, 2, 3]}}),
        job_variables: json!({"command": ["python", "flow.py"]}),
        limits: PoolLimits {
            timeout_s: Some(10),
            ..Default::default()
        },
        max_retries: 1,
        idempotency_key: None,
        scheduled_at: Utc::now() - Duration::seconds(1),
    }
}

/// Submits a run of `pool`, due a second ago.
pub async fn run_in(s: &Store, pool: &Pool) -> Run {
    let (run, created) = s.run_create(&new_run(pool)).await.unwrap();
    assert!(created);
    run
}

/// A lease far enough ahead not to expire during a test.
pub fn lease() -> DateTime<Utc> {
    Utc::now() + Duration::minutes(10)
}

/// Claims exactly `run` for `owner` (it must be the only due run of its pool type).
pub async fn claim_one(s: &Store, owner: &str, run: &Run) -> Run {
    let claimed = s
        .runs_claim(owner, Utc::now(), lease(), 1, &[run.pool_type])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "expected to claim {}", run.id);
    assert_eq!(claimed[0].id, run.id);
    claimed.into_iter().next().unwrap()
}

/// A transition of `run` from its current state and generation.
pub fn step(run: &Run, to: RunState, cause: &str) -> Transition {
    Transition {
        run_id: run.id,
        from: run.state,
        generation: run.generation,
        to,
        cause: cause.to_owned(),
        reason: None,
        message: None,
        result: None,
        infrastructure: None,
    }
}

/// Brings a fresh run of `pool` to `state` through the store's API, and returns it. Runs
/// that must be claimed are made due in 2000, so they are claimed before any other.
pub async fn run_at(s: &Store, pool: &Pool, state: RunState) -> Run {
    use RunState::*;
    if state == Scheduled {
        return run_in(s, pool).await;
    }
    if state == Cancelled {
        let run = run_in(s, pool).await;
        return s
            .run_request_cancel(run.workspace_id, run.id)
            .await
            .unwrap();
    }
    // Due long ago, so it is the oldest due run and the one claimed.
    let mut new = new_run(pool);
    new.scheduled_at = DateTime::from_timestamp(946_684_800, 0).unwrap();
    let (run, _) = s.run_create(&new).await.unwrap();
    let pending = claim_one(s, "owner-0", &run).await;
    let path: &[RunState] = match state {
        Pending => &[],
        Running => &[Running],
        Cancelling => &[Running, Cancelling],
        Completed => &[Running, Completed],
        Failed => &[Running, Failed],
        Crashed => &[Crashed],
        Scheduled | Cancelled => unreachable!(),
    };
    let mut cur = pending;
    for to in path {
        cur = s.run_transition(&step(&cur, *to, "test")).await.unwrap();
    }
    assert_eq!(cur.state, state);
    cur
}
