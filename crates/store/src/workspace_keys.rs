//! Workspace keys: each workspace's data-encryption key, stored wrapped by a root key. The
//! store never sees a key in the clear; wrapping and unwrapping happen in ferry-crypto.

use chrono::{DateTime, Utc};
use ferry_core::WorkspaceId;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{append, Entry};
use crate::error::{Error, Result};
use crate::models::{Actor, StoredWorkspaceKey};
use crate::store::{is_foreign_key_violation, now, on_pool, on_tx, Store};

#[derive(sqlx::FromRow)]
struct KeyRow {
    workspace_id: Uuid,
    key_id: String,
    root_key_id: String,
    wrapped_key: Vec<u8>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<KeyRow> for StoredWorkspaceKey {
    fn from(r: KeyRow) -> Self {
        StoredWorkspaceKey {
            workspace_id: WorkspaceId(r.workspace_id),
            key_id: r.key_id,
            root_key_id: r.root_key_id,
            wrapped_key: r.wrapped_key,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

macro_rules! columns {
    () => {
        "workspace_id, key_id, root_key_id, wrapped_key, created_at, updated_at"
    };
}

impl Store {
    /// Workspace `ws`'s wrapped key, if it has one yet.
    pub async fn workspace_key_get(&self, ws: WorkspaceId) -> Result<Option<StoredWorkspaceKey>> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM workspace_keys WHERE workspace_id = $1"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<_, KeyRow>(SQL)
            .bind(ws.0)
            .fetch_optional(p)
            .await)?
        .map(Into::into))
    }

    /// Stores workspace `ws`'s first key, unless it has one already; either way returns the
    /// key the workspace has (so two first uses at once agree on one key). `NotFound` if the
    /// workspace does not exist.
    pub async fn workspace_key_create(
        &self,
        ws: WorkspaceId,
        key_id: &str,
        root_key_id: &str,
        wrapped_key: &[u8],
    ) -> Result<StoredWorkspaceKey> {
        const SQL: &str = "INSERT INTO workspace_keys (workspace_id, key_id, root_key_id, \
                           wrapped_key, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
                           ON CONFLICT (workspace_id) DO NOTHING";
        let at = now();
        on_pool!(self, |p| sqlx::query(SQL)
            .bind(ws.0)
            .bind(key_id)
            .bind(root_key_id)
            .bind(wrapped_key)
            .bind(at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                Error::NotFound { kind: "workspace" }
            } else {
                e.into()
            }
        })?;
        self.workspace_key_get(ws).await?.ok_or(Error::NotFound {
            kind: "workspace key",
        })
    }

    /// The workspace keys not wrapped by root key `root_key_id` (those a rotation to it still
    /// has to re-wrap), at most `limit`.
    pub async fn workspace_keys_not_under(
        &self,
        root_key_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredWorkspaceKey>> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM workspace_keys WHERE root_key_id <> $1 ORDER BY workspace_id LIMIT $2"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<_, KeyRow>(SQL)
            .bind(root_key_id)
            .bind(i64::from(limit.max(1)))
            .fetch_all(p)
            .await)?
        .into_iter()
        .map(Into::into)
        .collect())
    }

    /// The distinct root key ids that stored workspace keys name.
    pub async fn workspace_key_root_ids(&self) -> Result<Vec<String>> {
        const SQL: &str = "SELECT DISTINCT root_key_id FROM workspace_keys ORDER BY root_key_id";
        Ok(on_pool!(self, |p| sqlx::query_scalar::<_, String>(SQL)
            .fetch_all(p)
            .await)?)
    }

    /// Replaces workspace `ws`'s wrapped key with the same key wrapped by another root key,
    /// if it is still wrapped by `from_root_key_id` (`Changed` otherwise), and records the
    /// re-wrap in the workspace's audit log. The key id is unchanged, so every sealed value
    /// keeps opening and none is rewritten.
    pub async fn workspace_key_rewrap(
        &self,
        ws: WorkspaceId,
        from_root_key_id: &str,
        to_root_key_id: &str,
        wrapped_key: &[u8],
        actor: Actor,
    ) -> Result<StoredWorkspaceKey> {
        const SQL: &str = concat!(
            "UPDATE workspace_keys SET root_key_id = $1, wrapped_key = $2, updated_at = $3 ",
            "WHERE workspace_id = $4 AND root_key_id = $5 RETURNING ",
            columns!()
        );
        let mut tx = self.begin().await?;
        let row = on_tx!(&mut tx, |c| sqlx::query_as::<_, KeyRow>(SQL)
            .bind(to_root_key_id)
            .bind(wrapped_key)
            .bind(now())
            .bind(ws.0)
            .bind(from_root_key_id)
            .fetch_optional(c)
            .await)?
        .ok_or(Error::Changed {
            kind: "workspace key",
        })?;
        append(
            &mut tx,
            ws,
            Entry::new(
                actor,
                "root_key.rotate",
                "workspace_key",
                json!({"key_id": row.key_id, "from": from_root_key_id, "to": to_root_key_id}),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }
}
