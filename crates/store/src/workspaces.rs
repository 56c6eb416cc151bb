//! Workspaces: the tenants, created and listed by the internal API only, and their settings
//! (log storage, the AWS external id, the IP allow-list).

use chrono::{DateTime, Utc};
use ferry_core::{Cidrs, IpAllowList, Name, WorkspaceId};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{append, Entry};
use crate::error::{Error, Result};
use crate::models::{Actor, Workspace, WorkspaceSettings};
use crate::store::{corrupt, is_unique_violation, now, on_pool, on_tx, Store, Tx};

#[derive(sqlx::FromRow)]
struct WorkspaceRow {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

impl WorkspaceRow {
    fn into_model(self) -> Result<Workspace> {
        Ok(Workspace {
            id: WorkspaceId(self.id),
            name: Name::parse(&self.name).map_err(|e| corrupt("workspace name", e))?,
            created_at: self.created_at,
        })
    }
}

/// The stored form of an IP allow-list: a JSON array of canonical CIDR strings.
pub(crate) fn parse_allowlist(text: &str) -> Result<IpAllowList> {
    let cidrs: Vec<String> =
        serde_json::from_str(text).map_err(|e| corrupt("workspace ip allow-list", e))?;
    Cidrs::parse(&cidrs)
        .map(IpAllowList::new)
        .map_err(|e| corrupt("workspace ip allow-list", e))
}

/// A fresh AWS external id: `ferry-` and 122 random bits in hex (AWS allows 2-1224 characters
/// of `[\w+=,.@:/-]`).
fn new_external_id() -> String {
    format!("ferry-{}", Uuid::new_v4().simple())
}

async fn insert_workspace(tx: &mut Tx, name: &Name) -> Result<Workspace> {
    const SQL: &str = "INSERT INTO workspaces (id, name, created_at, aws_external_id) \
                       VALUES ($1, $2, $3, $4) RETURNING id, name, created_at";
    let row = on_tx!(tx, |c| sqlx::query_as::<_, WorkspaceRow>(SQL)
        .bind(Uuid::new_v4())
        .bind(name.as_str())
        .bind(now())
        .bind(new_external_id())
        .fetch_one(c)
        .await)
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::Conflict {
                kind: "workspace",
                name: name.to_string(),
            }
        } else {
            e.into()
        }
    })?;
    row.into_model()
}

impl Store {
    /// Creates a workspace (with its AWS external id); `Conflict` if the name is taken.
    /// Records nothing in the audit log: see [`Store::workspace_create_by`].
    pub async fn workspace_create(&self, name: &Name) -> Result<Workspace> {
        let mut tx = self.begin().await?;
        let ws = insert_workspace(&mut tx, name).await?;
        tx.commit().await?;
        Ok(ws)
    }

