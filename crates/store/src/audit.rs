//! The audit log: append-only entries, hash-chained per workspace.
//!
//! Each entry's `hash` is `SHA-256(prev_hash || canonical entry)`, where the canonical entry is
//! the JSON object `{"action","actor","at","detail","seq","target","workspace_id"}` with keys in
//! that (sorted) order, `at` in RFC 3339 with microseconds and `Z`, and `detail` inserted as
//! the exact canonical JSON text stored. The first entry's `prev_hash` is 32 zero bytes. The
//! chain's last (seq, hash) is also kept in `audit_heads`, which appends lock, so entries are
//! numbered without gaps and a removed last entry is noticed.
//!
//! Entries are written in the same transaction as the change they record: there is no change
//! without its entry. The chain proves integrity against edits that do not recompute it;
//! someone who can rewrite the database can recompute it too, so operators who need more
//! record the head hash `ferry admin audit verify` prints somewhere else.

use chrono::{DateTime, SecondsFormat, Utc};
use ferry_core::{canonical_json, WorkspaceId};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::models::{Actor, AuditEvent, AuditProblem, AuditReport};
use crate::store::{corrupt, now, on_pool, on_tx, Store, Tx};

const ZERO_HASH: [u8; 32] = [0; 32];
const MAX_PAGE: u32 = 1000;

/// An entry to append.
pub(crate) struct Entry {
    pub actor: Actor,
    pub action: &'static str,
    pub target: String,
    pub detail: Value,
}

impl Entry {
    pub(crate) fn new(
        actor: Actor,
        action: &'static str,
        target: impl Into<String>,
        detail: Value,
    ) -> Entry {
        Entry {
            actor,
            action,
            target: target.into(),
            detail,
        }
    }
}

/// The bytes hashed after `prev_hash` (see the module documentation).
fn canonical_entry(
    ws: Uuid,
    seq: i64,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    target: &str,
    detail_text: &str,
) -> String {
    let s = |v: &str| canonical_json(&Value::String(v.to_owned()));
    format!(
        "{{\"action\":{},\"actor\":{},\"at\":{},\"detail\":{},\"seq\":{},\"target\":{},\"workspace_id\":{}}}",
        s(action),
        s(actor),
        s(&at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        detail_text,
        seq,
        s(target),
        s(&ws.to_string()),
    )
}

fn chain_hash(prev: &[u8], canonical: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical.as_bytes());
    h.finalize().to_vec()
}

