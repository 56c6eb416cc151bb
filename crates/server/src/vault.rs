//! The vault: the one place that seals and opens a workspace's secret material. It gets the
//! workspace's key (creating it on first use, wrapped by the keyring's root key), seals
//! credentials, secrets and sensitive run parameters bound to their place, and opens them for
//! whoever needs them later (the push backends, the managed runner's secret grants).
//!
//! The store only ever sees sealed bytes; plaintext lives in `secrecy` types here. The engine
//! and the executors reach it through ferry-core's [`SecretSource`] port.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_core::port::{SecretSource, SecretsError};
use ferry_core::{CredentialId, CredentialKind, Name, RunId, SecretId, WorkspaceId};
use ferry_crypto::{Binding, Keyring, WorkspaceKey, WrappedKey};
use ferry_store::{Actor, Credential, CredentialRotation, NewCredential, Secret, Store};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// How often a write that lost to a concurrent write of the same object is tried again.
const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] ferry_store::Error),
    /// Sealing or opening failed (a damaged or moved value, a missing root key).
    #[error("crypto for workspace {workspace}")]
    Crypto {
        workspace: WorkspaceId,
        source: ferry_crypto::Error,
    },
    /// A rotation must keep the credential's kind.
    #[error("credential \"{name}\" is a {stored} credential; a rotation must give {stored} material (got {given})")]
    KindMismatch {
        name: Name,
        stored: CredentialKind,
        given: CredentialKind,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn credential_binding(
    ws: WorkspaceId,
    id: CredentialId,
    kind: CredentialKind,
    version: u32,
) -> Binding {
    Binding::new(ws, id, format!("credential/{}", kind.as_str()), version)
}

fn secret_binding(ws: WorkspaceId, id: SecretId, version: u32) -> Binding {
    Binding::new(ws, id, "secret", version)
}

fn run_binding(ws: WorkspaceId, id: RunId) -> Binding {
    Binding::new(ws, id, "run/sensitive-parameters", 1)
}

/// How long an unwrapped workspace key is kept in memory. Unwrapping is a root-key operation:
/// with a KMS root key, a call to the key service per secret operation without this cache.
const KEY_CACHE_TTL: Duration = Duration::from_secs(300);

/// An unwrapped workspace key, and the wrapped form (as stored) it came from: a key re-wrapped
/// since (a root-key rotation) no longer matches and is unwrapped again.
#[derive(Debug)]
struct CachedKey {
    wrapped: WrappedKey,
    key: Arc<WorkspaceKey>,
    at: Instant,
}

/// Seals and opens a workspace's secret material. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Vault {
    store: Store,
    keyring: Arc<dyn Keyring>,
    keys: Arc<Mutex<HashMap<WorkspaceId, CachedKey>>>,
}

impl Vault {
    pub fn new(store: Store, keyring: Arc<dyn Keyring>) -> Vault {
        Vault {
            store,
            keyring,
            keys: Arc::default(),
        }
    }

