//! The push pools' job specs as the API checks them: a pool's template when the pool is
//! created or changed (fields its runs may still supply can be missing), and template plus a
//! run's job variables at submit (complete). Each answers 422 naming every field to fix,
//! before anything reaches a cloud.

use std::sync::Arc;

use ferry_core::port::{IdentityTokens, RunJob, RunTokens, SecretSource};
use ferry_core::{
    AllowedEndpoints, CheckOutcome, CredentialCheck, CredentialKind, FieldError, Name, PoolId,
    PoolLimits, PoolType, RunId, WorkspaceId,
};
use serde_json::Value;

use crate::error::ApiError;
use crate::run_token::RunTokenSigner;
use crate::vault::Vault;

fn spec_errors(pool_type: PoolType, template: &Value, variables: &Value) -> Vec<FieldError> {
    match pool_type {
        PoolType::Managed => Vec::new(),
        PoolType::Ecs => ferry_push_aws::spec_for(template, variables)
            .err()
            .unwrap_or_default(),
        PoolType::CloudRun => ferry_push_gcp::spec_for(template, variables)
            .err()
            .unwrap_or_default(),
    }
}

fn answer(pool_type: PoolType, what: &str, errors: &[FieldError]) -> Result<(), ApiError> {
    if errors.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    Err(ApiError::invalid(format!(
        "the {pool_type} {what} is not valid: {}",
        list.join("; ")
    )))
}

/// The push backends of this process, shared by the scheduler (which drives runs with them)
/// and the API (which validates credentials with them). Built lazily: no cloud is reached
/// until a run or a validation needs it.
#[derive(Clone)]
pub struct Backends {
    pub ecs: Arc<ferry_push_aws::EcsBackend>,
    pub cloud_run: Arc<ferry_push_gcp::CloudRunBackend>,
    /// The operator's `FERRY_ALLOWED_ENDPOINTS`.
    allowed_endpoints: AllowedEndpoints,
}

impl Backends {
    pub fn new(
        vault: &Vault,
        run_tokens: &RunTokenSigner,
        allowed_endpoints: &AllowedEndpoints,
        identity_tokens: Arc<dyn IdentityTokens>,
    ) -> Self {
        let secrets: Arc<dyn SecretSource> = Arc::new(vault.clone());
        let tokens: Arc<dyn RunTokens> = Arc::new(run_tokens.clone());
        let cloud_run = ferry_push_gcp::CloudRunBackend::new(
            secrets.clone(),
            ferry_push_gcp::GcpConfig {
                // The template's `endpoint`, else https://run.googleapis.com.
                endpoint: None,
                allowed_endpoints: allowed_endpoints.clone(),
                run_tokens: tokens.clone(),
                identity_tokens: identity_tokens.clone(),
            },
        );
        let ecs = ferry_push_aws::EcsBackend::new(
            secrets,
            ferry_push_aws::EcsConfig {
                // The template's `endpoint`, else the SDK's own (AWS_ENDPOINT_URL honoured).
                endpoint_url: None,
                // The standard provider chain: environment, web identity, container, instance.
                ferry_identity: None,
                allowed_endpoints: allowed_endpoints.clone(),
                run_tokens: tokens,
                // Ferry's own OIDC tokens for aws-web-identity credentials.
                identity_tokens,
            },
        );
        Self {
            ecs: Arc::new(ecs),
            cloud_run: Arc::new(cloud_run),
            allowed_endpoints: allowed_endpoints.clone(),
        }
    }

    /// The operator's `FERRY_ALLOWED_ENDPOINTS` (also what a credential's token exchange URL
    /// may be on).
    pub fn allowed_endpoints(&self) -> &AllowedEndpoints {
        &self.allowed_endpoints
    }

    /// Checks a push pool's base template; fields left for runs to set may be missing. A
    /// template's `endpoint` must be an origin the operator allows.
    pub fn check_template(&self, pool_type: PoolType, template: &Value) -> Result<(), ApiError> {
        let mut errors: Vec<FieldError> = spec_errors(pool_type, template, &Value::Null)
            .into_iter()
            .filter(|e| !e.is_missing())
            .collect();
        if pool_type != PoolType::Managed {
            if let Some(endpoint) = template.get("endpoint").and_then(Value::as_str) {
                if let Err(e) = self.allowed_endpoints.check_origin(endpoint) {
                    if matches!(e, ferry_core::EndpointError::NotAllowed(_)) {
                        errors.push(FieldError::new("endpoint", e.to_string()));
                    }
                }
            }
        }
        answer(pool_type, "job_template", &errors)
    }

