//! Driving one run: the managed path (run the flow to its end), the push saga (intent, look,
//! submit, record), and push reconciliation (poll in batches, map statuses, enforce deadlines
//! and cancellation). Every write is a conditional transition; losing one means another
//! scheduler owns the run now, and this one stops touching it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ferry_core::port::{FlowOutcome, PushBackend, PushError, PushStatus, RunJob};
use ferry_core::{Failure, FailureReason, RunState};
use ferry_store::{Run, Transition};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::scheduler::Inner;
use crate::StoreLogSink;

/// The run is no longer ours (or its row could not be written); stop driving it here.
#[derive(Debug)]
struct Abandon;

/// What to change a run to.
struct Change {
    to: RunState,
    cause: String,
    failure: Option<Failure>,
    result: Option<Value>,
    infrastructure: Option<Value>,
}

impl Change {
    fn to(to: RunState, cause: impl Into<String>) -> Self {
        Self {
            to,
            cause: cause.into(),
            failure: None,
            result: None,
            infrastructure: None,
        }
    }

    fn failed(failure: Failure, cause: impl Into<String>) -> Self {
        let to = failure.reason.terminal_state();
        Self {
            failure: Some(failure),
            ..Self::to(to, cause)
        }
    }
}

/// Applies a change to a held run, conditional on the state and generation we last saw. If
/// the row moved under us (a cancel request), re-reads it and retries from the new state
/// where the table allows; if the generation moved, the run is lost.
async fn apply(inner: &Inner, run: &Run, mut change: Change) -> Result<Run, Abandon> {
    let mut current = run.clone();
    let mut db_failures = 0u32;
    loop {
        if inner.is_lost(current.id) {
            return Err(Abandon);
        }
        if !current.state.can_become(change.to) {
            // A cancel request arrived: a retry becomes a cancellation; a start is moot.
            match (current.state, change.to) {
                (RunState::Cancelling, RunState::Scheduled) => {
                    change = Change {
                        to: RunState::Cancelled,
                        ..change
                    };
                }
                (RunState::Cancelling, RunState::Running) => return Ok(current),
                _ => {
                    tracing::error!(run_id = %current.id, from = %current.state, to = %change.to, "Run transition not allowed; leaving the run to its lease");
                    return Err(Abandon);
                }
            }
        }
        let t = Transition {
            run_id: current.id,
            from: current.state,
            generation: current.generation,
            to: change.to,
            cause: change.cause.clone(),
            reason: change.failure.as_ref().map(|f| f.reason),
            message: change.failure.as_ref().map(|f| f.message.clone()),
            result: change.result.clone(),
            infrastructure: change.infrastructure.clone(),
        };
        match inner.store.run_transition(&t).await {
            Ok(updated) => {
                tracing::info!(run_id = %updated.id, from = %t.from, to = %t.to, reason = ?t.reason, attempt = updated.attempt, "Run state changed");
                inner
                    .observer
                    .transitioned(updated.pool_type, t.from, t.to, t.reason);
                inner.update_held(&updated);
                return Ok(updated);
            }
            Err(ferry_store::Error::Stale { .. }) => {
                let fresh = inner
                    .store
                    .run_get_unscoped(current.id)
                    .await
                    .map_err(|_| Abandon)?;
                if fresh.generation != current.generation
                    || fresh.lease_owner.as_deref() != Some(&inner.config.owner)
                    || fresh.state.is_terminal()
                {
                    inner.release(current.id);
                    return Err(Abandon);
                }
                inner.update_held(&fresh);
                current = fresh;
            }
            Err(error) => {
                db_failures += 1;
                if db_failures >= 5 {
                    tracing::error!(run_id = %current.id, error = %error, "Run state could not be written; leaving the run to its lease");
                    return Err(Abandon);
                }
                tokio::time::sleep(Duration::from_millis(100 << db_failures)).await;
            }
        }
    }
}

/// An infrastructure failure: another attempt if the reason and the run's retries allow,
/// otherwise the terminal state of the reason.
fn crash_or_retry(run: &Run, failure: Failure) -> Change {
    if failure.reason.is_retryable() && run.attempt <= run.max_retries {
        let cause = format!(
            "attempt {} ended ({}); retrying as attempt {}",
            run.attempt,
            failure.reason,
            run.attempt + 1
        );
        Change {
            failure: Some(failure),
            ..Change::to(RunState::Scheduled, cause)
        }
    } else {
        let cause = format!("attempt {} ended ({})", run.attempt, failure.reason);
        Change::failed(failure, cause)
    }
}

