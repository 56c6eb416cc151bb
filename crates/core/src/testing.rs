//! Fakes of the ports, for tests of the engine and the server (feature `testing`).
//!
//! Both fakes take their instructions from the run's parameters, so a black-box test can
//! choose an outcome through the public API:
//! - `{"sleep_ms": 50}` — take this long (the managed fake honours cancellation meanwhile);
//! - `{"fail": "message"}` — end `failed` with reason `exit_code`;
//! - `{"crash": "message"}` — end `crashed` with reason `worker_lost` (retryable);
//! - `{"result": <json>}` — the result on success (default `{"ok": true}`);
//! - `{"log": ["a", "b"]}` — log lines written before the end;
//! - `{"polls": 3}` — (push) polls reporting `running` before the outcome;
//! - `{"unreadable": true}` — (push) every poll fails (the cloud answers garbage or 5xx);
//! - `{"throttle": 3}` — (push) the first 3 submissions are throttled (transient).
//!
//! Both keep a journal of what they were asked to do, so tests can prove no run was executed
//! or submitted twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::port::{
    FlowOutcome, FlowRunner, LogLine, LogSink, LogStream, PushBackend, PushError, PushStatus,
    RunJob,
};
use crate::{Failure, FailureReason, RunId};

fn instruction_u64(params: &Value, key: &str) -> Option<u64> {
    params.get(key).and_then(Value::as_u64)
}

fn instruction_str<'a>(params: &'a Value, key: &str) -> Option<&'a str> {
    params.get(key).and_then(Value::as_str)
}

