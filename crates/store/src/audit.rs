//! The audit log: append-only entries, chained per workspace under a key.
//!
//! Each entry's `hash` is `HMAC-SHA-256(audit key, prev_hash || canonical entry)`, where the
//! canonical entry is the JSON object `{"action","actor","at","detail","seq","target",
//! "workspace_id"}` with keys in that (sorted) order, `at` in RFC 3339 with microseconds and
//! `Z`, and `detail` inserted as the exact canonical JSON text stored. The first entry's
//! `prev_hash` is 32 zero bytes. The chain's last (seq, hash) is also kept in `audit_heads`,
//! which appends lock, so entries are numbered without gaps and a removed last entry is
//! noticed.
//!
//! The audit key is 32 random bytes made once per database and stored in `audit_key` wrapped
//! by the root key (`audit_key.rs`); the server unwraps it at start-up and hands it to the
//! store with [`Store::set_audit_key`]. Someone who can write the database but cannot use the
//! root key can therefore not recompute the chain after changing, removing or reordering
//! entries: [`Store::audit_verify`] names the first entry that breaks. A store without the key
//! appends nothing and verifies nothing ([`Error::NoAuditKey`]): no entry is ever written
//! unkeyed, and every audited change fails rather than go unrecorded.
//!
//! Entries are written in the same transaction as the change they record: there is no change
//! without its entry. What the key does not cover: whoever can use the root key (and the
//! database) can still rewrite history, and a deleted `audit_key` row makes the next start
//! treat the database as one from before the key (see `audit_key.rs`), so operators who need
//! more record the head hash `ferry admin audit verify` prints somewhere else.

use chrono::{DateTime, SecondsFormat, Utc};
use ferry_core::{canonical_json, WorkspaceId};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::models::{Actor, AuditEvent, AuditProblem, AuditReport};
use crate::store::{corrupt, now, on_pool, on_tx, Store, Tx};

/// The key the audit chain is an HMAC under: 32 bytes, zeroized when the last clone is
/// dropped, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey(std::sync::Arc<zeroize::Zeroizing<[u8; 32]>>);

impl AuditKey {
    /// The key from its 32 bytes (`Invalid` for any other length).
    pub fn from_bytes(bytes: &[u8]) -> Result<AuditKey> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Invalid("an audit key is 32 bytes".into()))?;
        Ok(AuditKey(std::sync::Arc::new(zeroize::Zeroizing::new(key))))
    }

    /// A random key for tests (feature `testing`); production keys come from the server's
    /// keyring.
    #[cfg(feature = "testing")]
    pub fn for_tests() -> AuditKey {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        bytes[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        AuditKey(std::sync::Arc::new(zeroize::Zeroizing::new(bytes)))
    }

    fn bytes(&self) -> &[u8] {
        &self.0[..]
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey([REDACTED])")
    }
}

pub(crate) const ZERO_HASH: [u8; 32] = [0; 32];
pub(crate) const MAX_PAGE: u32 = 1000;

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

