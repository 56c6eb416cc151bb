//! Cloud Run clients per workspace credential and endpoint. The credential is always the run's
//! own workspace's (`SecretSource::credential(job.workspace_id, ..)`); clients are cached by
//! the credential's content (a rotated credential gets new clients) and endpoint.
//!
//! A `gcp-service-account-key` signs its own bearer tokens (google-cloud-auth's self-signed
//! JWT: no token exchange), and is proved able to sign before a client is made, so a broken key
//! never reaches Google. A `gcp-workload-identity` configuration presents Ferry's own OIDC
//! token (minted through [`IdentityTokens`] for the run's workspace and pool, audience = the
//! configuration's) to Google's STS through google-cloud-auth's programmatic subject token
//! source: never a token read from Ferry's own host. Its clients are cached per pool too, as
//! the token's subject names the pool.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::cache::Bounded;
use ferry_core::port::{identity_subject, IdentityTokens, PushError, SecretSource};
use ferry_core::{AllowedEndpoints, CredentialKind, FailureReason, Name, WorkspaceId};
use google_cloud_auth::credentials::subject_token::{
    Builder as SubjectTokenBuilder, SubjectToken, SubjectTokenProvider,
};
use google_cloud_auth::credentials::{external_account, service_account};
use google_cloud_auth::credentials::{AccessTokenCredentials, Credentials};
use google_cloud_auth::errors::SubjectTokenProviderError;
use google_cloud_run_v2::client::{Executions, Jobs};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Which clients: a credential's content (not only its name) and the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    pub(crate) workspace: WorkspaceId,
    pub(crate) credential: String,
    pub(crate) material: [u8; 32],
    pub(crate) endpoint: Option<String>,
    /// The pool whose subject the tokens name (workload identity only; `None` otherwise, so
    /// a key's clients are shared by the workspace's pools).
    pub(crate) pool: Option<Name>,
}

/// For whom a workload identity's token is minted: a workspace's pool.
#[derive(Clone)]
pub(crate) struct Federation {
    pub(crate) tokens: Arc<dyn IdentityTokens>,
    pub(crate) workspace: WorkspaceId,
    pub(crate) pool: Name,
    /// The operator's origins, where a `token_url` not on Google's STS must be.
    pub(crate) allowed: AllowedEndpoints,
}

/// Google's STS, where Ferry's tokens are exchanged unless the operator allows another origin.
const GOOGLE_STS: &str = "https://sts.googleapis.com";

/// Whether Ferry may send its token to `token_url` (checked again here: the material may have
/// been sealed under another operator's list).
fn token_url_allowed(token_url: &str, allowed: &AllowedEndpoints) -> bool {
    let google = ferry_core::Origin::parse(GOOGLE_STS).ok();
    let origin = ferry_core::Origin::of_url(token_url).ok();
    (origin.is_some() && origin == google) || allowed.check_url(token_url).is_ok()
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("workspace", &self.workspace)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// google-cloud-auth's subject token source for a workload identity: a fresh token of Ferry's
/// issuer at every exchange.
#[derive(Debug)]
struct FerryToken {
    federation: Federation,
    audience: String,
}

/// Ferry could not mint its token (its database or root key is unavailable): transient.
#[derive(Debug, thiserror::Error)]
#[error("minting Ferry's identity token: {0}")]
struct MintError(String);

impl SubjectTokenProviderError for MintError {
    fn is_transient(&self) -> bool {
        true
    }
}

impl SubjectTokenProvider for FerryToken {
    type Error = MintError;

    async fn subject_token(&self) -> Result<SubjectToken, MintError> {
        let f = &self.federation;
        let token = f
            .tokens
            .mint(f.workspace, &f.pool, &self.audience)
            .await
            .map_err(|e| MintError(e.0))?;
        Ok(SubjectTokenBuilder::new(token.expose_secret()).build())
    }
}

/// The clients of one credential and endpoint. Cheap to clone. (No `Debug`: it holds the
/// credential.)
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) key: ClientKey,
    pub(crate) jobs: Jobs,
    pub(crate) executions: Executions,
}

fn err(reason: FailureReason, message: impl Into<String>) -> PushError {
    PushError::new(reason, message)
}

/// A credential's material, parsed: never in a message or a log.
pub(crate) enum Identity {
    ServiceAccount(Value),
    WorkloadIdentity(Value),
}