    fn cached(&self, ws: WorkspaceId, wrapped: &WrappedKey) -> Option<Arc<WorkspaceKey>> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.get(&ws)
            .filter(|c| &c.wrapped == wrapped && c.at.elapsed() < KEY_CACHE_TTL)
            .map(|c| c.key.clone())
    }

    fn remember(&self, ws: WorkspaceId, wrapped: WrappedKey, key: &Arc<WorkspaceKey>) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.retain(|_, c| c.at.elapsed() < KEY_CACHE_TTL);
        keys.insert(
            ws,
            CachedKey {
                wrapped,
                key: key.clone(),
                at: Instant::now(),
            },
        );
    }

    fn crypto(ws: WorkspaceId) -> impl Fn(ferry_crypto::Error) -> Error {
        move |source| Error::Crypto {
            workspace: ws,
            source,
        }
    }

    /// Workspace `ws`'s key, unwrapped; made (and stored wrapped) on first use. Kept unwrapped
    /// in memory for [`KEY_CACHE_TTL`] while its stored wrapped form is unchanged.
    pub async fn workspace_key(&self, ws: WorkspaceId) -> Result<Arc<WorkspaceKey>> {
        let stored = match self.store.workspace_key_get(ws).await? {
            Some(k) => k,
            None => {
                let fresh = WorkspaceKey::generate();
                let wrapped = self
                    .keyring
                    .wrap(ws, fresh.key())
                    .await
                    .map_err(Self::crypto(ws))?;
                let stored = self
                    .store
                    .workspace_key_create(ws, fresh.id(), &wrapped.root_key_id, &wrapped.blob)
                    .await?;
                if stored.key_id == fresh.id() {
                    tracing::info!(workspace_id = %ws, key_id = %stored.key_id, root_key_id = %stored.root_key_id, "Workspace key created");
                    let fresh = Arc::new(fresh);
                    self.remember(ws, wrapped, &fresh);
                    return Ok(fresh);
                }
                // Another request made the workspace's key first: use that one.
                stored
            }
        };
        let wrapped = WrappedKey {
            root_key_id: stored.root_key_id,
            blob: stored.wrapped_key,
        };
        if let Some(key) = self.cached(ws, &wrapped) {
            return Ok(key);
        }
        let key = self
            .keyring
            .unwrap(ws, &wrapped)
            .await
            .map_err(Self::crypto(ws))?;
        let key = Arc::new(WorkspaceKey::new(stored.key_id, key));
        self.remember(ws, wrapped, &key);
        Ok(key)
    }

    /// Registers a credential: fingerprints and seals `material` (canonical JSON) for a fresh
    /// id at version 1, and stores it with `metadata`; audited as `actor`'s.
    pub async fn credential_create(
        &self,
        ws: WorkspaceId,
        name: Name,
        kind: CredentialKind,
        material: &SecretString,
        metadata: Value,
        actor: Actor,
    ) -> Result<Credential> {
        let key = self.workspace_key(ws).await?;
        let id = CredentialId::new();
        let bytes = material.expose_secret().as_bytes();
        let sealed = key
            .seal(&credential_binding(ws, id, kind, 1), bytes)
            .map_err(Self::crypto(ws))?;
        let new = NewCredential {
            id,
            name,
            kind,
            metadata,
            fingerprint: key.fingerprint(bytes),
            sealed,
        };
        Ok(self.store.credential_create(ws, &new, actor).await?)
    }

    /// Replaces credential `id`'s material (same kind, next version); audited.
    pub async fn credential_rotate(
        &self,
        ws: WorkspaceId,
        id: CredentialId,
        kind: CredentialKind,
        material: &SecretString,
        metadata: Value,
        actor: Actor,
    ) -> Result<Credential> {
        let key = self.workspace_key(ws).await?;
        let bytes = material.expose_secret().as_bytes();
        let fingerprint = key.fingerprint(bytes);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.store.credential_get(ws, id).await?;
            if current.kind != kind {
                return Err(Error::KindMismatch {
                    name: current.name,
                    stored: current.kind,
                    given: kind,
                });
            }
            let version = current.version + 1;
            let sealed = key
                .seal(&credential_binding(ws, id, kind, version), bytes)
                .map_err(Self::crypto(ws))?;
            let rotation = CredentialRotation {
                version,
                metadata: metadata.clone(),
                fingerprint: fingerprint.clone(),
                sealed,
            };
            match self.store.credential_rotate(ws, id, &rotation, actor).await {
                Err(ferry_store::Error::Changed { .. }) if attempt < ATTEMPTS => continue,
                other => return Ok(other?),
            }
        }
    }

    /// Credential `id`'s material (canonical JSON), opened: for the push backends.
    pub async fn credential_reveal(
        &self,
        ws: WorkspaceId,
        id: CredentialId,
    ) -> Result<(Credential, SecretString)> {
        let (credential, sealed) = self.store.credential_sealed(ws, id).await?;
        let key = self.workspace_key(ws).await?;
        let binding = credential_binding(ws, id, credential.kind, credential.version);
        let material = key
            .open_string(&binding, &sealed)
            .map_err(Self::crypto(ws))?;
        Ok((credential, material))
    }

    /// Writes secret `name`: creates it, or replaces its value; returns it and whether it was
    /// created. Audited as `actor`'s.
    pub async fn secret_put(
        &self,
        ws: WorkspaceId,
        name: &Name,
        value: &SecretString,
        actor: Actor,
    ) -> Result<(Secret, bool)> {
        let key = self.workspace_key(ws).await?;
        let bytes = value.expose_secret().as_bytes();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let written = match self.store.secret_get(ws, name).await {
                Ok(current) => {
                    let version = current.version + 1;
                    let sealed = key
                        .seal(&secret_binding(ws, current.id, version), bytes)
                        .map_err(Self::crypto(ws))?;
                    self.store
                        .secret_replace(ws, current.id, version, &sealed, actor)
                        .await
                        .map(|s| (s, false))
                }
                Err(ferry_store::Error::NotFound { .. }) => {
                    let id = SecretId::new();
                    let sealed = key
                        .seal(&secret_binding(ws, id, 1), bytes)
                        .map_err(Self::crypto(ws))?;
                    self.store
                        .secret_create(ws, id, name, &sealed, actor)
                        .await
                        .map(|s| (s, true))
                }
                Err(e) => return Err(e.into()),
            };
            match written {
                // Another write of the same name got in between: read again.
                Err(ferry_store::Error::Changed { .. } | ferry_store::Error::Conflict { .. })
                    if attempt < ATTEMPTS => {}
                other => return Ok(other?),
            }
        }
    }

    /// The value of workspace `ws`'s secret `name`, or `None` if it has no such secret. What
    /// a run is granted by name.
    pub async fn secret_reveal(
        &self,
        ws: WorkspaceId,
        name: &Name,
    ) -> Result<Option<SecretString>> {
        let Some((secret, sealed)) = self.store.secret_sealed(ws, name).await? else {
            return Ok(None);
        };
        let key = self.workspace_key(ws).await?;
        let value = key
            .open_string(&secret_binding(ws, secret.id, secret.version), &sealed)
            .map_err(Self::crypto(ws))?;
        Ok(Some(value))
    }

    /// Seals a run's sensitive parameters (canonical JSON) for run `id`.
    pub async fn run_parameters_seal(
        &self,
        ws: WorkspaceId,
        id: RunId,
        parameters: &SecretString,
    ) -> Result<Vec<u8>> {
        let key = self.workspace_key(ws).await?;
        key.seal(&run_binding(ws, id), parameters.expose_secret().as_bytes())
            .map_err(Self::crypto(ws))
    }

    /// Run `id`'s sensitive parameters (a JSON object's text), if it has any: for the
    /// executor that runs it.
    pub async fn run_parameters_reveal(
        &self,
        ws: WorkspaceId,
        id: RunId,
    ) -> Result<Option<SecretString>> {
        let Some(sealed) = self.store.run_sensitive_parameters(ws, id).await? else {
            return Ok(None);
        };
        let key = self.workspace_key(ws).await?;
        key.open_string(&run_binding(ws, id), &sealed)
            .map(Some)
            .map_err(Self::crypto(ws))
    }
}

