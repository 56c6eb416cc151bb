//! [`CloudRunBackend`]: submit (a reused job per pool and content hash, created once, then
//! `jobs.run` with per-run overrides), find (the job's executions, matched on the run id and
//! attempt in their env), poll (one `executions.list` per credential, project and region, then
//! a GET for what the list did not show) and cancel (`executions.cancel`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::port::{PushBackend, PushError, PushStatus, RunJob, RunTokens, SecretSource};
use ferry_core::{FailureReason, Name, RunId, WorkspaceId};
use google_cloud_run_v2::model::{run_job_request, Execution, Job};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::clients::{Client, ClientKey, Clients};
use crate::spec::{
    spec_for, CloudRunJobSpec, Egress, ExecutionEnvironment, Vpc, LABEL_MANAGED, LABEL_POOL,
    LABEL_WORKSPACE, MAX_TIMEOUT_S,
};
use crate::status::{api_error, code_of, status_of, ExecutionState, CONTAINER};
use crate::validate::{self, Check};
use crate::GcpConfig;

/// Each call's own time limit, unless [`CloudRunBackend::with_call_timeout`] says otherwise.
const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Page size of list calls.
const PAGE_SIZE: i32 = 100;

/// Most pages a poll lists before it falls back to a GET per execution.
const POLL_MAX_PAGES: usize = 10;

/// Cloud Run's limit on one environment variable's value is 32 KiB.
const MAX_ENV_VALUE: usize = 32 * 1024;

/// The environment variables that carry the run's identity (and let `find` recognise it).
pub const ENV_RUN_ID: &str = "FERRY_RUN_ID";
pub const ENV_ATTEMPT: &str = "FERRY_ATTEMPT";
pub const ENV_PARAMETERS: &str = "FERRY_PARAMETERS";
pub const ENV_RUN_TOKEN: &str = "FERRY_RUN_TOKEN";

type JobSlot = Arc<tokio::sync::Mutex<bool>>;

/// The push backend for cloud-run pools. Cheap to share: hold it in an `Arc`.
pub struct CloudRunBackend {
    clients: Clients,
    config: GcpConfig,
    /// Whether each job is known to exist, per (clients, job name), each behind its own lock
    /// so one job is created once, never concurrently.
    jobs: Mutex<HashMap<(ClientKey, String), JobSlot>>,
    /// Attempts this process has sent `jobs.run` for and not yet seen answered: a repeated
    /// submit of one of them looks for the execution first.
    attempted: Mutex<HashSet<(RunId, u32)>>,
}

impl std::fmt::Debug for CloudRunBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudRunBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Where a submitted run is: what `submit` and `find` return, what `poll` and `cancel` read,
/// what `ferry run show` displays.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Infrastructure {
    /// `projects/P/locations/R/jobs/J/executions/E`.
    pub execution: String,
    /// `projects/P/locations/R/jobs/J`.
    pub job: String,
    pub project: String,
    pub region: String,
    /// When Cloud Run created the execution (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The execution's logs in the Cloud console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_uri: Option<String>,
}

impl Infrastructure {
    fn of(job: &RunJob) -> Result<Self, PushError> {
        job.infrastructure
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| {
                PushError::new(
                    FailureReason::Internal,
                    "the run's infrastructure is not a Cloud Run execution handle",
                )
            })
    }

    fn from_execution(e: &Execution, spec_project: &str, spec_region: &str) -> Self {
        let parts: Vec<&str> = e.name.split('/').collect();
        let (project, region) = match parts.as_slice() {
            ["projects", p, "locations", r, ..] => ((*p).to_owned(), (*r).to_owned()),
            _ => (spec_project.to_owned(), spec_region.to_owned()),
        };
        let job = e
            .name
            .split_once("/executions/")
            .map_or_else(|| e.job.clone(), |(j, _)| j.to_owned());
        Self {
            execution: e.name.clone(),
            job,
            project,
            region,
            created_at: e
                .create_time
                .as_ref()
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds(), 0))
                .map(|t| t.to_rfc3339()),
            log_uri: Some(e.log_uri.clone()).filter(|u| !u.is_empty()),
        }
    }

    /// As JSON: `{"execution", "job", "project", "region", "created_at"?, "log_uri"?}`.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