/// An entry's hash: `HMAC-SHA-256(key, prev || canonical)`.
pub(crate) fn chain_hash(key: &AuditKey, prev: &[u8], canonical: &str) -> Vec<u8> {
    // HMAC takes a key of any length; 32 bytes cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.bytes()) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(prev);
    mac.update(canonical.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// An entry's hash as versions before the audit key wrote it: `SHA-256(prev || canonical)`.
/// Only for checking such chains before they are re-sealed under the key.
pub(crate) fn legacy_hash(prev: &[u8], canonical: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical.as_bytes());
    h.finalize().to_vec()
}

/// Appends `entry` to workspace `ws`'s log inside `tx`, chained under the transaction's
/// audit key (`NoAuditKey` without one: the whole change fails).
pub(crate) async fn append(tx: &mut Tx, ws: WorkspaceId, entry: Entry) -> Result<AuditEvent> {
    const HEAD_INIT: &str = "INSERT INTO audit_heads (workspace_id, seq, hash) VALUES ($1, 0, $2) \
                             ON CONFLICT (workspace_id) DO NOTHING";
    const HEAD: &str = "SELECT seq, hash FROM audit_heads WHERE workspace_id = $1";
    const INSERT: &str = "INSERT INTO audit_events (workspace_id, seq, at, actor, action, target, \
                          detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    const HEAD_UPDATE: &str = "UPDATE audit_heads SET seq = $1, hash = $2 WHERE workspace_id = $3";
    let key = tx.audit_key.clone().ok_or(Error::NoAuditKey)?;
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
    let hash = chain_hash(&key, &prev, &canonical);
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
pub(crate) struct EventRow {
    pub workspace_id: Uuid,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl EventRow {
    /// The bytes its hash covers after `prev_hash`.
    pub(crate) fn canonical(&self) -> String {
        canonical_entry(
            self.workspace_id,
            self.seq,
            self.at,
            &self.actor,
            &self.action,
            &self.target,
            &self.detail,
        )
    }
}

/// The columns of [`EventRow`].
pub(crate) const EVENT_COLUMNS: &str =
    "workspace_id, seq, at, actor, action, target, detail, prev_hash, hash";

/// Checks a chain entry by entry, oldest first: sequence numbers without gaps from 1, each
/// entry's hash equal to the one recomputed (by the hasher given), each `prev_hash` equal to
/// the previous entry's hash; then the head.
pub(crate) struct Walk {
    expected: i64,
    prev: Vec<u8>,
}

impl Walk {
    pub(crate) fn new() -> Walk {
        Walk {
            expected: 1,
            prev: ZERO_HASH.to_vec(),
        }
    }

    /// The last entry checked (0: none yet).
    pub(crate) fn last(&self) -> i64 {
        self.expected - 1
    }

    /// The hash of the last entry checked (zeros before the first).
    pub(crate) fn prev(&self) -> &[u8] {
        &self.prev
    }

    /// Checks the next entry with `hash(prev_hash, canonical)`; the first problem otherwise.
    pub(crate) fn step(
        &mut self,
        row: &EventRow,
        hash: impl Fn(&[u8], &str) -> Vec<u8>,
    ) -> std::result::Result<(), AuditProblem> {
        let expected = self.expected;
        if row.seq != expected {
            return Err(AuditProblem {
                seq: expected,
                reason: format!(
                    "entry {expected} is missing (the next entry is {}): entries were removed or renumbered",
                    row.seq
                ),
            });
        }
        if hash(&row.prev_hash, &row.canonical()) != row.hash {
            return Err(AuditProblem {
                seq: row.seq,
                reason: "its hash does not match its content under the audit key: the entry \
                         was changed (or its hash computed without the key)"
                    .to_owned(),
            });
        }
        if row.prev_hash != self.prev {
            return Err(AuditProblem {
                seq: row.seq,
                reason: format!(
                    "its prev_hash does not match the hash of entry {}: entries before it were changed, removed or reordered",
                    row.seq - 1
                ),
            });
        }
        self.prev = row.hash.clone();
        self.expected += 1;
        Ok(())
    }

    /// The problem of the recorded head `(seq, hash)` after the last entry, if any.
    pub(crate) fn head_problem(&self, head: Option<&(i64, Vec<u8>)>) -> Option<AuditProblem> {
        let last = self.last();
        let problem = |seq: i64, reason: String| Some(AuditProblem { seq, reason });
        match head {
            None if last > 0 => problem(
                last,
                "the log has entries but no head record: the head was removed".to_owned(),
            ),
            None => None,
            Some((seq, _)) if *seq != last => problem(
                last + 1,
                format!(
                    "the log ends at entry {last} but its head records entry {seq}: entries were removed from the end"
                ),
            ),
            Some((_, hash)) if *hash != self.prev && last > 0 => problem(
                last,
                "the last entry's hash does not match the recorded head".to_owned(),
            ),
            Some(_) => None,
        }
    }
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
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE workspace_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<_, EventRow>(&sql)
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

    /// Checks workspace `ws`'s whole chain under the audit key: sequence numbers without gaps
    /// from 1, each entry's `prev_hash` equal to the previous entry's hash, each hash equal to
    /// the HMAC recomputed under the key, and the last entry equal to the recorded head.
    /// Reports the first problem found. `NoAuditKey` if the store has no key.
    pub async fn audit_verify(&self, ws: WorkspaceId) -> Result<AuditReport> {
        const HEAD: &str = "SELECT seq, hash FROM audit_heads WHERE workspace_id = $1";
        let key = self.audit_key.get().cloned().ok_or(Error::NoAuditKey)?;
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
        let mut walk = Walk::new();
        loop {
            let rows = self.audit_rows(ws, walk.last(), MAX_PAGE).await?;
            let page_len = rows.len();
            for row in rows {
                if let Err(problem) = walk.step(&row, |prev, c| chain_hash(&key, prev, c)) {
                    report.problem = Some(problem);
                    return Ok(report);
                }
                report.entries += 1;
            }
            if page_len < MAX_PAGE as usize {
                break;
            }
        }
        report.problem = walk.head_problem(head.as_ref());
        if walk.last() > 0 {
            report.head_hash = Some(walk.prev().to_vec());
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
