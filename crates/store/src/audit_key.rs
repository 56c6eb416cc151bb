//! The audit log's key as stored: one row per database (`audit_key`), the key wrapped by a
//! root key. Wrapping and unwrapping are the server's (it holds the keyring); the store keeps
//! the row, and the unwrapped key only in memory once the server hands it over
//! ([`Store::set_audit_key`]).
//!
//! The key is made on the first start of a version that has it. Databases of earlier versions
//! hold chains of plain `SHA-256(prev_hash || canonical entry)`: the transaction that stores
//! the key also re-seals them ([`Store::audit_key_create`]). Each workspace's chain is first
//! checked as such a chain; the entries that verify are re-hashed under the key (their
//! content untouched) and an `audit.reseal` entry records it. From the first entry that does
//! not verify, nothing is touched, so verification under the key still names that entry:
//! re-sealing never launders a chain that was already broken.
//!
//! What this cannot tell apart: a database whose `audit_key` row was deleted looks like one
//! from before the key, so someone who can write the database could delete the row, rewrite
//! every entry as a plain SHA-256 chain, and have the next start re-seal it. That start logs
//! each re-seal at WARN (outside the database) and appends `audit.reseal` to each log; an
//! operator who records head hashes elsewhere notices the rest.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{
    append, chain_hash, legacy_hash, AuditKey, Entry, EventRow, Walk, EVENT_COLUMNS, MAX_PAGE,
};
use crate::error::{Error, Result};
use crate::models::{Actor, AuditProblem};
use crate::store::{now, on_pool, on_tx, Store, Tx};

/// The audit key as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAuditKey {
    /// The root key that wrapped `wrapped_key`.
    pub root_key_id: String,
    pub wrapped_key: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// An audit key to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditKey {
    pub root_key_id: String,
    pub wrapped_key: Vec<u8>,
}

/// What storing the key did to one workspace's existing chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Resealed {
    pub workspace_id: ferry_core::WorkspaceId,
    /// Entries re-hashed under the key (those that verified as a plain SHA-256 chain).
    pub resealed: u64,
    /// Where the old chain was already broken (nothing from there on was touched; its head
    /// neither), if it was.
    pub problem: Option<AuditProblem>,
}

impl Store {
    /// Gives this store (and its clones) the audit log's key: from now on every audit entry is
    /// chained under it. Setting the same key again is a no-op; another key is `Invalid`.
    pub fn set_audit_key(&self, key: AuditKey) -> Result<()> {
        let set = self.audit_key.get_or_init(|| key.clone());
        if *set == key {
            Ok(())
        } else {
            Err(Error::Invalid(
                "this store already has another audit key".into(),
            ))
        }
    }

    /// Whether [`Store::set_audit_key`] was called.
    pub fn has_audit_key(&self) -> bool {
        self.audit_key.get().is_some()
    }

    /// The stored (wrapped) audit key, if one was made.
    pub async fn audit_key_get(&self) -> Result<Option<StoredAuditKey>> {
        const SQL: &str = "SELECT root_key_id, wrapped_key, created_at FROM audit_key WHERE id = 1";
        let row: Option<(String, Vec<u8>, DateTime<Utc>)> =
            on_pool!(self, |p| sqlx::query_as(SQL).fetch_optional(p).await)?;
        Ok(
            row.map(|(root_key_id, wrapped_key, created_at)| StoredAuditKey {
                root_key_id,
                wrapped_key,
                created_at,
            }),
        )
    }