/// The engine's and executors' view of the vault.
#[async_trait::async_trait]
impl SecretSource for Vault {
    async fn secret(
        &self,
        ws: WorkspaceId,
        name: &Name,
    ) -> Result<Option<SecretString>, SecretsError> {
        self.secret_reveal(ws, name).await.map_err(port_error)
    }

    async fn run_sensitive_parameters(
        &self,
        ws: WorkspaceId,
        run: RunId,
    ) -> Result<Option<SecretString>, SecretsError> {
        self.run_parameters_reveal(ws, run)
            .await
            .map_err(port_error)
    }

    async fn credential(
        &self,
        ws: WorkspaceId,
        name: &Name,
    ) -> Result<Option<(CredentialKind, SecretString)>, SecretsError> {
        let id = match self.store.credential_get_by_name(ws, name).await {
            Ok(c) => c.id,
            Err(ferry_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(port_error(e.into())),
        };
        match self.credential_reveal(ws, id).await {
            Ok((c, material)) => Ok(Some((c.kind, material))),
            // Deleted in between.
            Err(Error::Store(ferry_store::Error::NotFound { .. })) => Ok(None),
            Err(e) => Err(port_error(e)),
        }
    }

    async fn aws_external_id(&self, ws: WorkspaceId) -> Result<Option<String>, SecretsError> {
        match self.store.workspace_settings(ws).await {
            Ok(settings) => Ok(Some(settings.aws_external_id)),
            Err(ferry_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(port_error(e.into())),
        }
    }
}

/// The error with its chain, for the port (none of it holds secret material).
fn port_error(e: Error) -> SecretsError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    SecretsError(text)
}