fn log_lines(params: &Value) -> Vec<LogLine> {
    params
        .get("log")
        .and_then(Value::as_array)
        .map(|lines| {
            lines
                .iter()
                .filter_map(Value::as_str)
                .map(|l| LogLine {
                    ts: Utc::now(),
                    stream: LogStream::Stdout,
                    line: l.to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn result_of(params: &Value) -> Value {
    params
        .get("result")
        .cloned()
        .unwrap_or_else(|| json!({"ok": true}))
}

/// A journal of (run, attempt) pairs an executor was asked to start.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<(RunId, u32)>>>);

impl Journal {
    fn record(&self, run: RunId, attempt: u32) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((run, attempt));
    }

    /// Every (run, attempt) recorded, in order.
    pub fn entries(&self) -> Vec<(RunId, u32)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The (run, attempt) pairs recorded more than once.
    pub fn duplicates(&self) -> Vec<(RunId, u32)> {
        let mut counts: HashMap<(RunId, u32), usize> = HashMap::new();
        for e in self.entries() {
            *counts.entry(e).or_default() += 1;
        }
        let mut dups: Vec<_> = counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(e, _)| e)
            .collect();
        dups.sort();
        dups
    }
}

/// A managed-run executor that follows the run's parameters instead of running WebAssembly.
#[derive(Debug, Clone, Default)]
pub struct FakeFlowRunner {
    pub journal: Journal,
}

#[async_trait]
impl FlowRunner for FakeFlowRunner {
    async fn run(
        &self,
        job: &RunJob,
        logs: &dyn LogSink,
        cancel: CancellationToken,
    ) -> FlowOutcome {
        self.journal.record(job.run_id, job.attempt);
        let p = &job.parameters;
        let lines = log_lines(p);
        if !lines.is_empty() {
            logs.write(lines).await;
        }
        if let Some(ms) = instruction_u64(p, "sleep_ms") {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = cancel.cancelled() => return FlowOutcome::Cancelled,
            }
        }
        if cancel.is_cancelled() {
            return FlowOutcome::Cancelled;
        }
        if let Some(msg) = instruction_str(p, "fail") {
            return FlowOutcome::Failed(Failure::new(FailureReason::ExitCode, msg));
        }
        if let Some(msg) = instruction_str(p, "crash") {
            return FlowOutcome::Crashed(Failure::new(FailureReason::WorkerLost, msg));
        }
        FlowOutcome::Completed {
            result: result_of(p),
        }
    }
}

#[derive(Debug, Clone)]
struct FakeTask {
    params: Value,
    polls: u64,
    cancelled: bool,
}

/// A push backend with an in-memory cloud. Tasks are keyed by (run, attempt), as a real
/// backend's idempotency token would be; `submits` counts calls, `journal` what was created.
#[derive(Debug, Clone, Default)]
pub struct FakePushBackend {
    tasks: Arc<Mutex<HashMap<String, FakeTask>>>,
    pub journal: Journal,
    /// How many times `submit` was called (a retry that found the task does not count).
    pub submit_calls: Arc<std::sync::atomic::AtomicUsize>,
    /// Submissions throttled so far, per (run, attempt).
    throttled: Arc<Mutex<HashMap<String, u64>>>,
}

impl FakePushBackend {
    fn key(job: &RunJob) -> String {
        format!("fake-task/{}/{}", job.run_id, job.attempt)
    }

    fn with_tasks<R>(&self, f: impl FnOnce(&mut HashMap<String, FakeTask>) -> R) -> R {
        f(&mut self.tasks.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether a stop was asked for attempt `attempt` of `run`.
    pub fn cancel_requested(&self, run: RunId, attempt: u32) -> bool {
        self.with_tasks(|t| {
            t.get(&format!("fake-task/{run}/{attempt}"))
                .is_some_and(|task| task.cancelled)
        })
    }

    /// Removes a task behind Ferry's back, as an operator deleting it in the console would.
    pub fn delete_out_of_band(&self, run: RunId, attempt: u32) {
        self.with_tasks(|t| t.remove(&format!("fake-task/{run}/{attempt}")));
    }

    fn handle(key: &str) -> Value {
        json!({ "task": key })
    }
}

#[async_trait]
impl PushBackend for FakePushBackend {
    async fn find(&self, job: &RunJob) -> Result<Option<Value>, PushError> {
        let key = Self::key(job);
        Ok(self
            .with_tasks(|t| t.contains_key(&key))
            .then(|| Self::handle(&key)))
    }

    async fn submit(&self, job: &RunJob) -> Result<Value, PushError> {
        if let Some(msg) = instruction_str(&job.parameters, "reject") {
            return Err(PushError::new(FailureReason::InvalidConfig, msg));
        }
        if let Some(n) = instruction_u64(&job.parameters, "throttle") {
            let mut throttled = self
                .throttled
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let so_far = throttled.entry(Self::key(job)).or_default();
            if *so_far < n {
                *so_far += 1;
                return Err(PushError::new(
                    FailureReason::Throttled,
                    "Rate exceeded (429)",
                ));
            }
        }
        self.submit_calls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let key = Self::key(job);
        let created = self.with_tasks(|t| {
            if t.contains_key(&key) {
                false
            } else {
                t.insert(
                    key.clone(),
                    FakeTask {
                        params: job.parameters.clone(),
                        polls: 0,
                        cancelled: false,
                    },
                );
                true
            }
        });
        if created {
            self.journal.record(job.run_id, job.attempt);
            // The cloud acted, but its answer is lost on the way back.
            if instruction_str(&job.parameters, "timeout_after_success").is_some() {
                return Err(PushError::new(
                    FailureReason::Internal,
                    "timed out waiting for the answer",
                ));
            }
        }
        Ok(Self::handle(&key))
    }

    async fn poll(&self, jobs: &[RunJob]) -> Vec<Result<PushStatus, PushError>> {
        self.with_tasks(|tasks| {
            jobs.iter()
                .map(|job| {
                    let Some(task) = tasks.get_mut(&Self::key(job)) else {
                        return Ok(PushStatus::Gone);
                    };
                    if task.params.get("unreadable").is_some() {
                        return Err(PushError::new(
                            FailureReason::Internal,
                            "the status could not be read (HTTP 500)",
                        ));
                    }
                    if task.cancelled {
                        return Ok(PushStatus::Cancelled);
                    }
                    task.polls += 1;
                    if instruction_str(&task.params, "never_starts").is_some() {
                        return Ok(PushStatus::Starting);
                    }
                    let needed = instruction_u64(&task.params, "polls").unwrap_or(1);
                    if task.polls <= needed {
                        return Ok(PushStatus::Running);
                    }
                    Ok(if let Some(msg) = instruction_str(&task.params, "fail") {
                        PushStatus::Failed(Failure::new(FailureReason::ExitCode, msg))
                    } else if let Some(msg) = instruction_str(&task.params, "crash") {
                        PushStatus::Crashed(Failure::new(FailureReason::TaskFailedToStart, msg))
                    } else {
                        PushStatus::Completed
                    })
                })
                .collect()
        })
    }

    async fn cancel(&self, job: &RunJob) -> Result<(), PushError> {
        self.with_tasks(|t| {
            if let Some(task) = t.get_mut(&Self::key(job)) {
                task.cancelled = true;
            }
        });
        Ok(())
    }
}

/// The push crates' canary tests: what an upstream endpoint answers with a canary in its
/// bodies, and what a tenant-visible failure built from such an answer must (not) show.
pub mod canary {
    use crate::Failure;

    /// Text that must never reach a tenant-visible field.
    pub const CANARY: &str = "FERRY-CANARY-7f3a";

    /// Answers `(status, content type, body)` carrying the canary: a plain-text 5xx, an HTML
    /// gateway page, truncated JSON of the cloud's own `content_type` whose `field` holds the
    /// canary, and a long 200 of nothing but canaries.
    pub fn upstream_answers(
        content_type: &'static str,
        field: &str,
    ) -> Vec<(u16, &'static str, String)> {
        vec![
            (500, "text/plain", format!("{CANARY} stack trace")),
            (502, "text/html", format!("<h1>{CANARY}</h1>")),
            (200, content_type, format!("{{\"{field}\": {CANARY}")),
            (200, "text/plain", CANARY.repeat(100)),
        ]
    }

    /// Asserts that `shown`, a failure message built from an answer with the canary, carries
    /// none of it, is not empty, and is within [`Failure::MAX_MESSAGE_CHARS`].
    #[track_caller]
    pub fn assert_hidden(shown: &str, answer: &str) {
        assert!(!shown.contains(CANARY), "{answer:.40}: {shown}");
        assert!(
            shown.chars().count() <= Failure::MAX_MESSAGE_CHARS,
            "{shown}"
        );
        assert!(!shown.is_empty());
    }

    /// The cloud's own error about the tenant's resource: `prefix` and 2,000 more characters.
    pub fn long_message(prefix: &str) -> String {
        format!("{prefix}{}", "x".repeat(2000))
    }

    /// Asserts that `shown` carries the cloud's `code` and its message's `prefix`, cut at
    /// exactly [`Failure::MAX_MESSAGE_CHARS`].
    #[track_caller]
    pub fn assert_cloud_message_cut(shown: &str, code: &str, prefix: &str) {
        assert!(shown.contains(code), "{shown}");
        assert!(
            shown.contains(prefix.trim_end_matches([':', ' '])),
            "{shown}"
        );
        assert_eq!(shown.chars().count(), Failure::MAX_MESSAGE_CHARS, "{shown}");
    }
}
