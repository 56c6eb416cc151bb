//! API keys: a workspace's bearer tokens, stored only as their HMAC.

use chrono::{DateTime, Utc};
use ferry_core::{ApiKeyId, IpAllowList, Role, WorkspaceId};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{append, Entry};
use crate::error::{Error, Result};
use crate::models::{Actor, ApiKey};
use crate::store::{
    corrupt, is_foreign_key_violation, is_unique_violation, now, on_pool, on_tx, Store, Tx,
};

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: Uuid,
    workspace_id: Uuid,
    role: String,
    prefix: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyRow {
    fn into_model(self) -> Result<ApiKey> {
        Ok(ApiKey {
            id: ApiKeyId(self.id),
            workspace_id: WorkspaceId(self.workspace_id),
            role: Role::parse(&self.role).ok_or_else(|| corrupt("api key role", &self.role))?,
            prefix: self.prefix,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

macro_rules! columns {
    () => {
        "id, workspace_id, role, prefix, created_at, revoked_at"
    };
}

impl Store {
    /// Records a new key of workspace `ws`. `hash` is the key's HMAC; `prefix` its first
    /// characters, shown in lists. `NotFound` if the workspace does not exist, `Conflict` if
    /// the hash is already recorded. Records nothing in the audit log: the API uses
    /// [`Store::api_key_create_by`].
    pub async fn api_key_create(
        &self,
        ws: WorkspaceId,
        role: Role,
        hash: &[u8],
        prefix: &str,
    ) -> Result<ApiKey> {
        let mut tx = self.begin().await?;
        let key = insert_key(&mut tx, ws, role, hash, prefix).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// [`Store::api_key_create`] as `actor`, recorded in the audit log.
    pub async fn api_key_create_by(
        &self,
        ws: WorkspaceId,
        role: Role,
        hash: &[u8],
        prefix: &str,
        actor: Actor,
    ) -> Result<ApiKey> {
        let mut tx = self.begin().await?;
        let key = insert_key(&mut tx, ws, role, hash, prefix).await?;
        append(
            &mut tx,
            ws,
            Entry::new(
                actor,
                "api_key.create",
                format!("api_key:{}", key.id),
                json!({"id": key.id.to_string(), "role": key.role.as_str()}),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// The key with this HMAC, in whichever workspace it belongs to (this is how a request
    /// is authenticated). A revoked key is returned with `revoked_at` set: the caller refuses
    /// it.
    pub async fn api_key_get_by_hash(&self, hash: &[u8]) -> Result<ApiKey> {
        const SQL: &str = concat!("SELECT ", columns!(), " FROM api_keys WHERE hash = $1");
        on_pool!(self, |p| sqlx::query_as::<_, ApiKeyRow>(SQL)
            .bind(hash)
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "api key" })?
        .into_model()
    }

    /// [`Store::api_key_get_by_hash`] with the IP allow-list of the key's workspace: what a
    /// request needs to be let in, in one read.
    pub async fn api_key_authenticate(&self, hash: &[u8]) -> Result<(ApiKey, IpAllowList)> {
        const SQL: &str = "SELECT k.id, k.workspace_id, k.role, k.prefix, k.created_at, \
                           k.revoked_at, w.ip_allowlist FROM api_keys k \
                           JOIN workspaces w ON w.id = k.workspace_id WHERE k.hash = $1";
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            key: ApiKeyRow,
            ip_allowlist: String,
        }
        let row = on_pool!(self, |p| sqlx::query_as::<_, Row>(SQL)
            .bind(hash)
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "api key" })?;
        Ok((
            row.key.into_model()?,
            crate::workspaces::parse_allowlist(&row.ip_allowlist)?,
        ))
    }

    /// Revokes a key of workspace `ws`. Revoking twice keeps the first revocation time.
    pub async fn api_key_revoke(&self, ws: WorkspaceId, id: ApiKeyId) -> Result<ApiKey> {
        let mut tx = self.begin().await?;
        let key = revoke_key(&mut tx, ws, id).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// [`Store::api_key_revoke`] as `actor`, recorded in the audit log.
    pub async fn api_key_revoke_by(
        &self,
        ws: WorkspaceId,
        id: ApiKeyId,
        actor: Actor,
    ) -> Result<ApiKey> {
        let mut tx = self.begin().await?;
        let key = revoke_key(&mut tx, ws, id).await?;
        append(
            &mut tx,
            ws,
            Entry::new(
                actor,
                "api_key.revoke",
                format!("api_key:{id}"),
                json!({"id": id.to_string(), "role": key.role.as_str()}),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// The workspace's keys, revoked ones included, oldest first.
    pub async fn api_keys_list(&self, ws: WorkspaceId) -> Result<Vec<ApiKey>> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys WHERE workspace_id = $1 ORDER BY created_at, id"
        );
        on_pool!(self, |p| sqlx::query_as::<_, ApiKeyRow>(SQL)
            .bind(ws.0)
            .fetch_all(p)
            .await)?
        .into_iter()
        .map(ApiKeyRow::into_model)
        .collect()
    }

    /// Whether key `id` of workspace `ws` still exists, unrevoked, in a workspace that still
    /// exists: what a long-lived answer (a followed log) re-checks while it streams.
    pub async fn api_key_is_active(&self, ws: WorkspaceId, id: ApiKeyId) -> Result<bool> {
        const SQL: &str = "SELECT COUNT(*) FROM api_keys k JOIN workspaces w \
                           ON w.id = k.workspace_id \
                           WHERE k.id = $1 AND k.workspace_id = $2 AND k.revoked_at IS NULL";
        let n: i64 = on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(id.0)
            .bind(ws.0)
            .fetch_one(p)
            .await)?;
        Ok(n > 0)
    }
}

async fn insert_key(
    tx: &mut Tx,
    ws: WorkspaceId,
    role: Role,
    hash: &[u8],
    prefix: &str,
) -> Result<ApiKey> {
    const SQL: &str = concat!(
        "INSERT INTO api_keys (id, workspace_id, role, hash, prefix, created_at) ",
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
        columns!()
    );
    on_tx!(tx, |c| sqlx::query_as::<_, ApiKeyRow>(SQL)
        .bind(Uuid::new_v4())
        .bind(ws.0)
        .bind(role.as_str())
        .bind(hash)
        .bind(prefix)
        .bind(now())
        .fetch_one(c)
        .await)
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::Conflict {
                kind: "api key",
                name: prefix.to_owned(),
            }
        } else if is_foreign_key_violation(&e) {
            Error::NotFound { kind: "workspace" }
        } else {
            e.into()
        }
    })?
    .into_model()
}

async fn revoke_key(tx: &mut Tx, ws: WorkspaceId, id: ApiKeyId) -> Result<ApiKey> {
    const SQL: &str = concat!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) ",
        "WHERE id = $2 AND workspace_id = $3 RETURNING ",
        columns!()
    );
    on_tx!(tx, |c| sqlx::query_as::<_, ApiKeyRow>(SQL)
        .bind(now())
        .bind(id.0)
        .bind(ws.0)
        .fetch_optional(c)
        .await)?
    .ok_or(Error::NotFound { kind: "api key" })?
    .into_model()
}
