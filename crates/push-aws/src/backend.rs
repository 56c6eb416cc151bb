//! [`EcsBackend`]: submit (RunTask with a reused task definition and per-run overrides),
//! find (ListTasks by startedBy, matched on the attempt tag), poll (DescribeTasks, 100 at a
//! time per credential, region and cluster) and cancel (StopTask).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, Compatibility,
    ContainerDefinition, ContainerOverride, DesiredStatus, KeyValuePair, LaunchType,
    LogConfiguration, LogDriver, NetworkConfiguration, NetworkMode, Secret, Tag, TaskField,
    TaskOverride,
};
use ferry_core::port::{PushBackend, PushError, PushStatus, RunJob, SecretSource};
use ferry_core::FailureReason;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::clients::{ClientKey, Clients};
use crate::spec::{spec_for, Capacity, EcsJobSpec};
use crate::status::{failure_error, sdk_error, status_of, TaskState, CANCEL_REASON, CONTAINER};
use crate::EcsConfig;

/// ECS's DescribeTasks limit.
const DESCRIBE_BATCH: usize = 100;

/// The tags Ferry puts on every task.
pub const TAG_RUN: &str = "ferry:run-id";
pub const TAG_WORKSPACE: &str = "ferry:workspace-id";
pub const TAG_ATTEMPT: &str = "ferry:attempt";

type FamilyKey = (ClientKey, String);

/// The push backend for ecs pools. Cheap to share: hold it in an `Arc`.
pub struct EcsBackend {
    pub(crate) clients: Clients,
    config: EcsConfig,
    /// Registered task definition ARN per (client, family), each behind its own lock so one
    /// family is registered once, never concurrently.
    families: Mutex<HashMap<FamilyKey, Arc<tokio::sync::Mutex<Option<String>>>>>,
}

impl std::fmt::Debug for EcsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcsBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Where a submitted task is: what `submit` and `find` return, what `poll` and `cancel` read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Infrastructure {
    pub task_arn: String,
    pub cluster: String,
    pub region: String,
    pub task_definition: String,
}

impl Infrastructure {
    fn of(job: &RunJob) -> Result<Self, PushError> {
        job.infrastructure
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| {
                PushError::new(
                    FailureReason::Internal,
                    "the run's infrastructure is not an ECS task handle",
                )
            })
    }

    fn to_value(&self) -> Value {
        json!({
            "task_arn": self.task_arn,
            "cluster": self.cluster,
            "region": self.region,
            "task_definition": self.task_definition,
        })
    }
}

/// `hex(sha256(run id ‖ attempt))`: 64 characters, ECS's limit for `clientToken`.
pub fn client_token(job: &RunJob) -> String {
    let mut h = Sha256::new();
    h.update(job.run_id.to_string().as_bytes());
    h.update(job.attempt.to_be_bytes());
    hex::encode(h.finalize())
}

fn spec_of(job: &RunJob) -> Result<EcsJobSpec, PushError> {
    spec_for(&job.job_template, &job.job_variables).map_err(|errors| {
        let text: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        PushError::new(FailureReason::InvalidConfig, text.join("; "))
    })
}

impl EcsBackend {
    pub fn new(secrets: Arc<dyn SecretSource>, config: EcsConfig) -> Self {
        Self {
            clients: Clients::new(secrets, config.clone()),
            config,
            families: Mutex::new(HashMap::new()),
        }
    }