/// Appends `entry` to workspace `ws`'s log inside `tx`.
pub(crate) async fn append(tx: &mut Tx, ws: WorkspaceId, entry: Entry) -> Result<AuditEvent> {
    const HEAD_INIT: &str = "INSERT INTO audit_heads (workspace_id, seq, hash) VALUES ($1, 0, $2) \
                             ON CONFLICT (workspace_id) DO NOTHING";
    const HEAD: &str = "SELECT seq, hash FROM audit_heads WHERE workspace_id = $1";
    const INSERT: &str = "INSERT INTO audit_events (workspace_id, seq, at, actor, action, target, \
                          detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    const HEAD_UPDATE: &str = "UPDATE audit_heads SET seq = $1, hash = $2 WHERE workspace_id = $3";
    on_tx!(tx, |c| sqlx::query(HEAD_INIT)
        .bind(ws.0)
        .bind(&ZERO_HASH[..])
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(|e| {
        if crate::store::is_foreign_key_violation(&e) {
            Error::NotFound { kind: "workspace" }
        } else {
            e.into()
        }
    })?;
    // The head's row lock (PostgreSQL) or the write lock (SQLite) serialises appends.
    let head_sql = tx.locking(HEAD, "FOR UPDATE");
    let (head_seq, prev): (i64, Vec<u8>) = on_tx!(tx, |c| sqlx::query_as(&head_sql)
        .bind(ws.0)
        .fetch_one(c)
        .await)?;
    let seq = head_seq + 1;
    let at = now();
    let actor = entry.actor.to_string();
    let detail_text = canonical_json(&entry.detail);
    let canonical = canonical_entry(
        ws.0,
        seq,
        at,
        &actor,
        entry.action,
        &entry.target,
        &detail_text,
    );
    let hash = chain_hash(&prev, &canonical);
    on_tx!(tx, |c| sqlx::query(INSERT)
        .bind(ws.0)
        .bind(seq)
        .bind(at)
        .bind(&actor)
        .bind(entry.action)
        .bind(&entry.target)
        .bind(&detail_text)
        .bind(&prev)
        .bind(&hash)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    on_tx!(tx, |c| sqlx::query(HEAD_UPDATE)
        .bind(seq)
        .bind(&hash)
        .bind(ws.0)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(AuditEvent {
        workspace_id: ws,
        seq,
        at,
        actor,
        action: entry.action.to_owned(),
        target: entry.target,
        detail: entry.detail,
        prev_hash: prev,
        hash,
    })
}

#[derive(sqlx::FromRow)]
struct EventRow {
    workspace_id: Uuid,
    seq: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    target: String,
    detail: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl EventRow {
    fn into_model(self) -> Result<AuditEvent> {
        Ok(AuditEvent {
            workspace_id: WorkspaceId(self.workspace_id),
            seq: self.seq,
            at: self.at,
            detail: serde_json::from_str(&self.detail).map_err(|e| corrupt("audit detail", e))?,
            actor: self.actor,
            action: self.action,
            target: self.target,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

impl Store {
    /// Appends an entry to workspace `ws`'s audit log on its own (for actions that change
    /// nothing in the store, such as a refused attempt worth recording).
    pub async fn audit_append(
        &self,
        ws: WorkspaceId,
        actor: Actor,
        action: &'static str,
        target: &str,
        detail: Value,
    ) -> Result<AuditEvent> {
        let mut tx = self.begin().await?;
        let event = append(&mut tx, ws, Entry::new(actor, action, target, detail)).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn audit_rows(&self, ws: WorkspaceId, after: i64, limit: u32) -> Result<Vec<EventRow>> {
        const SQL: &str =
            "SELECT workspace_id, seq, at, actor, action, target, detail, prev_hash, \
                           hash FROM audit_events WHERE workspace_id = $1 AND seq > $2 \
                           ORDER BY seq LIMIT $3";
        Ok(on_pool!(self, |p| sqlx::query_as::<_, EventRow>(SQL)
            .bind(ws.0)
            .bind(after)
            .bind(i64::from(limit.clamp(1, MAX_PAGE)))
            .fetch_all(p)
            .await)?)
    }

    /// Up to `limit` (clamped to 1..=1000) entries of workspace `ws`'s log after sequence
    /// number `after`, oldest first. Page on with the last entry's `seq`.
    pub async fn audit_list(
        &self,
        ws: WorkspaceId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        self.audit_rows(ws, after, limit)
            .await?
            .into_iter()
            .map(EventRow::into_model)
            .collect()
    }

    /// Checks workspace `ws`'s whole chain: sequence numbers without gaps from 1, each entry's
    /// `prev_hash` equal to the previous entry's hash, each hash equal to the recomputed one,
    /// and the last entry equal to the recorded head. Reports the first problem found.
    pub async fn audit_verify(&self, ws: WorkspaceId) -> Result<AuditReport> {
        const HEAD: &str = "SELECT seq, hash FROM audit_heads WHERE workspace_id = $1";
        let head: Option<(i64, Vec<u8>)> = on_pool!(self, |p| sqlx::query_as(HEAD)
            .bind(ws.0)
            .fetch_optional(p)
            .await)?;
        let mut report = AuditReport {
            workspace_id: ws,
            entries: 0,
            head_hash: None,
            problem: None,
        };
        let problem = |seq: i64, reason: String| Some(AuditProblem { seq, reason });
        let mut expected = 1i64;
        let mut prev = ZERO_HASH.to_vec();
        loop {
            let rows = self.audit_rows(ws, expected - 1, MAX_PAGE).await?;
            let page_len = rows.len();
            for row in rows {
                if row.seq != expected {
                    report.problem = problem(
                        expected,
                        format!(
                            "entry {expected} is missing (the next entry is {}): entries were removed or renumbered",
                            row.seq
                        ),
                    );
                    return Ok(report);
                }
                let canonical = canonical_entry(
                    row.workspace_id,
                    row.seq,
                    row.at,
                    &row.actor,
                    &row.action,
                    &row.target,
                    &row.detail,
                );
                if chain_hash(&row.prev_hash, &canonical) != row.hash {
                    report.problem = problem(
                        row.seq,
                        "its content does not match its hash: the entry was changed".to_owned(),
                    );
                    return Ok(report);
                }
                if row.prev_hash != prev {
                    report.problem = problem(
                        row.seq,
                        format!(
                            "its prev_hash does not match the hash of entry {}: entries before it were changed, removed or reordered",
                            row.seq - 1
                        ),
                    );
                    return Ok(report);
                }
                prev = row.hash;
                report.entries += 1;
                expected += 1;
            }
            if page_len < MAX_PAGE as usize {
                break;
            }
        }
        let last = expected - 1;
        match head {
            None if last > 0 => {
                report.problem = problem(
                    last,
                    "the log has entries but no head record: the head was removed".to_owned(),
                );
            }
            None => {}
            Some((seq, _)) if seq != last => {
                report.problem = problem(
                    last + 1,
                    format!(
                        "the log ends at entry {last} but its head records entry {seq}: entries were removed from the end"
                    ),
                );
            }
            Some((_, hash)) if hash != prev && last > 0 => {
                report.problem = problem(
                    last,
                    "the last entry's hash does not match the recorded head".to_owned(),
                );
            }
            Some(_) => {}
        }
        if last > 0 {
            report.head_hash = Some(prev);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_entry_is_sorted_json() {
        let at = DateTime::parse_from_rfc3339("2024-05-01T12:00:00.5Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let ws = Uuid::nil();
        let text = canonical_entry(ws, 3, at, "key:x", "pool.create", "pool:a", r#"{"a":1}"#);
        assert_eq!(
            text,
            r#"{"action":"pool.create","actor":"key:x","at":"2024-05-01T12:00:00.500000Z","detail":{"a":1},"seq":3,"target":"pool:a","workspace_id":"00000000-0000-0000-0000-000000000000"}"#
        );
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(canonical_json(&v), text);
    }
}
