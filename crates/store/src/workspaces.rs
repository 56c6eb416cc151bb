//! Workspaces: the tenants. Created and listed by the internal API only.

use chrono::{DateTime, Utc};
use ferry_core::{Name, WorkspaceId};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::models::Workspace;
use crate::store::{corrupt, is_unique_violation, now, on_pool, Store};

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

impl Store {
    /// Creates a workspace; `Conflict` if the name is taken.
    pub async fn workspace_create(&self, name: &Name) -> Result<Workspace> {
        const SQL: &str =
            "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3) RETURNING id, name, created_at";
        let row = on_pool!(self, |p| sqlx::query_as::<_, WorkspaceRow>(SQL)
            .bind(Uuid::new_v4())
            .bind(name.as_str())
            .bind(now())
            .fetch_one(p)
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