    /// Checks what a run would be submitted with: the template with its variables over it.
    pub fn check_run(
        &self,
        pool_type: PoolType,
        template: &Value,
        variables: &Value,
    ) -> Result<(), ApiError> {
        answer(
            pool_type,
            "job (job_template with job_variables)",
            &spec_errors(pool_type, template, variables),
        )
    }

    /// Checks workspace `ws`'s credential `name` (of `kind`) live, against the cluster or
    /// project of `template` (a pool's, or empty). A keyless credential's token names its
    /// pool (`pool`): without one, it is not tried.
    pub async fn validate(
        &self,
        ws: WorkspaceId,
        name: &Name,
        kind: CredentialKind,
        pool: Option<&Name>,
        template: &Value,
    ) -> Vec<CredentialCheck> {
        let keyless = matches!(
            kind,
            CredentialKind::GcpWorkloadIdentity | CredentialKind::AwsWebIdentity
        );
        let Some(pool) = pool.or((!keyless).then_some(name)) else {
            return vec![CredentialCheck::new(
                "pool",
                CheckOutcome::Failed,
                format!(
                    "a {kind} credential acts with Ferry's token for one pool (sub \
                     workspace:{ws}:pool:<pool name>): validate it with {{\"pool\": <a pool using it>}}"
                ),
            )];
        };
        let pool_type = if kind.fits(PoolType::Ecs) {
            PoolType::Ecs
        } else {
            PoolType::CloudRun
        };
        let job = handle(
            ws,
            PoolId::new(),
            pool.clone(),
            pool_type,
            template,
            Some(name),
        );
        match pool_type {
            PoolType::Ecs => self.ecs.validate(&job).await,
            _ => {
                let template = template.as_object().is_some_and(|t| !t.is_empty());
                self.cloud_run
                    .validate(ws, pool, name, template.then_some(&job.job_template))
                    .await
                    .into_iter()
                    .map(|c| {
                        let outcome = if c.ok {
                            CheckOutcome::Passed
                        } else {
                            CheckOutcome::Failed
                        };
                        CredentialCheck::new(c.name, outcome, c.detail)
                    })
                    .collect()
            }
        }
    }
}

/// What a push backend is handed when there is no run (a pool, a credential to validate):
/// a fresh run id, attempt 1, no parameters or variables.
fn handle(
    ws: WorkspaceId,
    pool_id: PoolId,
    pool: Name,
    pool_type: PoolType,
    template: &Value,
    credential: Option<&Name>,
) -> RunJob {
    RunJob {
        run_id: RunId::new(),
        workspace_id: ws,
        pool_id,
        pool,
        pool_type,
        attempt: 1,
        artifact: None,
        parameters: Value::Null,
        job_template: template.clone(),
        job_variables: Value::Null,
        credential: credential.cloned(),
        limits: PoolLimits::default(),
        has_sensitive_parameters: false,
        infrastructure: None,
    }
}

/// A pool as a push backend sees it (no run): its workspace, credential and template.
fn pool_job(pool: &ferry_store::Pool) -> RunJob {
    handle(
        pool.workspace_id,
        pool.id,
        pool.name.clone(),
        pool.pool_type,
        &pool.job_template,
        pool.credential.as_ref(),
    )
}

/// `ferry-<hash>` of a task definition ARN (`...:task-definition/ferry-<hash>:<revision>`).
fn family_of_arn(arn: &str) -> Option<&str> {
    arn.rsplit('/').next()?.split(':').next()
}

