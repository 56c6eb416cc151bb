//! ECS clients per workspace credential and region. The credential is always the run's own
//! workspace's (`SecretSource::credential(job.workspace_id, ..)`); an `aws-assume-role`
//! credential is assumed by Ferry's own identity with the workspace's external id, and the
//! session is cached in the client's identity cache and refreshed five minutes before it
//! expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_ecs::config::{IdentityCache, Region};
use ferry_core::port::{PushError, RunJob, SecretSource};
use ferry_core::{CredentialKind, FailureReason, WorkspaceId};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::limiter::AccountLimits;
use crate::EcsConfig;

/// Refresh an assumed-role session this long before it expires.
const SESSION_REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// Which client: a credential's content (not only its name, so a rotated credential gets a
/// new client), the region and the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    /// The AWS account (from the role ARN) or access key the calls count against.
    pub(crate) account: String,
    workspace: WorkspaceId,
    credential: String,
    material: [u8; 32],
    pub(crate) region: String,
    endpoint: Option<String>,
}

#[derive(Deserialize)]
struct AccessKey {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
    region: String,
}

#[derive(Deserialize)]
struct AssumeRole {
    role_arn: String,
    region: String,
}

enum Identity {
    AccessKey(AccessKey),
    AssumeRole {
        role: AssumeRole,
        external_id: String,
    },
}

impl Identity {
    /// What AWS's rate limits count against: the role's account, or the access key's.
    fn account(&self) -> String {
        match self {
            Identity::AccessKey(k) => k.access_key_id.clone(),
            Identity::AssumeRole { role, .. } => role
                .role_arn
                .split(':')
                .nth(4)
                .unwrap_or(&role.role_arn)
                .to_owned(),
        }
    }

    fn region(&self) -> &str {
        match self {
            Identity::AccessKey(k) => &k.region,
            Identity::AssumeRole { role, .. } => &role.region,
        }
    }
}

/// What `validate` calls AWS with.
pub(crate) struct ValidationClients {
    pub(crate) region: String,
    pub(crate) ecs: aws_sdk_ecs::Client,
    /// STS as the customer's identity (the key, or the assumed role).
    pub(crate) customer_sts: aws_sdk_sts::Client,
    /// STS as Ferry's own identity.
    pub(crate) ferry_sts: aws_sdk_sts::Client,
    /// The role ARN and the external id Ferry assumes it with (assume-role only).
    pub(crate) assumed: Option<(String, String)>,
}

pub(crate) struct Clients {
    secrets: Arc<dyn SecretSource>,
    config: EcsConfig,
    base: OnceCell<SdkConfig>,
    cache: Mutex<HashMap<ClientKey, aws_sdk_ecs::Client>>,
    limits: Mutex<HashMap<(String, String), Arc<AccountLimits>>>,
}

fn err(reason: FailureReason, message: impl Into<String>) -> PushError {
    PushError::new(reason, message)
}

impl Clients {
    pub(crate) fn new(secrets: Arc<dyn SecretSource>, config: EcsConfig) -> Self {
        Self {
            secrets,
            config,
            base: OnceCell::new(),
            cache: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
        }
    }

