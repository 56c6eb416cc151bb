//! Workspace secrets: named values granted to runs. The store keeps each value sealed by
//! ferry-crypto (bound to the secret's id and version) and hands out only metadata, except
//! through [`Store::secret_sealed`] for whoever holds the workspace key.

use chrono::{DateTime, Utc};
use ferry_core::{Name, SecretId, WorkspaceId};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{append, Entry};
use crate::error::{Error, Result};
use crate::models::{Actor, Secret};
use crate::store::{
    corrupt, is_foreign_key_violation, is_unique_violation, now, on_pool, on_tx, to_u32, Store,
};

#[derive(sqlx::FromRow)]
struct SecretRow {
    id: Uuid,
    workspace_id: Uuid,
    name: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl SecretRow {
    fn into_model(self) -> Result<Secret> {
        Ok(Secret {
            id: SecretId(self.id),
            workspace_id: WorkspaceId(self.workspace_id),
            name: Name::parse(&self.name).map_err(|e| corrupt("secret name", e))?,
            version: to_u32("secret version", self.version)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SealedRow {
    #[sqlx(flatten)]
    row: SecretRow,
    sealed: Vec<u8>,
}

macro_rules! columns {
    () => {
        "id, workspace_id, name, version, created_at, updated_at"
    };
}

fn audit(action: &'static str, s: &Secret, actor: Actor) -> Entry {
    Entry::new(
        actor,
        action,
        format!("secret:{}", s.name),
        json!({"id": s.id.to_string(), "version": s.version}),
    )
}

impl Store {
    /// Creates secret `name` (version 1) with its value sealed for (workspace, `id`, version
    /// 1). `Conflict` if the name is taken; recorded in the audit log.
    pub async fn secret_create(
        &self,
        ws: WorkspaceId,
        id: SecretId,
        name: &Name,
        sealed: &[u8],
        actor: Actor,
    ) -> Result<Secret> {
        const SQL: &str = concat!(
            "INSERT INTO secrets (id, workspace_id, name, version, sealed, created_at, updated_at) ",
            "VALUES ($1, $2, $3, 1, $4, $5, $5) RETURNING ",
            columns!()
        );
        let mut tx = self.begin().await?;
        let secret = on_tx!(&mut tx, |c| sqlx::query_as::<_, SecretRow>(SQL)
            .bind(id.0)
            .bind(ws.0)
            .bind(name.as_str())
            .bind(sealed)
            .bind(now())
            .fetch_one(c)
            .await)
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict {
                    kind: "secret",
                    name: name.to_string(),
                }
            } else if is_foreign_key_violation(&e) {
                Error::NotFound { kind: "workspace" }
            } else {
                e.into()
            }
        })?
        .into_model()?;
        append(&mut tx, ws, audit("secret.create", &secret, actor)).await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// Replaces secret `id`'s value with one sealed for `version`, if the stored version is
    /// `version - 1` (`Changed` otherwise: another write won). Recorded in the audit log.
    pub async fn secret_replace(
        &self,
        ws: WorkspaceId,
        id: SecretId,
        version: u32,
        sealed: &[u8],
        actor: Actor,
    ) -> Result<Secret> {
        const SQL: &str = concat!(
            "UPDATE secrets SET version = $1, sealed = $2, updated_at = $3 ",
            "WHERE workspace_id = $4 AND id = $5 AND version = $6 RETURNING ",
            columns!()
        );
        let mut tx = self.begin().await?;
        let row = on_tx!(&mut tx, |c| sqlx::query_as::<_, SecretRow>(SQL)
            .bind(i64::from(version))
            .bind(sealed)
            .bind(now())
            .bind(ws.0)
            .bind(id.0)
            .bind(i64::from(version) - 1)
            .fetch_optional(c)
            .await)?;
        let secret = row.ok_or(Error::Changed { kind: "secret" })?.into_model()?;
        append(&mut tx, ws, audit("secret.update", &secret, actor)).await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// Secret `name` of workspace `ws` (metadata only).
    pub async fn secret_get(&self, ws: WorkspaceId, name: &Name) -> Result<Secret> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM secrets WHERE workspace_id = $1 AND name = $2"
        );
        on_pool!(self, |p| sqlx::query_as::<_, SecretRow>(SQL)
            .bind(ws.0)
            .bind(name.as_str())
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "secret" })?
        .into_model()
    }

    /// The workspace's secrets (metadata only), by name.
    pub async fn secrets_list(&self, ws: WorkspaceId) -> Result<Vec<Secret>> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM secrets WHERE workspace_id = $1 ORDER BY name"
        );
        on_pool!(self, |p| sqlx::query_as::<_, SecretRow>(SQL)
            .bind(ws.0)
            .fetch_all(p)
            .await)?
        .into_iter()
        .map(SecretRow::into_model)
        .collect()
    }

    /// Secret `name` and its sealed value, read together; `None` if the workspace has no
    /// such secret.
    pub async fn secret_sealed(
        &self,
        ws: WorkspaceId,
        name: &Name,
    ) -> Result<Option<(Secret, Vec<u8>)>> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            ", sealed FROM secrets WHERE workspace_id = $1 AND name = $2"
        );
        on_pool!(self, |p| sqlx::query_as::<_, SealedRow>(SQL)
            .bind(ws.0)
            .bind(name.as_str())
            .fetch_optional(p)
            .await)?
        .map(|r| Ok((r.row.into_model()?, r.sealed)))
        .transpose()
    }

    /// Deletes secret `name`; recorded in the audit log.
    pub async fn secret_delete(&self, ws: WorkspaceId, name: &Name, actor: Actor) -> Result<()> {
        const SQL: &str = concat!(
            "DELETE FROM secrets WHERE workspace_id = $1 AND name = $2 RETURNING ",
            columns!()
        );
        let mut tx = self.begin().await?;
        let secret = on_tx!(&mut tx, |c| sqlx::query_as::<_, SecretRow>(SQL)
            .bind(ws.0)
            .bind(name.as_str())
            .fetch_optional(c)
            .await)?
        .ok_or(Error::NotFound { kind: "secret" })?
        .into_model()?;
        append(&mut tx, ws, audit("secret.delete", &secret, actor)).await?;
        tx.commit().await
    }
}
