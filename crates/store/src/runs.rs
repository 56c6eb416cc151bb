//! Runs: submission (idempotent), reads, listing with cursors, cancellation requests, the
//! conditional state transition every owner goes through, and the run's event history.

use chrono::{DateTime, Utc};
use ferry_core::{FailureReason, Name, PoolId, PoolType, RunId, RunState, WorkspaceId};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::models::{NewRun, Page, Run, RunEvent, RunFilter, Transition};
use crate::pools::parse_limits;
use crate::store::{corrupt, is_unique_violation, micros, now, on_pool, on_tx, to_u32, Store, Tx};

#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    id: Uuid,
    workspace_id: Uuid,
    pool_id: Uuid,
    pool_name: String,
    pool_type: String,
    state: String,
    state_reason: Option<String>,
    state_message: Option<String>,
    attempt: i64,
    max_retries: i64,
    generation: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    artifact: Option<String>,
    parameters: Json<Value>,
    job_variables: Json<Value>,
    limits: Json<Value>,
    idempotency_key: Option<String>,
    result: Option<Json<Value>>,
    infrastructure: Option<Json<Value>>,
    submit_intent: Option<Json<Value>>,
    log_truncated: bool,
    has_sensitive_parameters: bool,
    scheduled_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
}

pub(crate) fn parse_state(s: &str) -> Result<RunState> {
    RunState::parse(s).ok_or_else(|| corrupt("run state", s))
}

fn parse_reason(s: Option<String>) -> Result<Option<FailureReason>> {
    s.map(|s| FailureReason::parse(&s).ok_or_else(|| corrupt("failure reason", s)))
        .transpose()
}

impl RunRow {
    pub(crate) fn into_model(self) -> Result<Run> {
        Ok(Run {
            id: RunId(self.id),
            workspace_id: WorkspaceId(self.workspace_id),
            pool_id: PoolId(self.pool_id),
            pool_name: Name::parse(&self.pool_name).map_err(|e| corrupt("run pool name", e))?,
            pool_type: PoolType::parse(&self.pool_type)
                .ok_or_else(|| corrupt("run pool type", &self.pool_type))?,
            state: parse_state(&self.state)?,
            state_reason: parse_reason(self.state_reason)?,
            state_message: self.state_message,
            attempt: to_u32("run attempt", self.attempt)?,
            max_retries: to_u32("run max retries", self.max_retries)?,
            generation: self.generation,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at,
            artifact: self.artifact,
            parameters: self.parameters.0,
            job_variables: self.job_variables.0,
            limits: parse_limits(self.limits.0)?,
            idempotency_key: self.idempotency_key,
            result: self.result.map(|j| j.0),
            infrastructure: self.infrastructure.map(|j| j.0),
            submit_intent: self.submit_intent.map(|j| j.0),
            log_truncated: self.log_truncated,
            has_sensitive_parameters: self.has_sensitive_parameters,
            scheduled_at: self.scheduled_at,
            created_at: self.created_at,
            started_at: self.started_at,
            ended_at: self.ended_at,
        })
    }
}

/// The columns of [`RunRow`], for `SELECT` and `RETURNING` lists.
macro_rules! run_columns {
    () => {
        "id, workspace_id, pool_id, pool_name, pool_type, state, state_reason, state_message, \
         attempt, max_retries, generation, lease_owner, lease_expires_at, artifact, parameters, \
         job_variables, limits, idempotency_key, result, infrastructure, submit_intent, \
         log_truncated, (sensitive_parameters IS NOT NULL) AS has_sensitive_parameters, \
         scheduled_at, created_at, started_at, ended_at"
    };
}
pub(crate) use run_columns;

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    run_id: Uuid,
    at: DateTime<Utc>,
    from_state: Option<String>,
    to_state: String,
    cause: String,
    reason: Option<String>,
    message: Option<String>,
    attempt: i64,
    generation: i64,
}

impl EventRow {
    fn into_model(self) -> Result<RunEvent> {
        Ok(RunEvent {
            seq: self.seq,
            run_id: RunId(self.run_id),
            at: self.at,
            from_state: self.from_state.as_deref().map(parse_state).transpose()?,
            to_state: parse_state(&self.to_state)?,
            cause: self.cause,
            reason: parse_reason(self.reason)?,
            message: self.message,
            attempt: to_u32("run event attempt", self.attempt)?,
            generation: self.generation,
        })
    }
}