async fn job_for(inner: &Inner, run: &Run) -> Result<RunJob, Failure> {
    let pool = inner
        .store
        .pool_get_by_id(run.workspace_id, run.pool_id)
        .await
        .map_err(|e| {
            Failure::new(
                FailureReason::Internal,
                format!("reading the run's pool: {e}"),
            )
        })?;
    let limits = pool.limits.narrowed_by(&run.limits).map_err(|e| {
        Failure::new(
            FailureReason::InvalidConfig,
            format!("the pool's limits changed: {e}"),
        )
    })?;
    Ok(RunJob {
        run_id: run.id,
        workspace_id: run.workspace_id,
        pool_id: run.pool_id,
        pool: pool.name,
        pool_type: pool.pool_type,
        attempt: run.attempt,
        artifact: run.artifact.clone(),
        parameters: run.parameters.clone(),
        job_template: pool.job_template,
        job_variables: run.job_variables.clone(),
        credential: pool.credential,
        limits,
        has_sensitive_parameters: run.has_sensitive_parameters,
        infrastructure: run.infrastructure.clone(),
    })
}

fn stop_token(inner: &Inner, run: &Run) -> CancellationToken {
    inner
        .held()
        .get(&run.id)
        .map(|h| h.stop.clone())
        .unwrap_or_default()
}

/// Drives a freshly claimed (or taken-over) run.
pub(crate) async fn drive(inner: Arc<Inner>, run: Run) {
    let id = run.id;
    let outcome = if run.pool_type.is_push() {
        drive_push(&inner, run).await
    } else {
        drive_managed(&inner, run).await
    };
    // Managed runs are done here either way; push runs stay held for the reconciler unless
    // they ended or were lost.
    let keep = outcome.is_ok_and(|r| r.pool_type.is_push() && r.state.is_owned());
    if !keep {
        inner.release(id);
    }
}

async fn drive_managed(inner: &Inner, run: Run) -> Result<Run, Abandon> {
    let owner = inner.config.owner.clone();
    match run.state {
        RunState::Running => {
            let f = Failure::new(
                FailureReason::WorkerLost,
                "the scheduler executing it stopped",
            );
            return apply(inner, &run, crash_or_retry(&run, f)).await;
        }
        RunState::Cancelling => {
            let change = Change::to(RunState::Cancelled, "cancelled; its executor had stopped");
            return apply(inner, &run, change).await;
        }
        _ => {}
    }
    let job = match job_for(inner, &run).await {
        Ok(job) => job,
        Err(f) => return apply(inner, &run, Change::failed(f, "could not be prepared")).await,
    };
    let Some(runner) = inner.executors.managed.clone() else {
        return Err(Abandon);
    };
    let stop = stop_token(inner, &run);
    let _slot = inner
        .managed_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Abandon)?;
    let run = apply(
        inner,
        &run,
        Change::to(RunState::Running, format!("started by {owner}")),
    )
    .await?;
    if run.state == RunState::Cancelling {
        return apply(
            inner,
            &run,
            Change::to(RunState::Cancelled, "cancelled before it started"),
        )
        .await;
    }
    let cap = job.limits.log_bytes.unwrap_or(u64::MAX);
    let sink = StoreLogSink::new(inner.store.clone(), run.id, cap);
    let timeout = Duration::from_secs(u64::from(job.limits.timeout_s.unwrap_or(u32::MAX)));
    let deadline = timeout + inner.config.timeout_grace;
    let flow = runner.run(&job, &sink, stop.clone());
    tokio::pin!(flow);
    let mut timed_out = false;
    let outcome = tokio::select! {
        o = &mut flow => o,
        _ = tokio::time::sleep(deadline) => {
            timed_out = true;
            stop.cancel();
            let _ = tokio::time::timeout(inner.config.timeout_grace, &mut flow).await;
            FlowOutcome::Failed(Failure::new(FailureReason::Timeout, format!("ran past its timeout of {}s", timeout.as_secs())))
        }
    };
    if inner.is_lost(run.id) {
        return Err(Abandon);
    }
    let current = inner
        .held()
        .get(&run.id)
        .map(|h| h.run.clone())
        .unwrap_or(run);
    let change = match outcome {
        FlowOutcome::Completed { result } => Change {
            result: Some(result),
            ..Change::to(RunState::Completed, "completed")
        },
        FlowOutcome::Failed(f) => Change::failed(f, "the flow failed"),
        FlowOutcome::Crashed(f) => crash_or_retry(&current, f),
        FlowOutcome::Cancelled if timed_out => Change::failed(
            Failure::new(
                FailureReason::Timeout,
                format!("ran past its timeout of {}s", timeout.as_secs()),
            ),
            "timed out",
        ),
        FlowOutcome::Cancelled => Change::to(RunState::Cancelled, "cancelled on request"),
    };
    apply(inner, &current, change).await
}

