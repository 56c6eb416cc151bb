//! The JSON objects of Ferry's HTTP API (DESIGN §5), field for field.
//!
//! Responses tolerate fields they do not know (the contract lets the server add fields);
//! request bodies leave out what is not set, so the server applies its defaults.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The run states that end a run.
pub const TERMINAL_STATES: [&str; 4] = ["completed", "failed", "crashed", "cancelled"];

/// Whether a run state (as the API spells it) is terminal.
pub fn is_terminal_state(state: &str) -> bool {
    TERMINAL_STATES.contains(&state)
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// An API key as returned once, at creation: `key` is never shown again.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    pub id: String,
    pub role: String,
    pub key: String,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for ApiKeyCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyCreated")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("key", &"[REDACTED]")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Where runs go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub id: String,
    pub name: String,
    /// `managed`, `cloud-run` or `ecs`.
    #[serde(rename = "type")]
    pub pool_type: String,
    #[serde(default)]
    pub limits: Value,
    #[serde(default)]
    pub job_template: Value,
    #[serde(default)]
    pub credential: Option<String>,
    #[serde(default)]
    pub concurrency_limit: Option<u32>,
    pub max_retries: u32,
    pub paused: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The body of `POST /v1/pools`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewPool {
    pub name: String,
    /// `managed`, `cloud-run` or `ecs`.
    #[serde(rename = "type")]
    pub pool_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_template: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// The body of `PATCH /v1/pools/{name}`: only the fields that are set change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// `Some(None)` removes the limit (sent as `null`); `None` leaves it as it is.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "double_option"
    )]
    pub concurrency_limit: Option<Option<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_template: Option<Value>,
}

/// Tells a present `null` (`Some(None)`) from an absent field (`None`, via `default`).
fn double_option<'de, D>(d: D) -> Result<Option<Option<u32>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<u32>::deserialize(d).map(Some)
}

/// One execution request and where it is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub pool: String,
    pub pool_type: String,
    pub state: String,
    #[serde(default)]
    pub state_reason: Option<String>,
    #[serde(default)]
    pub state_message: Option<String>,
    pub attempt: u32,
    pub max_retries: u32,
    #[serde(default)]
    pub parameters: Value,
    #[serde(default)]
    pub job_variables: Value,
    #[serde(default)]
    pub artifact: Option<String>,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Where the run executes: ECS task ARN, Cloud Run execution name, executor, ...
    #[serde(default)]
    pub infrastructure: Option<Value>,
    pub log_truncated: bool,
    pub scheduled_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
}

impl Run {
    /// Whether the run has ended (completed, failed, crashed or cancelled).
    pub fn is_terminal(&self) -> bool {
        is_terminal_state(&self.state)
    }
}

/// The body of `POST /v1/runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    pub pool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_variables: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Parameters stored sealed and never shown again (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive_parameters: Option<Value>,
}

/// One state transition of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub from: Option<String>,
    pub to: String,
    pub cause: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    pub attempt: u32,
}

/// One line of a run's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: i64,
    pub ts: DateTime<Utc>,
    /// `stdout`, `stderr`, or a source the server names.
    pub stream: String,
    pub line: String,
}

/// A page of a run's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logs {
    pub lines: Vec<LogLine>,
    /// Whether output past the run's log limit was discarded.
    pub truncated: bool,
}

/// A page of a list that continues past `next_cursor` when it is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// A whole (unpaginated) list.
#[derive(Deserialize)]
pub(crate) struct Items<T> {
    pub items: Vec<T>,
}

