//! The real executors this process runs, by role: managed runs go to supervised executor
//! worker processes (`ferry executor-worker`), which fetch artifacts from the store and get
//! their grants (secrets, environment) opened by the vault.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use ferry_core::port::{FlowOutcome, FlowRunner, LogSink, RunJob, SecretSource};
use ferry_core::{Failure, FailureReason, Name, PoolType};
use ferry_engine::Executors;
use ferry_store::Store;
use ferry_wasm_host::worker::{WorkerCommand, WorkerPool};
use ferry_wasm_host::{ArtifactSource, Grants, SourceError};
use secrecy::ExposeSecret;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::push::Backends;
use crate::vault::Vault;
use crate::{Config, ServerRole};

/// Artifact bytes from the store.
struct StoreArtifacts(Store);

#[async_trait]
impl ArtifactSource for StoreArtifacts {
    async fn get(&self, digest: &str) -> Result<Vec<u8>, SourceError> {
        match self.0.artifact_bytes_unscoped(digest).await {
            Ok(bytes) => Ok(bytes),
            Err(ferry_store::Error::NotFound { .. }) => {
                Err(SourceError::NotFound(digest.to_owned()))
            }
            Err(e) => Err(SourceError::Unavailable(e.to_string())),
        }
    }
}

/// What a managed run is granted: the secrets and environment its pool's template names
/// (`{"secrets": ["name", ...], "env": {"KEY": "value"}}`), nothing else.
struct PoolGrants(Vault);

#[async_trait]
impl Grants for PoolGrants {
    async fn grants(
        &self,
        job: &RunJob,
    ) -> Result<(HashMap<String, SecretString>, Vec<(String, String)>), Failure> {
        let (names, env) = managed_grants(&job.job_template)
            .map_err(|e| Failure::new(FailureReason::InvalidConfig, e))?;
        let mut secrets = HashMap::new();
        for name in names {
            match self.0.secret(job.workspace_id, &name).await {
                Ok(Some(value)) => {
                    secrets.insert(name.to_string(), value);
                }
                // A granted name the workspace has no secret of reads as none in the flow.
                Ok(None) => {}
                Err(e) => {
                    return Err(Failure::new(
                        FailureReason::Internal,
                        format!("opening secret {name}: {e}"),
                    ))
                }
            }
        }
        Ok((secrets, env))
    }
}

/// Hands a managed run its sensitive parameters: opened from the vault just before the run
/// and merged over its stored (scrubbed) parameters, so the flow sees one object while the
/// database only ever holds them sealed.
struct WithSensitiveParameters {
    runner: Arc<dyn FlowRunner>,
    vault: Vault,
}

#[async_trait]
impl FlowRunner for WithSensitiveParameters {
    async fn run(
        &self,
        job: &RunJob,
        logs: &dyn LogSink,
        cancel: CancellationToken,
    ) -> FlowOutcome {
        if !job.has_sensitive_parameters {
            return self.runner.run(job, logs, cancel).await;
        }
        let sensitive = match self
            .vault
            .run_sensitive_parameters(job.workspace_id, job.run_id)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                return FlowOutcome::Crashed(Failure::new(
                    FailureReason::Internal,
                    format!("opening the run's sensitive parameters: {e}"),
                ))
            }
        };
        let Some(sensitive) = sensitive else {
            return self.runner.run(job, logs, cancel).await;
        };
        let mut job = job.clone();
        match serde_json::from_str::<serde_json::Value>(sensitive.expose_secret()) {
            Ok(serde_json::Value::Object(extra)) => {
                if let Some(params) = job.parameters.as_object_mut() {
                    params.extend(extra);
                } else {
                    job.parameters = serde_json::Value::Object(extra);
                }
            }
            _ => {
                return FlowOutcome::Crashed(Failure::new(
                    FailureReason::Internal,
                    "the run's sensitive parameters are not a JSON object",
                ))
            }
        }
        self.runner.run(&job, logs, cancel).await
    }
}

/// The secret names and environment variables a managed pool grants its runs.
pub type ManagedGrants = (Vec<Name>, Vec<(String, String)>);

