//! ECS clients per workspace credential and region. The credential is always the run's own
//! workspace's (`SecretSource::credential(job.workspace_id, ..)`); an `aws-assume-role`
//! credential is assumed by Ferry's own identity with the workspace's external id; an
//! `aws-web-identity` credential is assumed with `AssumeRoleWithWebIdentity` and a token of
//! Ferry's own OIDC issuer (subject = the run's workspace and pool, audience
//! `sts.amazonaws.com`), at the STS of Ferry's configuration, never a pool's endpoint. Either
//! session is cached in the client's identity cache and refreshed five minutes before it
//! expires.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_ecs::config::{IdentityCache, Region};
use ferry_core::cache::Bounded;
use ferry_core::port::{IdentityTokens, PushError, RunJob, SecretSource};
use ferry_core::{CredentialKind, FailureReason, Name, WorkspaceId};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::limiter::AccountLimits;
use crate::EcsConfig;

/// Refresh an assumed-role session this long before it expires.
const SESSION_REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// The audience of the tokens Ferry presents to AWS STS: the client id of the IAM OIDC
/// provider that trusts Ferry's issuer.
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";

/// Which client: a credential's content (not only its name, so a rotated credential gets a
/// new client), the region and the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    workspace: WorkspaceId,
    credential: String,
    material: [u8; 32],
    pub(crate) region: String,
    endpoint: Option<String>,
    /// The pool whose subject the tokens name (web identity only; `None` otherwise, so a
    /// credential's clients are shared by the workspace's pools).
    pool: Option<Name>,
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
    /// Assumed with a token of Ferry's issuer for the pool (same material as assume-role).
    WebToken(AssumeRole),
}

/// The customer's role, assumed with `AssumeRoleWithWebIdentity` and a fresh token of Ferry's
/// issuer for a workspace's pool on each refresh.
#[derive(Debug)]
pub(crate) struct WebIdentity {
    /// STS as Ferry's configuration reaches it (no credentials: the call is unsigned).
    sts: aws_sdk_sts::Client,
    pub(crate) role_arn: String,
    session_name: String,
    tokens: Arc<dyn IdentityTokens>,
    workspace: WorkspaceId,
    pool: Name,
}

impl WebIdentity {
    async fn assume(&self) -> aws_credential_types::provider::Result {
        let token = self
            .tokens
            .mint(self.workspace, &self.pool, STS_AUDIENCE)
            .await
            .map_err(CredentialsError::provider_error)?;
        let out = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .web_identity_token(token.expose_secret())
            .send()
            .await
            .map_err(|e| {
                CredentialsError::provider_error(
                    aws_sdk_sts::error::DisplayErrorContext(e).to_string(),
                )
            })?;
        let c = out.credentials.ok_or_else(|| {
            CredentialsError::provider_error("AssumeRoleWithWebIdentity answered no credentials")
        })?;
        let expiry = std::time::SystemTime::try_from(c.expiration)
            .map_err(CredentialsError::provider_error)?;
        Ok(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            Some(expiry),
            "ferry-web-identity",
        ))
    }
}

impl ProvideCredentials for WebIdentity {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}

