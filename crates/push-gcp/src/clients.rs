//! Cloud Run clients per workspace credential and endpoint. The credential is always the run's
//! own workspace's (`SecretSource::credential(job.workspace_id, ..)`); clients are cached by
//! the credential's content (a rotated credential gets new clients) and endpoint.
//!
//! A `gcp-service-account-key` signs its own bearer tokens (google-cloud-auth's self-signed
//! JWT: no token exchange), and is proved able to sign before a client is made, so a broken key
//! never reaches Google. A `gcp-workload-identity` configuration exchanges its subject token at
//! Google's STS, as google-cloud-auth does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::port::{PushError, SecretSource};
use ferry_core::{CredentialKind, FailureReason, Name, WorkspaceId};
use google_cloud_auth::credentials::{external_account, service_account};
use google_cloud_auth::credentials::{AccessTokenCredentials, Credentials};
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
            Identity::WorkloadIdentity(v) => v
                .get("service_account_impersonation_url")
                .and_then(Value::as_str)
                .and_then(|u| u.rsplit('/').next())
                .map(|s| s.trim_end_matches(":generateAccessToken").to_owned()),
        }
    }

    /// google-cloud-auth credentials for this identity. A service-account key signs one token
    /// here (locally, no network), so a key that cannot sign fails now, not at Google.
    pub(crate) async fn credentials(&self, name: &str) -> Result<Credentials, PushError> {
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
            Identity::WorkloadIdentity(config) => external_account::Builder::new(config.clone())
                .build()
                .map_err(|e| {
                    err(
                        FailureReason::InvalidConfig,
                        format!("credential {name} is not a usable gcp-workload-identity: {e}"),
                    )
                }),
        }
    }

    /// A token, to prove the identity works (validation).
    pub(crate) async fn token(&self, name: &str) -> Result<(), PushError> {
        match self {
            Identity::ServiceAccount(_) => self.credentials(name).await.map(|_| ()),
            Identity::WorkloadIdentity(config) => {
                let creds = external_account::Builder::new(config.clone())
                    .build_access_token_credentials()
                    .map_err(|e| {
                        err(
                            FailureReason::InvalidConfig,
                            format!("credential {name} is not a usable gcp-workload-identity: {e}"),
                        )
                    })?;
                prove(&creds, name).await
            }
        }
    }
}

async fn prove(creds: &AccessTokenCredentials, name: &str) -> Result<(), PushError> {
    match creds.access_token().await {
        Ok(_) => Ok(()),
        Err(e) if e.is_transient() => Err(err(
            FailureReason::Internal,
            format!("credential {name}: getting a token failed for now: {e}"),
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
    let builder_err = |e| {
        err(
            FailureReason::Internal,
            format!("making a Cloud Run client: {e}"),
        )
    };
    let jobs = jobs.build().await.map_err(builder_err)?;
    let executions = executions.build().await.map_err(builder_err)?;
    Ok(Client {
        key,
        jobs,
        executions,
    })
}

pub(crate) struct Clients {
    secrets: Arc<dyn SecretSource>,
    /// The endpoint for every call, over the template's (tests).
    endpoint: Option<String>,
    pub(crate) call_timeout: Duration,
    cache: Mutex<HashMap<ClientKey, Client>>,
}

impl Clients {
    pub(crate) fn new(
        secrets: Arc<dyn SecretSource>,
        endpoint: Option<String>,
        call_timeout: Duration,
    ) -> Self {
        Self {
            secrets,
            endpoint,
            call_timeout,
            cache: Mutex::new(HashMap::new()),
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
        let found = self.secrets.credential(ws, name).await.map_err(|e| {
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
        Ok((name.to_string(), kind, material))
    }

    /// The endpoint a call goes to: the backend's override, else the template's.
    pub(crate) fn endpoint(&self, template_endpoint: Option<&str>) -> Option<String> {
        self.endpoint
            .clone()
            .or_else(|| template_endpoint.map(str::to_owned))
    }

    /// The clients for workspace `ws`'s credential `name`.
    pub(crate) async fn client(
        &self,
        ws: WorkspaceId,
        name: Option<&Name>,
        template_endpoint: Option<&str>,
    ) -> Result<Client, PushError> {
        let (name, kind, material) = self.open(ws, name).await?;
        let mut hasher = Sha256::new();
        hasher.update(kind.as_str());
        hasher.update([0]);
        hasher.update(material.expose_secret().as_bytes());
        let key = ClientKey {
            workspace: ws,
            credential: name.clone(),
            material: hasher.finalize().into(),
            endpoint: self.endpoint(template_endpoint),
        };
        if let Some(c) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(c);
        }
        let identity = Identity::parse(kind, &material, &name)?;
        drop(material);
        let creds = identity.credentials(&name).await?;
        let client = build(key.clone(), creds, self.call_timeout).await?;
        if let Ok(mut cache) = self.cache.lock() {
            // Another call may have built one meanwhile: keep the first.
            let c = cache.entry(key).or_insert(client);
            return Ok(c.clone());
        }
        Ok(client)
    }
}
