//! The ports through which the engine reaches executors: [`FlowRunner`] for managed runs
//! (WebAssembly sandboxes) and [`PushBackend`] for runs pushed into a customer's cloud; and
//! [`SecretSource`], through which they get a workspace's sealed material opened; and
//! [`IdentityTokens`], through which they get Ferry's own OIDC tokens for keyless cloud access.
//! Implementations live in their own crates; fakes in [`crate::testing`].

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use secrecy::SecretString;

use crate::{
    CredentialKind, Failure, FailureReason, Name, PoolId, PoolLimits, PoolType, RunId, WorkspaceId,
};

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

impl FlowOutcome {
    /// A flow's result as the flow handed it over (a component's return value, a module's
    /// result file), tenant bytes: at most `max_bytes` of JSON completes the run with that
    /// value; anything else fails it (`exit_code`) saying why. Pure, so it is fuzzed
    /// (`fuzz/`, target `flow_result`).
    pub fn from_result(bytes: &[u8], max_bytes: usize) -> FlowOutcome {
        if bytes.len() > max_bytes {
            return FlowOutcome::Failed(Failure::new(
                FailureReason::ExitCode,
                format!(
                    "the flow's result is {} bytes, over the result limit of {max_bytes} bytes",
                    bytes.len()
                ),
            ));
        }
        match serde_json::from_slice(bytes) {
            Ok(result) => FlowOutcome::Completed { result },
            Err(error) => FlowOutcome::Failed(Failure::new(
                FailureReason::ExitCode,
                format!("the flow's result is not JSON: {error}"),
            )),
        }
    }
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

/// An error from a push backend's call to its cloud: the typed failure a tenant sees, and
/// what only the operator may see.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{failure}")]
pub struct PushError {
    pub failure: Failure,
    /// The upstream error's whole chain (SDK transport, token minting, response bodies):
    /// logged for the operator, never put in a tenant-visible field.
    pub detail: Option<String>,
}

impl PushError {
    pub fn new(reason: crate::FailureReason, message: impl Into<String>) -> Self {
        Self {
            failure: Failure::new(reason, message),
            detail: None,
        }
    }

    /// A failure whose `message` the tenant sees, with `upstream`'s chain kept for the
    /// operator's log only.
    pub fn upstream(
        reason: crate::FailureReason,
        message: impl Into<String>,
        upstream: &(dyn std::error::Error + 'static),
    ) -> Self {
        let mut detail = upstream.to_string();
        let mut source = upstream.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !detail.contains(&text) {
                detail.push_str(": ");
                detail.push_str(&text);
            }
            source = s.source();
        }
        Self {
            failure: Failure::new(reason, message),
            detail: Some(detail),
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

/// The subject of the identity tokens Ferry mints for workspace `ws`'s pool `pool`:
/// `workspace:<workspace id>:pool:<pool name>`. What a customer's cloud trusts (a workload
/// identity pool's attribute condition, an IAM role's trust policy) names this.
pub fn identity_subject(ws: WorkspaceId, pool: &Name) -> String {
    format!("workspace:{ws}:pool:{pool}")
}

/// Mints Ferry's own OIDC identity tokens: short-lived JWTs signed by Ferry's issuer (its
/// discovery document and JWKS are public), with subject [`identity_subject`] and the
/// audience the customer's cloud expects. A cloud that trusts Ferry's issuer for that subject
/// exchanges one for credentials (Google STS, AWS `AssumeRoleWithWebIdentity`): keyless
/// access that never involves Ferry's own host identity. The server's issuer implements it.
#[async_trait]
pub trait IdentityTokens: Send + Sync {
    /// A token for workspace `ws`'s pool `pool`, for `audience`.
    async fn mint(
        &self,
        ws: WorkspaceId,
        pool: &Name,
        audience: &str,
    ) -> Result<SecretString, SecretsError>;
}

impl fmt::Debug for dyn IdentityTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityTokens")
    }
}

/// An [`IdentityTokens`] that mints nothing: for processes and tests without an issuer.
/// Keyless credentials fail with its message; every other kind works.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIdentityTokens;

#[async_trait]
impl IdentityTokens for NoIdentityTokens {
    async fn mint(&self, _: WorkspaceId, _: &Name, _: &str) -> Result<SecretString, SecretsError> {
        Err(SecretsError(
            "this Ferry has no OIDC issuer configured, so keyless credentials cannot be used"
                .into(),
        ))
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

/// Told of each run state change this process makes, as it makes it (after the store
/// accepted it): how the server counts runs for its metrics without reading the runs table.
/// Called on the scheduler's tasks: it must not block.
pub trait RunObserver: Send + Sync {
    /// A run of `pool_type` went from `from` to `to` (`reason`: the typed failure of a
    /// failed, crashed or retried attempt).
    fn transitioned(
        &self,
        pool_type: PoolType,
        from: crate::RunState,
        to: crate::RunState,
        reason: Option<FailureReason>,
    );
}

/// A [`RunObserver`] that notes nothing (tests, tools).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRunObserver;

impl RunObserver for NoRunObserver {
    fn transitioned(
        &self,
        _: PoolType,
        _: crate::RunState,
        _: crate::RunState,
        _: Option<FailureReason>,
    ) {
    }
}

impl fmt::Debug for dyn RunObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RunObserver")
    }
}