    /// The task definition for `spec`, registered once per (credential, region, family).
    async fn task_definition(
        &self,
        key: &ClientKey,
        client: &aws_sdk_ecs::Client,
        spec: &EcsJobSpec,
    ) -> Result<String, PushError> {
        let family = spec.family(&key.region);
        let slot = {
            let mut families = self.families.lock().map_err(|_| {
                PushError::new(FailureReason::Internal, "task definition registry poisoned")
            })?;
            families
                .entry((key.clone(), family.clone()))
                .or_default()
                .clone()
        };
        let mut slot = slot.lock().await;
        if let Some(arn) = slot.as_ref() {
            return Ok(arn.clone());
        }
        // Registered by an earlier process? The family name is the content's hash.
        let limits = self.clients.limits(key);
        limits.reads.take().await;
        let existing = client
            .describe_task_definition()
            .task_definition(&family)
            .send()
            .await
            .ok()
            .and_then(|d| d.task_definition)
            .filter(|d| d.status().is_some_and(|s| s.as_str() == "ACTIVE"))
            .and_then(|d| d.task_definition_arn);
        let arn = match existing {
            Some(arn) => arn,
            None => self.register(key, client, spec, &family).await?,
        };
        *slot = Some(arn.clone());
        Ok(arn)
    }

    async fn register(
        &self,
        key: &ClientKey,
        client: &aws_sdk_ecs::Client,
        spec: &EcsJobSpec,
        family: &str,
    ) -> Result<String, PushError> {
        let cpu = i32::try_from(spec.cpu).unwrap_or(i32::MAX);
        let memory = i32::try_from(spec.memory).unwrap_or(i32::MAX);
        // Container-level cpu/memory as well as the task's: valid on AWS, needed by moto.
        let mut container = ContainerDefinition::builder()
            .name(CONTAINER)
            .image(&spec.image)
            .essential(true)
            .cpu(cpu)
            .memory(memory);
        for (name, arn) in &spec.secrets {
            let secret = Secret::builder()
                .name(name)
                .value_from(arn)
                .build()
                .map_err(|e| PushError::new(FailureReason::Internal, e.to_string()))?;
            container = container.secrets(secret);
        }
        if let Some(group) = &spec.log_group {
            let logs = LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", group)
                .options("awslogs-region", &key.region)
                .options("awslogs-stream-prefix", "ferry")
                .build()
                .map_err(|e| PushError::new(FailureReason::Internal, e.to_string()))?;
            container = container.log_configuration(logs);
        }
        let compatibility = match &spec.capacity {
            Capacity::LaunchType(t) if t == "EC2" => Compatibility::Ec2,
            Capacity::LaunchType(t) if t == "EXTERNAL" => Compatibility::External,
            Capacity::Strategy(_) if !spec.capacity.is_fargate() => Compatibility::Ec2,
            _ => Compatibility::Fargate,
        };
        self.clients.limits(key).writes.take().await;
        let out = client
            .register_task_definition()
            .family(family)
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(compatibility)
            .cpu(spec.cpu.to_string())
            .memory(spec.memory.to_string())
            .set_task_role_arn(spec.task_role_arn.clone())
            .set_execution_role_arn(spec.execution_role_arn.clone())
            .container_definitions(container.build())
            .tags(tag("ferry:managed", "true"))
            .send()
            .await
            .map_err(|e| sdk_error("RegisterTaskDefinition", &e))?;
        let arn = out
            .task_definition
            .and_then(|d| d.task_definition_arn)
            .ok_or_else(|| {
                PushError::new(FailureReason::Internal, "RegisterTaskDefinition: no ARN")
            })?;
        tracing::info!(family, task_definition = %arn, "Task definition registered");
        Ok(arn)
    }

    fn overrides(&self, job: &RunJob, spec: &EcsJobSpec) -> Result<TaskOverride, PushError> {
        let mut env: BTreeMap<String, String> = spec.env.clone();
        env.insert("FERRY_RUN_ID".to_owned(), job.run_id.to_string());
        env.insert("FERRY_PARAMETERS".to_owned(), job.parameters.to_string());
        if let Some(url) = self.config.run_tokens.api_url() {
            env.insert("FERRY_API_URL".to_owned(), url);
        }
        let token = self.config.run_tokens.mint(job);
        env.insert(
            "FERRY_RUN_TOKEN".to_owned(),
            token.expose_secret().to_owned(),
        );
        // ECS refuses overrides over 8 KiB in all; say so before it does.
        let size: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + spec.command.iter().map(String::len).sum::<usize>();
        if size > 8000 {
            return Err(PushError::new(
                FailureReason::InvalidConfig,
                format!("the run's env, parameters and command take {size} bytes; ECS allows 8 KiB of overrides"),
            ));
        }
        let mut container = ContainerOverride::builder().name(CONTAINER);
        if !spec.command.is_empty() {
            container = container.set_command(Some(spec.command.clone()));
        }
        for (k, v) in env {
            container = container.environment(KeyValuePair::builder().name(k).value(v).build());
        }
        Ok(TaskOverride::builder()
            .container_overrides(container.build())
            .build())
    }
}