fn spec_of(job: &RunJob) -> Result<CloudRunJobSpec, PushError> {
    spec_for(&job.job_template, &job.job_variables).map_err(|errors| {
        let text: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        PushError::new(FailureReason::InvalidConfig, text.join("; "))
    })
}

fn internal(message: impl Into<String>) -> PushError {
    PushError::new(FailureReason::Internal, message)
}

/// The job Ferry creates for `spec`, in Cloud Run's JSON form.
pub(crate) fn job_body(spec: &CloudRunJobSpec, ws: &str, pool: &str) -> Value {
    let mut labels: BTreeMap<String, String> = spec.labels.clone();
    labels.insert(LABEL_WORKSPACE.into(), ws.to_owned());
    labels.insert(LABEL_POOL.into(), pool.to_owned());
    labels.insert(LABEL_MANAGED.into(), "true".into());
    let env: Vec<Value> = spec
        .env_from_secrets
        .iter()
        .map(|(name, s)| {
            json!({"name": name, "valueSource": {"secretKeyRef": {"secret": s.secret, "version": s.version}}})
        })
        .collect();
    let mut container = json!({
        "name": CONTAINER,
        "image": spec.image,
        "resources": {"limits": {"cpu": spec.cpu, "memory": spec.memory()}},
    });
    if !spec.command.is_empty() {
        container["command"] = json!(spec.command);
    }
    if !env.is_empty() {
        container["env"] = Value::Array(env);
    }
    let mut task = json!({
        "containers": [container],
        "maxRetries": spec.max_retries,
    });
    if let Some(t) = spec.timeout_s {
        task["timeout"] = json!(format!("{t}s"));
    }
    if let Some(sa) = &spec.service_account {
        task["serviceAccount"] = json!(sa);
    }
    if let Some(e) = spec.execution_environment {
        task["executionEnvironment"] = json!(match e {
            ExecutionEnvironment::Gen1 => "EXECUTION_ENVIRONMENT_GEN1",
            ExecutionEnvironment::Gen2 => "EXECUTION_ENVIRONMENT_GEN2",
        });
    }
    let egress = |e: Egress| match e {
        Egress::AllTraffic => "ALL_TRAFFIC",
        Egress::PrivateRangesOnly => "PRIVATE_RANGES_ONLY",
    };
    match &spec.vpc {
        Some(Vpc::Connector {
            connector,
            egress: e,
        }) => {
            task["vpcAccess"] = json!({"connector": connector, "egress": egress(*e)});
        }
        Some(Vpc::Direct {
            network,
            subnetwork,
            tags,
            egress: e,
        }) => {
            let mut ni = json!({});
            if let Some(n) = network {
                ni["network"] = json!(n);
            }
            if let Some(s) = subnetwork {
                ni["subnetwork"] = json!(s);
            }
            if !tags.is_empty() {
                ni["tags"] = json!(tags);
            }
            task["vpcAccess"] = json!({"networkInterfaces": [ni], "egress": egress(*e)});
        }
        None => {}
    }
    json!({
        "labels": labels,
        "template": {
            "labels": labels,
            "taskCount": 1,
            "parallelism": 1,
            "template": task,
        },
    })
}

fn env_of(e: &Execution) -> HashMap<&str, &str> {
    e.template
        .iter()
        .flat_map(|t| t.containers.iter())
        .flat_map(|c| c.env.iter())
        .filter_map(|v| v.value().map(|val| (v.name.as_str(), val.as_str())))
        .collect()
}

/// Whether execution `e` was started for attempt `attempt` of run `run`.
fn is_attempt(e: &Execution, run: &str, attempt: &str) -> bool {
    let env = env_of(e);
    env.get(ENV_RUN_ID) == Some(&run) && env.get(ENV_ATTEMPT) == Some(&attempt)
}

impl CloudRunBackend {
    pub fn new(secrets: Arc<dyn SecretSource>, config: GcpConfig) -> Self {
        Self {
            clients: Clients::new(
                secrets,
                config.identity_tokens.clone(),
                config.endpoint.clone(),
                config.allowed_endpoints.clone(),
                DEFAULT_CALL_TIMEOUT,
            ),
            config,
            jobs: Mutex::new(HashMap::new()),
            attempted: Mutex::new(HashSet::new()),
        }
    }