/// Parses a managed pool's template: the secret names and environment it grants its runs.
pub fn managed_grants(template: &serde_json::Value) -> Result<ManagedGrants, String> {
    let Some(obj) = template.as_object() else {
        return Err("job_template must be a JSON object".into());
    };
    if let Some(field) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "secrets" | "env"))
    {
        return Err(format!(
            "job_template.{field} is not a setting of managed pools (they take \"secrets\": [names] and \"env\": {{\"KEY\": \"value\"}})"
        ));
    }
    let mut names = Vec::new();
    if let Some(list) = obj.get("secrets") {
        let list = list
            .as_array()
            .ok_or("job_template.secrets must be an array of secret names")?;
        for item in list {
            let s = item
                .as_str()
                .ok_or("job_template.secrets must be an array of secret names")?;
            names.push(Name::parse(s).map_err(|e| format!("job_template.secrets: {s:?} {e}"))?);
        }
    }
    let mut env = Vec::new();
    if let Some(map) = obj.get("env") {
        let map = map
            .as_object()
            .ok_or("job_template.env must be an object of strings")?;
        for (k, v) in map {
            let ok_key = !k.is_empty()
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !k.starts_with(|c: char| c.is_ascii_digit());
            if !ok_key {
                return Err(format!("job_template.env: {k:?} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"));
            }
            let v = v
                .as_str()
                .ok_or_else(|| format!("job_template.env.{k} must be a string"))?;
            env.push((k.clone(), v.to_owned()));
        }
    }
    Ok((names, env))
}

/// The executor workers' whole environment: their log settings, nothing else. Workers start
/// with an empty environment, so none of this process's secrets (pepper, internal token,
/// database URL, cloud credentials) reach the processes that run tenants' code.
fn worker_env() -> Vec<(String, String)> {
    ["FERRY_LOG", "FERRY_LOG_FORMAT"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)))
        .collect()
}

/// The executors of `config.role`: managed runs on worker processes when the role executes
/// them; push pools' backends (ECS) when it schedules them.
pub fn real(
    config: &Config,
    store: &Store,
    vault: &Vault,
    backends: &Backends,
) -> anyhow::Result<Executors> {
    let mut executors = Executors::default();
    if matches!(config.role, ServerRole::All | ServerRole::Scheduler) {
        executors.push.insert(PoolType::Ecs, backends.ecs.clone());
        executors
            .push
            .insert(PoolType::CloudRun, backends.cloud_run.clone());
    }
    if config.role.executes_managed() {
        let exe = match &config.executor_program {
            Some(p) => p.clone(),
            None => {
                std::env::current_exe().context("finding this program to start executor workers")?
            }
        };
        let cache = config.data_dir.join("cache").join("compiled");
        let scratch = config
            .scratch_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("ferry-scratch"));
        let command = WorkerCommand {
            program: exe,
            // The worker's whole view of the filesystem: Landlock leaves it these two
            // directories (and a few read-only system paths), not the rest of the data
            // directory.
            args: vec![
                "executor-worker".into(),
                "--cache-dir".into(),
                cache.display().to_string(),
                "--scratch-dir".into(),
                scratch.display().to_string(),
            ],
            env: worker_env(),
        };
        let pool = WorkerPool::start(
            command,
            config.executor_workers,
            Arc::new(StoreArtifacts(store.clone())),
            Arc::new(PoolGrants(vault.clone())),
        )?;
        executors.managed = Some(Arc::new(WithSensitiveParameters {
            runner: Arc::new(pool),
            vault: vault.clone(),
        }));
    }
    Ok(executors)
}

#[cfg(test)]
mod tests {
    use super::managed_grants;
    use serde_json::json;

    #[test]
    fn managed_templates() {
        let ok = managed_grants(
            &json!({"secrets": ["db-password"], "env": {"MODE": "prod", "_X1": "y"}}),
        );
        let (names, env) = ok.unwrap_or_default();
        assert_eq!(
            names.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            ["db-password"]
        );
        assert_eq!(env.len(), 2);
        assert!(managed_grants(&json!({})).is_ok());
        for bad in [
            json!([]),
            json!({"image": "x"}),
            json!({"secrets": "db"}),
            json!({"secrets": ["Bad Name"]}),
            json!({"env": {"1X": "y"}}),
            json!({"env": {"A-B": "y"}}),
            json!({"env": {"X": 1}}),
        ] {
            assert!(managed_grants(&bad).is_err(), "{bad}");
        }
    }
}
