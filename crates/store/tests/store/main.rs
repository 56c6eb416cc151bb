//! ferry-store's integration tests. Every test runs on both backends: `backend_test!(name)`
//! turns `async fn name(db: Db)` into `name::sqlite` and `name::postgres`, each on a fresh
//! database (a SQLite file in a temporary directory; a new PostgreSQL database, dropped
//! afterwards). PostgreSQL comes from `FERRY_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); if it is unreachable the postgres tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Declares `mod $name { sqlite, postgres }` running `async fn $name(db: Db)` on each backend.
macro_rules! backend_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $crate::harness::run($crate::harness::Kind::Sqlite, super::$name).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                $crate::harness::run($crate::harness::Kind::Postgres, super::$name).await
            }
        }
    };
}

mod harness;

mod artifacts;
mod audit;
mod authority;
mod issuer_keys;
mod logs;
mod parity;
mod pools;
mod queue;
mod runs;
mod secrets_and_credentials;
mod store;
mod tenancy;
mod transitions;
