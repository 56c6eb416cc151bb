//! The ports through which the engine reaches executors: [`FlowRunner`] for managed runs
//! (WebAssembly sandboxes) and [`PushBackend`] for runs pushed into a customer's cloud; and
//! [`SecretSource`], through which they get a workspace's sealed material opened.
//! Implementations live in their own crates; fakes in [`crate::testing`].

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use secrecy::SecretString;

use crate::{CredentialKind, Failure, Name, PoolId, PoolLimits, PoolType, RunId, WorkspaceId};

/// One attempt of a run, as an executor sees it.
#[derive(Debug, Clone)]
pub struct RunJob {
    pub run_id: RunId,
    pub workspace_id: WorkspaceId,
    pub pool_id: PoolId,
    pub pool: Name,
    pub pool_type: PoolType,
    /// 1 for the first attempt; each infrastructure retry adds one.
    pub attempt: u32,
    /// `sha256:<hex>` of the flow (managed runs).
    pub artifact: Option<String>,
    pub parameters: Value,
    /// The pool's base job template.
    pub job_template: Value,
    /// The run's overrides of the template.
    pub job_variables: Value,
    /// The pool's credential (push pools), opened through [`SecretSource::credential`].
    pub credential: Option<Name>,
    /// The pool's limits, narrowed by the run's.
    pub limits: PoolLimits,
    /// Whether the run has sealed sensitive parameters (opened through
    /// [`SecretSource::run_sensitive_parameters`] by whoever executes it).
    pub has_sensitive_parameters: bool,
    /// What an earlier submission of this attempt recorded (a task ARN, an execution name),
    /// if any: the handle for polling and cancelling it.
    pub infrastructure: Option<Value>,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Structured log lines a flow wrote through the host interface.
    Flow,
    /// Lines Ferry itself writes about the run.
    Ferry,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::Flow => "flow",
            LogStream::Ferry => "ferry",
        }
    }

    pub fn parse(s: &str) -> Option<LogStream> {
        [
            LogStream::Stdout,
            LogStream::Stderr,
            LogStream::Flow,
            LogStream::Ferry,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One line of a run's log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    pub ts: DateTime<Utc>,
    pub stream: LogStream,
    pub line: String,
}

/// Where an executor sends a run's log lines while it runs.
#[async_trait]
pub trait LogSink: Send + Sync {
    async fn write(&self, lines: Vec<LogLine>);
}

/// How a managed run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowOutcome {
    Completed {
        result: Value,
    },
    /// The flow failed (exit code, trap, a limit): `failed`.
    Failed(Failure),
    /// The sandbox host failed: `crashed`, retried if the reason allows.
    Crashed(Failure),
    Cancelled,
}

/// Executes managed runs.
#[async_trait]
pub trait FlowRunner: Send + Sync {
    /// Runs one attempt to its end. Must return soon after `cancel` fires, and must respect
    /// `job.limits` (the engine also enforces the wall-clock deadline as a backstop).
    async fn run(&self, job: &RunJob, logs: &dyn LogSink, cancel: CancellationToken)
        -> FlowOutcome;
}

/// What a push backend reports about a submitted run.
#[derive(Debug, Clone, PartialEq)]
pub enum PushStatus {
    /// Accepted, not yet running (provisioning, pulling the image).
    Starting,
    Running,
    Completed,
    Failed(Failure),
    Crashed(Failure),
    /// Stopped at Ferry's request.
    Cancelled,
    /// The cloud no longer knows it: it vanished.
    Gone,
}

/// An error from a push backend's call to its cloud.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{failure}")]
pub struct PushError {
    pub failure: Failure,
}

impl PushError {
    pub fn new(reason: crate::FailureReason, message: impl Into<String>) -> Self {
        Self {
            failure: Failure::new(reason, message),
        }
    }

    /// Whether the same call may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        self.failure.reason.is_retryable()
    }
}

/// Pushes runs into a customer's cloud. Every method must be safe to repeat.
#[async_trait]
pub trait PushBackend: Send + Sync {
    /// Finds what an earlier submission of this attempt created (after a crash between the
    /// stored intent and the recorded result), so it is never submitted twice.
    async fn find(&self, job: &RunJob) -> Result<Option<Value>, PushError>;
    /// Submits the attempt; returns the handle to record in `job.infrastructure`.
    async fn submit(&self, job: &RunJob) -> Result<Value, PushError>;
    /// The status of each job (each has `infrastructure` set), in the same order.
    async fn poll(&self, jobs: &[RunJob]) -> Vec<Result<PushStatus, PushError>>;
    /// Asks the cloud to stop the job; a later poll verifies it stopped.
    async fn cancel(&self, job: &RunJob) -> Result<(), PushError>;
}

/// Mints the short-lived, run-scoped token a pushed run's container receives as
/// `FERRY_RUN_TOKEN`: it lets that container post its own run's logs and result, nothing else.
pub trait RunTokens: Send + Sync {
    fn mint(&self, job: &RunJob) -> SecretString;
    /// Where the container posts them (`FERRY_API_URL`), if configured.
    fn api_url(&self) -> Option<String> {
        None
    }
}

impl<F> RunTokens for F
where
    F: Fn(&RunJob) -> SecretString + Send + Sync,
{
    fn mint(&self, job: &RunJob) -> SecretString {
        self(job)
    }
}

/// Why sealed material could not be opened: a damaged or moved value, an unavailable root
/// key, the database. Never carries the material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretsError(pub String);

/// Opens a workspace's sealed material for whoever executes its runs: secrets granted by
/// name, a run's sensitive parameters, a push pool's credential. The server's vault
/// implements it; the engine and the executors see only this trait.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The value of workspace `ws`'s secret `name`; `None` if the workspace has no secret of
    /// that name (never another workspace's).
    async fn secret(
        &self,
        ws: WorkspaceId,
        name: &Name,
    ) -> Result<Option<SecretString>, SecretsError>;
    /// Run `run`'s sensitive parameters (a JSON object's text), if it has any.
    async fn run_sensitive_parameters(
        &self,
        ws: WorkspaceId,
        run: RunId,
    ) -> Result<Option<SecretString>, SecretsError>;
    /// The kind and material (canonical JSON) of workspace `ws`'s credential `name`, if any.
    async fn credential(
        &self,
        ws: WorkspaceId,
        name: &Name,
    ) -> Result<Option<(CredentialKind, SecretString)>, SecretsError>;
    /// The external id Ferry passes when it assumes workspace `ws`'s AWS roles
    /// (`aws-assume-role` credentials), if the workspace has one. Without one, assume-role
    /// credentials are refused, never assumed without an external id.
    async fn aws_external_id(&self, ws: WorkspaceId) -> Result<Option<String>, SecretsError> {
        let _ = ws;
        Ok(None)
    }
}

impl fmt::Debug for dyn SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretSource")
    }
}

impl fmt::Debug for dyn PushBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PushBackend")
    }
}

impl fmt::Debug for dyn FlowRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FlowRunner")
    }
}