impl Identity {
    fn region(&self) -> &str {
        match self {
            Identity::AccessKey(k) => &k.region,
            Identity::AssumeRole { role, .. } | Identity::WebToken(role) => &role.region,
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
    /// The web identity the customer's clients assume (web-identity only).
    pub(crate) web_identity: Option<Arc<WebIdentity>>,
}

pub(crate) struct Clients {
    secrets: Arc<dyn SecretSource>,
    config: EcsConfig,
    base: OnceCell<SdkConfig>,
    /// Bounded: tenants choose credentials, regions and pools, never Ferry's memory.
    cache: Mutex<Bounded<ClientKey, aws_sdk_ecs::Client>>,
    limits: Mutex<Bounded<(WorkspaceId, String, String), Arc<AccountLimits>>>,
}

/// The most clients (and rate limiters) kept; past it the oldest are dropped and rebuilt on
/// their next use.
const CACHED: usize = 4096;

fn err(reason: FailureReason, message: impl Into<String>) -> PushError {
    PushError::new(reason, message)
}

impl Clients {
    pub(crate) fn new(secrets: Arc<dyn SecretSource>, config: EcsConfig) -> Self {
        Self {
            secrets,
            config,
            base: OnceCell::new(),
            cache: Mutex::new(Bounded::new(CACHED)),
            limits: Mutex::new(Bounded::new(CACHED)),
        }
    }

    /// The rate limits of `key`'s credential in its region, shared by all its clients. Keyed
    /// by what Ferry knows (the workspace and its credential's name), never by an account id
    /// the tenant wrote: one tenant naming another's account cannot spend its budget.
    pub(crate) fn limits(&self, key: &ClientKey) -> Arc<AccountLimits> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits.get_or_insert_with(
            (key.workspace, key.credential.clone(), key.region.clone()),
            Arc::default,
        )
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
        let client = aws_sdk_ecs::Client::from_conf(self.ecs_conf(&key, identity, job).await);
        if let Ok(mut cache) = self.cache.lock() {
            // Another call may have built one meanwhile: keep the first, so sessions are shared.
            let c = cache.get_or_insert_with(key.clone(), || client);
            return Ok((key, c));
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
            Identity::AccessKey(_) | Identity::WebToken(_) => None,
        };
        let mut web_identity = None;
        let provider = match identity {
            Identity::WebToken(role) => {
                let w = Arc::new(self.web_identity(job, role).await);
                web_identity = Some(w.clone());
                SharedCredentialsProvider::new(ArcProvider(w))
            }
            other => self.provider(&key, other, job).await,
        };
        let ecs_conf = self.ecs_conf_with(&key, provider.clone()).await;
        let region = Region::new(key.region.clone());
        let mut customer_sts = aws_sdk_sts::config::Builder::from(self.base().await)
            .region(region.clone())
            .credentials_provider(provider);
        // Ferry's own identity calls only where the operator's configuration says (`base`),
        // never at a pool's endpoint.
        let ferry_sts = aws_sdk_sts::config::Builder::from(self.base().await).region(region);
        if let Some(url) = &key.endpoint {
            customer_sts = customer_sts.endpoint_url(url);
        }
        Ok(ValidationClients {
            region: key.region.clone(),
            ecs: aws_sdk_ecs::Client::from_conf(ecs_conf),
            customer_sts: aws_sdk_sts::Client::from_conf(customer_sts.build()),
            ferry_sts: aws_sdk_sts::Client::from_conf(ferry_sts.build()),
            assumed,
            web_identity,
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
                "the ecs pool has no credential: give it an aws-access-key, aws-assume-role or \
                 aws-web-identity credential",
            ));
        };
        let found = self
            .secrets
            .credential(job.workspace_id, name)
            .await
            // The vault's error (a KMS answer, a database error) is the operator's.
            .map_err(|e| {
                PushError::upstream(
                    FailureReason::Internal,
                    format!("credential {name} could not be opened"),
                    &e,
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
                    .map_err(|e| {
                        PushError::upstream(
                            FailureReason::Internal,
                            "the workspace's external id could not be read",
                            &e,
                        )
                    })?
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
            CredentialKind::AwsWebIdentity => {
                Identity::WebToken(serde_json::from_str(raw).map_err(bad)?)
            }
            other => {
                return Err(err(
                    FailureReason::InvalidConfig,
                    format!("credential {name} is a {other}; ecs pools take aws-access-key, aws-assume-role or aws-web-identity"),
                ))
            }
        };
        // A pool's endpoint must be one the operator allows: the workspace's signed calls go
        // there. (The operator's own `endpoint_url` overrides it and is theirs to choose.)
        let endpoint = match (&self.config.endpoint_url, endpoint) {
            (Some(operator), _) => Some(operator.clone()),
            (None, Some(pool)) => {
                self.config
                    .allowed_endpoints
                    .check_origin(pool)
                    .map_err(|e| err(FailureReason::InvalidConfig, e.to_string()))?;
                Some(pool.to_owned())
            }
            (None, None) => None,
        };
        let key = ClientKey {
            workspace: job.workspace_id,
            credential: name.to_string(),
            material: hasher.finalize().into(),
            region: region.unwrap_or(identity.region()).to_owned(),
            endpoint,
            pool: (kind == CredentialKind::AwsWebIdentity).then(|| job.pool.clone()),
        };
        Ok((key, identity))
    }

    fn cache_get(&self, key: &ClientKey) -> Option<aws_sdk_ecs::Client> {
        self.cache.lock().ok()?.get(key)
    }

    async fn ecs_conf(
        &self,
        key: &ClientKey,
        identity: Identity,
        job: &RunJob,
    ) -> aws_sdk_ecs::Config {
        let provider = self.provider(key, identity, job).await;
        self.ecs_conf_with(key, provider).await
    }

    /// `role` assumed with Ferry's token for `job`'s workspace and pool, at the STS of
    /// Ferry's own configuration (`base`: the operator's endpoint, never a pool's) in the
    /// role's region.
    async fn web_identity(&self, job: &RunJob, role: AssumeRole) -> WebIdentity {
        let mut sts =
            aws_sdk_sts::config::Builder::from(self.base().await).region(Region::new(role.region));
        // The call is authenticated by the token alone: Ferry's own identity signs nothing.
        sts.set_credentials_provider(None);
        WebIdentity {
            sts: aws_sdk_sts::Client::from_conf(sts.build()),
            role_arn: role.role_arn,
            session_name: format!("ferry-{}", job.workspace_id),
            tokens: self.config.identity_tokens.clone(),
            workspace: job.workspace_id,
            pool: job.pool.clone(),
        }
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

    /// The customer's identity: the access key, the role assumed by Ferry's identity, or the
    /// role assumed with Ferry's token.
    async fn provider(
        &self,
        key: &ClientKey,
        identity: Identity,
        job: &RunJob,
    ) -> SharedCredentialsProvider {
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
            Identity::WebToken(role) => {
                SharedCredentialsProvider::new(self.web_identity(job, role).await)
            }
        }
    }
}

/// A shared [`WebIdentity`] as a provider (validation calls it directly too).
#[derive(Debug)]
struct ArcProvider(Arc<WebIdentity>);

impl ProvideCredentials for ArcProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.0.provide_credentials()
    }
}
