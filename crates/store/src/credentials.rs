//! Credentials: a workspace's cloud identities. The store keeps their non-secret metadata,
//! a fingerprint and the material sealed by ferry-crypto; it never sees the material itself.
//!
//! Pools name their credential; deleting a credential is refused while a pool names it, and
//! creating a pool locks the credential it names (see [`Store::pool_create_by`]), so the two
//! cannot cross.

use chrono::{DateTime, Utc};
use ferry_core::{CredentialId, CredentialKind, Name, WorkspaceId};
use serde_json::{json, Value};
use sqlx::types::Json;
use uuid::Uuid;

use crate::audit::{append, Entry};
use crate::error::{Error, Result};
use crate::models::{Actor, Credential, CredentialRotation, NewCredential};
use crate::store::{
    corrupt, is_foreign_key_violation, is_unique_violation, now, on_pool, on_tx, to_u32, Store,
};

#[derive(sqlx::FromRow)]
struct CredentialRow {
    id: Uuid,
    workspace_id: Uuid,
    name: String,
    kind: String,
    metadata: Json<Value>,
    fingerprint: String,
    version: i64,
    validation: Option<Json<Value>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl CredentialRow {
    fn into_model(self) -> Result<Credential> {
        Ok(Credential {
            id: CredentialId(self.id),
            workspace_id: WorkspaceId(self.workspace_id),
            name: Name::parse(&self.name).map_err(|e| corrupt("credential name", e))?,
            kind: CredentialKind::parse(&self.kind)
                .ok_or_else(|| corrupt("credential kind", &self.kind))?,
            metadata: self.metadata.0,
            fingerprint: self.fingerprint,
            version: to_u32("credential version", self.version)?,
            validation: self.validation.map(|v| v.0),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SealedRow {
    #[sqlx(flatten)]
    row: CredentialRow,
    sealed: Vec<u8>,
}

macro_rules! columns {
    () => {
        "id, workspace_id, name, kind, metadata, fingerprint, version, validation, created_at, \
         updated_at"
    };
}

fn target(name: &Name) -> String {
    format!("credential:{name}")
}

impl Store {
    /// Creates a credential (version 1) and records it in the audit log. `Conflict` if the
    /// name is taken in the workspace, `NotFound` if the workspace does not exist.
    pub async fn credential_create(
        &self,
        ws: WorkspaceId,
        new: &NewCredential,
        actor: Actor,
    ) -> Result<Credential> {
        const SQL: &str = concat!(
            "INSERT INTO credentials (id, workspace_id, name, kind, metadata, fingerprint, ",
            "version, sealed, validation, created_at, updated_at) ",
            "VALUES ($1, $2, $3, $4, $5, $6, 1, $7, NULL, $8, $8) RETURNING ",
            columns!()
        );
        let mut tx = self.begin().await?;
        let row = on_tx!(&mut tx, |c| sqlx::query_as::<_, CredentialRow>(SQL)
            .bind(new.id.0)
            .bind(ws.0)
            .bind(new.name.as_str())
            .bind(new.kind.as_str())
            .bind(Json(&new.metadata))
            .bind(&new.fingerprint)
            .bind(&new.sealed)
            .bind(now())
            .fetch_one(c)
            .await)
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict {
                    kind: "credential",
                    name: new.name.to_string(),
                }
            } else if is_foreign_key_violation(&e) {
                Error::NotFound { kind: "workspace" }
            } else {
                e.into()
            }
        })?;
        let credential = row.into_model()?;
        append(
            &mut tx,
            ws,
            Entry::new(
                actor,
                "credential.create",
                target(&credential.name),
                json!({
                    "id": credential.id.to_string(),
                    "kind": credential.kind.as_str(),
                    "fingerprint": credential.fingerprint,
                    "version": credential.version,
                }),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(credential)
    }

    /// A credential of workspace `ws`; `NotFound` if it is not there (or is another's).
    pub async fn credential_get(&self, ws: WorkspaceId, id: CredentialId) -> Result<Credential> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM credentials WHERE workspace_id = $1 AND id = $2"
        );
        on_pool!(self, |p| sqlx::query_as::<_, CredentialRow>(SQL)
            .bind(ws.0)
            .bind(id.0)
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "credential" })?
        .into_model()
    }

    /// A credential of workspace `ws` by name.
    pub async fn credential_get_by_name(&self, ws: WorkspaceId, name: &Name) -> Result<Credential> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM credentials WHERE workspace_id = $1 AND name = $2"
        );
        on_pool!(self, |p| sqlx::query_as::<_, CredentialRow>(SQL)
            .bind(ws.0)
            .bind(name.as_str())
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "credential" })?
        .into_model()
    }

    /// The workspace's credentials, by name.
    pub async fn credentials_list(&self, ws: WorkspaceId) -> Result<Vec<Credential>> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM credentials WHERE workspace_id = $1 ORDER BY name"
        );
        on_pool!(self, |p| sqlx::query_as::<_, CredentialRow>(SQL)
            .bind(ws.0)
            .fetch_all(p)
            .await)?
        .into_iter()
        .map(CredentialRow::into_model)
        .collect()
    }

    /// A credential and its sealed material, read together (so the version is the one the
    /// material was sealed for), for opening by whoever holds the workspace key.
    pub async fn credential_sealed(
        &self,
        ws: WorkspaceId,
        id: CredentialId,
    ) -> Result<(Credential, Vec<u8>)> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            ", sealed FROM credentials WHERE workspace_id = $1 AND id = $2"
        );
        let row = on_pool!(self, |p| sqlx::query_as::<_, SealedRow>(SQL)
            .bind(ws.0)
            .bind(id.0)
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "credential" })?;
        Ok((row.row.into_model()?, row.sealed))
    }

    /// Replaces a credential's material (a rotation): same id, name and kind, the next
    /// version. `Changed` if the stored version is not `rotation.version - 1` (another
    /// rotation won); recorded in the audit log.
    pub async fn credential_rotate(
        &self,
        ws: WorkspaceId,
        id: CredentialId,
        rotation: &CredentialRotation,
        actor: Actor,
    ) -> Result<Credential> {
        const SQL: &str = concat!(
            "UPDATE credentials SET metadata = $1, fingerprint = $2, version = $3, sealed = $4, ",
            "validation = NULL, updated_at = $5 ",
            "WHERE workspace_id = $6 AND id = $7 AND version = $8 RETURNING ",
            columns!()
        );
        let mut tx = self.begin().await?;
        let row = on_tx!(&mut tx, |c| sqlx::query_as::<_, CredentialRow>(SQL)
            .bind(Json(&rotation.metadata))
            .bind(&rotation.fingerprint)
            .bind(i64::from(rotation.version))
            .bind(&rotation.sealed)
            .bind(now())
            .bind(ws.0)
            .bind(id.0)
            .bind(i64::from(rotation.version) - 1)
            .fetch_optional(c)
            .await)?;
        let Some(row) = row else {
            drop(tx);
            // Tell a missing credential from a lost race.
            self.credential_get(ws, id).await?;
            return Err(Error::Changed { kind: "credential" });
        };
        let credential = row.into_model()?;
        append(
            &mut tx,
            ws,
            Entry::new(
                actor,
                "credential.rotate",
                target(&credential.name),
                json!({
                    "id": credential.id.to_string(),
                    "kind": credential.kind.as_str(),
                    "fingerprint": credential.fingerprint,
                    "version": credential.version,
                }),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(credential)
    }

    /// Records the outcome of validating version `version` of a credential (kept only while
    /// that version is current: a rotation meanwhile makes it `Changed`). Audited.
    pub async fn credential_set_validation(
        &self,
        ws: WorkspaceId,
        id: CredentialId,
        version: u32,
        validation: &Value,
        actor: Actor,
    ) -> Result<Credential> {
        const SQL: &str = concat!(
            "UPDATE credentials SET validation = $1 ",
            "WHERE workspace_id = $2 AND id = $3 AND version = $4 RETURNING ",
            columns!()
        );
        let mut tx = self.begin().await?;
        let row = on_tx!(&mut tx, |c| sqlx::query_as::<_, CredentialRow>(SQL)
            .bind(Json(validation))
            .bind(ws.0)
            .bind(id.0)
            .bind(i64::from(version))
            .fetch_optional(c)
            .await)?;
        let Some(row) = row else {
            drop(tx);
            self.credential_get(ws, id).await?;
            return Err(Error::Changed { kind: "credential" });
        };
        let credential = row.into_model()?;
        append(
            &mut tx,
            ws,
            Entry::new(
                actor,
                "credential.validate",
                target(&credential.name),
                json!({
                    "id": credential.id.to_string(),
                    "version": credential.version,
                    "ok": validation.get("ok").cloned().unwrap_or(Value::Null),
                }),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(credential)
    }

    /// Deletes a credential; refused with `InUse`, naming them, while pools use it. Recorded
    /// in the audit log.
    pub async fn credential_delete(
        &self,
        ws: WorkspaceId,
        id: CredentialId,
        actor: Actor,
    ) -> Result<()> {
        const GET: &str = "SELECT name, kind FROM credentials WHERE workspace_id = $1 AND id = $2";
        const USERS: &str =
            "SELECT name FROM pools WHERE workspace_id = $1 AND credential = $2 ORDER BY name";
        const DELETE: &str = "DELETE FROM credentials WHERE workspace_id = $1 AND id = $2";
        let mut tx = self.begin().await?;
        // FOR UPDATE waits for pool creations holding the row FOR KEY SHARE.
        let get = tx.locking(GET, "FOR UPDATE");
        let found: Option<(String, String)> = on_tx!(&mut tx, |c| sqlx::query_as(&get)
            .bind(ws.0)
            .bind(id.0)
            .fetch_optional(c)
            .await)?;
        let (name, kind) = found.ok_or(Error::NotFound { kind: "credential" })?;
        let users: Vec<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(USERS)
            .bind(ws.0)
            .bind(&name)
            .fetch_all(c)
            .await)?;
        if !users.is_empty() {
            let list = users
                .iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let noun = if users.len() == 1 { "pool" } else { "pools" };
            return Err(Error::InUse(format!(
                "credential \"{name}\" is used by {noun} {list}; delete the {noun} first \
                 (to replace the credential's material instead, rotate it)"
            )));
        }
        on_tx!(&mut tx, |c| sqlx::query(DELETE)
            .bind(ws.0)
            .bind(id.0)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        append(
            &mut tx,
            ws,
            Entry::new(
                actor,
                "credential.delete",
                format!("credential:{name}"),
                json!({"id": id.to_string(), "kind": kind}),
            ),
        )
        .await?;
        tx.commit().await
    }
}
