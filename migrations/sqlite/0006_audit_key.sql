-- The audit log's key (SQLite). migrations/postgres/0006_audit_key.sql is the same in
-- PostgreSQL's types; the parity test keeps them equal in effect.
--
-- Each audit entry's hash is HMAC-SHA-256 under this key (crates/store/src/audit.rs), so
-- write access to the database alone is not enough to rewrite history and recompute the
-- chain. One row per database: 32 random bytes, never stored in the clear: `wrapped_key` is
-- the key wrapped by the root key `root_key_id` (as workspace keys are), unwrapped by the
-- server at start-up; root-key rotation re-wraps it. The start that stores it re-seals the
-- chains earlier versions wrote (plain SHA-256) under it, in the same transaction.
CREATE TABLE audit_key (
    -- Always 1: there is one audit key.
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    root_key_id TEXT NOT NULL,
    -- the audit key as the root key wraps it (Keyring::wrap, for a reserved id of its own)
    wrapped_key BLOB NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
