//! The operator's commands that work on the data directory and the database directly:
//! migrate, bootstrap, root-key rotation, audit verification.

use anyhow::Context;
use ferry_crypto::{Keyring, WrappedKey};
use ferry_store::Store;
use secrecy::ExposeSecret;

use crate::boot::{keyring, local_keyring, open_keyed_store, open_store, pepper};
use crate::Config;

/// What `ferry admin bootstrap` made.
#[derive(Debug)]
pub struct Bootstrapped {
    pub workspace_id: String,
    pub workspace: String,
    pub api_key: String,
}

/// Applies migrations and exits.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    tracing::info!(backend = store.backend().as_str(), "Migrations applied");
    store.close().await;
    Ok(())
}

/// Creates a workspace and its first admin key, directly in the configured database.
pub async fn bootstrap(config: &Config, workspace: &str) -> anyhow::Result<Bootstrapped> {
    let name = ferry_core::Name::parse(workspace)
        .map_err(|e| anyhow::anyhow!("workspace name {workspace:?} {e}"))?;
    let keyring = keyring(config).await?;
    let store = open_keyed_store(config, keyring.as_ref()).await?;
    let pepper = pepper(config)?;
    let ws = match store
        .workspace_create_by(&name, ferry_store::Actor::Cli)
        .await
    {
        Ok(ws) => ws,
        Err(ferry_store::Error::Conflict { .. }) => store.workspace_get_by_name(&name).await?,
        Err(e) => return Err(e.into()),
    };
    let (_, key) = crate::keys::api_key_mint(
        &store,
        &pepper,
        ws.id,
        ferry_core::Role::Admin,
        ferry_store::Actor::Cli,
    )
    .await?;
    store.close().await;
    Ok(Bootstrapped {
        workspace_id: ws.id.to_string(),
        workspace: ws.name.to_string(),
        api_key: key.expose_secret().to_owned(),
    })
}

/// What a root-key rotation did.
#[derive(Debug)]
pub struct RootKeyRotation {
    pub old_key_id: String,
    pub new_key_id: String,
    /// Workspace keys re-wrapped under the new root key.
    pub rewrapped: usize,
    /// Retired root keys whose files were removed (no workspace key needs them any more).
    pub retired: Vec<String>,
}

/// Rotates the root key. Local: a new root key replaces the current one (kept as
/// `root-key.<id>.retired` meanwhile), every workspace key is re-wrapped under it (recorded
/// in each workspace's audit log), and retired keys no workspace key needs are removed. KMS:
/// the operator has pointed `FERRY_ROOT_KEY` at the new key; every workspace key not yet under
/// it is re-wrapped under it (the earlier key only has to decrypt).
/// The OIDC issuer's keys and the audit log's key are re-wrapped the same way.
/// Sealed credentials, secrets and parameters are not rewritten: they keep opening, because
/// the workspace keys themselves do not change. Safe to run again after an interruption.
pub async fn root_key_rotate(config: &Config) -> anyhow::Result<RootKeyRotation> {
    if config.root_key.is_some() {
        let keyring = keyring(config).await?;
        let store = open_keyed_store(config, keyring.as_ref()).await?;
        let new_key_id = keyring.key_id();
        tracing::info!(new_key_id = %new_key_id, "Re-wrapping workspace keys under the KMS root key");
        let (rewrapped, old_ids) = rewrap_all(&store, keyring.as_ref(), &new_key_id).await?;
        crate::issuer::rewrap_all(&store, keyring.as_ref(), &new_key_id).await?;
        crate::audit_key::rewrap(&store, keyring.as_ref(), &new_key_id).await?;
        store.close().await;
        tracing::info!(new_key_id = %new_key_id, rewrapped, "Root key rotated");
        return Ok(RootKeyRotation {
            old_key_id: if old_ids.is_empty() {
                new_key_id.clone()
            } else {
                old_ids.into_iter().collect::<Vec<_>>().join(", ")
            },
            new_key_id,
            rewrapped,
            retired: Vec::new(),
        });
    }
    let keyring = local_keyring(config)?;
    // The audit key is unwrapped under the current root key: the re-wraps below are audited.
    let store = open_keyed_store(config, &keyring).await?;
    let (lock, old_key_id, new_key_id) = keyring.rotate().context("rotating the root key")?;
    tracing::info!(old_key_id = %old_key_id, new_key_id = %new_key_id, "Root key replaced; re-wrapping workspace keys");
    let (rewrapped, _) = rewrap_all(&store, &keyring, &new_key_id).await?;
    crate::issuer::rewrap_all(&store, &keyring, &new_key_id).await?;
    crate::audit_key::rewrap(&store, &keyring, &new_key_id).await?;
    let mut in_use = store.workspace_key_root_ids().await?;
    in_use.extend(store.issuer_key_root_ids().await?);
    in_use.extend(store.audit_key_get().await?.map(|k| k.root_key_id));
    let retired = keyring
        .retire_unused(&in_use)
        .context("removing retired root keys")?;
    drop(lock);
    store.close().await;
    tracing::info!(new_key_id = %new_key_id, rewrapped, "Root key rotated");
    Ok(RootKeyRotation {
        old_key_id,
        new_key_id,
        rewrapped,
        retired,
    })
}