    /// [`Store::workspace_create`], recorded in the new workspace's audit log as `actor`'s.
    pub async fn workspace_create_by(&self, name: &Name, actor: Actor) -> Result<Workspace> {
        let mut tx = self.begin().await?;
        let ws = insert_workspace(&mut tx, name).await?;
        append(
            &mut tx,
            ws.id,
            Entry::new(
                actor,
                "workspace.create",
                format!("workspace:{}", ws.name),
                json!({"id": ws.id.to_string(), "name": ws.name.as_str()}),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(ws)
    }

    /// Workspace `ws`'s settings. Gives a workspace made before external ids existed its
    /// external id on first read.
    pub async fn workspace_settings(&self, ws: WorkspaceId) -> Result<WorkspaceSettings> {
        const SQL: &str = "SELECT store_logs, aws_external_id FROM workspaces WHERE id = $1";
        const ENSURE: &str = "UPDATE workspaces SET aws_external_id = $1 \
                              WHERE id = $2 AND aws_external_id IS NULL";
        for _ in 0..2 {
            let row: Option<(bool, Option<String>)> = on_pool!(self, |p| sqlx::query_as(SQL)
                .bind(ws.0)
                .fetch_optional(p)
                .await)?;
            let (store_logs, external_id) = row.ok_or(Error::NotFound { kind: "workspace" })?;
            if let Some(aws_external_id) = external_id {
                return Ok(WorkspaceSettings {
                    workspace_id: ws,
                    store_logs,
                    aws_external_id,
                });
            }
            on_pool!(self, |p| sqlx::query(ENSURE)
                .bind(new_external_id())
                .bind(ws.0)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))?;
        }
        Err(corrupt(
            "workspace external id",
            "still unset after setting it",
        ))
    }

    /// Turns log storage on or off for workspace `ws`'s runs; recorded in the audit log.
    pub async fn workspace_store_logs_set(
        &self,
        ws: WorkspaceId,
        store_logs: bool,
        actor: Actor,
    ) -> Result<WorkspaceSettings> {
        const SQL: &str = "UPDATE workspaces SET store_logs = $1 WHERE id = $2 RETURNING name";
        let mut tx = self.begin().await?;
        let name: String = on_tx!(&mut tx, |c| sqlx::query_scalar(SQL)
            .bind(store_logs)
            .bind(ws.0)
            .fetch_optional(c)
            .await)?
        .ok_or(Error::NotFound { kind: "workspace" })?;
        append(
            &mut tx,
            ws,
            Entry::new(
                actor,
                "workspace.update",
                format!("workspace:{name}"),
                json!({"store_logs": store_logs}),
            ),
        )
        .await?;
        tx.commit().await?;
        self.workspace_settings(ws).await
    }

    /// Workspace `ws`'s IP allow-list (empty: every address may use its keys).
    pub async fn workspace_ip_allowlist(&self, ws: WorkspaceId) -> Result<IpAllowList> {
        const SQL: &str = "SELECT ip_allowlist FROM workspaces WHERE id = $1";
        let text: String = on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(ws.0)
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "workspace" })?;
        parse_allowlist(&text)
    }

    /// Replaces workspace `ws`'s IP allow-list; recorded in the audit log with the list it
    /// replaced.
    pub async fn workspace_ip_allowlist_set(
        &self,
        ws: WorkspaceId,
        list: &IpAllowList,
        actor: Actor,
    ) -> Result<IpAllowList> {
        const OLD: &str = "SELECT name, ip_allowlist FROM workspaces WHERE id = $1";
        const SET: &str = "UPDATE workspaces SET ip_allowlist = $1 WHERE id = $2";
        let cidrs = list.cidrs().to_strings();
        let text = serde_json::to_string(&cidrs).map_err(|e| corrupt("ip allow-list", e))?;
        let mut tx = self.begin().await?;
        let lock = tx.locking(OLD, "FOR UPDATE");
        let (name, old): (String, String) = on_tx!(&mut tx, |c| sqlx::query_as(&lock)
            .bind(ws.0)
            .fetch_optional(c)
            .await)?
        .ok_or(Error::NotFound { kind: "workspace" })?;
        let previous = parse_allowlist(&old)?.cidrs().to_strings();
        on_tx!(&mut tx, |c| sqlx::query(SET)
            .bind(&text)
            .bind(ws.0)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        append(
            &mut tx,
            ws,
            Entry::new(
                actor,
                "workspace.ip_allowlist.set",
                format!("workspace:{name}"),
                json!({"cidrs": cidrs, "previous": previous}),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(list.clone())
    }

    pub async fn workspace_get(&self, id: WorkspaceId) -> Result<Workspace> {
        const SQL: &str = "SELECT id, name, created_at FROM workspaces WHERE id = $1";
        on_pool!(self, |p| sqlx::query_as::<_, WorkspaceRow>(SQL)
            .bind(id.0)
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "workspace" })?
        .into_model()
    }

    pub async fn workspace_get_by_name(&self, name: &Name) -> Result<Workspace> {
        const SQL: &str = "SELECT id, name, created_at FROM workspaces WHERE name = $1";
        on_pool!(self, |p| sqlx::query_as::<_, WorkspaceRow>(SQL)
            .bind(name.as_str())
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "workspace" })?
        .into_model()
    }

    /// Every workspace, by name.
    pub async fn workspaces_list(&self) -> Result<Vec<Workspace>> {
        const SQL: &str = "SELECT id, name, created_at FROM workspaces ORDER BY name";
        on_pool!(self, |p| sqlx::query_as::<_, WorkspaceRow>(SQL)
            .fetch_all(p)
            .await)?
        .into_iter()
        .map(WorkspaceRow::into_model)
        .collect()
    }
}
