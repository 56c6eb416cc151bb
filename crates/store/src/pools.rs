//! Pools: where a workspace's runs go.
//!
//! A pool can be deleted once none of its runs is unfinished; its finished runs stay
//! readable, because a run is not tied to its pool row by a foreign key and carries a copy of
//! the pool's name and type.

use chrono::{DateTime, Utc};
use ferry_core::{CredentialKind, Name, PoolId, PoolLimits, PoolType, WorkspaceId};
use serde_json::{json, Value};
use sqlx::types::Json;
use uuid::Uuid;

use crate::audit::{append, Entry};
use crate::error::{Error, Result};
use crate::models::{Actor, NewPool, Pool, PoolPatch};
use crate::store::{
    corrupt, is_foreign_key_violation, is_unique_violation, now, on_pool, on_tx, to_u32,
    unfinished_states, Store, Tx,
};

#[derive(sqlx::FromRow)]
struct PoolRow {
    id: Uuid,
    workspace_id: Uuid,
    name: String,
    pool_type: String,
    limits: Json<Value>,
    job_template: Json<Value>,
    credential: Option<String>,
    concurrency_limit: Option<i64>,
    max_retries: i64,
    paused: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl PoolRow {
    fn into_model(self) -> Result<Pool> {
        Ok(Pool {
            id: PoolId(self.id),
            workspace_id: WorkspaceId(self.workspace_id),
            name: Name::parse(&self.name).map_err(|e| corrupt("pool name", e))?,
            pool_type: PoolType::parse(&self.pool_type)
                .ok_or_else(|| corrupt("pool type", &self.pool_type))?,
            limits: parse_limits(self.limits.0)?,
            job_template: self.job_template.0,
            credential: self
                .credential
                .map(|c| Name::parse(&c).map_err(|e| corrupt("pool credential name", e)))
                .transpose()?,
            concurrency_limit: self
                .concurrency_limit
                .map(|n| to_u32("pool concurrency limit", n))
                .transpose()?,
            max_retries: to_u32("pool max retries", self.max_retries)?,
            paused: self.paused,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Limits are stored as JSON; decoding them here (not in sqlx) makes a bad value `Corrupt`.
pub(crate) fn parse_limits(v: Value) -> Result<PoolLimits> {
    serde_json::from_value(v).map_err(|e| corrupt("limits", e))
}

macro_rules! columns {
    () => {
        "id, workspace_id, name, pool_type, limits, job_template, credential, \
         concurrency_limit, max_retries, paused, created_at, updated_at"
    };
}

impl Store {
    /// Creates a pool in workspace `ws`; `Conflict` if the name is taken there, `NotFound` if
    /// the workspace does not exist. Checks nothing about the credential and records nothing
    /// in the audit log: the API uses [`Store::pool_create_by`].
    pub async fn pool_create(&self, ws: WorkspaceId, new: &NewPool) -> Result<Pool> {
        let mut tx = self.begin().await?;
        let pool = insert_pool(&mut tx, ws, new).await?;
        tx.commit().await?;
        Ok(pool)
    }

    /// Creates a pool as `actor`, recorded in the audit log. A pool that names a credential
    /// needs one of that name in the workspace (`NotFound { kind: "credential" }`) whose kind
    /// fits the pool's type (`Invalid` otherwise); a taken name is `Conflict` first. The
    /// credential's row is locked until the pool is committed, so a concurrent
    /// [`Store::credential_delete`] either sees the pool or happens first.
    pub async fn pool_create_by(
        &self,
        ws: WorkspaceId,
        new: &NewPool,
        actor: Actor,
    ) -> Result<Pool> {
        const CREDENTIAL: &str =
            "SELECT kind FROM credentials WHERE workspace_id = $1 AND name = $2";
        let mut tx = self.begin().await?;
        // Insert first, so a taken name is a conflict whatever the credential; a refused
        // credential rolls the insert back.
        let pool = insert_pool(&mut tx, ws, new).await?;
        if let Some(name) = &new.credential {
            let sql = tx.locking(CREDENTIAL, "FOR KEY SHARE");
            let kind: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(&sql)
                .bind(ws.0)
                .bind(name.as_str())
                .fetch_optional(c)
                .await)?;
            let kind = kind.ok_or(Error::NotFound { kind: "credential" })?;
            let kind =
                CredentialKind::parse(&kind).ok_or_else(|| corrupt("credential kind", &kind))?;
            if !kind.fits(new.pool_type) {
                let fitting = CredentialKind::fitting(new.pool_type)
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ");
                return Err(Error::Invalid(format!(
                    "credential \"{name}\" is a {kind} credential, which a {} pool cannot use; name a credential of kind {fitting}",
                    new.pool_type
                )));
            }
        }
        append(
            &mut tx,
            ws,
            Entry::new(
                actor,
                "pool.create",
                format!("pool:{}", pool.name),
                json!({
                    "id": pool.id.to_string(),
                    "type": pool.pool_type.as_str(),
                    "credential": pool.credential.as_ref().map(Name::as_str),
                }),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(pool)
    }

    pub async fn pool_get(&self, ws: WorkspaceId, name: &Name) -> Result<Pool> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM pools WHERE workspace_id = $1 AND name = $2"
        );
        on_pool!(self, |p| sqlx::query_as::<_, PoolRow>(SQL)
            .bind(ws.0)
            .bind(name.as_str())
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "pool" })?
        .into_model()
    }

    pub async fn pool_get_by_id(&self, ws: WorkspaceId, id: PoolId) -> Result<Pool> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM pools WHERE workspace_id = $1 AND id = $2"
        );
        on_pool!(self, |p| sqlx::query_as::<_, PoolRow>(SQL)
            .bind(ws.0)
            .bind(id.0)
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "pool" })?
        .into_model()
    }