impl EcsBackend {
    /// The task definition family runs of `job`'s template use (`None` if the template alone
    /// does not make a complete task definition, e.g. its runs give the image).
    pub async fn family(&self, job: &RunJob) -> Result<Option<String>, PushError> {
        let Ok(spec) = spec_for(&job.job_template, &job.job_variables) else {
            return Ok(None);
        };
        let (key, _) = self
            .clients
            .client(job, spec.region.as_deref(), spec.endpoint.as_deref())
            .await?;
        Ok(Some(spec.family(&key.region)))
    }

    /// Deregisters the task definition Ferry registered for `job`'s template (after its pool
    /// changed template or was deleted), unless its family is in `keep` (used by another
    /// pool, or by a run still in flight). Returns the ARNs deregistered. Running tasks are
    /// unaffected (ECS keeps INACTIVE definitions for them), and a run that needs the family
    /// again registers it anew.
    pub async fn deregister_unused(
        &self,
        job: &RunJob,
        keep: &[String],
    ) -> Result<Vec<String>, PushError> {
        let Ok(spec) = spec_for(&job.job_template, &job.job_variables) else {
            return Ok(Vec::new());
        };
        let (key, client) = self
            .clients
            .client(job, spec.region.as_deref(), spec.endpoint.as_deref())
            .await?;
        let family = spec.family(&key.region);
        if keep.contains(&family) {
            return Ok(Vec::new());
        }
        let limits = self.clients.limits(&key);
        limits.reads.take().await;
        let arns = client
            .list_task_definitions()
            .family_prefix(&family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .send()
            .await
            .map_err(|e| sdk_error("ListTaskDefinitions", &e))?
            .task_definition_arns
            .unwrap_or_default();
        // Forget it first, so a run of it now registers it again.
        if let Ok(mut cache) = self.families.lock() {
            cache.remove(&(key.clone(), family.clone()));
        }
        let mut deregistered = Vec::new();
        for arn in arns {
            limits.writes.take().await;
            client
                .deregister_task_definition()
                .task_definition(&arn)
                .send()
                .await
                .map_err(|e| sdk_error("DeregisterTaskDefinition", &e))?;
            tracing::info!(task_definition = %arn, "Unused task definition deregistered");
            deregistered.push(arn);
        }
        Ok(deregistered)
    }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

#[async_trait]
impl PushBackend for EcsBackend {
    #[tracing::instrument(skip_all, fields(run_id = %job.run_id, attempt = job.attempt))]
    async fn find(&self, job: &RunJob) -> Result<Option<Value>, PushError> {
        let spec = spec_of(job)?;
        let (key, client) = self
            .clients
            .client(job, spec.region.as_deref(), spec.endpoint.as_deref())
            .await?;
        let limits = self.clients.limits(&key);
        let run_id = job.run_id.to_string();
        let mut arns = Vec::new();
        for desired in [DesiredStatus::Running, DesiredStatus::Stopped] {
            limits.reads.take().await;
            let mut pages = client
                .list_tasks()
                .cluster(&spec.cluster)
                .started_by(&run_id)
                .desired_status(desired)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| sdk_error("ListTasks", &e))?;
                arns.extend(page.task_arns.unwrap_or_default());
            }
        }
        let attempt = job.attempt.to_string();
        for chunk in arns.chunks(DESCRIBE_BATCH) {
            limits.reads.take().await;
            let out = client
                .describe_tasks()
                .cluster(&spec.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .include(TaskField::Tags)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTasks", &e))?;
            for task in out.tasks() {
                let has = |k: &str, v: &str| {
                    task.tags()
                        .iter()
                        .any(|t| t.key() == Some(k) && t.value() == Some(v))
                };
                if has(TAG_RUN, &run_id) && has(TAG_ATTEMPT, &attempt) {
                    let infra = Infrastructure {
                        task_arn: task.task_arn().unwrap_or_default().to_owned(),
                        cluster: spec.cluster.clone(),
                        region: key.region.clone(),
                        task_definition: task.task_definition_arn().unwrap_or_default().to_owned(),
                    };
                    return Ok(Some(infra.to_value()));
                }
            }
        }
        Ok(None)
    }

    #[tracing::instrument(skip_all, fields(run_id = %job.run_id, attempt = job.attempt))]
    async fn submit(&self, job: &RunJob) -> Result<Value, PushError> {
        // Checked before any client exists: a bad template never reaches AWS.
        let spec = spec_of(job)?;
        let overrides = self.overrides(job, &spec)?;
        let (key, client) = self
            .clients
            .client(job, spec.region.as_deref(), spec.endpoint.as_deref())
            .await?;
        let mut task_definition = self.task_definition(&key, &client, &spec).await?;
        let network = AwsVpcConfiguration::builder()
            .set_subnets(Some(spec.subnets.clone()))
            .set_security_groups(Some(spec.security_groups.clone()))
            .assign_public_ip(if spec.assign_public_ip {
                AssignPublicIp::Enabled
            } else {
                AssignPublicIp::Disabled
            })
            .build()
            .map_err(|e| PushError::new(FailureReason::Internal, e.to_string()))?;
        let mut call = client
            .run_task()
            .cluster(&spec.cluster)
            .task_definition(&task_definition)
            .count(1)
            .client_token(client_token(job))
            .started_by(job.run_id.to_string())
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(network)
                    .build(),
            )
            .overrides(overrides);
        match &spec.capacity {
            Capacity::LaunchType(t) => call = call.launch_type(LaunchType::from(t.as_str())),
            Capacity::Strategy(items) => {
                for i in items {
                    let item = CapacityProviderStrategyItem::builder()
                        .capacity_provider(&i.capacity_provider)
                        .weight(i32::try_from(i.weight).unwrap_or(0))
                        .base(i32::try_from(i.base).unwrap_or(0))
                        .build()
                        .map_err(|e| PushError::new(FailureReason::Internal, e.to_string()))?;
                    call = call.capacity_provider_strategy(item);
                }
            }
        }
        for (k, v) in &spec.tags {
            call = call.tags(tag(k, v));
        }
        call = call
            .tags(tag(TAG_RUN, &job.run_id.to_string()))
            .tags(tag(TAG_WORKSPACE, &job.workspace_id.to_string()))
            .tags(tag(TAG_ATTEMPT, &job.attempt.to_string()));
        self.clients.limits(&key).writes.take().await;
        let out = match call.clone().send().await {
            Ok(out) => out,
            Err(e) => {
                let err = sdk_error("RunTask", &e);
                if !err
                    .failure
                    .message
                    .to_ascii_lowercase()
                    .contains("inactive")
                {
                    return Err(err);
                }
                // The definition was deregistered since it was cached (a pool's template
                // changed meanwhile): register it again and retry once.
                if let Ok(mut cache) = self.families.lock() {
                    cache.remove(&(key.clone(), spec.family(&key.region)));
                }
                task_definition = self.task_definition(&key, &client, &spec).await?;
                self.clients.limits(&key).writes.take().await;
                call.task_definition(&task_definition)
                    .send()
                    .await
                    .map_err(|e| sdk_error("RunTask", &e))?
            }
        };
        if let Some(f) = out.failures().first() {
            return Err(failure_error(
                f.reason().unwrap_or_default(),
                f.detail().unwrap_or_default(),
            ));
        }
        let Some(task_arn) = out.tasks().first().and_then(|t| t.task_arn()) else {
            return Err(PushError::new(
                FailureReason::Internal,
                "RunTask answered neither a task nor a failure",
            ));
        };
        let infra = Infrastructure {
            task_arn: task_arn.to_owned(),
            cluster: spec.cluster.clone(),
            region: key.region.clone(),
            task_definition,
        };
        tracing::info!(task_arn, cluster = %spec.cluster, region = %key.region, "Run submitted");
        Ok(infra.to_value())
    }