/// Calls the cloud, retrying transient errors a few times with backoff.
/// Logs a cloud call's failure for the operator, with the upstream detail the tenant never sees.
fn log_failure(run: &Run, what: &str, e: &PushError) {
    tracing::warn!(
        run_id = %run.id,
        error = %e,
        detail = e.detail.as_deref().unwrap_or(""),
        "{what} failed"
    );
}

/// Calls `call` until it succeeds, fails for good, or transient failures (throttling, 5xx,
/// capacity) have used up the start deadline: retried with jittered exponential backoff (200 ms
/// doubling to 30 s), each retry a run event. Stops early when the run must stop here (a
/// cancel request, a lost lease).
async fn with_retries<T, F, Fut>(
    inner: &Inner,
    what: &str,
    run: &Run,
    mut call: F,
) -> Result<T, PushError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PushError>>,
{
    let budget = inner.config.start_deadline;
    let began = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(200);
    let mut tries = 0u32;
    loop {
        let e = match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() => e,
            Err(e) => return Err(e),
        };
        // Half to all of `delay`, so many runs throttled together do not retry in step.
        let wait = delay.mul_f64(rand::random::<f64>().mul_add(0.5, 0.5));
        let stop = inner.held().get(&run.id).map(|h| h.stop.clone());
        if began.elapsed() + wait > budget || stop.as_ref().is_some_and(|s| s.is_cancelled()) {
            return Err(e);
        }
        tries += 1;
        tracing::warn!(run_id = %run.id, error = %e, detail = e.detail.as_deref().unwrap_or(""), tries, "{what} failed; retrying");
        let cause = format!(
            "{what} failed ({}: {}); retry {tries} in {} ms",
            e.failure.reason,
            e.failure.message,
            wait.as_millis()
        );
        if inner
            .store
            .run_note(run.id, run.generation, &cause)
            .await
            .is_err()
        {
            // No longer this owner's run.
            return Err(e);
        }
        match stop {
            Some(stop) => tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return Err(e),
            },
            None => tokio::time::sleep(wait).await,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

fn backend_for(inner: &Inner, run: &Run) -> Option<Arc<dyn PushBackend>> {
    inner.executors.push.get(&run.pool_type).cloned()
}

fn set_held_job(inner: &Inner, job: &RunJob) {
    if let Some(h) = inner.held().get_mut(&job.run_id) {
        h.job = Some(job.clone());
    }
}

/// The push saga: store the intent, look for an earlier submission, submit, record.
async fn drive_push(inner: &Inner, run: Run) -> Result<Run, Abandon> {
    let Some(backend) = backend_for(inner, &run) else {
        return Err(Abandon);
    };
    let mut job = match job_for(inner, &run).await {
        Ok(job) => job,
        Err(f) => return apply(inner, &run, Change::failed(f, "could not be prepared")).await,
    };
    set_held_job(inner, &job);
    if run.infrastructure.is_some() && run.state != RunState::Pending {
        // Taken over while running: the reconciler watches it from here.
        return Ok(run);
    }
    // A previous owner may have submitted this attempt before it died: look first.
    if run.submit_intent.is_some() || run.infrastructure.is_some() {
        match with_retries(inner, "Looking for an earlier submission", &run, || {
            backend.find(&job)
        })
        .await
        {
            Ok(Some(infra)) => {
                job.infrastructure = Some(infra.clone());
                set_held_job(inner, &job);
                if run.state == RunState::Cancelling {
                    return Ok(run);
                }
                let change = Change {
                    infrastructure: Some(infra),
                    ..Change::to(
                        RunState::Running,
                        format!("found attempt {}'s earlier submission", run.attempt),
                    )
                };
                return apply(inner, &run, change).await;
            }
            Ok(None) => {}
            Err(e) => {
                log_failure(&run, "Looking for an earlier submission", &e);
                return apply(inner, &run, crash_or_retry(&run, e.failure)).await;
            }
        }
    }
    if run.state == RunState::Cancelling
        || inner
            .held()
            .get(&run.id)
            .is_some_and(|h| h.stop.is_cancelled())
    {
        let current = inner
            .held()
            .get(&run.id)
            .map(|h| h.run.clone())
            .unwrap_or(run);
        return apply(
            inner,
            &current,
            Change::to(RunState::Cancelled, "cancelled before it was submitted"),
        )
        .await;
    }
    let intent = json!({ "attempt": run.attempt, "owner": inner.config.owner, "at": Utc::now() });
    if inner
        .store
        .run_record_intent(run.id, run.generation, &intent)
        .await
        .is_err()
    {
        inner.release(run.id);
        return Err(Abandon);
    }
    // A submission that failed transiently may have succeeded anyway (a timeout after the
    // cloud acted): before each retry, look for it first.
    let tried = std::sync::atomic::AtomicBool::new(false);
    let submitted = with_retries(inner, "Submitting", &run, || async {
        if tried.swap(true, std::sync::atomic::Ordering::SeqCst) {
            if let Some(found) = backend.find(&job).await? {
                return Ok(found);
            }
        }
        backend.submit(&job).await
    })
    .await;
    match submitted {
        Ok(infra) => {
            job.infrastructure = Some(infra.clone());
            set_held_job(inner, &job);
            let change = Change {
                infrastructure: Some(infra),
                ..Change::to(
                    RunState::Running,
                    format!("submitted attempt {}", run.attempt),
                )
            };
            apply(inner, &run, change).await
        }
        Err(e) if e.is_transient() => {
            log_failure(&run, "Submitting", &e);
            apply(inner, &run, crash_or_retry(&run, e.failure)).await
        }
        Err(e) => {
            log_failure(&run, "Submitting", &e);
            apply(
                inner,
                &run,
                Change::failed(e.failure, "the cloud refused the submission"),
            )
            .await
        }
    }
}

/// Polls every pushed run this process holds, a backend at a time in batches of 100, and
/// moves each along: ended runs to their terminal state, overdue ones stopped, cancel
/// requests sent and then verified by a later poll.
pub(crate) async fn reconcile_round(inner: &Inner) {
    for (pool_type, backend) in inner.executors.push.clone() {
        let watched: Vec<(Run, RunJob, bool)> = inner
            .held()
            .values()
            .filter(|h| !h.lost && h.run.pool_type == pool_type)
            .filter(|h| matches!(h.run.state, RunState::Running | RunState::Cancelling))
            .filter_map(|h| {
                let job = h.job.clone()?;
                job.infrastructure.as_ref()?;
                Some((h.run.clone(), job, h.cancel_sent))
            })
            .collect();
        for batch in watched.chunks(100) {
            let jobs: Vec<RunJob> = batch.iter().map(|(_, j, _)| j.clone()).collect();
            let statuses = backend.poll(&jobs).await;
            for ((run, job, cancel_sent), status) in batch.iter().zip(statuses) {
                let result =
                    reconcile_one(inner, backend.as_ref(), run, job, *cancel_sent, status).await;
                if let Ok(updated) = &result {
                    if !updated.state.is_owned() {
                        inner.release(updated.id);
                    }
                }
            }
        }
    }
}

async fn reconcile_one(
    inner: &Inner,
    backend: &dyn PushBackend,
    run: &Run,
    job: &RunJob,
    cancel_sent: bool,
    status: Result<PushStatus, PushError>,
) -> Result<Run, Abandon> {
    let status = match status {
        Ok(s) => {
            if let Some(h) = inner.held().get_mut(&run.id) {
                h.failed_polls = 0;
            }
            s
        }
        Err(e) => {
            log_failure(run, "Polling a pushed run", &e);
            return unreadable(inner, backend, run, job, cancel_sent).await;
        }
    };
    match &status {
        PushStatus::Starting | PushStatus::Running => {
            if run.state == RunState::Cancelling {
                if !cancel_sent {
                    send_cancel(inner, backend, run, job).await;
                }
                return Ok(run.clone());
            }
            let since_submit = run.started_at.map(|t| Utc::now() - t);
            let start_deadline = chrono::Duration::from_std(inner.config.start_deadline)
                .unwrap_or(chrono::Duration::MAX);
            if status == PushStatus::Starting
                && since_submit.is_some_and(|d| d > start_deadline)
                && backend.cancel(job).await.is_ok()
            {
                let f = Failure::new(
                    FailureReason::StartDeadline,
                    format!(
                        "did not start within {}s of its submission and was stopped",
                        inner.config.start_deadline.as_secs()
                    ),
                );
                return apply(inner, run, crash_or_retry(run, f)).await;
            }
            let timeout_s = job.limits.timeout_s.unwrap_or(u32::MAX);
            let overdue = run
                .started_at
                .is_some_and(|t| Utc::now() - t > chrono::Duration::seconds(i64::from(timeout_s)));
            if overdue && backend.cancel(job).await.is_ok() {
                let f = Failure::new(
                    FailureReason::Timeout,
                    format!("ran past its maximum runtime of {timeout_s}s and was stopped"),
                );
                return apply(inner, run, Change::failed(f, "timed out")).await;
            }
            Ok(run.clone())
        }
        PushStatus::Completed => {
            apply(inner, run, Change::to(RunState::Completed, "completed")).await
        }
        PushStatus::Failed(f) => {
            apply(inner, run, Change::failed(f.clone(), "the job failed")).await
        }
        PushStatus::Crashed(f) => apply(inner, run, crash_or_retry(run, f.clone())).await,
        PushStatus::Cancelled if run.state == RunState::Cancelling => {
            apply(
                inner,
                run,
                Change::to(RunState::Cancelled, "stopped on request"),
            )
            .await
        }
        PushStatus::Cancelled => {
            let f = Failure::new(
                FailureReason::StoppedExternally,
                "stopped by something other than Ferry",
            );
            apply(inner, run, Change::failed(f, "stopped out of band")).await
        }
        PushStatus::Gone if run.state == RunState::Cancelling => {
            apply(
                inner,
                run,
                Change::to(RunState::Cancelled, "gone after a stop request"),
            )
            .await
        }
        PushStatus::Gone => {
            let f = Failure::new(FailureReason::Vanished, "the cloud no longer knows the job");
            apply(inner, run, crash_or_retry(run, f)).await
        }
    }
}

/// A poll that failed. Nothing waits on the cloud forever: a cancel is still sent, the max
/// runtime still enforced, and after `failed_poll_limit` failures in a row the run ends —
/// `cancelled` (the stop not confirmed) if it was being cancelled, else `crashed`
/// (`status_unknown`, not retried: the job may still be running).
async fn unreadable(
    inner: &Inner,
    backend: &dyn PushBackend,
    run: &Run,
    job: &RunJob,
    cancel_sent: bool,
) -> Result<Run, Abandon> {
    let failures = inner.held().get_mut(&run.id).map_or(1, |h| {
        h.failed_polls += 1;
        h.failed_polls
    });
    let limit = inner.config.failed_poll_limit.max(1);
    if run.state == RunState::Cancelling {
        if !cancel_sent {
            send_cancel(inner, backend, run, job).await;
        }
        if failures < limit {
            return Ok(run.clone());
        }
        let cause = format!(
            "stop requested, not confirmed: the cloud's status could not be read {failures} times in a row"
        );
        return apply(inner, run, Change::to(RunState::Cancelled, cause)).await;
    }
    let timeout_s = job.limits.timeout_s.unwrap_or(u32::MAX);
    let overdue = run
        .started_at
        .is_some_and(|t| Utc::now() - t > chrono::Duration::seconds(i64::from(timeout_s)));
    if !overdue && failures < limit {
        return Ok(run.clone());
    }
    // Best effort: a stop the cloud may still act on.
    send_cancel(inner, backend, run, job).await;
    let why = if overdue {
        format!("ran past its maximum runtime of {timeout_s}s while its status could not be read")
    } else {
        format!("its status could not be read {failures} times in a row")
    };
    let f = Failure::new(
        FailureReason::StatusUnknown,
        format!("{why}; a stop was requested"),
    );
    apply(inner, run, crash_or_retry(run, f)).await
}

async fn send_cancel(inner: &Inner, backend: &dyn PushBackend, run: &Run, job: &RunJob) {
    match backend.cancel(job).await {
        Ok(()) => {
            if let Some(h) = inner.held().get_mut(&run.id) {
                h.cancel_sent = true;
            }
        }
        Err(e) => log_failure(run, "Stopping a pushed run", &e),
    }
}