    /// Stores `new` (the wrapped form of `key`) as the audit key unless one is stored already:
    /// `None` then, and the caller reads the stored one and uses that (two processes making
    /// it at once agree on one). When it is stored, the same transaction re-seals under `key`
    /// the chains written before it (see the module documentation) and returns what it did
    /// to each workspace whose log had entries. Does not set the key on this store.
    pub async fn audit_key_create(
        &self,
        new: &NewAuditKey,
        key: &AuditKey,
    ) -> Result<Option<Vec<Resealed>>> {
        const INSERT: &str = "INSERT INTO audit_key (id, root_key_id, wrapped_key, created_at) \
                              VALUES (1, $1, $2, $3) ON CONFLICT DO NOTHING";
        const WORKSPACES: &str = "SELECT id FROM workspaces ORDER BY id";
        let mut tx = self.begin().await?;
        let inserted = on_tx!(&mut tx, |c| sqlx::query(INSERT)
            .bind(&new.root_key_id)
            .bind(&new.wrapped_key)
            .bind(now())
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        if inserted == 0 {
            return Ok(None);
        }
        // The re-seal entries are chained under the new key, whatever this store holds.
        tx.audit_key = Some(key.clone());
        let workspaces: Vec<Uuid> = on_tx!(&mut tx, |c| sqlx::query_scalar(WORKSPACES)
            .fetch_all(c)
            .await)?;
        let mut resealed = Vec::new();
        for ws in workspaces {
            if let Some(r) = reseal(&mut tx, ws, key).await? {
                resealed.push(r);
            }
        }
        tx.commit().await?;
        Ok(Some(resealed))
    }

    /// Replaces the audit key's wrapped form with the same key wrapped by another root key,
    /// if it is still wrapped by `from_root_key_id` (`Changed` otherwise).
    pub async fn audit_key_rewrap(
        &self,
        from_root_key_id: &str,
        to_root_key_id: &str,
        wrapped_key: &[u8],
    ) -> Result<()> {
        const SQL: &str = "UPDATE audit_key SET root_key_id = $1, wrapped_key = $2 \
                           WHERE id = 1 AND root_key_id = $3";
        let changed = on_pool!(self, |p| sqlx::query(SQL)
            .bind(to_root_key_id)
            .bind(wrapped_key)
            .bind(from_root_key_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        if changed == 1 {
            Ok(())
        } else {
            Err(Error::Changed { kind: "audit key" })
        }
    }
}

/// Re-seals workspace `ws`'s chain under `key` inside `tx` (its head locked): the entries that
/// verify as a plain SHA-256 chain get their HMAC hashes, the head follows if the whole chain
/// verified, and then an `audit.reseal` entry is appended. `None` for an empty log.
async fn reseal(tx: &mut Tx, ws: Uuid, key: &AuditKey) -> Result<Option<Resealed>> {
    const HEAD: &str = "SELECT seq, hash FROM audit_heads WHERE workspace_id = $1";
    const UPDATE: &str = "UPDATE audit_events SET prev_hash = $1, hash = $2 \
                          WHERE workspace_id = $3 AND seq = $4";
    const HEAD_UPDATE: &str = "UPDATE audit_heads SET hash = $1 WHERE workspace_id = $2";
    let rows_sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE workspace_id = $1 AND seq > $2 \
         ORDER BY seq LIMIT $3"
    );
    let head_sql = tx.locking(HEAD, "FOR UPDATE");
    let head: Option<(i64, Vec<u8>)> = on_tx!(tx, |c| sqlx::query_as(&head_sql)
        .bind(ws)
        .fetch_optional(c)
        .await)?;
    let mut walk = Walk::new();
    let mut prev = walk.prev().to_vec();
    let mut resealed = 0u64;
    let mut seen = false;
    let mut problem = None;
    'pages: loop {
        let rows: Vec<EventRow> = on_tx!(tx, |c| sqlx::query_as(&rows_sql)
            .bind(ws)
            .bind(walk.last())
            .bind(i64::from(MAX_PAGE))
            .fetch_all(c)
            .await)?;
        let page_len = rows.len();
        seen |= page_len > 0;
        for row in rows {
            if let Err(p) = walk.step(&row, legacy_hash) {
                problem = Some(p);
                break 'pages;
            }
            let hash = chain_hash(key, &prev, &row.canonical());
            on_tx!(tx, |c| sqlx::query(UPDATE)
                .bind(&prev)
                .bind(&hash)
                .bind(ws)
                .bind(row.seq)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
            prev = hash;
            resealed += 1;
        }
        if page_len < MAX_PAGE as usize {
            break;
        }
    }
    if !seen {
        return Ok(None);
    }
    if problem.is_none() {
        problem = walk.head_problem(head.as_ref());
    }
    if problem.is_none() {
        let legacy_head = walk
            .prev()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        on_tx!(tx, |c| sqlx::query(HEAD_UPDATE)
            .bind(&prev)
            .bind(ws)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        // A broken chain gets no entry: its head may be the broken part.
        append(
            tx,
            ferry_core::WorkspaceId(ws),
            Entry::new(
                Actor::System,
                "audit.reseal",
                "audit",
                json!({"resealed": resealed, "legacy_head": legacy_head}),
            ),
        )
        .await?;
    }
    Ok(Some(Resealed {
        workspace_id: ferry_core::WorkspaceId(ws),
        resealed,
        problem,
    }))
}
