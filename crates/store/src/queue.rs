//! The work queue: claiming due runs, taking over runs whose owner's lease expired, renewing
//! leases, and the owner's conditional writes. These methods act for the system (the engine),
//! not for a tenant, so they are not scoped by workspace.
//!
//! Ownership is a lease (`lease_owner`, `lease_expires_at`) plus a fencing `generation` that
//! every claim and takeover bumps: an owner that lost its run can no longer change it,
//! because its writes are conditional on the generation it claimed at.
//!
//! Concurrency: on PostgreSQL, claimers lock candidate runs `FOR NO KEY UPDATE SKIP LOCKED`, so they
//! never claim the same run and never wait for each other's runs; a pool with a concurrency
//! limit is locked `FOR NO KEY UPDATE SKIP LOCKED` before its unfinished runs are counted, so
//! two claimers cannot both fill its last slot (a claimer that finds the pool locked leaves
//! that pool's runs to the claimer holding it). On SQLite the claim runs in a `BEGIN
//! IMMEDIATE` transaction, which holds the database's single write lock throughout.

use chrono::{DateTime, Utc};
use ferry_core::{PoolLimits, PoolType, RunId, RunState};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::models::Run;
use crate::pools::parse_limits;
use crate::runs::{insert_event, parse_state, run_columns, RunRow};
use crate::store::{micros, on_pool, on_tx, owned_states, Store, Tx};

/// A due run that may be claimed, with its pool's concurrency limit and both sides' limits.
#[derive(sqlx::FromRow)]
struct Candidate {
    id: Uuid,
    pool_id: Uuid,
    generation: i64,
    concurrency_limit: Option<i64>,
    pool_limits: Json<Value>,
    run_limits: Json<Value>,
}

/// The memory (MiB) a run with these limits may take: its pool's, lowered by its own.
fn memory_mb(pool: Value, run: Value) -> Result<u64> {
    let (pool, run) = (parse_limits(pool)?, parse_limits(run)?);
    let limits = pool.narrowed_by(&run).unwrap_or_else(|_| pool.effective());
    Ok(limits
        .memory_mb
        .or(PoolLimits::DEFAULT.memory_mb)
        .map_or(0, u64::from))
}

/// The memory limits, summed, of the runs `owner` holds in an owned state.
async fn memory_held(tx: &mut Tx, owner: &str) -> Result<u64> {
    const HELD: &str = concat!(
        "SELECT p.limits AS pool_limits, r.limits AS run_limits ",
        "FROM runs r JOIN pools p ON p.id = r.pool_id ",
        "WHERE r.lease_owner = $1 AND r.state IN ",
        owned_states!()
    );
    let rows: Vec<(Json<Value>, Json<Value>)> =
        on_tx!(tx, |c| sqlx::query_as(HELD).bind(owner).fetch_all(c).await)?;
    let mut used = 0u64;
    for (pool, run) in rows {
        used = used.saturating_add(memory_mb(pool.0, run.0)?);
    }
    Ok(used)
}

/// An owned run whose lease expired.
#[derive(sqlx::FromRow)]
struct Expired {
    id: Uuid,
    generation: i64,
    lease_owner: Option<String>,
}

/// The pool types as three bind values (the SQL has a fixed `IN ($n, $n+1, $n+2)`; fewer
/// types repeat the first). `None` when there are none.
fn type_binds(pool_types: &[PoolType]) -> Option<[&'static str; 3]> {
    let first = pool_types.first()?.as_str();
    let mut out = [first; 3];
    for (slot, t) in out.iter_mut().zip(pool_types.iter()) {
        *slot = t.as_str();
    }
    Some(out)
}

impl Store {
    /// Claims up to `limit` runs for `owner`, leasing them until `lease_until`:
    /// - takeovers first: runs in an owned state (pending, running, cancelling) whose lease
    ///   expired before `now` (their owner died), of one of `pool_types`. They keep their
    ///   state and get the new owner and a new generation;
    /// - then due runs: `scheduled` with `scheduled_at <= now`, oldest first, in an unpaused
    ///   pool of one of `pool_types`, without taking a pool past its concurrency limit (runs
    ///   pending, running or cancelling count against it). They become `pending` with a new
    ///   generation.
    ///
    /// Each claimed run gets an event. Returns the claimed runs as they now are.
    pub async fn runs_claim(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        pool_types: &[PoolType],
    ) -> Result<Vec<Run>> {
        self.runs_claim_within(owner, now, lease_until, limit, pool_types, None)
            .await
    }