impl Backends {
    /// After ecs pool `old` changed its template or was deleted: deregisters the task
    /// definition of its old template unless another pool of the workspace or a run still in
    /// flight uses it. In the background and best effort (failures are logged): a later
    /// change retries, and nothing depends on it but tidiness.
    pub fn tidy_after_pool_change(&self, store: ferry_store::Store, old: ferry_store::Pool) {
        if old.pool_type != PoolType::Ecs || old.credential.is_none() {
            return;
        }
        let ecs = self.ecs.clone();
        tokio::spawn(async move {
            let ws = old.workspace_id;
            let mut keep = Vec::new();
            match store.pools_list(ws).await {
                Ok(pools) => {
                    for p in pools.iter().filter(|p| p.pool_type == PoolType::Ecs) {
                        if let Ok(Some(f)) = ecs.family(&pool_job(p)).await {
                            keep.push(f);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Not tidying task definitions: listing pools failed");
                    return;
                }
            }
            for state in [
                ferry_core::RunState::Pending,
                ferry_core::RunState::Running,
                ferry_core::RunState::Cancelling,
            ] {
                let filter = ferry_store::RunFilter {
                    pool: None,
                    state: Some(state),
                    limit: 1000,
                    cursor: None,
                };
                match store.runs_list(ws, &filter).await {
                    Ok(page) => keep.extend(page.items.iter().filter_map(|r| {
                        let arn = r
                            .infrastructure
                            .as_ref()?
                            .get("task_definition")?
                            .as_str()?;
                        family_of_arn(arn).map(str::to_owned)
                    })),
                    Err(e) => {
                        tracing::warn!(error = %e, "Not tidying task definitions: listing runs failed");
                        return;
                    }
                }
            }
            match ecs.deregister_unused(&pool_job(&old), &keep).await {
                Ok(gone) if !gone.is_empty() => {
                    tracing::info!(pool = %old.name, count = gone.len(), "Deregistered the pool's unused task definitions")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(pool = %old.name, error = %e, "Deregistering unused task definitions failed")
                }
            }
        });
    }
}

/// How often idle Cloud Run jobs are looked for, and how long a job must have started no
/// execution to be deleted.
pub const IDLE_JOB_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
pub const IDLE_JOB_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl Backends {
    /// Deletes the Cloud Run jobs Ferry created that started no execution for `idle_for`, in
    /// every project and region a cloud-run pool of any workspace points at. Returns how many
    /// were deleted; a failing project is logged and skipped.
    pub async fn sweep_idle_jobs(
        &self,
        store: &ferry_store::Store,
        idle_for: std::time::Duration,
    ) -> usize {
        let workspaces = match store.workspaces_list().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "Idle-job sweep skipped: listing workspaces failed");
                return 0;
            }
        };
        let mut seen = std::collections::HashSet::new();
        let mut deleted = 0;
        for ws in workspaces {
            let Ok(pools) = store.pools_list(ws.id).await else {
                continue;
            };
            for pool in pools.iter().filter(|p| p.pool_type == PoolType::CloudRun) {
                let Some(credential) = &pool.credential else {
                    continue;
                };
                let place = (
                    ws.id,
                    credential.clone(),
                    pool.job_template.get("project").cloned(),
                    pool.job_template.get("region").cloned(),
                    pool.job_template.get("endpoint").cloned(),
                );
                if !seen.insert(format!("{place:?}")) {
                    continue;
                }
                match self
                    .cloud_run
                    .delete_idle_jobs(ws.id, &pool.name, credential, &pool.job_template, idle_for)
                    .await
                {
                    Ok(jobs) => deleted += jobs.len(),
                    Err(e) => {
                        tracing::warn!(pool = %pool.name, error = %e, "Deleting idle Cloud Run jobs failed")
                    }
                }
            }
        }
        deleted
    }

    /// Sweeps idle Cloud Run jobs every [`IDLE_JOB_SWEEP_EVERY`] until `stop` fires.
    pub fn spawn_idle_job_sweeper(
        &self,
        store: ferry_store::Store,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let backends = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(IDLE_JOB_SWEEP_EVERY) => {}
                }
                let n = backends.sweep_idle_jobs(&store, IDLE_JOB_AFTER).await;
                if n > 0 {
                    tracing::info!(deleted = n, "Idle Cloud Run jobs deleted");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn family_of_a_task_definition_arn() {
        assert_eq!(
            super::family_of_arn("arn:aws:ecs:eu-west-1:111111111111:task-definition/ferry-abc:3"),
            Some("ferry-abc")
        );
    }
}