    async fn poll(&self, jobs: &[RunJob]) -> Vec<Result<PushStatus, PushError>> {
        let mut results: Vec<Option<Result<PushStatus, PushError>>> = vec![None; jobs.len()];
        // Group by client and cluster, keeping each job's index.
        let mut groups: HashMap<(ClientKey, String), (aws_sdk_ecs::Client, Vec<(usize, String)>)> =
            HashMap::new();
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
            match self
                .clients
                .client(job, Some(&infra.region), endpoint.as_deref())
                .await
            {
                Ok((key, client)) => groups
                    .entry((key, infra.cluster))
                    .or_insert_with(|| (client, Vec::new()))
                    .1
                    .push((i, infra.task_arn)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        for ((key, cluster), (client, members)) in groups {
            let limits = self.clients.limits(&key);
            for chunk in members.chunks(DESCRIBE_BATCH) {
                limits.reads.take().await;
                let arns: Vec<String> = chunk.iter().map(|(_, a)| a.clone()).collect();
                match client
                    .describe_tasks()
                    .cluster(&cluster)
                    .set_tasks(Some(arns))
                    .send()
                    .await
                {
                    Ok(out) => {
                        for (i, arn) in chunk {
                            let task = out.tasks().iter().find(|t| t.task_arn() == Some(arn));
                            let failure = out.failures().iter().find(|f| f.arn() == Some(arn));
                            results[*i] = Some(match (task, failure) {
                                (Some(t), _) => Ok(status_of(&TaskState::from(t))),
                                (None, Some(f)) if f.reason() == Some("MISSING") => {
                                    Ok(PushStatus::Gone)
                                }
                                (None, Some(f)) => Err(failure_error(
                                    f.reason().unwrap_or_default(),
                                    f.detail().unwrap_or_default(),
                                )),
                                (None, None) => Ok(PushStatus::Gone),
                            });
                        }
                    }
                    Err(e) => {
                        let e = sdk_error("DescribeTasks", &e);
                        for (i, _) in chunk {
                            results[*i] = Some(Err(e.clone()));
                        }
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(PushError::new(FailureReason::Internal, "not polled")))
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(run_id = %job.run_id, attempt = job.attempt))]
    async fn cancel(&self, job: &RunJob) -> Result<(), PushError> {
        let infra = Infrastructure::of(job)?;
        let endpoint = spec_for(&job.job_template, &job.job_variables)
            .ok()
            .and_then(|s| s.endpoint);
        let (key, client) = self
            .clients
            .client(job, Some(&infra.region), endpoint.as_deref())
            .await?;
        self.clients.limits(&key).writes.take().await;
        client
            .stop_task()
            .cluster(&infra.cluster)
            .task(&infra.task_arn)
            .reason(CANCEL_REASON)
            .send()
            .await
            .map_err(|e| sdk_error("StopTask", &e))?;
        tracing::info!(task_arn = %infra.task_arn, "Stop requested");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_token_is_64_hex_and_per_attempt() {
        let mut job = RunJob {
            run_id: ferry_core::RunId::new(),
            workspace_id: ferry_core::WorkspaceId::new(),
            pool_id: ferry_core::PoolId::new(),
            pool: ferry_core::Name::parse("p").unwrap_or_else(|e| panic!("{e}")),
            pool_type: ferry_core::PoolType::Ecs,
            attempt: 1,
            artifact: None,
            parameters: json!({}),
            job_template: json!({}),
            job_variables: json!({}),
            credential: None,
            limits: ferry_core::PoolLimits::default(),
            has_sensitive_parameters: false,
            infrastructure: None,
        };
        let a = client_token(&job);
        job.attempt += 1;
        let b = client_token(&job);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
