//! The rows the store hands out, as typed domain values.

use chrono::{DateTime, Utc};
use ferry_core::{
    port::LogLine, ApiKeyId, CredentialId, CredentialKind, FailureReason, IdempotencyKey, Name,
    PoolId, PoolLimits, PoolType, Role, RunId, RunState, SecretId, WorkspaceId,
};
use serde_json::Value;

/// A tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: Name,
    pub created_at: DateTime<Utc>,
}

/// An API key's record. The secret itself is never stored: only its HMAC.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    pub role: Role,
    /// The first characters of the key, to recognise it in a list (not secret).
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A pool to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPool {
    pub name: Name,
    pub pool_type: PoolType,
    pub limits: PoolLimits,
    pub job_template: Value,
    /// Name of the workspace's credential (push pools).
    pub credential: Option<Name>,
    pub concurrency_limit: Option<u32>,
    pub max_retries: u32,
    pub paused: bool,
}

/// Changes to a pool; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolPatch {
    pub limits: Option<PoolLimits>,
    pub job_template: Option<Value>,
    /// `Some(None)` clears the limit.
    pub concurrency_limit: Option<Option<u32>>,
    pub max_retries: Option<u32>,
    pub paused: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub id: PoolId,
    pub workspace_id: WorkspaceId,
    pub name: Name,
    pub pool_type: PoolType,
    pub limits: PoolLimits,
    pub job_template: Value,
    pub credential: Option<Name>,
    pub concurrency_limit: Option<u32>,
    pub max_retries: u32,
    pub paused: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A run to create. The pool must belong to the workspace (the caller looked it up).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub workspace_id: WorkspaceId,
    pub pool_id: PoolId,
    pub artifact: Option<String>,
    pub parameters: Value,
    pub job_variables: Value,
    /// The run's own limits (already checked to be within the pool's).
    pub limits: PoolLimits,
    pub max_retries: u32,
    pub idempotency_key: Option<IdempotencyKey>,
    pub scheduled_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: RunId,
    pub workspace_id: WorkspaceId,
    pub pool_id: PoolId,
    pub pool_name: Name,
    pub pool_type: PoolType,
    pub state: RunState,
    pub state_reason: Option<FailureReason>,
    pub state_message: Option<String>,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub max_retries: u32,
    /// Fencing token: bumped by every claim or takeover.
    pub generation: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub artifact: Option<String>,
    pub parameters: Value,
    pub job_variables: Value,
    pub limits: PoolLimits,
    pub idempotency_key: Option<String>,
    pub result: Option<Value>,
    /// The executor's handle (task ARN, execution name) for the current attempt.
    pub infrastructure: Option<Value>,
    /// Stored before a push submission; its presence after a crash means "look before
    /// submitting again".
    pub submit_intent: Option<Value>,
    pub log_truncated: bool,
    /// Whether the run carries sealed sensitive parameters (never returned by the store as
    /// part of the run; see [`crate::Store::run_sensitive_parameters`]).
    pub has_sensitive_parameters: bool,
    pub scheduled_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// One entry of a run's append-only history.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    pub seq: i64,
    pub run_id: RunId,
    pub at: DateTime<Utc>,
    pub from_state: Option<RunState>,
    pub to_state: RunState,
    /// What caused it, in words ("claimed by sched-1", "cancel requested", ...).
    pub cause: String,
    pub reason: Option<FailureReason>,
    pub message: Option<String>,
    pub attempt: u32,
    pub generation: i64,
}

/// Filters and page for listing runs. Newest first; `cursor` is opaque, from the last page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub pool: Option<Name>,
    pub state: Option<RunState>,
    pub limit: u32,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when there may be more.
    pub next_cursor: Option<String>,
}

/// A conditional state change, made by the run's owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub run_id: RunId,
    pub from: RunState,
    /// The generation the owner claimed the run at.
    pub generation: i64,
    pub to: RunState,
    pub cause: String,
    pub reason: Option<FailureReason>,
    pub message: Option<String>,
    /// Stored on `completed`.
    pub result: Option<Value>,
    /// Replaces the recorded infrastructure handle when `Some`.
    pub infrastructure: Option<Value>,
}

