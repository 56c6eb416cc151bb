//! Fresh databases for tests of this crate's users (feature `testing`): a SQLite file in a
//! temporary directory, or a new PostgreSQL database made on the server named by
//! `FERRY_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`) and dropped
//! by [`TestDb::teardown`]. Databases older than an hour that a dead test process left behind
//! are swept when a new one is made.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;

use crate::{Backend, Error, Store};

/// The PostgreSQL server tests use.
pub fn admin_url() -> String {
    std::env::var("FERRY_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{host_part}/{db}{query}")
}

/// Test databases are named `ferry_t_<unix seconds>_<uuid>`; older than this, their test
/// process is gone.
const LEFTOVER_AGE_SECS: u64 = 3600;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn admin() -> Result<sqlx::PgConnection, Error> {
    Ok(sqlx::PgConnection::connect(&admin_url()).await?)
}

async fn sweep_leftovers(admin: &mut sqlx::PgConnection) -> Result<(), Error> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'ferry\\_t\\_%'")
            .fetch_all(&mut *admin)
            .await?;
    let now = unix_now();
    for name in names {
        let born = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok());
        if born.is_some_and(|b| now.saturating_sub(b) > LEFTOVER_AGE_SECS) {
            // Best effort: another test process may be sweeping the same one.
            let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut *admin)
                .await;
        }
    }
    Ok(())
}

/// Makes an empty PostgreSQL database for one test; returns its name and URL.
pub async fn create_postgres_database() -> Result<(String, String), Error> {
    let mut admin = admin().await?;
    sweep_leftovers(&mut admin).await?;
    let name = format!("ferry_t_{}_{}", unix_now(), uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await?;
    Ok((with_database(&admin_url(), &name), name))
}

/// Drops a database made by [`create_postgres_database`].
pub async fn drop_postgres_database(name: &str) -> Result<(), Error> {
    let mut admin = admin().await?;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    Ok(())
}

/// One test's migrated database.
pub struct TestDb {
    store: Store,
    url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Result<TestDb, Error> {
        let (url, pg_name, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().map_err(|e| Error::Database(sqlx::Error::Io(e)))?;
                let url = format!("sqlite://{}", dir.path().join("ferry.db").display());
                (url, None, Some(dir))
            }
            Backend::Postgres => {
                let (url, name) = create_postgres_database().await?;
                (url, Some(name), None)
            }
        };
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        // A server would unwrap the database's audit key; tests get a random one.
        store.set_audit_key(crate::AuditKey::for_tests())?;
        Ok(TestDb {
            store,
            url,
            pg_name,
            _dir: dir,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The URL the store was opened with (another process can open it too).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes the store and drops the database.
    pub async fn teardown(self) {
        self.store.close().await;
        if let Some(name) = &self.pg_name {
            if let Err(e) = drop_postgres_database(name).await {
                tracing::warn!(database = %name, error = %e, "Test database not dropped");
            }
        }
    }
}

/// What someone with write access to the database but without the audit key does after
/// changing entries: recomputes workspace `ws`'s chain from entry `from` on, and its head, from
/// the documented canonical form (`audit.rs`) with plain SHA-256 — which is also how every
/// chain looked before the audit key. For the tests that the keyed chain catches it.
pub async fn audit_rehash_without_key(
    store: &Store,
    ws: ferry_core::WorkspaceId,
    from: i64,
) -> Result<(), Error> {
    use sha2::{Digest, Sha256};
    const EVENT: &str =
        "UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE workspace_id = $3 AND seq = $4";
    const HEAD: &str = "UPDATE audit_heads SET hash = $1 WHERE workspace_id = $2";
    let s = |v: &str| ferry_core::canonical_json(&serde_json::Value::String(v.to_owned()));
    let mut prev = vec![0u8; 32];
    for e in store.audit_list(ws, 0, 1000).await? {
        if e.seq < from {
            prev = e.hash;
            continue;
        }
        let canonical = format!(
            "{{\"action\":{},\"actor\":{},\"at\":{},\"detail\":{},\"seq\":{},\"target\":{},\"workspace_id\":{}}}",
            s(&e.action),
            s(&e.actor),
            s(&e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            ferry_core::canonical_json(&e.detail),
            e.seq,
            s(&e.target),
            s(&ws.to_string()),
        );
        let hash = Sha256::new()
            .chain_update(&prev)
            .chain_update(canonical.as_bytes())
            .finalize()
            .to_vec();
        crate::store::on_pool!(store, |p| sqlx::query(EVENT)
            .bind(&prev)
            .bind(&hash)
            .bind(ws.0)
            .bind(e.seq)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        prev = hash;
    }
    crate::store::on_pool!(store, |p| sqlx::query(HEAD)
        .bind(&prev)
        .bind(ws.0)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}