    /// Limits each call to Google to `timeout` (default 30 s). A call that times out is a
    /// transient error; a repeated submit then finds what the timed-out one started.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.clients.call_timeout = timeout;
        self
    }

    fn run_tokens(&self) -> &dyn RunTokens {
        self.config.run_tokens.as_ref()
    }

    /// The job's id and full name for `job`'s pool and `spec`.
    fn job_name(job: &RunJob, spec: &CloudRunJobSpec) -> (String, String) {
        let id = spec.job_id(
            &job.workspace_id.to_string(),
            &job.pool_id.to_string(),
            job.pool.as_str(),
        );
        let name = format!("{}/jobs/{id}", spec.location());
        (id, name)
    }

    fn job_slot(&self, key: &ClientKey, name: &str) -> Result<JobSlot, PushError> {
        let mut jobs = self
            .jobs
            .lock()
            .map_err(|_| internal("job registry poisoned"))?;
        Ok(jobs
            .entry((key.clone(), name.to_owned()))
            .or_default()
            .clone())
    }

    fn forget_job(&self, name: &str) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.retain(|(_, n), _| n != name);
        }
    }

    /// Creates the job unless it is known to exist; `ALREADY_EXISTS` is success.
    async fn ensure_job(
        &self,
        client: &Client,
        spec: &CloudRunJobSpec,
        job: &RunJob,
    ) -> Result<String, PushError> {
        let (id, name) = Self::job_name(job, spec);
        let slot = self.job_slot(&client.key, &name)?;
        let mut exists = slot.lock().await;
        if *exists {
            return Ok(name);
        }
        let body = job_body(
            spec,
            &job.workspace_id.to_string(),
            &job.pool_id.to_string(),
        );
        let model: Job = serde_json::from_value(body)
            .map_err(|e| internal(format!("building the Cloud Run job: {e}")))?;
        match client
            .jobs
            .create_job()
            .set_parent(spec.location())
            .set_job_id(&id)
            .set_job(model)
            .send()
            .await
        {
            Ok(mut op) => {
                // Poll the operation until the job is ready, with a growing pause.
                let mut pause = Duration::from_millis(100);
                let mut polls = 0;
                while !op.done {
                    if polls >= 40 {
                        return Err(internal(format!(
                            "jobs.create: job {name} was still being created; will retry"
                        )));
                    }
                    polls += 1;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                    op = client
                        .jobs
                        .get_operation()
                        .set_name(&op.name)
                        .send()
                        .await
                        .map_err(|e| api_error("operations.get", &e))?;
                }
                if let Some(status) = op.error() {
                    let code = crate::status::code_name(status.code);
                    if code != "ALREADY_EXISTS" {
                        return Err(PushError::new(
                            crate::status::reason_for(code, None, &status.message),
                            format!("jobs.create: {code}: {}", status.message),
                        ));
                    }
                }
            }
            Err(e) if code_of(&e) == Some("ALREADY_EXISTS") => {}
            Err(e) => return Err(api_error("jobs.create", &e)),
        }
        tracing::info!(job = %name, "Cloud Run job ready");
        *exists = true;
        Ok(name)
    }
}