    /// The workspace's pools, by name.
    pub async fn pools_list(&self, ws: WorkspaceId) -> Result<Vec<Pool>> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM pools WHERE workspace_id = $1 ORDER BY name"
        );
        on_pool!(self, |p| sqlx::query_as::<_, PoolRow>(SQL)
            .bind(ws.0)
            .fetch_all(p)
            .await)?
        .into_iter()
        .map(PoolRow::into_model)
        .collect()
    }

    /// Applies `patch` to a pool and bumps its `updated_at`. Runs already submitted keep the
    /// limits they were created with; a changed concurrency limit or pause applies to the
    /// next claim. Records nothing in the audit log: the API uses [`Store::pool_update_by`].
    pub async fn pool_update(
        &self,
        ws: WorkspaceId,
        name: &Name,
        patch: &PoolPatch,
    ) -> Result<Pool> {
        let mut tx = self.begin().await?;
        let pool = update_pool(&mut tx, ws, name, patch).await?;
        tx.commit().await?;
        Ok(pool)
    }

    /// [`Store::pool_update`] as `actor`, recorded in the audit log with the changed fields.
    pub async fn pool_update_by(
        &self,
        ws: WorkspaceId,
        name: &Name,
        patch: &PoolPatch,
        actor: Actor,
    ) -> Result<Pool> {
        let mut tx = self.begin().await?;
        let pool = update_pool(&mut tx, ws, name, patch).await?;
        let mut detail = serde_json::Map::new();
        if let Some(l) = &patch.limits {
            detail.insert("limits".into(), json!(l));
        }
        if let Some(t) = &patch.job_template {
            detail.insert("job_template".into(), t.clone());
        }
        if let Some(c) = patch.concurrency_limit {
            detail.insert("concurrency_limit".into(), json!(c));
        }
        if let Some(r) = patch.max_retries {
            detail.insert("max_retries".into(), json!(r));
        }
        if let Some(p) = patch.paused {
            detail.insert("paused".into(), json!(p));
        }
        append(
            &mut tx,
            ws,
            Entry::new(
                actor,
                "pool.update",
                format!("pool:{}", pool.name),
                json!({"id": pool.id.to_string(), "changes": detail}),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(pool)
    }

    /// Deletes a pool. Refused with `InUse` while the pool has unfinished runs; its finished
    /// runs stay readable (they carry the pool's name and type).
    ///
    /// Race-free against [`Store::run_create`]: the delete locks the pool row before counting
    /// (PostgreSQL; on SQLite the transaction holds the database's write lock), and a create
    /// locks the same row `FOR KEY SHARE` while it inserts, so either the count sees the new
    /// run or the create finds no pool.
    pub async fn pool_delete(&self, ws: WorkspaceId, name: &Name) -> Result<()> {
        let mut tx = self.begin().await?;
        delete_pool(&mut tx, ws, name).await?;
        tx.commit().await
    }

    /// [`Store::pool_delete`] as `actor`, recorded in the audit log.
    pub async fn pool_delete_by(&self, ws: WorkspaceId, name: &Name, actor: Actor) -> Result<()> {
        let mut tx = self.begin().await?;
        let id = delete_pool(&mut tx, ws, name).await?;
        append(
            &mut tx,
            ws,
            Entry::new(
                actor,
                "pool.delete",
                format!("pool:{name}"),
                json!({"id": id.to_string()}),
            ),
        )
        .await?;
        tx.commit().await
    }
}

async fn insert_pool(tx: &mut Tx, ws: WorkspaceId, new: &NewPool) -> Result<Pool> {
    const SQL: &str = concat!(
        "INSERT INTO pools (id, workspace_id, name, pool_type, limits, job_template, ",
        "credential, concurrency_limit, max_retries, paused, created_at, updated_at) ",
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING ",
        columns!()
    );
    on_tx!(tx, |c| sqlx::query_as::<_, PoolRow>(SQL)
        .bind(Uuid::new_v4())
        .bind(ws.0)
        .bind(new.name.as_str())
        .bind(new.pool_type.as_str())
        .bind(Json(&new.limits))
        .bind(Json(&new.job_template))
        .bind(new.credential.as_ref().map(Name::as_str))
        .bind(new.concurrency_limit.map(i64::from))
        .bind(i64::from(new.max_retries))
        .bind(new.paused)
        .bind(now())
        .fetch_one(c)
        .await)
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::Conflict {
                kind: "pool",
                name: new.name.to_string(),
            }
        } else if is_foreign_key_violation(&e) {
            Error::NotFound { kind: "workspace" }
        } else {
            e.into()
        }
    })?
    .into_model()
}