impl Identity {
    /// Parses material of `kind`; `name` is only for messages.
    pub(crate) fn parse(
        kind: CredentialKind,
        material: &SecretString,
        name: &str,
    ) -> Result<Self, PushError> {
        let bad = |why: &str| {
            err(
                FailureReason::InvalidConfig,
                format!("credential {name} is not a valid {kind}: {why}"),
            )
        };
        let value: Value = serde_json::from_str(material.expose_secret())
            .map_err(|_| bad("its material is not a JSON object"))?;
        let Some(obj) = value.as_object() else {
            return Err(bad("its material is not a JSON object"));
        };
        let string = |k: &str| obj.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        match kind {
            CredentialKind::GcpServiceAccountKey => {
                if string("type") != Some("service_account") {
                    return Err(bad("type must be \"service_account\""));
                }
                for field in ["client_email", "private_key_id", "private_key"] {
                    if string(field).is_none() {
                        return Err(bad(&format!("{field} is missing")));
                    }
                }
                if !string("private_key").is_some_and(|k| k.contains("-----BEGIN PRIVATE KEY-----"))
                {
                    return Err(bad("private_key is not a PKCS#8 PEM key"));
                }
                // google-cloud-auth requires a project id; a key file always has one.
                if string("project_id").is_none() {
                    return Err(bad("project_id is missing"));
                }
                Ok(Identity::ServiceAccount(value))
            }
            CredentialKind::GcpWorkloadIdentity => {
                if string("type") != Some("external_account") {
                    return Err(bad("type must be \"external_account\""));
                }
                // Material sealed before Ferry became the token source: it would read Ferry's
                // own host identity. Never used; the customer re-registers it.
                if obj.contains_key("credential_source") {
                    return Err(bad(
                        "it has a credential_source, which would present Ferry's own host \
                         identity; register it again without credential_source (Ferry presents \
                         its own OIDC token)",
                    ));
                }
                for field in ["audience", "subject_token_type", "token_url"] {
                    if string(field).is_none() {
                        return Err(bad(&format!("{field} is missing")));
                    }
                }
                Ok(Identity::WorkloadIdentity(value))
            }
            other => Err(err(
                FailureReason::InvalidConfig,
                format!(
                    "credential {name} is a {other}; cloud-run pools take gcp-service-account-key \
                     or gcp-workload-identity"
                ),
            )),
        }
    }

    /// The service account's email, if the identity names one.
    pub(crate) fn email(&self) -> Option<String> {
        match self {
            Identity::ServiceAccount(v) => v
                .get("client_email")
                .and_then(Value::as_str)
                .map(str::to_owned),
            Identity::WorkloadIdentity(v) => impersonated(v),
        }
    }

    /// Who acts, for messages: the service account, or the federated principal of `pool`'s
    /// subject in the workload identity pool.
    pub(crate) fn principal(&self, federation: Option<&Federation>) -> Option<String> {
        if let Some(email) = self.email() {
            return Some(email);
        }
        let (Identity::WorkloadIdentity(v), Some(f)) = (self, federation) else {
            return None;
        };
        let audience = v.get("audience").and_then(Value::as_str)?;
        let pool = audience
            .strip_prefix("//")?
            .split_once("/providers/")
            .map(|(pool, _)| pool)?;
        Some(format!(
            "principal://{pool}/subject/{}",
            identity_subject(f.workspace, &f.pool)
        ))
    }

    /// google-cloud-auth credentials for this identity. A service-account key signs one token
    /// here (locally, no network), so a key that cannot sign fails now, not at Google. A
    /// workload identity presents Ferry's token for `federation`'s workspace and pool.
    pub(crate) async fn credentials(
        &self,
        name: &str,
        federation: Option<&Federation>,
    ) -> Result<Credentials, PushError> {
        match self {
            Identity::ServiceAccount(key) => {
                let creds = service_account::Builder::new(key.clone())
                    .build_access_token_credentials()
                    .map_err(|_| {
                        err(
                            FailureReason::InvalidConfig,
                            format!(
                                "credential {name} is not a valid gcp-service-account-key: \
                                 google-cloud-auth refused it"
                            ),
                        )
                    })?;
                prove(&creds, name).await?;
                Ok(Credentials::from(creds))
            }
            Identity::WorkloadIdentity(config) => {
                let federation = federation.ok_or_else(|| {
                    err(
                        FailureReason::InvalidConfig,
                        format!(
                            "credential {name} is a gcp-workload-identity, whose token names a \
                             pool: use it through a pool"
                        ),
                    )
                })?;
                let token_url = config.get("token_url").and_then(Value::as_str);
                if !token_url.is_some_and(|u| token_url_allowed(u, &federation.allowed)) {
                    return Err(err(
                        FailureReason::InvalidConfig,
                        format!(
                            "credential {name}'s token_url is neither on {GOOGLE_STS} nor on an \
                             origin the operator allows (FERRY_ALLOWED_ENDPOINTS): Ferry sends \
                             its identity tokens nowhere else"
                        ),
                    ));
                }
                workload_identity(config, federation).map_err(|e| {
                    err(
                        FailureReason::InvalidConfig,
                        format!("credential {name} is not a usable gcp-workload-identity: {e}"),
                    )
                })
            }
        }
    }