/// The filters of `GET /v1/runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunsQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// What a followed log stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowEvent {
    Line(LogLine),
    /// The run reached a terminal state; nothing follows.
    End {
        state: String,
        truncated: bool,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn run_tolerates_unknown_and_null_fields() {
        let run: Run = serde_json::from_value(json!({
            "id": "r1", "pool": "sbx", "pool_type": "managed", "state": "failed",
            "state_reason": "timeout", "state_message": null, "attempt": 1, "max_retries": 0,
            "parameters": {"x": 1}, "job_variables": {}, "artifact": "sha256:ab",
            "result": null, "idempotency_key": null, "infrastructure": {"executor": "e1"},
            "log_truncated": false, "scheduled_at": "2024-05-01T12:00:00Z",
            "created_at": "2024-05-01T12:00:00Z", "started_at": "2024-05-01T12:00:01.5Z",
            "ended_at": null, "some_new_field": [1, 2]
        }))
        .unwrap();
        assert_eq!(run.state_reason.as_deref(), Some("timeout"));
        assert!(run.is_terminal());
        assert!(run.result.is_none());
        assert!(run.ended_at.is_none());
        assert!(run.started_at.is_some());
    }

    #[test]
    fn new_pool_leaves_out_what_is_not_set() {
        let p = NewPool {
            name: "sbx".into(),
            pool_type: "managed".into(),
            max_retries: Some(2),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"name": "sbx", "type": "managed", "max_retries": 2})
        );
    }

    #[test]
    fn pool_patch_tells_null_from_absent() {
        let cases = [
            (PoolPatch::default(), json!({})),
            (
                PoolPatch {
                    concurrency_limit: Some(None),
                    ..Default::default()
                },
                json!({"concurrency_limit": null}),
            ),
            (
                PoolPatch {
                    concurrency_limit: Some(Some(3)),
                    paused: Some(false),
                    ..Default::default()
                },
                json!({"concurrency_limit": 3, "paused": false}),
            ),
        ];
        for (patch, want) in cases {
            let v = serde_json::to_value(&patch).unwrap();
            assert_eq!(v, want);
            let back: PoolPatch = serde_json::from_value(v).unwrap();
            assert_eq!(back, patch);
        }
    }

    #[test]
    fn new_run_serializes_timestamps_as_rfc3339() {
        let r = NewRun {
            pool: "p".into(),
            scheduled_at: Some("2024-05-01T12:00:00Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"pool": "p", "scheduled_at": "2024-05-01T12:00:00Z"})
        );
    }

    #[test]
    fn terminal_states() {
        for s in ["completed", "failed", "crashed", "cancelled"] {
            assert!(is_terminal_state(s), "{s}");
        }
        for s in ["scheduled", "pending", "running", "cancelling", ""] {
            assert!(!is_terminal_state(s), "{s}");
        }
    }

    #[test]
    fn api_key_debug_hides_the_key() {
        let k = ApiKeyCreated {
            id: "k1".into(),
            role: "admin".into(),
            key: "fk_secret".into(),
            created_at: Utc::now(),
        };
        assert!(!format!("{k:?}").contains("fk_secret"));
    }
}

/// A registered credential: metadata and a fingerprint, never the material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    pub id: String,
    pub name: String,
    /// `gcp-service-account-key`, `gcp-workload-identity`, `aws-access-key` or
    /// `aws-assume-role`.
    pub kind: String,
    /// `hmac-sha256:<hex>`: equal material in one workspace has an equal fingerprint.
    pub fingerprint: String,
    /// The external id Ferry passes when it assumes the role (`aws-assume-role` only).
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub validation: Option<Value>,
    #[serde(default)]
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A workspace secret's metadata (its value is never returned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    pub name: String,
    #[serde(default)]
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[serde(default)]
    pub detail: Value,
    pub hash: String,
    pub prev_hash: String,
}

/// A page of the audit log; pass `next_after` as `after` for the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub items: Vec<AuditEvent>,
    #[serde(default)]
    pub next_after: Option<i64>,
}

/// A workspace's IP allow-list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpAllowList {
    /// The networks the workspace's keys may be used from; empty allows every address.
    pub cidrs: Vec<String>,
    /// The caller's address as the server sees it.
    pub your_address: Option<String>,
}

/// The caller's workspace and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceSettings {
    pub id: String,
    pub name: String,
    pub store_logs: bool,
    pub aws_external_id: String,
    pub created_at: DateTime<Utc>,
}
