//! The store's errors: typed so callers can answer 404, 409 or 503 without string matching.

use ferry_core::RunState;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such object in this workspace (also: it exists, but in another workspace).
    #[error("{kind} not found")]
    NotFound { kind: &'static str },
    /// A unique name is taken.
    #[error("{kind} {name:?} already exists")]
    Conflict { kind: &'static str, name: String },
    /// The object is in use and cannot be changed that way.
    #[error("{0}")]
    InUse(String),
    /// A request the store refuses for what it says (a pool naming a credential of the wrong
    /// kind, ...); the message says what to do.
    #[error("{0}")]
    Invalid(String),
    /// A conditional update of `kind` lost to a concurrent change; retrying may succeed.
    #[error("{kind} changed concurrently")]
    Changed { kind: &'static str },
    /// A conditional run update lost: the run is no longer in `expected` state at the
    /// caller's generation (someone else changed or took it).
    #[error("run changed concurrently (expected {expected} at generation {generation})")]
    Stale { expected: RunState, generation: i64 },
    /// The transition table forbids the change.
    #[error(transparent)]
    Transition(#[from] ferry_core::TransitionError),
    /// A value read back from the database did not parse (a bug or a hand-edited row).
    #[error("corrupt {what} in the database: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// A list cursor that this store did not hand out (or that was mangled on the way).
    #[error("invalid cursor: pass back the next_cursor of an earlier page unchanged")]
    BadCursor,
    /// A database URL with a scheme the store does not speak. Only the scheme is kept: the
    /// rest of a URL may hold a password.
    #[error("unsupported database URL scheme {scheme:?}: use sqlite:<path> or postgres://...")]
    UnsupportedUrl { scheme: String },
    /// An audit entry was to be written (or a chain verified) by a store that has not been
    /// given the audit log's key ([`crate::Store::set_audit_key`]): a server start-up bug,
    /// never the caller's fault.
    #[error(
        "the audit log's key is not set: this store writes and verifies no audit entry without it"
    )]
    NoAuditKey,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the database could not be reached (a 503 to callers, not a 500).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            )
        )
    }
}