    /// Credentials proved to make a token (validation): a workload identity exchanges
    /// Ferry's token at the STS (and impersonates its service account, if it names one).
    pub(crate) async fn proved(
        &self,
        name: &str,
        federation: Option<&Federation>,
    ) -> Result<Credentials, PushError> {
        match self {
            Identity::ServiceAccount(_) => self.credentials(name, None).await,
            Identity::WorkloadIdentity(_) => {
                let creds = self.credentials(name, federation).await?;
                match creds.headers(Default::default()).await {
                    Ok(_) => Ok(creds),
                    Err(e) if e.is_transient() => Err(err(
                        FailureReason::Internal,
                        format!("credential {name}: the token exchange failed for now: {e}"),
                    )),
                    Err(e) => Err(err(
                        FailureReason::PermissionDenied,
                        format!(
                            "credential {name}: Google's STS refused Ferry's token ({e}); check \
                             that the workload identity pool's provider trusts Ferry's issuer \
                             and this audience, and that the principal may act"
                        ),
                    )),
                }
            }
        }
    }
}

/// The service account a workload identity configuration impersonates, if any.
fn impersonated(config: &Value) -> Option<String> {
    let url = config
        .get("service_account_impersonation_url")
        .and_then(Value::as_str)?;
    let email = url
        .rsplit_once("/serviceAccounts/")?
        .1
        .strip_suffix(":generateAccessToken")?;
    Some(email.to_owned())
}

/// Credentials that exchange Ferry's token at the configuration's STS for `federation`.
fn workload_identity(
    config: &Value,
    federation: &Federation,
) -> Result<Credentials, google_cloud_auth::build_errors::Error> {
    let field = |k: &str| {
        config
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let audience = field("audience");
    let source = Arc::new(FerryToken {
        federation: federation.clone(),
        audience: audience.clone(),
    });
    let mut builder = external_account::ProgrammaticBuilder::new(source)
        .with_audience(audience)
        .with_subject_token_type(field("subject_token_type"))
        .with_token_url(field("token_url"));
    if let Some(email) = impersonated(config) {
        // google-cloud-auth builds the IAM Credentials URL from the account; the server
        // accepted only that origin.
        builder = builder.with_target_principal(email);
    }
    if let Some(q) = config.get("quota_project_id").and_then(Value::as_str) {
        builder = builder.with_quota_project_id(q);
    }
    builder.build()
}

async fn prove(creds: &AccessTokenCredentials, name: &str) -> Result<(), PushError> {
    match creds.access_token().await {
        Ok(_) => Ok(()),
        Err(e) if e.is_transient() => Err(PushError::upstream(
            FailureReason::Internal,
            format!("credential {name}: getting a token failed for now"),
            &e,
        )),
        // The error may quote parts of the key's parsing: say only what failed.
        Err(_) => Err(err(
            FailureReason::InvalidConfig,
            format!(
                "credential {name} cannot make a token: its private_key is not a usable RSA key"
            ),
        )),
    }
}

/// Makes the Jobs and Executions clients for `creds` at `endpoint`.
pub(crate) async fn build(
    key: ClientKey,
    creds: Credentials,
    call_timeout: Duration,
) -> Result<Client, PushError> {
    let mut jobs = Jobs::builder()
        .with_credentials(creds.clone())
        .with_attempt_timeout(call_timeout);
    let mut executions = Executions::builder()
        .with_credentials(creds)
        .with_attempt_timeout(call_timeout);
    if let Some(e) = &key.endpoint {
        jobs = jobs.with_endpoint(e);
        executions = executions.with_endpoint(e);
    }
    fn builder_err<E: std::error::Error + 'static>(e: E) -> PushError {
        PushError::upstream(
            FailureReason::Internal,
            "making a Cloud Run client failed",
            &e,
        )
    }
    let jobs = jobs.build().await.map_err(builder_err)?;
    let executions = executions.build().await.map_err(builder_err)?;
    Ok(Client {
        key,
        jobs,
        executions,
    })
}

