//! The [`Store`] handle: connecting to SQLite or PostgreSQL, migrations, and the few private
//! tools every resource file uses to write a query once and run it on either backend.
//!
//! How one query serves two databases: the SQL text is written once, with `$1, $2, ...`
//! placeholders (which sqlx's SQLite driver accepts as well), and [`on_pool!`] / [`on_tx!`]
//! expand the query-building expression once per backend, so each copy is type-checked
//! against its own driver. Row structs derive `sqlx::FromRow`, which is generic over the row
//! type. Where the SQL really must differ (row locks, which only PostgreSQL has), the
//! statement says so with [`Tx::locking`].

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite};

use crate::audit::AuditKey;
use crate::error::{Error, Result};

/// Which database a [`Store`] speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Ferry's persistence. Cheap to clone: clones share one connection pool and the audit key.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    /// The audit log's key, once the server has set it ([`Store::set_audit_key`]): without it
    /// the store appends no audit entry.
    pub(crate) audit_key: Arc<OnceLock<AuditKey>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// How long a SQLite writer waits for another to finish before giving up. Writers are
/// serialised (one at a time per database file), so this bounds a queue, not a deadlock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite serves any number of readers in WAL mode but one writer; more connections than this
/// only queue up in the busy handler.
const SQLITE_MAX_CONNECTIONS: u32 = 8;
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

impl Store {
    /// Connects to `url`: `sqlite:<path>` or `sqlite://<path>` (the file is created if
    /// missing; `sqlite::memory:` gives a private in-memory database on one connection), or
    /// `postgres://...` / `postgresql://...`. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // sqlx's TLS (`sslmode`) takes rustls's process-wide crypto provider, and a build
            // that also carries aws-lc-rs (the AWS SDK) has no default to fall back on: name
            // ring, as every other TLS user in Ferry does. Installed once; a later call finds
            // it there.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .connect(url)
                .await?;
            return Ok(Store::with_pool(Pool::Postgres(pool)));
        }
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?;
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            return Self::open_sqlite_with(options, memory).await;
        }
        let scheme = url.split_once(':').map_or("", |(s, _)| s).to_owned();
        Err(Error::UnsupportedUrl { scheme })
    }

    /// Opens (creating if missing) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        Self::open_sqlite_with(SqliteConnectOptions::new().filename(path), false).await
    }

    async fn open_sqlite_with(options: SqliteConnectOptions, memory: bool) -> Result<Store> {
        let options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        let pool = if memory {
            // Every connection to `:memory:` is its own database: keep exactly one, forever.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            let options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            SqlitePoolOptions::new()
                .max_connections(SQLITE_MAX_CONNECTIONS)
                .connect_with(options)
                .await?
        };
        Ok(Store::with_pool(Pool::Sqlite(pool)))
    }

    fn with_pool(pool: Pool) -> Store {
        Store {
            pool,
            audit_key: Arc::default(),
        }
    }

    /// Applies the migrations this build carries that the database has not seen yet.
    pub async fn migrate(&self) -> Result<()> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match &self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// A round trip to the database (for readiness checks).
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    /// Starts a read-then-write transaction. On SQLite it is `BEGIN IMMEDIATE`: it takes the
    /// database's write lock up front (waiting up to the busy timeout), because a deferred
    /// transaction that reads first and then tries to write fails with SQLITE_BUSY at once
    /// when another writer got in between, and the busy handler cannot help it.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        let conn = match &self.pool {
            Pool::Sqlite(p) => TxConn::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => TxConn::Postgres(p.begin().await?),
        };
        Ok(Tx {
            conn,
            audit_key: self.audit_key.get().cloned(),
        })
    }
}

/// A transaction on either backend, with the audit key its appends chain under (none: it
/// appends nothing). Dropping it rolls back.
pub(crate) struct Tx {
    pub(crate) conn: TxConn,
    pub(crate) audit_key: Option<AuditKey>,
}

pub(crate) enum TxConn {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<()> {
        match self.conn {
            TxConn::Sqlite(t) => t.commit().await?,
            TxConn::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// `sql` with a row-locking `clause` (`FOR UPDATE ...`) appended on PostgreSQL. SQLite
    /// has no row locks and needs none: [`Store::begin`] holds its single write lock for the
    /// whole transaction.
    pub(crate) fn locking(&self, sql: &'static str, clause: &'static str) -> Cow<'static, str> {
        match self.conn {
            TxConn::Sqlite(_) => Cow::Borrowed(sql),
            TxConn::Postgres(_) => Cow::Owned(format!("{sql} {clause}")),
        }
    }
}

/// Runs `$body` with `$p` bound to the store's pool (`&SqlitePool` or `&PgPool`); the body is
/// compiled once per backend.
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs `$body` with `$c` bound to the transaction's connection; `$tx` is a `&mut Tx`. Use
/// `$c` once per body (it is a `&mut` connection), or reborrow it with `&mut *$c`.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match &mut ($tx).conn {
            $crate::store::TxConn::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::TxConn::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

/// The owned states (a scheduler holds the run's lease), as an SQL list; a unit test checks it
/// against `RunState::is_owned`.
macro_rules! owned_states {
    () => {
        "('pending', 'running', 'cancelling')"
    };
}
pub(crate) use owned_states;

/// The unfinished (non-terminal) states, as an SQL list; checked like [`owned_states!`].
macro_rules! unfinished_states {
    () => {
        "('scheduled', 'pending', 'running', 'cancelling')"
    };
}
pub(crate) use unfinished_states;

/// The time now, at the precision both backends store (microseconds), so a value written
/// reads back equal and compares the same way on SQLite (as text) and PostgreSQL.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// `t` at the stored precision (see [`now`]).
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

pub(crate) fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

/// A stored count or number that must fit a `u32`.
pub(crate) fn to_u32(what: &'static str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(what, format!("{v} is out of range")))
}

#[cfg(test)]
mod tests {
    use ferry_core::RunState;

    fn states(list: &str) -> Vec<RunState> {
        list.trim_matches(|c| c == '(' || c == ')')
            .split(',')
            .filter_map(|s| RunState::parse(s.trim().trim_matches('\'')))
            .collect()
    }

    #[test]
    fn state_lists_match_the_state_machine() {
        let owned: Vec<_> = RunState::ALL.into_iter().filter(|s| s.is_owned()).collect();
        assert_eq!(states(owned_states!()), owned);
        let unfinished: Vec<_> = RunState::ALL
            .into_iter()
            .filter(|s| !s.is_terminal())
            .collect();
        assert_eq!(states(unfinished_states!()), unfinished);
    }

    #[test]
    fn backend_names() {
        assert_eq!(super::Backend::Sqlite.as_str(), "sqlite");
        assert_eq!(super::Backend::Postgres.as_str(), "postgres");
    }
}
