//! The audit log's key: 32 random bytes under which every audit entry is chained
//! (HMAC-SHA-256; see `ferry_store`'s `audit.rs`), made once per database, stored wrapped by
//! the root key (`audit_key` table), unwrapped at start-up by every command that writes or
//! verifies audit entries and handed to the store, and re-wrapped by root-key rotation.
//!
//! It is wrapped directly by the keyring (it is a key, as a workspace key is), for a reserved
//! id of its own ([`AUDIT`]) rather than a workspace's or the issuer keys' nil id, so its
//! wrapped form cannot pass for theirs or theirs for it.

use anyhow::Context;
use ferry_core::WorkspaceId;
use ferry_crypto::{Keyring, WrappedKey};
use ferry_store::{AuditKey, NewAuditKey, Store};

/// The id the keyring wraps the audit key for: no workspace's (those are random v4 UUIDs) and
/// not the issuer keys' (nil).
pub(crate) const AUDIT: WorkspaceId = WorkspaceId(uuid::Uuid::from_u128(1));

/// Gives `store` the database's audit key, unwrapped by `keyring`; makes it first if there is
/// none (the first start of a version with it, which also re-seals the chains an earlier
/// version wrote: see `ferry_store::Store::audit_key_create`).
pub(crate) async fn install(store: &Store, keyring: &dyn Keyring) -> anyhow::Result<()> {
    let stored = match store.audit_key_get().await? {
        Some(stored) => stored,
        None => {
            create(store, keyring).await?;
            store
                .audit_key_get()
                .await?
                .context("the audit key was made but cannot be read back")?
        }
    };
    let wrapped = WrappedKey {
        root_key_id: stored.root_key_id,
        blob: stored.wrapped_key,
    };
    let key = keyring.unwrap(AUDIT, &wrapped).await.with_context(|| {
        format!(
            "unwrapping the audit log's key (wrapped by root key {})",
            wrapped.root_key_id
        )
    })?;
    store.set_audit_key(AuditKey::from_bytes(key.bytes())?)?;
    Ok(())
}

/// Makes and stores the audit key (unless another process stores one first).
async fn create(store: &Store, keyring: &dyn Keyring) -> anyhow::Result<()> {
    let key = ferry_crypto::Key::generate();
    let wrapped = keyring
        .wrap(AUDIT, &key)
        .await
        .context("wrapping the new audit log key")?;
    let audit_key = AuditKey::from_bytes(key.bytes())?;
    let new = NewAuditKey {
        root_key_id: wrapped.root_key_id.clone(),
        wrapped_key: wrapped.blob,
    };
    let Some(resealed) = store.audit_key_create(&new, &audit_key).await? else {
        // Another process made it meanwhile; the caller reads and uses that one.
        return Ok(());
    };
    tracing::info!(root_key_id = %wrapped.root_key_id, "Audit log key created");
    for r in resealed {
        // Loud on purpose: outside a first start after an upgrade, a re-seal means the key's
        // row was removed (see the store's audit_key.rs).
        match &r.problem {
            None => tracing::warn!(
                workspace_id = %r.workspace_id,
                entries = r.resealed,
                "Audit chain from before the audit key re-sealed under it"
            ),
            Some(p) => tracing::error!(
                workspace_id = %r.workspace_id,
                entries = r.resealed,
                first_broken = p.seq,
                reason = %p.reason,
                "Audit chain from before the audit key was already broken: re-sealed up to the break, which `ferry admin audit verify` keeps reporting"
            ),
        }
    }
    Ok(())
}

/// Re-wraps the audit key under `new_key_id` with `keyring` if it is under another root key
/// (root-key rotation); returns whether it did.
pub(crate) async fn rewrap(
    store: &Store,
    keyring: &dyn Keyring,
    new_key_id: &str,
) -> anyhow::Result<bool> {
    let Some(stored) = store.audit_key_get().await? else {
        return Ok(false);
    };
    if stored.root_key_id == new_key_id {
        return Ok(false);
    }
    let wrapped = WrappedKey {
        root_key_id: stored.root_key_id.clone(),
        blob: stored.wrapped_key,
    };
    let blob =
        crate::admin::rewrap_key(keyring, AUDIT, &wrapped, new_key_id, "the audit key").await?;
    match store
        .audit_key_rewrap(&stored.root_key_id, new_key_id, &blob)
        .await
    {
        Ok(()) => Ok(true),
        // Re-wrapped by a concurrent rotation meanwhile.
        Err(ferry_store::Error::Changed { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
