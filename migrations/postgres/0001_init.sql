-- Ferry's schema on PostgreSQL. migrations/sqlite/0001_init.sql is the same schema in SQLite's
-- types; a parity test (crates/store/tests/store/parity.rs) keeps the two equal in effect.
--
-- Enumerations (state, role, pool_type, ...) are TEXT without CHECK constraints: the store
-- parses every value it reads and reports a stranger as corrupt, and SQLite cannot alter a
-- CHECK constraint without rebuilding the table, so adding a state stays a code change.
-- Unique constraints are written as named unique indexes so both backends name them alike.

CREATE TABLE workspaces (
    id UUID NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX workspaces_name_key ON workspaces (name);

CREATE TABLE api_keys (
    id UUID NOT NULL PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES workspaces (id),
    role TEXT NOT NULL,
    -- HMAC-SHA-256 of the key; the key itself is never stored.
    hash BYTEA NOT NULL,
    prefix TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX api_keys_hash_key ON api_keys (hash);
CREATE INDEX api_keys_workspace_idx ON api_keys (workspace_id, created_at);

CREATE TABLE pools (
    id UUID NOT NULL PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    pool_type TEXT NOT NULL,
    limits JSONB NOT NULL,
    job_template JSONB NOT NULL,
    credential TEXT,
    concurrency_limit BIGINT,
    max_retries BIGINT NOT NULL,
    paused BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX pools_workspace_name_key ON pools (workspace_id, name);

CREATE TABLE runs (
    id UUID NOT NULL PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES workspaces (id),
    -- Not a foreign key: a run's history outlives its pool (a pool can be deleted once all
    -- its runs are terminal), so the pool's name and type are copied here at submission.
    pool_id UUID NOT NULL,
    pool_name TEXT NOT NULL,
    pool_type TEXT NOT NULL,
    state TEXT NOT NULL,
    state_reason TEXT,
    state_message TEXT,
    attempt BIGINT NOT NULL,
    max_retries BIGINT NOT NULL,
    -- Fencing token: bumped by every claim or takeover.
    generation BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at TIMESTAMPTZ,
    artifact TEXT,
    parameters JSONB NOT NULL,
    job_variables JSONB NOT NULL,
    limits JSONB NOT NULL,
    idempotency_key TEXT,
    result JSONB,
    infrastructure JSONB,
    submit_intent JSONB,
    -- Running totals of the stored log, so an append never sums the log.
    log_bytes BIGINT NOT NULL,
    log_seq BIGINT NOT NULL,
    log_truncated BOOLEAN NOT NULL,
    scheduled_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ
);
-- Idempotent submission; NULL keys are distinct on both backends.
CREATE UNIQUE INDEX runs_workspace_idempotency_key ON runs (workspace_id, idempotency_key);
-- Listing, newest first, and the same filtered by pool.
CREATE INDEX runs_workspace_created_idx ON runs (workspace_id, created_at DESC, id DESC);
CREATE INDEX runs_workspace_pool_created_idx ON runs (workspace_id, pool_name, created_at DESC, id DESC);
-- The claim of due runs.
CREATE INDEX runs_state_scheduled_idx ON runs (state, scheduled_at);
-- Takeover of runs whose lease expired.
CREATE INDEX runs_state_lease_idx ON runs (state, lease_expires_at);
-- Concurrency limits and pool deletion count a pool's unfinished runs.
CREATE INDEX runs_pool_state_idx ON runs (pool_id, state);
-- A scheduler's own runs, after a restart.
CREATE INDEX runs_lease_owner_idx ON runs (lease_owner);

CREATE TABLE run_events (
    run_id UUID NOT NULL REFERENCES runs (id),
    -- 1, 2, 3... per run.
    seq BIGINT NOT NULL,
    workspace_id UUID NOT NULL REFERENCES workspaces (id),
    at TIMESTAMPTZ NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    cause TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    attempt BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE run_logs (
    run_id UUID NOT NULL REFERENCES runs (id),
    -- 1, 2, 3... per run.
    seq BIGINT NOT NULL,
    workspace_id UUID NOT NULL REFERENCES workspaces (id),
    ts TIMESTAMPTZ NOT NULL,
    stream TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