/// Re-wraps every workspace key not under `new_key_id` with `keyring` (whose wraps must be
/// under `new_key_id`); returns how many it re-wrapped and the root key ids they were under.
async fn rewrap_all(
    store: &Store,
    keyring: &dyn Keyring,
    new_key_id: &str,
) -> anyhow::Result<(usize, std::collections::BTreeSet<String>)> {
    let mut rewrapped = 0;
    let mut old_ids = std::collections::BTreeSet::new();
    loop {
        let batch = store.workspace_keys_not_under(new_key_id, 100).await?;
        if batch.is_empty() {
            break;
        }
        for row in batch {
            let ws = row.workspace_id;
            let wrapped = WrappedKey {
                root_key_id: row.root_key_id.clone(),
                blob: row.wrapped_key,
            };
            let blob = rewrap_key(
                keyring,
                ws,
                &wrapped,
                new_key_id,
                &format!("the key of workspace {ws}"),
            )
            .await?;
            match store
                .workspace_key_rewrap(
                    ws,
                    &row.root_key_id,
                    new_key_id,
                    &blob,
                    ferry_store::Actor::Cli,
                )
                .await
            {
                Ok(_) => {
                    rewrapped += 1;
                    old_ids.insert(row.root_key_id);
                }
                // Re-wrapped by someone else meanwhile; the next batch shows what is left.
                Err(ferry_store::Error::Changed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((rewrapped, old_ids))
}

/// `wrapped` (a key wrapped for `ws`) unwrapped and wrapped again by `keyring`, whose wraps
/// must be under `new_key_id`: the one step of every root-key rotation (workspace keys, the
/// issuer's keys, the audit key). `what` names the key in errors.
pub(crate) async fn rewrap_key(
    keyring: &dyn Keyring,
    ws: ferry_core::WorkspaceId,
    wrapped: &WrappedKey,
    new_key_id: &str,
    what: &str,
) -> anyhow::Result<Vec<u8>> {
    let key = keyring
        .unwrap(ws, wrapped)
        .await
        .with_context(|| format!("unwrapping {what}"))?;
    let rewrap = keyring
        .wrap(ws, &key)
        .await
        .with_context(|| format!("wrapping {what}"))?;
    if rewrap.root_key_id != new_key_id {
        anyhow::bail!(
            "the root key changed to {} during the rotation to {new_key_id}; run the rotation again",
            rewrap.root_key_id
        );
    }
    Ok(rewrap.blob)
}

/// Verifies the audit chain of workspace `workspace` (every workspace when `None`) under the
/// audit key, which the root key unwraps (so this needs the same root-key configuration as
/// `ferry serve`).
pub async fn audit_verify(
    config: &Config,
    workspace: Option<&str>,
) -> anyhow::Result<Vec<(ferry_store::Workspace, ferry_store::AuditReport)>> {
    let keyring = keyring(config).await?;
    let store = open_keyed_store(config, keyring.as_ref()).await?;
    let workspaces = match workspace {
        Some(name) => {
            let name = ferry_core::Name::parse(name)
                .map_err(|e| anyhow::anyhow!("workspace name {name:?} {e}"))?;
            match store.workspace_get_by_name(&name).await {
                Ok(ws) => vec![ws],
                Err(ferry_store::Error::NotFound { .. }) => {
                    anyhow::bail!("there is no workspace named {name:?}")
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => store.workspaces_list().await?,
    };
    let mut reports = Vec::with_capacity(workspaces.len());
    for ws in workspaces {
        let report = store.audit_verify(ws.id).await?;
        reports.push((ws, report));
    }
    store.close().await;
    Ok(reports)
}