/// Appends an event to `run`'s history, describing the run as it now is. The caller changed
/// the run's row in the same transaction, so it holds that row's lock (PostgreSQL) or the
/// write lock (SQLite), which is what makes `MAX(seq) + 1` race-free.
pub(crate) async fn insert_event(
    tx: &mut Tx,
    run: &Run,
    from: Option<RunState>,
    cause: &str,
) -> Result<()> {
    const SQL: &str = concat!(
        "INSERT INTO run_events (run_id, seq, workspace_id, at, from_state, to_state, cause, ",
        "reason, message, attempt, generation) ",
        "SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10 ",
        "FROM run_events WHERE run_id = $1"
    );
    on_tx!(tx, |c| sqlx::query(SQL)
        .bind(run.id.0)
        .bind(run.workspace_id.0)
        .bind(now())
        .bind(from.map(RunState::as_str))
        .bind(run.state.as_str())
        .bind(cause)
        .bind(run.state_reason.map(FailureReason::as_str))
        .bind(run.state_message.as_deref())
        .bind(i64::from(run.attempt))
        .bind(run.generation)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The conditional update behind every owner's state change (see [`Store::run_transition`]).
/// `ws` scopes it to a workspace when a tenant asked for it. `None` when the run is not in
/// `t.from` at `t.generation` (or not in `ws`); the caller rolls back.
pub(crate) async fn apply_transition(
    tx: &mut Tx,
    ws: Option<WorkspaceId>,
    t: &Transition,
) -> Result<Option<Run>> {
    const SQL: &str = concat!(
        "UPDATE runs SET ",
        "state = $1, state_reason = $2, state_message = $3, ",
        "result = COALESCE($4, result), ",
        "infrastructure = CASE WHEN $5 THEN NULL ELSE COALESCE($6, infrastructure) END, ",
        "submit_intent = CASE WHEN $5 THEN NULL ELSE submit_intent END, ",
        "attempt = CASE WHEN $5 THEN attempt + 1 ELSE attempt END, ",
        "scheduled_at = CASE WHEN $5 THEN $7 ELSE scheduled_at END, ",
        // A new attempt starts its own clock (deadlines and max runtime count from it).
        "started_at = CASE WHEN $5 THEN NULL WHEN $8 THEN COALESCE(started_at, $7) \
         ELSE started_at END, ",
        "ended_at = CASE WHEN $9 THEN $7 ELSE ended_at END, ",
        "lease_owner = CASE WHEN $10 THEN NULL ELSE lease_owner END, ",
        "lease_expires_at = CASE WHEN $10 THEN NULL ELSE lease_expires_at END ",
        "WHERE id = $11 AND state = $12 AND generation = $13 ",
        "AND workspace_id = COALESCE($14, workspace_id) ",
        "RETURNING ",
        run_columns!()
    );
    // Back to `scheduled` is an infrastructure retry: a new attempt on fresh infrastructure.
    let requeue = t.to == RunState::Scheduled;
    let row = on_tx!(tx, |c| sqlx::query_as::<_, RunRow>(SQL)
        .bind(t.to.as_str())
        .bind(t.reason.map(FailureReason::as_str))
        .bind(t.message.as_deref())
        .bind(t.result.as_ref().map(Json))
        .bind(requeue)
        .bind(t.infrastructure.as_ref().map(Json))
        .bind(now())
        .bind(t.to == RunState::Running)
        .bind(t.to.is_terminal())
        .bind(t.to.is_terminal() || requeue)
        .bind(t.run_id.0)
        .bind(t.from.as_str())
        .bind(t.generation)
        .bind(ws.map(|w| w.0))
        .fetch_optional(c)
        .await)?;
    let Some(row) = row else { return Ok(None) };
    let run = row.into_model()?;
    insert_event(tx, &run, Some(t.from), &t.cause).await?;
    Ok(Some(run))
}

/// A page position: the last row's (created_at, id), as opaque hex text.
fn encode_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    let raw = format!(
        "{}|{}",
        created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        id.simple()
    );
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid)> {
    let pairs = cursor.as_bytes().chunks_exact(2);
    if cursor.is_empty() || cursor.len() > 256 || !pairs.remainder().is_empty() {
        return Err(Error::BadCursor);
    }
    let bytes = pairs
        .map(|pair| {
            // from_str_radix alone would accept a sign ("+f").
            std::str::from_utf8(pair)
                .ok()
                .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or(Error::BadCursor)
        })
        .collect::<Result<Vec<u8>>>()?;
    let raw = String::from_utf8(bytes).map_err(|_| Error::BadCursor)?;
    let (at, id) = raw.split_once('|').ok_or(Error::BadCursor)?;
    let at = DateTime::parse_from_rfc3339(at)
        .map_err(|_| Error::BadCursor)?
        .with_timezone(&Utc);
    let id = Uuid::parse_str(id).map_err(|_| Error::BadCursor)?;
    Ok((at, id))
}

/// How many runs a page holds when the caller does not say, and at most.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

impl Store {
    /// Submits a run: state `scheduled`, attempt 1, generation 0, with a first event. With an
    /// idempotency key that the workspace already used, returns that run and `false` instead
    /// (race-free: the unique index decides, and the loser reads the winner's run).
    /// `NotFound` if the pool is not in the workspace.
    pub async fn run_create(&self, new: &NewRun) -> Result<(Run, bool)> {
        self.run_insert(new, RunId::new(), None).await
    }

    /// [`Store::run_create`] with sensitive parameters, sealed for the run's id `id` (which
    /// the caller chose so it could bind the sealed value to it). If the idempotency key
    /// returns an earlier run, `sealed` is not stored: the earlier run keeps its own.
    pub async fn run_create_sealed(
        &self,
        new: &NewRun,
        id: RunId,
        sealed: &[u8],
    ) -> Result<(Run, bool)> {
        self.run_insert(new, id, Some(sealed)).await
    }

    /// The sealed sensitive parameters of run `id` of workspace `ws`, if it has any;
    /// `NotFound` if the run is not in `ws`. For whoever holds the workspace key.
    pub async fn run_sensitive_parameters(
        &self,
        ws: WorkspaceId,
        id: RunId,
    ) -> Result<Option<Vec<u8>>> {
        const SQL: &str =
            "SELECT sensitive_parameters FROM runs WHERE id = $1 AND workspace_id = $2";
        let row: Option<Option<Vec<u8>>> = on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(id.0)
            .bind(ws.0)
            .fetch_optional(p)
            .await)?;
        row.ok_or(Error::NotFound { kind: "run" })
    }

    async fn run_insert(
        &self,
        new: &NewRun,
        id: RunId,
        sealed: Option<&[u8]>,
    ) -> Result<(Run, bool)> {
        const POOL: &str = "SELECT name, pool_type FROM pools WHERE id = $1 AND workspace_id = $2";
        const INSERT: &str = concat!(
            "INSERT INTO runs (id, workspace_id, pool_id, pool_name, pool_type, state, attempt, ",
            "max_retries, generation, artifact, parameters, job_variables, limits, ",
            "idempotency_key, log_bytes, log_seq, log_truncated, scheduled_at, created_at, ",
            "sensitive_parameters) ",
            "VALUES ($1, $2, $3, $4, $5, 'scheduled', 1, $6, 0, $7, $8, $9, $10, $11, 0, 0, FALSE, ",
            "$12, $13, $14) RETURNING ",
            run_columns!()
        );
        let ws = new.workspace_id;
        if let Some(key) = &new.idempotency_key {
            if let Some(run) = self.run_by_idempotency_key(ws, key.as_str()).await? {
                return Ok((run, false));
            }
        }
        let mut tx = self.begin().await?;
        // FOR KEY SHARE: a concurrent pool_delete waits for this insert (or this waits for
        // the delete, and then finds no pool).
        let pool_sql = tx.locking(POOL, "FOR KEY SHARE");
        let pool: Option<(String, String)> = on_tx!(&mut tx, |c| sqlx::query_as(&pool_sql)
            .bind(new.pool_id.0)
            .bind(ws.0)
            .fetch_optional(c)
            .await)?;
        let (pool_name, pool_type) = pool.ok_or(Error::NotFound { kind: "pool" })?;
        let inserted = on_tx!(&mut tx, |c| sqlx::query_as::<_, RunRow>(INSERT)
            .bind(id.0)
            .bind(ws.0)
            .bind(new.pool_id.0)
            .bind(&pool_name)
            .bind(&pool_type)
            .bind(i64::from(new.max_retries))
            .bind(new.artifact.as_deref())
            .bind(Json(&new.parameters))
            .bind(Json(&new.job_variables))
            .bind(Json(&new.limits))
            .bind(new.idempotency_key.as_ref().map(|k| k.as_str()))
            .bind(micros(new.scheduled_at))
            .bind(now())
            .bind(sealed)
            .fetch_one(c)
            .await);
        let row = match (inserted, &new.idempotency_key) {
            (Ok(row), _) => row,
            (Err(e), Some(key)) if is_unique_violation(&e) => {
                // Another submission with the same key won the race: answer with its run.
                drop(tx);
                let run = self.run_by_idempotency_key(ws, key.as_str()).await?;
                return run.map(|r| (r, false)).ok_or(Error::Database(e));
            }
            (Err(e), _) => return Err(e.into()),
        };
        let run = row.into_model()?;
        insert_event(&mut tx, &run, None, "submitted").await?;
        tx.commit().await?;
        Ok((run, true))
    }

    async fn run_by_idempotency_key(&self, ws: WorkspaceId, key: &str) -> Result<Option<Run>> {
        const SQL: &str = concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE workspace_id = $1 AND idempotency_key = $2"
        );
        on_pool!(self, |p| sqlx::query_as::<_, RunRow>(SQL)
            .bind(ws.0)
            .bind(key)
            .fetch_optional(p)
            .await)?
        .map(RunRow::into_model)
        .transpose()
    }

    /// A run of workspace `ws`; `NotFound` if it does not exist or is another workspace's.
    pub async fn run_get(&self, ws: WorkspaceId, id: RunId) -> Result<Run> {
        const SQL: &str = concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id = $1 AND workspace_id = $2"
        );
        on_pool!(self, |p| sqlx::query_as::<_, RunRow>(SQL)
            .bind(id.0)
            .bind(ws.0)
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "run" })?
        .into_model()
    }

    /// A run, whichever workspace it belongs to. System use only (the engine, which acts for
    /// every workspace): never call it with an id a tenant supplied.
    pub async fn run_get_unscoped(&self, id: RunId) -> Result<Run> {
        const SQL: &str = concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1");
        on_pool!(self, |p| sqlx::query_as::<_, RunRow>(SQL)
            .bind(id.0)
            .fetch_optional(p)
            .await)?
        .ok_or(Error::NotFound { kind: "run" })?
        .into_model()
    }

    /// The workspace's runs, newest first (by creation time, then id), optionally only those
    /// of one pool name (including runs of an earlier, deleted pool of that name) or in one
    /// state. `filter.limit` is clamped to 1..=500, 0 meaning 50. `next_cursor` is set when a
    /// further page exists; a cursor this store did not make is `BadCursor`.
    pub async fn runs_list(&self, ws: WorkspaceId, filter: &RunFilter) -> Result<Page<Run>> {
        const SQL: &str = concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE workspace_id = $1 ",
            "AND ($2 IS NULL OR pool_name = $2) ",
            "AND ($3 IS NULL OR state = $3) ",
            "AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND id < $5)) ",
            "ORDER BY created_at DESC, id DESC LIMIT $6"
        );
        let limit = match filter.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let after = filter.cursor.as_deref().map(decode_cursor).transpose()?;
        let rows = on_pool!(self, |p| sqlx::query_as::<_, RunRow>(SQL)
            .bind(ws.0)
            .bind(filter.pool.as_ref().map(Name::as_str))
            .bind(filter.state.map(RunState::as_str))
            .bind(after.map(|(at, _)| at))
            .bind(after.map(|(_, id)| id))
            // One more than asked for tells whether a further page exists.
            .bind(i64::from(limit) + 1)
            .fetch_all(p)
            .await)?;
        let mut items = rows
            .into_iter()
            .map(RunRow::into_model)
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|r| encode_cursor(r.created_at, r.id.0))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Asks for a run to stop. A `scheduled` run is `cancelled` at once; a `pending` or
    /// `running` one becomes `cancelling` (its owner stops it and ends it); a `cancelling` one
    /// is returned as it is; a finished one is `InUse`. Never changes the run's generation,
    /// so the owner's lease stays valid.
    pub async fn run_request_cancel(&self, ws: WorkspaceId, id: RunId) -> Result<Run> {
        // The owner may change the run between our read and our conditional update; then
        // read again. Three rounds lose only to an owner changing state faster than we can
        // read, which its state machine does not allow (every path ends terminal quickly).
        let mut last = None;
        for _ in 0..3 {
            let run = self.run_get(ws, id).await?;
            let to = match run.state {
                RunState::Cancelling => return Ok(run),
                RunState::Scheduled => RunState::Cancelled,
                RunState::Pending | RunState::Running => RunState::Cancelling,
                done => return Err(Error::InUse(format!("run is already {done}"))),
            };
            let t = Transition {
                run_id: id,
                from: run.state,
                generation: run.generation,
                to,
                cause: "cancel requested".to_owned(),
                reason: None,
                message: None,
                result: None,
                infrastructure: None,
            };
            let mut tx = self.begin().await?;
            if let Some(updated) = apply_transition(&mut tx, Some(ws), &t).await? {
                tx.commit().await?;
                return Ok(updated);
            }
            last = Some((run.state, run.generation));
        }
        let (expected, generation) = last.unwrap_or((RunState::Scheduled, 0));
        Err(Error::Stale {
            expected,
            generation,
        })
    }

    /// Records the result a pushed run's container posted (with its run token) for attempt
    /// `attempt`, while that attempt is still in flight (`pending`, `running`, `cancelling`).
    /// The run's end (seen by the reconciler) keeps it. `InUse` if the run has ended or moved
    /// to another attempt; `NotFound` if it is not in `ws`.
    pub async fn run_post_result(
        &self,
        ws: WorkspaceId,
        id: RunId,
        attempt: u32,
        result: &Value,
    ) -> Result<()> {
        const SQL: &str = "UPDATE runs SET result = $1 WHERE id = $2 AND workspace_id = $3 \
                           AND attempt = $4 AND state IN ('pending', 'running', 'cancelling')";
        let n = on_pool!(self, |p| sqlx::query(SQL)
            .bind(Json(result))
            .bind(id.0)
            .bind(ws.0)
            .bind(i64::from(attempt))
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        if n == 1 {
            return Ok(());
        }
        let run = self.run_get(ws, id).await?;
        Err(Error::InUse(if run.attempt != attempt {
            format!("the run is on attempt {}, not {attempt}", run.attempt)
        } else {
            format!("the run is already {}", run.state)
        }))
    }

    /// The run's history, oldest first; `NotFound` if the run is not in `ws`.
    pub async fn run_events(&self, ws: WorkspaceId, id: RunId) -> Result<Vec<RunEvent>> {
        const SQL: &str = concat!(
            "SELECT seq, run_id, at, from_state, to_state, cause, reason, message, attempt, ",
            "generation FROM run_events WHERE run_id = $1 AND workspace_id = $2 ORDER BY seq"
        );
        self.run_exists(ws, id).await?;
        on_pool!(self, |p| sqlx::query_as::<_, EventRow>(SQL)
            .bind(id.0)
            .bind(ws.0)
            .fetch_all(p)
            .await)?
        .into_iter()
        .map(EventRow::into_model)
        .collect()
    }

    /// `NotFound` unless run `id` is in workspace `ws`.
    pub(crate) async fn run_exists(&self, ws: WorkspaceId, id: RunId) -> Result<()> {
        const SQL: &str = "SELECT id FROM runs WHERE id = $1 AND workspace_id = $2";
        let found: Option<Uuid> = on_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(id.0)
            .bind(ws.0)
            .fetch_optional(p)
            .await)?;
        found.map(|_| ()).ok_or(Error::NotFound { kind: "run" })
    }

    /// Moves a run its caller owns from `t.from` to `t.to`, if the transition table allows it
    /// (`Transition` error otherwise) and the run is still in `t.from` at `t.generation`
    /// (`Stale` otherwise); in either failure nothing is written. In one transaction with
    /// the event it records:
    /// - `state_reason` / `state_message` are set to the transition's (cleared when `None`),
    ///   `result` and `infrastructure` replaced when `Some`;
    /// - entering `running` sets `started_at` if unset; a terminal state sets `ended_at`;
    /// - a terminal state or `scheduled` releases the lease;
    /// - `scheduled` (an infrastructure retry) also adds one to `attempt`, forgets the
    ///   attempt's infrastructure, submission intent and `started_at`, and makes the run due now.
    ///
    /// The generation is not changed: only claims and takeovers change it.
    pub async fn run_transition(&self, t: &Transition) -> Result<Run> {
        t.from.transition(t.to)?;
        let mut tx = self.begin().await?;
        let run = apply_transition(&mut tx, None, t)
            .await?
            .ok_or(Error::Stale {
                expected: t.from,
                generation: t.generation,
            })?;
        tx.commit().await?;
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let at = now();
        let id = Uuid::new_v4();
        let c = encode_cursor(at, id);
        assert_eq!(decode_cursor(&c).ok(), Some((at, id)));
        for bad in [
            "",
            "zz",
            "abc",
            "00",
            &c[..c.len() - 2],
            &format!("{c}00"),
            "7c7c",
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(Error::BadCursor)),
                "{bad:?}"
            );
        }
    }
}