/// One stored log line with its position in the run's log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLogLine {
    pub seq: i64,
    pub line: LogLine,
}

/// A page of a run's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    pub lines: Vec<StoredLogLine>,
    pub truncated: bool,
}

/// Who did something, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A caller of the public API, by its key.
    Key(ApiKeyId),
    /// A caller of the internal API (the service token).
    Internal,
    /// An operator's `ferry admin ...` command, working on the database directly.
    Cli,
    /// Ferry itself, at start-up (re-sealing the audit chains of an earlier version).
    System,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Key(id) => write!(f, "key:{id}"),
            Actor::Internal => f.write_str("internal"),
            Actor::Cli => f.write_str("cli"),
            Actor::System => f.write_str("system"),
        }
    }
}

/// A workspace's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceSettings {
    pub workspace_id: WorkspaceId,
    /// Whether run logs are kept; when off, the store discards them (see
    /// [`crate::Store::run_logs_append`]).
    pub store_logs: bool,
    /// The external id Ferry passes when it assumes this workspace's AWS roles (generated by
    /// Ferry, never chosen by the customer).
    pub aws_external_id: String,
}

/// A workspace's data-encryption key as stored: wrapped by a root key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWorkspaceKey {
    pub workspace_id: WorkspaceId,
    /// The id sealed values carry.
    pub key_id: String,
    /// The root key that wrapped it.
    pub root_key_id: String,
    pub wrapped_key: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A credential's record: everything but its (sealed) material.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    pub id: CredentialId,
    pub workspace_id: WorkspaceId,
    pub name: Name,
    pub kind: CredentialKind,
    /// Non-secret facts (region, role ARN, client email, ...).
    pub metadata: Value,
    pub fingerprint: String,
    /// 1 at creation, plus one per rotation.
    pub version: u32,
    /// The last validation's result, if any.
    pub validation: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A credential to create, its material already sealed for (workspace, `id`, kind, version 1).
#[derive(Debug, Clone, PartialEq)]
pub struct NewCredential {
    pub id: CredentialId,
    pub name: Name,
    pub kind: CredentialKind,
    pub metadata: Value,
    pub fingerprint: String,
    pub sealed: Vec<u8>,
}

/// New material for a credential, sealed for its id, kind and `version`, which must be one
/// more than the stored version.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialRotation {
    pub version: u32,
    pub metadata: Value,
    pub fingerprint: String,
    pub sealed: Vec<u8>,
}

/// A workspace secret's record (its value is sealed and never part of it).
#[derive(Debug, Clone, PartialEq)]
pub struct Secret {
    pub id: SecretId,
    pub workspace_id: WorkspaceId,
    pub name: Name,
    /// 1 at creation, plus one per replacement.
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One entry of a workspace's audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub workspace_id: WorkspaceId,
    /// 1, 2, 3... per workspace.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// `key:<id>`, `internal`, `cli` or `system`.
    pub actor: String,
    /// `credential.create`, `pool.delete`, ...
    pub action: String,
    /// What it was done to: `credential:prod-aws`, `api_key:<id>`, ...
    pub target: String,
    /// Non-secret particulars (ids, kinds, fingerprints, changed fields).
    pub detail: Value,
    pub prev_hash: Vec<u8>,
    /// SHA-256(prev_hash || canonical JSON of the entry).
    pub hash: Vec<u8>,
}

/// What verifying a workspace's audit chain found.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditReport {
    pub workspace_id: WorkspaceId,
    /// Entries checked.
    pub entries: u64,
    /// The hash of the last entry (record it elsewhere to detect a rewritten chain later).
    pub head_hash: Option<Vec<u8>>,
    /// The first problem, if the chain is broken.
    pub problem: Option<AuditProblem>,
}

/// Where and why an audit chain is broken.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditProblem {
    /// The first sequence number that does not verify.
    pub seq: i64,
    pub reason: String,
}