    /// [`Store::runs_claim`], within a memory budget: with `memory_budget_mb`, a due run is
    /// claimed only if its memory limit (its pool's, lowered by its own) fits in what the
    /// budget leaves after the runs `owner` already holds in an owned state; one that does
    /// not fit stays `scheduled` for a later round (or another process). Takeovers are not
    /// held back: they are runs already admitted somewhere.
    pub async fn runs_claim_within(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        pool_types: &[PoolType],
        memory_budget_mb: Option<u64>,
    ) -> Result<Vec<Run>> {
        let Some(types) = type_binds(pool_types) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (now, until) = (micros(now), micros(lease_until));
        let mut tx = self.begin().await?;
        let mut claimed = take_over_expired(&mut tx, owner, now, until, limit, types).await?;
        let remaining = limit as usize - claimed.len();
        let memory_left = match memory_budget_mb {
            Some(budget) => {
                let used = memory_held(&mut tx, owner).await?;
                Some(budget.saturating_sub(used))
            }
            None => None,
        };
        if remaining > 0 && memory_left != Some(0) {
            claimed.extend(
                claim_due(&mut tx, owner, now, until, remaining, types, memory_left).await?,
            );
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Extends to `until` the lease of each `(run, generation)` that `owner` still holds at
    /// that generation in an owned state. Returns the runs it does not hold any more (taken
    /// over, finished, released or gone), in the order given: their owner must stop working
    /// on them.
    pub async fn runs_renew_leases(
        &self,
        owner: &str,
        held: &[(RunId, i64)],
        until: DateTime<Utc>,
    ) -> Result<Vec<RunId>> {
        const SQL: &str = concat!(
            "UPDATE runs SET lease_expires_at = $1 ",
            "WHERE id = $2 AND generation = $3 AND lease_owner = $4 AND state IN ",
            owned_states!()
        );
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let until = micros(until);
        // Rows are locked in id order, so two overlapping renewals cannot deadlock.
        let mut order: Vec<usize> = (0..held.len()).collect();
        order.sort_by_key(|&i| held[i].0);
        let mut lost = Vec::new();
        let mut tx = self.begin().await?;
        for i in order {
            let (id, generation) = held[i];
            let done = on_tx!(&mut tx, |c| sqlx::query(SQL)
                .bind(until)
                .bind(id.0)
                .bind(generation)
                .bind(owner)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
            if done == 0 {
                lost.push(i);
            }
        }
        tx.commit().await?;
        // In the caller's order.
        lost.sort_unstable();
        let lost = lost.into_iter().map(|i| held[i].0).collect();
        Ok(lost)
    }

    /// Records what is about to be submitted for the run's current attempt, before the
    /// submission, so that after a crash the next owner looks for it instead of submitting
    /// again. Conditional on the run being `pending` (submissions happen there) at
    /// `generation`: `Stale` otherwise. Stored on the run, not as an event (events record
    /// state changes); a retry (back to `scheduled`) clears it.
    pub async fn run_record_intent(
        &self,
        id: RunId,
        generation: i64,
        intent: &Value,
    ) -> Result<()> {
        const SQL: &str = "UPDATE runs SET submit_intent = $1 \
            WHERE id = $2 AND generation = $3 AND state = 'pending'";
        let done = on_pool!(self, |p| sqlx::query(SQL)
            .bind(Json(intent))
            .bind(id.0)
            .bind(generation)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(Error::Stale {
                expected: RunState::Pending,
                generation,
            });
        }
        Ok(())
    }

    /// Records an event that changes nothing (`from` = `to` = the run's state): what an owner
    /// did meanwhile, e.g. a submission retried after a transient failure. Conditional on the
    /// run being owned at `generation`: `Stale` otherwise.
    pub async fn run_note(&self, id: RunId, generation: i64, cause: &str) -> Result<()> {
        let sql = concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id = $1 AND generation = $2 AND state IN ",
            owned_states!()
        );
        let mut tx = self.begin().await?;
        let row: Option<RunRow> = on_tx!(&mut tx, |c| sqlx::query_as(sql)
            .bind(id.0)
            .bind(generation)
            .fetch_optional(c)
            .await)?;
        let Some(row) = row else {
            return Err(Error::Stale {
                expected: RunState::Pending,
                generation,
            });
        };
        let run = row.into_model()?;
        insert_event(&mut tx, &run, Some(run.state), cause).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the executor's handle (task ARN, execution name) for the current attempt.
    /// Conditional on the run being owned (pending, running or cancelling) at `generation`:
    /// `Stale` otherwise, reported against `pending`, where submissions happen. Stored on the
    /// run, not as an event; a retry clears it.
    pub async fn run_set_infrastructure(
        &self,
        id: RunId,
        generation: i64,
        infra: &Value,
    ) -> Result<()> {
        const SQL: &str = concat!(
            "UPDATE runs SET infrastructure = $1 WHERE id = $2 AND generation = $3 AND state IN ",
            owned_states!()
        );
        let done = on_pool!(self, |p| sqlx::query(SQL)
            .bind(Json(infra))
            .bind(id.0)
            .bind(generation)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(Error::Stale {
                expected: RunState::Pending,
                generation,
            });
        }
        Ok(())
    }

    /// The unfinished runs `owner` holds the lease of (what a restarted scheduler resumes),
    /// oldest first. Includes runs whose lease expired but that nobody took over yet.
    pub async fn runs_owned(&self, owner: &str) -> Result<Vec<Run>> {
        const SQL: &str = concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE lease_owner = $1 AND state IN ",
            owned_states!(),
            " ORDER BY created_at, id"
        );
        on_pool!(self, |p| sqlx::query_as::<_, RunRow>(SQL)
            .bind(owner)
            .fetch_all(p)
            .await)?
        .into_iter()
        .map(RunRow::into_model)
        .collect()
    }

    /// How many runs are in each state, across all workspaces (for metrics): every state,
    /// in `RunState::ALL` order, zero included.
    pub async fn runs_count_by_state(&self) -> Result<Vec<(RunState, i64)>> {
        const SQL: &str = "SELECT state, COUNT(*) FROM runs GROUP BY state";
        let rows: Vec<(String, i64)> = on_pool!(self, |p| sqlx::query_as(SQL).fetch_all(p).await)?;
        let mut counts: Vec<(RunState, i64)> = RunState::ALL.iter().map(|s| (*s, 0)).collect();
        for (state, n) in rows {
            let state = parse_state(&state)?;
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
                slot.1 = n;
            }
        }
        Ok(counts)
    }
}

/// Takes over up to `limit` owned runs whose lease expired before `now`.
async fn take_over_expired(
    tx: &mut Tx,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u32,
    types: [&str; 3],
) -> Result<Vec<Run>> {
    const FIND: &str = concat!(
        "SELECT id, generation, lease_owner FROM runs WHERE state IN ",
        owned_states!(),
        " AND lease_expires_at < $1 AND pool_type IN ($2, $3, $4) ",
        "ORDER BY lease_expires_at, id LIMIT $5"
    );
    const TAKE: &str = concat!(
        "UPDATE runs SET generation = generation + 1, lease_owner = $1, lease_expires_at = $2 ",
        "WHERE id = $3 AND generation = $4 AND lease_expires_at < $5 AND state IN ",
        owned_states!(),
        " RETURNING ",
        run_columns!()
    );
    let find = tx.locking(FIND, "FOR NO KEY UPDATE SKIP LOCKED");
    let expired: Vec<Expired> = on_tx!(tx, |c| sqlx::query_as(&find)
        .bind(now)
        .bind(types[0])
        .bind(types[1])
        .bind(types[2])
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
    let mut taken = Vec::with_capacity(expired.len());
    for e in expired {
        let row: Option<RunRow> = on_tx!(tx, |c| sqlx::query_as(TAKE)
            .bind(owner)
            .bind(until)
            .bind(e.id)
            .bind(e.generation)
            .bind(now)
            .fetch_optional(c)
            .await)?;
        // The row is locked (or the database is), so it cannot have changed; the conditions
        // are repeated so that the update is right on its own, and a run that did change is
        // skipped rather than failing the whole claim.
        let Some(row) = row else { continue };
        let run = row.into_model()?;
        let old = e.lease_owner.as_deref().unwrap_or("(nobody)");
        tracing::info!(
            run_id = %run.id,
            old_owner = old,
            owner,
            generation = run.generation,
            "Run lease taken over"
        );
        let cause = format!("lease of {old} expired; taken over by {owner}");
        insert_event(tx, &run, Some(run.state), &cause).await?;
        taken.push(run);
    }
    Ok(taken)
}

/// Claims up to `limit` due runs, within their pools' concurrency limits.
async fn claim_due(
    tx: &mut Tx,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: usize,
    types: [&str; 3],
    mut memory_left: Option<u64>,
) -> Result<Vec<Run>> {
    // Pools already at their limit are filtered out here, so their runs do not crowd out
    // the candidates of other pools; the exact count is taken again below, under a lock.
    const FIND: &str = concat!(
        "SELECT r.id, r.pool_id, r.generation, p.concurrency_limit, ",
        "p.limits AS pool_limits, r.limits AS run_limits ",
        "FROM runs r JOIN pools p ON p.id = r.pool_id ",
        "WHERE r.state = 'scheduled' AND r.scheduled_at <= $1 AND p.paused = FALSE ",
        "AND r.pool_type IN ($2, $3, $4) ",
        "AND (p.concurrency_limit IS NULL OR p.concurrency_limit > ",
        "(SELECT COUNT(*) FROM runs a WHERE a.pool_id = r.pool_id AND a.state IN ",
        owned_states!(),
        ")) ",
        // Fair share: the workspace with the fewest runs in flight goes first, so one
        // tenant's flood cannot starve another's runs; then oldest first.
        "ORDER BY (SELECT COUNT(*) FROM runs w WHERE w.workspace_id = r.workspace_id ",
        "AND w.state IN ",
        owned_states!(),
        "), r.scheduled_at, r.id LIMIT $5"
    );
    const LOCK_POOL: &str = "SELECT id FROM pools WHERE id = $1";
    const COUNT_OWNED: &str = concat!(
        "SELECT COUNT(*) FROM runs WHERE pool_id = $1 AND state IN ",
        owned_states!()
    );
    const CLAIM: &str = concat!(
        "UPDATE runs SET state = 'pending', generation = generation + 1, lease_owner = $1, ",
        "lease_expires_at = $2 WHERE id = $3 AND state = 'scheduled' AND generation = $4 ",
        "RETURNING ",
        run_columns!()
    );
    let find = tx.locking(FIND, "FOR NO KEY UPDATE OF r SKIP LOCKED");
    let candidates: Vec<Candidate> = on_tx!(tx, |c| sqlx::query_as(&find)
        .bind(now)
        .bind(types[0])
        .bind(types[1])
        .bind(types[2])
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(c)
        .await)?;

    // Free slots of each limited pool among the candidates, counted under the pool's lock.
    let mut limited: Vec<(Uuid, i64)> = candidates
        .iter()
        .filter_map(|c| c.concurrency_limit.map(|l| (c.pool_id, l)))
        .collect();
    // Sorted, so concurrent claimers lock pools in the same order.
    limited.sort();
    limited.dedup_by_key(|(id, _)| *id);
    let lock_pool = tx.locking(LOCK_POOL, "FOR NO KEY UPDATE SKIP LOCKED");
    let mut free: Vec<(Uuid, i64)> = Vec::with_capacity(limited.len());
    for (pool_id, cap) in limited {
        let locked: Option<Uuid> = on_tx!(tx, |c| sqlx::query_scalar(&lock_pool)
            .bind(pool_id)
            .fetch_optional(c)
            .await)?;
        if locked.is_none() {
            // Another claimer holds the pool (it is filling its slots): leave it to that one.
            free.push((pool_id, 0));
            continue;
        }
        let owned: i64 = on_tx!(tx, |c| sqlx::query_scalar(COUNT_OWNED)
            .bind(pool_id)
            .fetch_one(c)
            .await)?;
        free.push((pool_id, cap - owned));
    }

    let mut claimed = Vec::with_capacity(candidates.len());
    for cand in candidates {
        if let Some((_, slots)) = free.iter_mut().find(|(id, _)| *id == cand.pool_id) {
            if *slots <= 0 {
                continue;
            }
        }
        if let Some(left) = memory_left.as_mut() {
            let needs = memory_mb(cand.pool_limits.0.clone(), cand.run_limits.0.clone())?;
            if needs > *left {
                // Waits `scheduled` until enough is free.
                continue;
            }
            *left -= needs;
        }
        if let Some((_, slots)) = free.iter_mut().find(|(id, _)| *id == cand.pool_id) {
            *slots -= 1;
        }
        let row: Option<RunRow> = on_tx!(tx, |c| sqlx::query_as(CLAIM)
            .bind(owner)
            .bind(until)
            .bind(cand.id)
            .bind(cand.generation)
            .fetch_optional(c)
            .await)?;
        let Some(row) = row else { continue };
        let run = row.into_model()?;
        insert_event(
            tx,
            &run,
            Some(RunState::Scheduled),
            &format!("claimed by {owner}"),
        )
        .await?;
        claimed.push(run);
    }
    Ok(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_types_fill_three_binds() {
        assert_eq!(type_binds(&[]), None);
        assert_eq!(type_binds(&[PoolType::Ecs]), Some(["ecs"; 3]));
        assert_eq!(
            type_binds(&[PoolType::Managed, PoolType::CloudRun]),
            Some(["managed", "cloud-run", "managed"])
        );
        assert_eq!(
            type_binds(&PoolType::ALL),
            Some(["managed", "cloud-run", "ecs"])
        );
    }
}