/// The most clients kept; past it the oldest are dropped and rebuilt on their next use.
const CACHED: usize = 4096;

pub(crate) struct Clients {
    secrets: Arc<dyn SecretSource>,
    /// Ferry's OIDC tokens, for workload identities.
    pub(crate) tokens: Arc<dyn IdentityTokens>,
    /// The endpoint for every call, over the template's (tests).
    endpoint: Option<String>,
    /// What a template's endpoint may be.
    allowed: AllowedEndpoints,
    pub(crate) call_timeout: Duration,
    /// Bounded: tenants choose credentials, endpoints and pools, never Ferry's memory.
    cache: Mutex<Bounded<ClientKey, Client>>,
}

impl Clients {
    pub(crate) fn new(
        secrets: Arc<dyn SecretSource>,
        tokens: Arc<dyn IdentityTokens>,
        endpoint: Option<String>,
        allowed: AllowedEndpoints,
        call_timeout: Duration,
    ) -> Self {
        Self {
            secrets,
            tokens,
            endpoint,
            allowed,
            call_timeout,
            cache: Mutex::new(Bounded::new(CACHED)),
        }
    }

    /// Opens workspace `ws`'s credential `name`.
    pub(crate) async fn open(
        &self,
        ws: WorkspaceId,
        name: Option<&Name>,
    ) -> Result<(String, CredentialKind, SecretString), PushError> {
        let Some(name) = name else {
            return Err(err(
                FailureReason::InvalidConfig,
                "the cloud-run pool has no credential: give it a gcp-service-account-key or \
                 gcp-workload-identity credential",
            ));
        };
        // The vault's error (a KMS answer, a database error) is the operator's.
        let found = self.secrets.credential(ws, name).await.map_err(|e| {
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
        Ok((name.to_string(), kind, material))
    }

    /// The endpoint a call goes to: the backend's override, else the template's — which must
    /// be one the operator allows, since the workspace's bearer token goes there.
    pub(crate) fn endpoint(
        &self,
        template_endpoint: Option<&str>,
    ) -> Result<Option<String>, PushError> {
        match (&self.endpoint, template_endpoint) {
            (Some(operator), _) => Ok(Some(operator.clone())),
            (None, Some(pool)) => {
                self.allowed
                    .check_origin(pool)
                    .map_err(|e| err(FailureReason::InvalidConfig, e.to_string()))?;
                Ok(Some(pool.to_owned()))
            }
            (None, None) => Ok(None),
        }
    }

    /// Who workspace `ws`'s pool `pool` federates as.
    pub(crate) fn federation(&self, ws: WorkspaceId, pool: &Name) -> Federation {
        Federation {
            tokens: self.tokens.clone(),
            workspace: ws,
            pool: pool.clone(),
            allowed: self.allowed.clone(),
        }
    }

    /// The clients for workspace `ws`'s credential `name`, used by its pool `pool`.
    pub(crate) async fn client(
        &self,
        ws: WorkspaceId,
        pool: &Name,
        name: Option<&Name>,
        template_endpoint: Option<&str>,
    ) -> Result<Client, PushError> {
        let endpoint = self.endpoint(template_endpoint)?;
        let (name, kind, material) = self.open(ws, name).await?;
        let mut hasher = Sha256::new();
        hasher.update(kind.as_str());
        hasher.update([0]);
        hasher.update(material.expose_secret().as_bytes());
        let key = ClientKey {
            workspace: ws,
            credential: name.clone(),
            material: hasher.finalize().into(),
            endpoint,
            pool: (kind == CredentialKind::GcpWorkloadIdentity).then(|| pool.clone()),
        };
        if let Some(c) = self.cache.lock().ok().and_then(|c| c.get(&key)) {
            return Ok(c);
        }
        let identity = Identity::parse(kind, &material, &name)?;
        drop(material);
        let creds = identity
            .credentials(&name, Some(&self.federation(ws, pool)))
            .await?;
        let client = build(key.clone(), creds, self.call_timeout).await?;
        if let Ok(mut cache) = self.cache.lock() {
            // Another call may have built one meanwhile: keep the first.
            return Ok(cache.get_or_insert_with(key, || client));
        }
        Ok(client)
    }
}
