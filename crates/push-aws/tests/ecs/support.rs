//! What the ECS tests share: an in-test [`SecretSource`] serving each workspace's credential
//! and external id, a backend pointed at moto, jobs, and ECS clients acting as an account
//! (to look at what Ferry did there).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_ecs::config::{BehaviorVersion, Region};
use ferry_core::port::{RunJob, SecretSource, SecretsError};
use ferry_core::{CredentialKind, Name, PoolId, PoolLimits, PoolType, RunId, WorkspaceId};
use ferry_push_aws::{EcsBackend, EcsConfig};
use secrecy::SecretString;
use serde_json::{json, Value};

use ferry_moto::{moto, Account, REGION};

/// Credentials and external ids per workspace; counts how often a credential was opened.
#[derive(Default)]
pub struct Secrets {
    creds: Mutex<HashMap<(WorkspaceId, String), (CredentialKind, String)>>,
    external: Mutex<HashMap<WorkspaceId, String>>,
    pub opened: AtomicUsize,
}

impl Secrets {
    /// Gives `ws` an `aws-assume-role` credential `name` for a role in `account`.
    pub fn assume_role(&self, ws: WorkspaceId, name: &str, account: &str) {
        let material = json!({
            "role_arn": format!("arn:aws:iam::{account}:role/ferry-runs"),
            "region": REGION,
        });
        self.creds.lock().unwrap().insert(
            (ws, name.to_owned()),
            (CredentialKind::AwsAssumeRole, material.to_string()),
        );
        self.external
            .lock()
            .unwrap()
            .insert(ws, format!("ferry-{}", RunId::new()));
    }

    /// Gives `ws` an `aws-web-identity` credential `name` for a role in `account`.
    pub fn web_identity(&self, ws: WorkspaceId, name: &str, account: &str) {
        let material = json!({
            "role_arn": format!("arn:aws:iam::{account}:role/ferry-keyless"),
            "region": REGION,
        });
        self.creds.lock().unwrap().insert(
            (ws, name.to_owned()),
            (CredentialKind::AwsWebIdentity, material.to_string()),
        );
    }

    /// Gives `ws` an `aws-access-key` credential `name` (moto's default account).
    pub fn access_key(&self, ws: WorkspaceId, name: &str) {
        let material = json!({
            "access_key_id": "AKIAFERRYTEST0000000",
            "secret_access_key": "secret",
            "region": REGION,
        });
        self.creds.lock().unwrap().insert(
            (ws, name.to_owned()),
            (CredentialKind::AwsAccessKey, material.to_string()),
        );
    }
}

#[async_trait]
impl SecretSource for Secrets {
    async fn secret(&self, _: WorkspaceId, _: &Name) -> Result<Option<SecretString>, SecretsError> {
        Ok(None)
    }

    async fn run_sensitive_parameters(
        &self,
        _: WorkspaceId,
        _: RunId,
    ) -> Result<Option<SecretString>, SecretsError> {
        Ok(None)
    }

    async fn credential(
        &self,
        ws: WorkspaceId,
        name: &Name,
    ) -> Result<Option<(CredentialKind, SecretString)>, SecretsError> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .creds
            .lock()
            .unwrap()
            .get(&(ws, name.to_string()))
            .map(|(k, m)| (*k, SecretString::from(m.clone()))))
    }

    async fn aws_external_id(&self, ws: WorkspaceId) -> Result<Option<String>, SecretsError> {
        Ok(self.external.lock().unwrap().get(&ws).cloned())
    }
}

/// Ferry's own identity in moto: static dummy keys (moto's default account).
pub fn ferry_identity() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new("testing", "testing", None, None, "test"))
}

/// A backend against moto, minting `token-<run id>` as each run's token.
pub fn backend(secrets: Arc<Secrets>) -> EcsBackend {
    backend_at(secrets, &moto().endpoint)
}

/// A backend sending every AWS call (Ferry's own STS calls too) to `endpoint_url`.
pub fn backend_at(secrets: Arc<Secrets>, endpoint_url: &str) -> EcsBackend {
    EcsBackend::new(
        secrets,
        EcsConfig {
            endpoint_url: Some(endpoint_url.to_owned()),
            ferry_identity: Some(ferry_identity()),
            allowed_endpoints: ferry_push_aws::AllowedEndpoints::default(),
            run_tokens: Arc::new(|job: &RunJob| {
                SecretString::from(format!("token-{}", job.run_id))
            }),
            identity_tokens: Arc::new(ferry_core::port::NoIdentityTokens),
        },
    )
}

/// The pool template for `account`'s network.
pub fn template(account: &Account) -> Value {
    json!({
        "region": REGION,
        "cluster": account.cluster,
        "image": "public.ecr.aws/docker/library/python:3.12",
        "command": ["python", "-m", "flow"],
        "cpu": 256,
        "memory": 512,
        "subnets": [account.subnet],
        "security_groups": [account.security_group],
        "env": {"STAGE": "test"},
        "tags": {"team": "data"},
    })
}

/// Attempt 1 of a fresh run of workspace `ws`'s ecs pool, with credential `credential`.
pub fn job(ws: WorkspaceId, credential: &str, template: Value, variables: Value) -> RunJob {
    RunJob {
        run_id: RunId::new(),
        workspace_id: ws,
        pool_id: PoolId::new(),
        pool: Name::parse("ecs-pool").unwrap(),
        pool_type: PoolType::Ecs,
        attempt: 1,
        artifact: None,
        parameters: json!({"n": 3}),
        job_template: template,
        job_variables: variables,
        credential: Some(Name::parse(credential).unwrap()),
        limits: PoolLimits::default(),
        has_sensitive_parameters: false,
        infrastructure: None,
    }
}

/// An ECS client acting as `account` (AssumeRole from the dummy identity).
pub async fn ecs_as(account: &str) -> aws_sdk_ecs::Client {
    let base = aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(ferry_identity())
        .region(Region::new(REGION))
        .endpoint_url(&moto().endpoint)
        .load()
        .await;
    let creds = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/ferry-test"))
        .role_session_name("test")
        .send()
        .await
        .unwrap()
        .credentials
        .unwrap();
    let creds = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_owned()),
        None,
        "test",
    );
    let conf = aws_sdk_ecs::config::Builder::from(&base)
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .build();
    aws_sdk_ecs::Client::from_conf(conf)
}

/// Every task ARN in `account`'s cluster, running or stopped.
pub async fn tasks_in(ecs: &aws_sdk_ecs::Client, cluster: &str) -> Vec<String> {
    let mut arns = Vec::new();
    for desired in [
        aws_sdk_ecs::types::DesiredStatus::Running,
        aws_sdk_ecs::types::DesiredStatus::Stopped,
    ] {
        let out = ecs
            .list_tasks()
            .cluster(cluster)
            .desired_status(desired)
            .send()
            .await
            .unwrap();
        arns.extend(out.task_arns.unwrap_or_default());
    }
    arns
}

/// The `task_arn` of an infrastructure value.
pub fn arn(infra: &Value) -> String {
    infra["task_arn"].as_str().unwrap().to_owned()
}