impl CloudRunBackend {
    /// The `jobs.run` overrides of `job`: args, env (with Ferry's variables), timeout, one task.
    fn overrides(&self, job: &RunJob, spec: &CloudRunJobSpec) -> Result<Value, PushError> {
        let parameters = job.parameters.to_string();
        if parameters.len() > MAX_ENV_VALUE {
            return Err(PushError::new(
                FailureReason::InvalidConfig,
                format!(
                    "the run's parameters take {} bytes; Cloud Run allows {MAX_ENV_VALUE} in one \
                     environment variable",
                    parameters.len()
                ),
            ));
        }
        let mut env: Vec<Value> = spec
            .env
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        let token = self.run_tokens().mint(job);
        for (k, v) in [
            (ENV_RUN_ID, job.run_id.to_string()),
            (ENV_ATTEMPT, job.attempt.to_string()),
            (ENV_PARAMETERS, parameters),
            (ENV_RUN_TOKEN, token.expose_secret().to_owned()),
        ] {
            env.push(json!({"name": k, "value": v}));
        }
        let mut container = json!({"name": CONTAINER, "env": env});
        if !spec.args.is_empty() {
            container["args"] = json!(spec.args);
        }
        let timeout = match (spec.timeout_s, job.limits.timeout_s) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|t| t.clamp(1, MAX_TIMEOUT_S));
        let mut overrides = json!({"containerOverrides": [container], "taskCount": 1});
        if let Some(t) = timeout {
            overrides["timeout"] = json!(format!("{t}s"));
        }
        Ok(overrides)
    }

    /// Starts an execution of `job_name` with `overrides`.
    async fn run(
        &self,
        client: &Client,
        job_name: &str,
        overrides: &Value,
    ) -> Result<Execution, google_cloud_run_v2::Error> {
        let overrides: run_job_request::Overrides =
            serde_json::from_value(overrides.clone()).map_err(google_cloud_run_v2::Error::ser)?;
        let op = client
            .jobs
            .run_job()
            .set_name(job_name)
            .set_overrides(overrides)
            .send()
            .await?;
        op.metadata
            .as_ref()
            .and_then(|m| m.to_msg::<Execution>().ok())
            .ok_or_else(|| {
                google_cloud_run_v2::Error::deser("jobs.run: the operation names no execution")
            })
    }

    /// The execution of `job`'s attempt among `job_name`'s executions, if there is one.
    async fn find_in(
        &self,
        client: &Client,
        job_name: &str,
        job: &RunJob,
    ) -> Result<Option<Execution>, PushError> {
        let run = job.run_id.to_string();
        let attempt = job.attempt.to_string();
        let mut token = String::new();
        loop {
            let page = match client
                .executions
                .list_executions()
                .set_parent(job_name)
                .set_page_size(PAGE_SIZE)
                .set_page_token(&token)
                .send()
                .await
            {
                Ok(p) => p,
                // No job: nothing was started from it.
                Err(e) if code_of(&e) == Some("NOT_FOUND") => return Ok(None),
                Err(e) => return Err(api_error("executions.list", &e)),
            };
            if let Some(e) = page
                .executions
                .into_iter()
                .find(|e| is_attempt(e, &run, &attempt))
            {
                return Ok(Some(e));
            }
            if page.next_page_token.is_empty() {
                return Ok(None);
            }
            token = page.next_page_token;
        }
    }

    fn attempted(&self, job: &RunJob) -> bool {
        self.attempted
            .lock()
            .map(|mut a| !a.insert((job.run_id, job.attempt)))
            .unwrap_or(true)
    }

    fn settled(&self, job: &RunJob) {
        if let Ok(mut a) = self.attempted.lock() {
            a.remove(&(job.run_id, job.attempt));
        }
    }

    async fn submit_inner(&self, job: &RunJob) -> Result<Value, PushError> {
        // Checked before any client exists: a bad template never reaches Google.
        let spec = spec_of(job)?;
        let overrides = self.overrides(job, &spec)?;
        let client = self
            .clients
            .client(
                job.workspace_id,
                &job.pool,
                job.credential.as_ref(),
                spec.endpoint.as_deref(),
            )
            .await?;
        let (_, job_name) = Self::job_name(job, &spec);
        // Tried before in this process (a timeout, say): the first try may have started it.
        if self.attempted(job) {
            if let Some(e) = self.find_in(&client, &job_name, job).await? {
                tracing::info!(execution = %e.name, "Found the execution an earlier try started");
                return Ok(
                    Infrastructure::from_execution(&e, &spec.project, &spec.region).to_value(),
                );
            }
        }
        let job_name = self.ensure_job(&client, &spec, job).await?;
        let execution = match self.run(&client, &job_name, &overrides).await {
            Ok(e) => e,
            Err(e) if code_of(&e) == Some("NOT_FOUND") => {
                // Deleted since it was created (idle cleanup, an operator): create it again.
                self.forget_job(&job_name);
                let job_name = self.ensure_job(&client, &spec, job).await?;
                self.run(&client, &job_name, &overrides)
                    .await
                    .map_err(|e| api_error("jobs.run", &e))?
            }
            Err(e) => return Err(api_error("jobs.run", &e)),
        };
        let infra = Infrastructure::from_execution(&execution, &spec.project, &spec.region);
        tracing::info!(execution = %infra.execution, "Run submitted");
        Ok(infra.to_value())
    }

    /// The status of one execution by GET; a missing one is `Gone`.
    async fn get_status(client: &Client, name: &str) -> Result<PushStatus, PushError> {
        match client
            .executions
            .get_execution()
            .set_name(name)
            .send()
            .await
        {
            Ok(e) => Ok(status_of(&ExecutionState::from(&e))),
            Err(e) if code_of(&e) == Some("NOT_FOUND") => Ok(PushStatus::Gone),
            Err(e) => Err(api_error("executions.get", &e)),
        }
    }

    /// Statuses of `wanted` (execution name → the indices asking) in one location: listed
    /// newest first until every one is seen or the list is older than the oldest; the rest
    /// by GET.
    async fn poll_location(
        client: &Client,
        location: &str,
        wanted: HashMap<String, (Vec<usize>, Option<i64>)>,
        results: &mut [Option<Result<PushStatus, PushError>>],
    ) {
        let mut missing = wanted;
        if missing.len() > 1 {
            let oldest = missing
                .values()
                .map(|(_, t)| t.unwrap_or(i64::MIN))
                .min()
                .unwrap_or(i64::MIN);
            let mut token = String::new();
            for _ in 0..POLL_MAX_PAGES {
                let page = match client
                    .executions
                    .list_executions()
                    .set_parent(format!("{location}/jobs/-"))
                    .set_page_size(PAGE_SIZE)
                    .set_page_token(&token)
                    .send()
                    .await
                {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(error = %e, "Listing executions failed; getting each");
                        break;
                    }
                };
                let mut page_oldest = i64::MAX;
                for e in &page.executions {
                    if let Some(t) = &e.create_time {
                        page_oldest = page_oldest.min(t.seconds());
                    }
                    if let Some((indices, _)) = missing.remove(&e.name) {
                        let status = status_of(&ExecutionState::from(e));
                        for i in indices {
                            results[i] = Some(Ok(status.clone()));
                        }
                    }
                }
                // A minute of slack for clocks: older pages cannot hold what is missing.
                if missing.is_empty()
                    || page.next_page_token.is_empty()
                    || page_oldest < oldest.saturating_sub(60)
                {
                    break;
                }
                token = page.next_page_token;
            }
        }
        for (name, (indices, _)) in missing {
            let status = Self::get_status(client, &name).await;
            for i in indices {
                results[i] = Some(status.clone());
            }
        }
    }

    /// Deletes the jobs Ferry created for workspace `ws` in the project and region of
    /// `template` that have started no execution for `older_than` and have none running.
    /// Returns the deleted jobs' names. Safe to repeat, and to run while runs are submitted:
    /// a submit whose job was deleted creates it again.
    pub async fn delete_idle_jobs(
        &self,
        ws: WorkspaceId,
        pool: &Name,
        credential: &Name,
        template: &Value,
        older_than: Duration,
    ) -> Result<Vec<String>, PushError> {
        let spec = spec_for(template, &Value::Null).map_err(|errors| {
            let text: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            PushError::new(FailureReason::InvalidConfig, text.join("; "))
        })?;
        let client = self
            .clients
            .client(ws, pool, Some(credential), spec.endpoint.as_deref())
            .await?;
        let workspace = ws.to_string();
        let cutoff = chrono::Utc::now().timestamp()
            - i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX);
        let mut candidates = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .jobs
                .list_jobs()
                .set_parent(spec.location())
                .set_page_size(PAGE_SIZE)
                .set_page_token(&token)
                .send()
                .await
                .map_err(|e| api_error("jobs.list", &e))?;
            for j in page.jobs {
                let ours = j.labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
                    && j.labels.get(LABEL_WORKSPACE) == Some(&workspace);
                let last = j
                    .latest_created_execution
                    .as_ref()
                    .and_then(|x| x.create_time.as_ref())
                    .or(j.create_time.as_ref())
                    .map_or(i64::MIN, |t| t.seconds());
                if ours && last <= cutoff {
                    candidates.push((j.name, j.etag));
                }
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let mut deleted = Vec::new();
        for (name, etag) in candidates {
            let running = client
                .executions
                .list_executions()
                .set_parent(&name)
                .set_page_size(PAGE_SIZE)
                .send()
                .await
                .map_err(|e| api_error("executions.list", &e))?
                .executions
                .iter()
                .any(|e| e.completion_time.is_none());
            if running {
                continue;
            }
            match client
                .jobs
                .delete_job()
                .set_name(&name)
                .set_etag(&etag)
                .send()
                .await
            {
                Ok(_) => {
                    tracing::info!(job = %name, "Idle Cloud Run job deleted");
                    self.forget_job(&name);
                    deleted.push(name);
                }
                // Gone already, or changed since it was listed (in use again): leave it.
                Err(e) if matches!(code_of(&e), Some("NOT_FOUND" | "ABORTED")) => {
                    self.forget_job(&name);
                }
                Err(e) => return Err(api_error("jobs.delete", &e)),
            }
        }
        Ok(deleted)
    }

    /// The live, side-effect-free permission check of workspace `ws`'s credential `credential`
    /// for its pool `pool` with `template` (see [`validate::validate`]).
    pub async fn validate(
        &self,
        ws: WorkspaceId,
        pool: &Name,
        credential: &Name,
        template: Option<&Value>,
    ) -> Vec<Check> {
        let endpoint = template
            .and_then(|t| t.get("endpoint"))
            .and_then(Value::as_str);
        let endpoint = match self.clients.endpoint(endpoint) {
            Ok(e) => e,
            Err(e) => return vec![Check::failed("endpoint", e.failure.message)],
        };
        match self.clients.open(ws, Some(credential)).await {
            Ok((_, kind, material)) => {
                let federation = self.clients.federation(ws, pool);
                validate::validate_as(
                    kind,
                    &material,
                    template,
                    endpoint.as_deref(),
                    Some(&federation),
                )
                .await
            }
            Err(e) => vec![Check::failed("credential", e.failure.message)],
        }
    }
}

