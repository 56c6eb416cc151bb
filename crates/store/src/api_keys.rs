//! API keys: a workspace's bearer tokens, stored only as their HMAC.

use chrono::{DateTime, Utc};
use ferry_core::{ApiKeyId, Role, WorkspaceId};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::models::ApiKey;
use crate::store::{corrupt, is_foreign_key_violation, is_unique_violation, now, on_pool, Store};

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
    /// the hash is already recorded.
    pub async fn api_key_create(
        &self,
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
        on_pool!(self, |p| sqlx::query_as::<_, ApiKeyRow>(SQL)
            .bind(Uuid::new_v4())
            .bind(ws.0)
            .bind(role.as_str())
            .bind(hash)
            .bind(prefix)
            .bind(now())
            .fetch_one(p)
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

    /// Revokes a key of workspace `ws`. Revoking twice keeps the first revocation time.
    pub async fn api_key_revoke(&self, ws: WorkspaceId, id: ApiKeyId) -> Result<ApiKey> {
        const SQL: &str = concat!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) ",
            "WHERE id = $2 AND workspace_id = $3 RETURNING ",
            columns!()
        );
        on_pool!(self, |p| sqlx::query_as::<_, ApiKeyRow>(SQL)
            .bind(now())
            .bind(id.0)
            .bind(ws.0)
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "api key" })?
        .into_model()
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
}