    /// The rate limits of `key`'s account and region, shared by all its clients.
    pub(crate) fn limits(&self, key: &ClientKey) -> Arc<AccountLimits> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits
            .entry((key.account.clone(), key.region.clone()))
            .or_default()
            .clone()
    }

    /// Ferry's own configuration: its identity, and the SDK's view of the environment.
    async fn base(&self) -> &SdkConfig {
        self.base
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(p) = &self.config.ferry_identity {
                    loader = loader.credentials_provider(p.clone());
                }
                if let Some(url) = &self.config.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                loader.load().await
            })
            .await
    }

    /// The ECS client for `job`'s credential in `region` (default: the credential's).
    pub(crate) async fn client(
        &self,
        job: &RunJob,
        region: Option<&str>,
        endpoint: Option<&str>,
    ) -> Result<(ClientKey, aws_sdk_ecs::Client), PushError> {
        let (key, identity) = self.resolve(job, region, endpoint).await?;
        if let Some(c) = self.cache_get(&key) {
            return Ok((key, c));
        }
        let client = aws_sdk_ecs::Client::from_conf(self.ecs_conf(&key, identity).await);
        if let Ok(mut cache) = self.cache.lock() {
            // Another call may have built one meanwhile: keep the first, so sessions are shared.
            let c = cache.entry(key.clone()).or_insert(client);
            return Ok((key, c.clone()));
        }
        Ok((key, client))
    }

    /// Fresh, uncached clients for checking `job`'s credential (`validate`): ECS and STS as
    /// the customer's identity, STS as Ferry's own, and the role and external id it assumes
    /// (assume-role credentials).
    pub(crate) async fn for_validation(
        &self,
        job: &RunJob,
        region: Option<&str>,
        endpoint: Option<&str>,
    ) -> Result<ValidationClients, PushError> {
        let (key, identity) = self.resolve(job, region, endpoint).await?;
        let assumed = match &identity {
            Identity::AssumeRole { role, external_id } => {
                Some((role.role_arn.clone(), external_id.clone()))
            }
            Identity::AccessKey(_) => None,
        };
        let provider = self.provider(&key, identity).await;
        let ecs_conf = self.ecs_conf_with(&key, provider.clone()).await;
        let region = Region::new(key.region.clone());
        let mut customer_sts = aws_sdk_sts::config::Builder::from(self.base().await)
            .region(region.clone())
            .credentials_provider(provider);
        let mut ferry_sts = aws_sdk_sts::config::Builder::from(self.base().await).region(region);
        if let Some(url) = &key.endpoint {
            customer_sts = customer_sts.endpoint_url(url);
            ferry_sts = ferry_sts.endpoint_url(url);
        }
        Ok(ValidationClients {
            region: key.region.clone(),
            ecs: aws_sdk_ecs::Client::from_conf(ecs_conf),
            customer_sts: aws_sdk_sts::Client::from_conf(customer_sts.build()),
            ferry_sts: aws_sdk_sts::Client::from_conf(ferry_sts.build()),
            assumed,
        })
    }

    /// Opens `job`'s credential (its own workspace's, by name) into an identity and the key
    /// its clients are cached under.
    async fn resolve(
        &self,
        job: &RunJob,
        region: Option<&str>,
        endpoint: Option<&str>,
    ) -> Result<(ClientKey, Identity), PushError> {
        let Some(name) = &job.credential else {
            return Err(err(
                FailureReason::InvalidConfig,
                "the ecs pool has no credential: give it an aws-access-key or aws-assume-role credential",
            ));
        };
        let found = self
            .secrets
            .credential(job.workspace_id, name)
            .await
            .map_err(|e| {
                err(
                    FailureReason::Internal,
                    format!("opening credential {name}: {e}"),
                )
            })?;
        let Some((kind, material)) = found else {
            return Err(err(
                FailureReason::InvalidConfig,
                format!("the workspace has no credential named {name}"),
            ));
        };
        let raw = material.expose_secret();
        let bad = |_| {
            err(
                FailureReason::InvalidConfig,
                format!("credential {name}'s material is not a valid {kind}"),
            )
        };
        let mut hasher = Sha256::new();
        hasher.update(kind.as_str());
        hasher.update([0]);
        hasher.update(raw.as_bytes());
        let identity = match kind {
            CredentialKind::AwsAccessKey => {
                Identity::AccessKey(serde_json::from_str(raw).map_err(bad)?)
            }
            CredentialKind::AwsAssumeRole => {
                let role: AssumeRole = serde_json::from_str(raw).map_err(bad)?;
                let external_id = self
                    .secrets
                    .aws_external_id(job.workspace_id)
                    .await
                    .map_err(|e| err(FailureReason::Internal, format!("workspace external id: {e}")))?
                    .ok_or_else(|| {
                        err(
                            FailureReason::PermissionDenied,
                            "the workspace has no AWS external id; Ferry never assumes a role without one",
                        )
                    })?;
                hasher.update([0]);
                hasher.update(external_id.as_bytes());
                Identity::AssumeRole { role, external_id }
            }
            other => {
                return Err(err(
                    FailureReason::InvalidConfig,
                    format!("credential {name} is a {other}; ecs pools take aws-access-key or aws-assume-role"),
                ))
            }
        };
        let key = ClientKey {
            account: identity.account(),
            workspace: job.workspace_id,
            credential: name.to_string(),
            material: hasher.finalize().into(),
            region: region.unwrap_or(identity.region()).to_owned(),
            endpoint: self
                .config
                .endpoint_url
                .clone()
                .or_else(|| endpoint.map(str::to_owned)),
        };
        Ok((key, identity))
    }

    fn cache_get(&self, key: &ClientKey) -> Option<aws_sdk_ecs::Client> {
        self.cache.lock().ok()?.get(key).cloned()
    }

    async fn ecs_conf(&self, key: &ClientKey, identity: Identity) -> aws_sdk_ecs::Config {
        let provider = self.provider(key, identity).await;
        self.ecs_conf_with(key, provider).await
    }

    async fn ecs_conf_with(
        &self,
        key: &ClientKey,
        provider: SharedCredentialsProvider,
    ) -> aws_sdk_ecs::Config {
        let base = self.base().await;
        let mut conf = aws_sdk_ecs::config::Builder::from(base)
            .region(Region::new(key.region.clone()))
            .credentials_provider(provider)
            .identity_cache(
                IdentityCache::lazy()
                    .buffer_time(SESSION_REFRESH_BEFORE)
                    .build(),
            );
        if let Some(url) = &key.endpoint {
            conf = conf.endpoint_url(url);
        }
        conf.build()
    }

    /// The customer's identity: the access key, or the role assumed by Ferry's identity.
    async fn provider(&self, key: &ClientKey, identity: Identity) -> SharedCredentialsProvider {
        let base = self.base().await;
        match identity {
            Identity::AccessKey(k) => SharedCredentialsProvider::new(Credentials::new(
                k.access_key_id,
                k.secret_access_key,
                k.session_token,
                None,
                "ferry-aws-access-key",
            )),
            Identity::AssumeRole { role, external_id } => {
                // STS in the role's own region; Ferry's identity and endpoint from `base`.
                let provider = AssumeRoleProvider::builder(role.role_arn)
                    .external_id(external_id)
                    .session_name(format!("ferry-{}", key.workspace))
                    .region(Region::new(role.region))
                    .configure(base)
                    .build()
                    .await;
                SharedCredentialsProvider::new(provider)
            }
        }
    }
}