#[async_trait]
impl PushBackend for CloudRunBackend {
    #[tracing::instrument(skip_all, fields(run_id = %job.run_id, attempt = job.attempt))]
    async fn find(&self, job: &RunJob) -> Result<Option<Value>, PushError> {
        let spec = spec_of(job)?;
        let client = self
            .clients
            .client(
                job.workspace_id,
                &job.pool,
                job.credential.as_ref(),
                spec.endpoint.as_deref(),
            )
            .await?;
        let (_, job_name) = Self::job_name(job, &spec);
        Ok(self
            .find_in(&client, &job_name, job)
            .await?
            .map(|e| Infrastructure::from_execution(&e, &spec.project, &spec.region).to_value()))
    }

    #[tracing::instrument(skip_all, fields(run_id = %job.run_id, attempt = job.attempt))]
    async fn submit(&self, job: &RunJob) -> Result<Value, PushError> {
        let result = self.submit_inner(job).await;
        match &result {
            Err(e) if e.is_transient() => {}
            _ => self.settled(job),
        }
        result
    }

    async fn poll(&self, jobs: &[RunJob]) -> Vec<Result<PushStatus, PushError>> {
        let mut results: Vec<Option<Result<PushStatus, PushError>>> = vec![None; jobs.len()];
        type Wanted = HashMap<String, (Vec<usize>, Option<i64>)>;
        let mut groups: HashMap<(ClientKey, String), (Client, Wanted)> = HashMap::new();
        // One credential opening per (workspace, credential, endpoint) per poll, not per run.
        type Which = (WorkspaceId, Option<Name>, Option<String>);
        let mut seen: HashMap<Which, Result<Client, PushError>> = HashMap::new();
        for (i, job) in jobs.iter().enumerate() {
            let infra = match Infrastructure::of(job) {
                Ok(infra) => infra,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            let endpoint = spec_for(&job.job_template, &job.job_variables)
                .ok()
                .and_then(|s| s.endpoint);
            let which = (job.workspace_id, job.credential.clone(), endpoint.clone());
            let client = match seen.get(&which) {
                Some(c) => c.clone(),
                None => {
                    let c = self
                        .clients
                        .client(
                            job.workspace_id,
                            &job.pool,
                            job.credential.as_ref(),
                            endpoint.as_deref(),
                        )
                        .await;
                    seen.insert(which, c.clone());
                    c
                }
            };
            match client {
                Ok(client) => {
                    let location = format!("projects/{}/locations/{}", infra.project, infra.region);
                    let created = infra
                        .created_at
                        .as_deref()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.timestamp());
                    let entry = groups
                        .entry((client.key.clone(), location))
                        .or_insert_with(|| (client, HashMap::new()));
                    let slot = entry
                        .1
                        .entry(infra.execution)
                        .or_insert((Vec::new(), created));
                    slot.0.push(i);
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        for ((_, location), (client, wanted)) in groups {
            Self::poll_location(&client, &location, wanted, &mut results).await;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(internal("not polled"))))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(run_id = %job.run_id, attempt = job.attempt))]
    async fn cancel(&self, job: &RunJob) -> Result<(), PushError> {
        let infra = Infrastructure::of(job)?;
        let endpoint = spec_for(&job.job_template, &job.job_variables)
            .ok()
            .and_then(|s| s.endpoint);
        let client = self
            .clients
            .client(
                job.workspace_id,
                &job.pool,
                job.credential.as_ref(),
                endpoint.as_deref(),
            )
            .await?;
        match client
            .executions
            .cancel_execution()
            .set_name(&infra.execution)
            .send()
            .await
        {
            Ok(_) => {
                tracing::info!(execution = %infra.execution, "Cancel requested");
                Ok(())
            }
            // Already finished, cancelled or deleted: nothing left to stop.
            Err(e) if matches!(code_of(&e), Some("FAILED_PRECONDITION" | "NOT_FOUND")) => Ok(()),
            Err(e) => Err(api_error("executions.cancel", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(vars: Value) -> CloudRunJobSpec {
        let runs_may_set: Vec<&str> = crate::spec::VARIABLES
            .known
            .iter()
            .copied()
            .filter(|k| *k != "endpoint")
            .collect();
        let t = json!({"project": "acme-flows", "region": "europe-west1",
            "image": "ghcr.io/a/b:1", "run_variables": runs_may_set});
        spec_for(&t, &vars).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn job_bodies_parse_as_cloud_run_jobs() {
        for vars in [
            json!({}),
            json!({"command": ["python"], "cpu": "0.5", "memory": "1Gi", "timeout": 60,
                   "max_retries": 2, "service_account": "flows@acme-flows.iam.gserviceaccount.com",
                   "env_from_secrets": {"DB": "projects/acme-flows/secrets/db/versions/2"},
                   "vpc_connector": "c1", "vpc_egress": "all-traffic", "labels": {"team": "data"},
                   "execution_environment": "gen2"}),
            json!({"vpc_network": "default", "vpc_subnetwork": "s", "vpc_network_tags": ["t"]}),
        ] {
            let body = job_body(&spec(vars.clone()), "ws", "pool");
            let job: Job = serde_json::from_value(body.clone())
                .unwrap_or_else(|e| panic!("{vars}: {e}: {body}"));
            assert_eq!(
                job.labels.get(LABEL_WORKSPACE).map(String::as_str),
                Some("ws")
            );
            let task = job.template.and_then(|t| t.template).unwrap_or_default();
            assert_eq!(task.containers[0].image, "ghcr.io/a/b:1");
        }
        let body = job_body(
            &spec(json!({"env_from_secrets": {"DB": "projects/acme-flows/secrets/db/versions/2"}})),
            "ws",
            "pool",
        );
        assert_eq!(
            body.pointer("/template/template/containers/0/env/0/valueSource/secretKeyRef/secret"),
            Some(&json!("projects/acme-flows/secrets/db"))
        );
    }

    #[test]
    fn infrastructure_round_trips() {
        let i = Infrastructure {
            execution: "projects/p/locations/r/jobs/j/executions/e".into(),
            job: "projects/p/locations/r/jobs/j".into(),
            project: "p".into(),
            region: "r".into(),
            created_at: None,
            log_uri: None,
        };
        let v = i.to_value();
        assert_eq!(
            v,
            json!({"execution": i.execution, "job": i.job, "project": "p", "region": "r"})
        );
        assert_eq!(serde_json::from_value::<Infrastructure>(v).ok(), Some(i));
    }
}
