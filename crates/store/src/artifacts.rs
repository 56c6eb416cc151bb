//! Uploaded flows (WebAssembly artifacts), content-addressed by sha256 within a workspace.

use chrono::{DateTime, Utc};
use ferry_core::WorkspaceId;

use crate::error::{Error, Result};
use crate::store::{now, on_pool, Store};

/// An artifact's record (its bytes are fetched separately: they can be large).
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub workspace_id: WorkspaceId,
    /// `sha256:<64 lowercase hex>` of the bytes.
    pub digest: String,
    /// What the sandbox host recognised it as (`component`, `command`, `preview1`).
    pub kind: String,
    pub size: u64,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ArtifactRow {
    workspace_id: uuid::Uuid,
    digest: String,
    kind: String,
    size: i64,
    created_at: DateTime<Utc>,
}

impl From<ArtifactRow> for Artifact {
    fn from(r: ArtifactRow) -> Self {
        Artifact {
            workspace_id: WorkspaceId(r.workspace_id),
            digest: r.digest,
            kind: r.kind,
            size: u64::try_from(r.size).unwrap_or(0),
            created_at: r.created_at,
        }
    }
}

impl Store {
    /// Stores an artifact; uploading the same bytes again is a no-op. Returns the record and
    /// whether it was new.
    pub async fn artifact_put(
        &self,
        ws: WorkspaceId,
        digest: &str,
        kind: &str,
        bytes: &[u8],
    ) -> Result<(Artifact, bool)> {
        const SQL: &str =
            "INSERT INTO artifacts (workspace_id, digest, kind, size, bytes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace_id, digest) DO NOTHING";
        let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        let at = now();
        let inserted = on_pool!(self, |p| sqlx::query(SQL)
            .bind(ws.0)
            .bind(digest)
            .bind(kind)
            .bind(size)
            .bind(bytes)
            .bind(at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok((self.artifact_get(ws, digest).await?, inserted == 1))
    }

    pub async fn artifact_get(&self, ws: WorkspaceId, digest: &str) -> Result<Artifact> {
        const SQL: &str = "SELECT workspace_id, digest, kind, size, created_at FROM artifacts \
             WHERE workspace_id = $1 AND digest = $2";
        let row = on_pool!(self, |p| sqlx::query_as::<_, ArtifactRow>(SQL)
            .bind(ws.0)
            .bind(digest)
            .fetch_optional(p)
            .await)?;
        row.map(Into::into)
            .ok_or(Error::NotFound { kind: "artifact" })
    }

    /// The artifact's bytes.
    pub async fn artifact_bytes(&self, ws: WorkspaceId, digest: &str) -> Result<Vec<u8>> {
        const SQL: &str = "SELECT bytes FROM artifacts WHERE workspace_id = $1 AND digest = $2";
        let bytes: Option<Vec<u8>> = on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(ws.0)
            .bind(digest)
            .fetch_optional(p)
            .await)?;
        bytes.ok_or(Error::NotFound { kind: "artifact" })
    }

    /// The workspace's artifacts, newest first.
    pub async fn artifacts_list(&self, ws: WorkspaceId) -> Result<Vec<Artifact>> {
        const SQL: &str = "SELECT workspace_id, digest, kind, size, created_at FROM artifacts \
             WHERE workspace_id = $1 ORDER BY created_at DESC, digest";
        let rows = on_pool!(self, |p| sqlx::query_as::<_, ArtifactRow>(SQL)
            .bind(ws.0)
            .fetch_all(p)
            .await)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

impl Store {
    /// An artifact's bytes by digest from any workspace: for the executors only, which run a
    /// run whose submission already checked that its workspace has this artifact. The digest
    /// is of the bytes, so every workspace's copy is the same.
    pub async fn artifact_bytes_unscoped(&self, digest: &str) -> Result<Vec<u8>> {
        const SQL: &str = "SELECT bytes FROM artifacts WHERE digest = $1 LIMIT 1";
        let bytes: Option<Vec<u8>> = on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(digest)
            .fetch_optional(p)
            .await)?;
        bytes.ok_or(Error::NotFound { kind: "artifact" })
    }
}
