//! Run logs: append-only lines with a per-run sequence number and a byte cap, past which
//! lines are discarded and the log is marked truncated; nothing at all is kept for workspaces
//! that turned log storage off.

use chrono::{DateTime, Utc};
use ferry_core::port::{LogLine, LogStream};
use ferry_core::{RunId, WorkspaceId};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::models::{LogPage, StoredLogLine};
use crate::store::{corrupt, micros, on_pool, on_tx, Store};

#[derive(sqlx::FromRow)]
struct LogRow {
    seq: i64,
    ts: DateTime<Utc>,
    stream: String,
    line: String,
}

/// The run's log counters, read under its row lock.
#[derive(sqlx::FromRow)]
struct LogState {
    workspace_id: Uuid,
    log_bytes: i64,
    log_seq: i64,
    log_truncated: bool,
    log_discarded: bool,
    store_logs: bool,
}

/// The one line a run's log gets when its workspace does not store logs, in place of them.
pub const LOGS_DISCARDED_NOTICE: &str = "Log storage is turned off for this workspace: \
     this run's output is discarded, not stored (an admin can turn it on with \
     PATCH /v1/workspace {\"store_logs\": true})";

/// Lines per INSERT: six binds each stays far below both backends' parameter limits.
const INSERT_CHUNK: usize = 500;
const MAX_LOG_PAGE: u32 = 10_000;

impl Store {
    /// Appends `lines` to run `id`'s log, numbering them on from its last line. The log keeps
    /// at most `cap_bytes` bytes of line text: the first line that does not fit, and every
    /// line after it (in this call and later ones), is discarded and the log marked
    /// truncated, so the stored log is always a prefix of what was written. Returns whether
    /// the log is truncated. System use (the engine and executors): not workspace-scoped.
    ///
    /// When the run's workspace has log storage turned off, the lines are discarded instead,
    /// and the log gets one `ferry` line saying so ([`LOGS_DISCARDED_NOTICE`]) the first time
    /// (the run is marked `log_discarded`); it is not marked truncated.
    pub async fn run_logs_append(
        &self,
        id: RunId,
        lines: &[LogLine],
        cap_bytes: u64,
    ) -> Result<bool> {
        const STATE: &str = "SELECT r.workspace_id, r.log_bytes, r.log_seq, r.log_truncated, \
                             r.log_discarded, w.store_logs FROM runs r \
                             JOIN workspaces w ON w.id = r.workspace_id WHERE r.id = $1";
        const DISCARDED: &str = "UPDATE runs SET log_discarded = TRUE, log_seq = $1 WHERE id = $2";
        const NOTICE: &str = "INSERT INTO run_logs (run_id, seq, workspace_id, ts, stream, line) \
                              VALUES ($1, $2, $3, $4, $5, $6)";
        const UPDATE: &str =
            "UPDATE runs SET log_bytes = $1, log_seq = $2, log_truncated = $3 WHERE id = $4";
        let mut tx = self.begin().await?;
        // The row lock (PostgreSQL) or write lock (SQLite) makes the numbering race-free when
        // two appends to one run overlap.
        let state_sql = tx.locking(STATE, "FOR NO KEY UPDATE OF r");
        let state: Option<LogState> = on_tx!(&mut tx, |c| sqlx::query_as(&state_sql)
            .bind(id.0)
            .fetch_optional(c)
            .await)?;
        let state = state.ok_or(Error::NotFound { kind: "run" })?;
        if !state.store_logs {
            if state.log_discarded || lines.is_empty() {
                return Ok(state.log_truncated);
            }
            let seq = state.log_seq + 1;
            on_tx!(&mut tx, |c| sqlx::query(NOTICE)
                .bind(id.0)
                .bind(seq)
                .bind(state.workspace_id)
                .bind(crate::store::now())
                .bind(LogStream::Ferry.as_str())
                .bind(LOGS_DISCARDED_NOTICE)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
            on_tx!(&mut tx, |c| sqlx::query(DISCARDED)
                .bind(seq)
                .bind(id.0)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
            tx.commit().await?;
            return Ok(state.log_truncated);
        }
        if state.log_truncated {
            return Ok(true);
        }
        if lines.is_empty() {
            return Ok(false);
        }
        let mut bytes = u64::try_from(state.log_bytes).unwrap_or(0);
        let mut kept = 0;
        for l in lines {
            let n = l.line.len() as u64;
            if bytes.saturating_add(n) > cap_bytes {
                break;
            }
            bytes += n;
            kept += 1;
        }
        let truncated = kept < lines.len();
        let mut seq = state.log_seq;
        for chunk in lines[..kept].chunks(INSERT_CHUNK) {
            let first = seq + 1;
            on_tx!(&mut tx, |c| {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO run_logs (run_id, seq, workspace_id, ts, stream, line) ",
                );
                q.push_values(chunk.iter().zip(first..), |mut b, (l, seq)| {
                    b.push_bind(id.0)
                        .push_bind(seq)
                        .push_bind(state.workspace_id)
                        .push_bind(micros(l.ts))
                        .push_bind(l.stream.as_str())
                        .push_bind(l.line.as_str());
                });
                q.build().execute(c).await.map(|r| r.rows_affected())
            })?;
            seq += chunk.len() as i64;
        }
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        on_tx!(&mut tx, |c| sqlx::query(UPDATE)
            .bind(bytes)
            .bind(seq)
            .bind(truncated)
            .bind(id.0)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(truncated)
    }

    /// Up to `limit` (clamped to 1..=10,000) lines of run `id`'s log after `after_seq`, in
    /// order; `NotFound` if the run is not in `ws`. Page on with the last line's `seq`.
    pub async fn run_logs(
        &self,
        ws: WorkspaceId,
        id: RunId,
        after_seq: i64,
        limit: u32,
    ) -> Result<LogPage> {
        const SQL: &str = concat!(
            "SELECT seq, ts, stream, line FROM run_logs ",
            "WHERE run_id = $1 AND workspace_id = $2 AND seq > $3 ORDER BY seq LIMIT $4"
        );
        // Read the flag first: lines appended after it are still returned, and a log that
        // became truncated meanwhile says so on the next page.
        let run = self.run_get(ws, id).await?;
        let limit = limit.clamp(1, MAX_LOG_PAGE);
        let rows: Vec<LogRow> = on_pool!(self, |p| sqlx::query_as(SQL)
            .bind(id.0)
            .bind(ws.0)
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await)?;
        let lines = rows
            .into_iter()
            .map(|r| {
                let stream =
                    LogStream::parse(&r.stream).ok_or_else(|| corrupt("log stream", &r.stream))?;
                Ok(StoredLogLine {
                    seq: r.seq,
                    line: LogLine {
                        ts: r.ts,
                        stream,
                        line: r.line,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LogPage {
            lines,
            truncated: run.log_truncated,
        })
    }
}