async fn update_pool(tx: &mut Tx, ws: WorkspaceId, name: &Name, patch: &PoolPatch) -> Result<Pool> {
    const SQL: &str = concat!(
        "UPDATE pools SET ",
        "limits = COALESCE($1, limits), ",
        "job_template = COALESCE($2, job_template), ",
        "concurrency_limit = CASE WHEN $3 THEN $4 ELSE concurrency_limit END, ",
        "max_retries = COALESCE($5, max_retries), ",
        "paused = COALESCE($6, paused), ",
        "updated_at = $7 ",
        "WHERE workspace_id = $8 AND name = $9 RETURNING ",
        columns!()
    );
    on_tx!(tx, |c| sqlx::query_as::<_, PoolRow>(SQL)
        .bind(patch.limits.as_ref().map(Json))
        .bind(patch.job_template.as_ref().map(Json))
        .bind(patch.concurrency_limit.is_some())
        .bind(patch.concurrency_limit.flatten().map(i64::from))
        .bind(patch.max_retries.map(i64::from))
        .bind(patch.paused)
        .bind(now())
        .bind(ws.0)
        .bind(name.as_str())
        .fetch_optional(c)
        .await)?
    .ok_or(Error::NotFound { kind: "pool" })?
    .into_model()
}

/// Deletes the pool inside `tx` (see [`Store::pool_delete`]); returns its id.
async fn delete_pool(tx: &mut Tx, ws: WorkspaceId, name: &Name) -> Result<PoolId> {
    const DELETE: &str = "DELETE FROM pools WHERE workspace_id = $1 AND name = $2 RETURNING id";
    const COUNT: &str = concat!(
        "SELECT COUNT(*) FROM runs WHERE pool_id = $1 AND state IN ",
        unfinished_states!()
    );
    let id: Option<Uuid> = on_tx!(tx, |c| sqlx::query_scalar(DELETE)
        .bind(ws.0)
        .bind(name.as_str())
        .fetch_optional(c)
        .await)?;
    let id = id.ok_or(Error::NotFound { kind: "pool" })?;
    let unfinished: i64 = on_tx!(tx, |c| sqlx::query_scalar(COUNT)
        .bind(id)
        .fetch_one(c)
        .await)?;
    if unfinished > 0 {
        // The caller drops `tx`, which rolls the delete back.
        return Err(Error::InUse(format!(
            "pool \"{name}\" has {unfinished} runs that have not finished; cancel them or wait"
        )));
    }
    Ok(PoolId(id))
}
