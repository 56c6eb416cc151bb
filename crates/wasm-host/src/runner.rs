//! [`WasmRunner`]: the sandbox host as the engine's [`FlowRunner`], fetching artifact bytes
//! through an [`ArtifactSource`] only when neither cache has the compiled artifact.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::port::{FlowOutcome, FlowRunner, LogSink, RunJob};
use ferry_core::{Failure, FailureReason};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::{Host, RunSpec};

/// Why an artifact's bytes could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("no artifact {0}")]
    NotFound(String),
    #[error("the artifact store is unavailable: {0}")]
    Unavailable(String),
}

/// Where artifact bytes come from (the artifact store), by digest.
#[async_trait]
pub trait ArtifactSource: Send + Sync {
    async fn get(&self, digest: &str) -> Result<Vec<u8>, SourceError>;
}

/// What a run is granted: secrets readable through `ferry:flow/host.secret` and environment
/// variables. Nothing unless an implementation says so.
#[async_trait]
pub trait Grants: Send + Sync {
    async fn grants(
        &self,
        job: &RunJob,
    ) -> Result<(HashMap<String, SecretString>, Vec<(String, String)>), Failure>;
}

/// Grants nothing: no secrets, no environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGrants;

#[async_trait]
impl Grants for NoGrants {
    async fn grants(
        &self,
        _job: &RunJob,
    ) -> Result<(HashMap<String, SecretString>, Vec<(String, String)>), Failure> {
        Ok((HashMap::new(), Vec::new()))
    }
}

/// Runs managed jobs in a [`Host`].
#[derive(Clone)]
pub struct WasmRunner {
    host: Host,
    source: Arc<dyn ArtifactSource>,
    grants: Arc<dyn Grants>,
}

impl std::fmt::Debug for WasmRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRunner")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl WasmRunner {
    /// A runner that grants runs nothing (see [`WasmRunner::with_grants`]).
    pub fn new(host: Host, source: Arc<dyn ArtifactSource>) -> Self {
        Self {
            host,
            source,
            grants: Arc::new(NoGrants),
        }
    }

    pub fn with_grants(mut self, grants: Arc<dyn Grants>) -> Self {
        self.grants = grants;
        self
    }

    pub fn host(&self) -> &Host {
        &self.host
    }
}

fn crashed(reason: FailureReason, message: impl Into<String>) -> FlowOutcome {
    FlowOutcome::Crashed(Failure::new(reason, message))
}

#[async_trait]
impl FlowRunner for WasmRunner {
    #[tracing::instrument(skip_all, fields(run_id = %job.run_id, attempt = job.attempt))]
    async fn run(
        &self,
        job: &RunJob,
        logs: &dyn LogSink,
        cancel: CancellationToken,
    ) -> FlowOutcome {
        let Some(digest) = job.artifact.as_deref() else {
            return crashed(
                FailureReason::InvalidConfig,
                "a managed run needs an artifact",
            );
        };
        let metered = job.limits.cpu_fuel_m.is_some();
        let prepared = match self.host.lookup(digest, metered).await {
            Some(prepared) => prepared,
            None => {
                let fetched = tokio::select! {
                    _ = cancel.cancelled() => return FlowOutcome::Cancelled,
                    fetched = self.source.get(digest) => fetched,
                };
                let bytes = match fetched {
                    Ok(bytes) => bytes,
                    Err(error @ SourceError::NotFound(_)) => {
                        return crashed(FailureReason::InvalidConfig, error.to_string())
                    }
                    Err(error) => return crashed(FailureReason::Internal, error.to_string()),
                };
                let prepared = tokio::select! {
                    _ = cancel.cancelled() => return FlowOutcome::Cancelled,
                    prepared = self.host.prepare(&bytes, metered) => prepared,
                };
                match prepared {
                    Ok(p) if p.info().digest == digest => p,
                    Ok(p) => {
                        tracing::error!(expected = digest, got = %p.info().digest, "Artifact store returned other bytes");
                        return crashed(
                            FailureReason::Internal,
                            "the artifact store returned bytes of another digest",
                        );
                    }
                    Err(error) if error.is_caller_error() => {
                        // Validated at upload, so this is a stored artifact the current host
                        // refuses (a Ferry upgrade that dropped an import, say): not retried.
                        return crashed(FailureReason::InvalidConfig, error.to_string());
                    }
                    Err(error) => {
                        tracing::error!(error = %error, "Artifact not prepared");
                        return crashed(FailureReason::Internal, error.to_string());
                    }
                }
            }
        };
        let (secrets, env) = match self.grants.grants(job).await {
            Ok(grants) => grants,
            Err(failure) => return FlowOutcome::Crashed(failure),
        };
        let spec = RunSpec {
            params: job.parameters.clone(),
            limits: job.limits,
            secrets,
            env,
        };
        self.host.run(&prepared, spec, logs, cancel).await
    }
}
