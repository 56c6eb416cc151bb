//! One run of a prepared flow: its store and capabilities, its supervision (deadline,
//! cancellation, log forwarding, scratch watching) and the mapping of how it ended to a
//! [`FlowOutcome`].
//!
//! Stopping is two-pronged so that it takes milliseconds whatever the flow is doing:
//! - a flow that computes reaches an epoch check every tick (`HostConfig::epoch_tick`); the
//!   store's epoch callback traps when the run must stop, and otherwise yields to the async
//!   runtime so the supervisor gets to look;
//! - a flow blocked in an async host call (a sleep, a poll) reaches no epoch check, so the
//!   supervisor races the call against the deadline and the cancel token and drops the call
//!   when either fires. Dropping a wasmtime call future abandons the guest's fiber; the store
//!   is discarded with it.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ferry_core::port::{FlowOutcome, LogLine, LogSink, LogStream};
use ferry_core::{Failure, FailureReason, PoolLimits};
use tokio_util::sync::CancellationToken;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::capture::{Capture, CaptureStream};
use crate::flow_host::{ComponentState, FlowHost, HasCommon, ModuleState, RunCommon};
use crate::host::{Host, Ready};
use crate::limiter::{Hit, Limiter};
use crate::{scratch, Prepared, RunReport, RunSpec};

/// How often buffered log lines are handed to the sink when few are written.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Longest failure message kept (a flow's own error string, a trap's description).
const MAX_MESSAGE: usize = 4096;
/// Largest single `get-random-bytes` call: a flow cannot make the host allocate more.
const MAX_RANDOM_BYTES: u64 = 1024 * 1024;

/// Why a run was stopped from outside the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopReason {
    Cancelled,
    Timeout,
    ScratchLimit(String),
}

/// The error the epoch callback traps with when the run must stop; the reason is in
/// [`RunCtl`].
#[derive(Debug, thiserror::Error)]
#[error("the run was stopped")]
struct Stopped;

/// Shared control of one run: the deadline, the caller's cancel token, and the one stop
/// signal that every stopping path goes through.
#[derive(Debug)]
pub(crate) struct RunCtl {
    stop: CancellationToken,
    reason: OnceLock<StopReason>,
    cancel: CancellationToken,
    deadline: Instant,
}

impl RunCtl {
    fn new(cancel: CancellationToken, deadline: Instant) -> Self {
        Self {
            stop: CancellationToken::new(),
            reason: OnceLock::new(),
            cancel,
            deadline,
        }
    }

    /// Stops the run for `reason` (the first reason given wins).
    pub(crate) fn trigger(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.stop.cancel();
    }

    pub(crate) async fn stopped(&self) {
        self.stop.cancelled().await;
    }

    fn reason(&self) -> Option<StopReason> {
        self.reason.get().cloned()
    }

    /// What the epoch callback asks every tick: must the run stop now?
    fn must_stop(&self) -> bool {
        if self.stop.is_cancelled() {
            return true;
        }
        if self.cancel.is_cancelled() {
            self.trigger(StopReason::Cancelled);
            return true;
        }
        if Instant::now() >= self.deadline {
            self.trigger(StopReason::Timeout);
            return true;
        }
        false
    }
}

/// How the flow's code ended, when it did by itself.
enum Ended {
    /// A `ferry:flow` component's `run` returned.
    Returned(Result<String, String>),
    /// A command or preview1 module exited (returning from main is exit 0).
    Exited(i32),
}

/// The effective limits with defaults filled in (fuel stays off unless asked for).
fn effective(limits: PoolLimits) -> PoolLimits {
    let d = PoolLimits::DEFAULT;
    PoolLimits {
        memory_mb: limits.memory_mb.or(d.memory_mb),
        timeout_s: limits.timeout_s.or(d.timeout_s),
        cpu_fuel_m: limits.cpu_fuel_m,
        log_bytes: limits.log_bytes.or(d.log_bytes),
        scratch_bytes: limits.scratch_bytes.or(d.scratch_bytes),
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut at = MAX_MESSAGE;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
        s.push_str(" [cut]");
    }
    s
}

fn failed(reason: FailureReason, message: impl Into<String>) -> FlowOutcome {
    FlowOutcome::Failed(Failure::new(reason, cut(message.into())))
}

fn crashed(reason: FailureReason, message: impl Into<String>) -> FlowOutcome {
    FlowOutcome::Crashed(Failure::new(reason, cut(message.into())))
}

/// Stops a background task when the run ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Hands the buffered log lines to the sink.
async fn forward(capture: &Capture, logs: &dyn LogSink) {
    let lines = capture.drain();
    if !lines.is_empty() {
        logs.write(lines).await;
    }
}

/// Drives `call` to its end while forwarding logs, unless the run is stopped first.
async fn supervise<F>(
    call: F,
    ctl: &RunCtl,
    capture: &Capture,
    logs: &dyn LogSink,
) -> Result<wasmtime::Result<Ended>, StopReason>
where
    F: std::future::Future<Output = wasmtime::Result<Ended>>,
{
    tokio::pin!(call);
    let deadline = tokio::time::Instant::from_std(ctl.deadline);
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // The stop signal first: once set, nothing else may win.
            biased;
            _ = ctl.stopped() => return Err(ctl.reason().unwrap_or(StopReason::Cancelled)),
            _ = ctl.cancel.cancelled() => ctl.trigger(StopReason::Cancelled),
            _ = tokio::time::sleep_until(deadline) => ctl.trigger(StopReason::Timeout),
            ended = &mut call => return Ok(ended),
            _ = capture.wanted() => forward(capture, logs).await,
            _ = flush.tick() => forward(capture, logs).await,
        }
    }
}

/// Limits the store: memory and tables, fuel if metered, and the epoch check every tick.
fn configure<T: HasCommon>(store: &mut Store<T>, fuel: Option<u64>) -> wasmtime::Result<()> {
    store.limiter(|state| &mut state.common().limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        if ctx.data().common_ref().ctl.must_stop() {
            Err(wasmtime::Error::new(Stopped))
        } else {
            // Yield, so the supervisor sees the deadline and cancellation while this flow
            // computes, and other runs on this thread get their turn.
            Ok(UpdateDeadline::Yield(1))
        }
    });
    if let Some(fuel) = fuel {
        store.set_fuel(fuel)?;
    }
    Ok(())
}

/// An exit status from `wasi:cli/run` or `_start`: `exit(n)` arrives as an `I32Exit` error.
fn exited<T>(
    result: wasmtime::Result<T>,
    code_of: impl FnOnce(T) -> i32,
) -> wasmtime::Result<Ended> {
    match result {
        Ok(v) => Ok(Ended::Exited(code_of(v))),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(Ended::Exited(exit.0)),
            None => Err(e),
        },
    }
}

/// What a run needs besides its store.
struct Setup<'a> {
    ready: &'a Ready,
    params: String,
    ctl: Arc<RunCtl>,
    capture: Arc<Capture>,
    fuel: Option<u64>,
}

type Supervised = (Result<wasmtime::Result<Ended>, StopReason>, Option<Hit>);

impl Host {
    /// Runs a prepared flow to its end (see [`Host::run_report`]).
    pub async fn run(
        &self,
        artifact: &Prepared,
        spec: RunSpec,
        logs: &dyn LogSink,
        cancel: CancellationToken,
    ) -> FlowOutcome {
        self.run_report(artifact, spec, logs, cancel).await.outcome
    }

    /// Runs a prepared flow to its end: its log lines go to `logs` as it runs; the report
    /// says how it ended and how much of its log was kept. Returns soon after `cancel`
    /// fires or the run's deadline passes, whatever the flow is doing.
    #[tracing::instrument(skip_all, fields(digest = %artifact.info().digest))]
    pub async fn run_report(
        &self,
        artifact: &Prepared,
        spec: RunSpec,
        logs: &dyn LogSink,
        cancel: CancellationToken,
    ) -> RunReport {
        let limits = effective(spec.limits);
        let cap = limits.log_bytes.unwrap_or(0);
        let capture = Capture::new(cap, self.inner.config.max_line_bytes);
        let outcome = self
            .run_inner(artifact, spec, limits, &capture, logs, cancel)
            .await;
        let (rest, log) = capture.finish();
        if !rest.is_empty() {
            logs.write(rest).await;
        }
        if log.truncated {
            logs.write(vec![LogLine {
                ts: chrono::Utc::now(),
                stream: LogStream::Ferry,
                line: format!(
                    "log truncated: {} bytes of output past the run's log limit of {cap} bytes were discarded",
                    log.dropped_bytes
                ),
            }])
            .await;
        }
        RunReport { outcome, log }
    }

    async fn run_inner(
        &self,
        artifact: &Prepared,
        spec: RunSpec,
        limits: PoolLimits,
        capture: &Arc<Capture>,
        logs: &dyn LogSink,
        cancel: CancellationToken,
    ) -> FlowOutcome {
        let config = &self.inner.config;
        let timeout = Duration::from_secs(u64::from(limits.timeout_s.unwrap_or(1)));
        let deadline = Instant::now() + timeout;
        let timed_out = || {
            failed(
                FailureReason::Timeout,
                format!("the flow ran past its timeout of {}s", timeout.as_secs()),
            )
        };

        // A run slot, waiting no longer than the run may take in all.
        let _slot = tokio::select! {
            biased;
            _ = cancel.cancelled() => return FlowOutcome::Cancelled,
            _ = tokio::time::sleep_until(deadline.into()) => return timed_out(),
            slot = self.inner.run_slots.acquire() => match slot {
                Ok(slot) => slot,
                Err(_) => return crashed(FailureReason::Internal, "the sandbox host is shutting down"),
            },
        };

        let fuel =
            match (limits.cpu_fuel_m, artifact.metered()) {
                (Some(m), true) => Some(m.saturating_mul(1_000_000)),
                // A metered engine always counts: give a run without a CPU limit all there is.
                (None, true) => Some(u64::MAX),
                (None, false) => None,
                (Some(_), false) => return crashed(
                    FailureReason::Internal,
                    "the artifact was prepared without fuel metering for a run with a CPU limit",
                ),
            };
        let memory_mb = limits.memory_mb.unwrap_or(1).min(config.max_memory_mb);
        let memory_bytes = usize::try_from(u64::from(memory_mb) << 20).unwrap_or(usize::MAX);
        let scratch_bytes = limits.scratch_bytes.unwrap_or(0);

        let scratch = match tempfile::Builder::new()
            .prefix("ferry-run-")
            .tempdir_in(&config.scratch_root)
        {
            Ok(dir) => dir,
            Err(error) => {
                tracing::error!(error = %error, root = %config.scratch_root.display(), "Scratch directory not created");
                return crashed(
                    FailureReason::Internal,
                    "the run's scratch directory could not be created",
                );
            }
        };
        let ctl = Arc::new(RunCtl::new(cancel, deadline));

        let params = spec.params.to_string();
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&spec.env)
            .stdout(CaptureStream::new(capture.clone(), LogStream::Stdout))
            .stderr(CaptureStream::new(capture.clone(), LogStream::Stderr))
            // No network: no socket may be created, every address is refused, no lookups.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .max_random_size(MAX_RANDOM_BYTES)
            // Relative paths resolve inside the scratch directory, for guests whose libc
            // reads `initial-cwd` (today's wasi-libc in Rust's std still starts at "/").
            .initial_cwd("/run");
        if !matches!(artifact.ready(), Ready::Flow(_)) {
            wasi.stdin(MemoryInputPipe::new(params.clone().into_bytes()));
        }
        if let Err(error) = wasi.preopened_dir(scratch.path(), "/run", FsPerms::ReadWrite) {
            tracing::error!(error = %format!("{error:#}"), "Scratch directory not preopened");
            return crashed(
                FailureReason::Internal,
                "the run's scratch directory could not be opened",
            );
        }

        let watcher = AbortOnDrop(tokio::spawn(scratch::watch(
            scratch.path().to_owned(),
            scratch_bytes,
            config.max_scratch_entries,
            config.scratch_check_interval,
            ctl.clone(),
        )));

        let setup = Setup {
            ready: artifact.ready(),
            params,
            ctl: ctl.clone(),
            capture: capture.clone(),
            fuel,
        };
        let supervised = match artifact.ready() {
            Ready::Flow(_) | Ready::Command(_) => {
                let mut table = ResourceTable::new();
                table.set_max_capacity(config.max_resources);
                let state = ComponentState {
                    wasi: wasi.build(),
                    table,
                    common: RunCommon {
                        limiter: Limiter::new(memory_bytes),
                        ctl: ctl.clone(),
                    },
                    flow: FlowHost::new(capture.clone(), spec.secrets, config.host_calls),
                };
                self.run_component(setup, state, logs).await
            }
            Ready::Preview1(_) => {
                let state = ModuleState {
                    wasi: wasi.build_p1(),
                    common: RunCommon {
                        limiter: Limiter::new(memory_bytes),
                        ctl: ctl.clone(),
                    },
                };
                self.run_module(setup, state, logs).await
            }
        };
        drop(watcher);

        // One trip to a blocking thread for all the scratch directory still owes: the result
        // file (kinds 2 and 3), the last size check (between two checks a flow may have gone
        // past the cap: it must not complete as if it had not), and its removal.
        let returned = matches!(&supervised, Ok((Ok(Ok(Ended::Returned(Ok(_)))), _)));
        let exited_0 = matches!(&supervised, Ok((Ok(Ok(Ended::Exited(0))), _)));
        let finished = scratch::finish(
            scratch,
            scratch::Finish {
                read_result: exited_0.then_some(config.max_result_bytes),
                check: (returned || exited_0)
                    .then_some((scratch_bytes, config.max_scratch_entries)),
            },
        )
        .await;
        let finished = match finished {
            Ok(finished) => finished,
            Err(message) => return crashed(FailureReason::Internal, message),
        };
        let outcome = match supervised {
            Ok(supervised) => self.outcome(supervised, &ctl, &limits, finished.result),
            Err(outcome) => outcome,
        };
        match (outcome, finished.over) {
            (FlowOutcome::Completed { .. }, Some(why)) => failed(FailureReason::Trap, why),
            (outcome, _) => outcome,
        }
    }

    /// A fresh store on the engine the run needs (fuel-metered or not), with its limits.
    fn new_store<T: HasCommon>(
        &self,
        fuel: Option<u64>,
        state: T,
    ) -> Result<Store<T>, FlowOutcome> {
        let engine = self.inner.flavor(fuel.is_some()).engine.clone();
        let mut store = Store::new(&engine, state);
        configure(&mut store, fuel).map_err(|error| {
            crashed(
                FailureReason::Internal,
                format!("the run's store could not be configured: {error:#}"),
            )
        })?;
        Ok(store)
    }

    async fn run_component(
        &self,
        setup: Setup<'_>,
        state: ComponentState,
        logs: &dyn LogSink,
    ) -> Result<Supervised, FlowOutcome> {
        let mut store = self.new_store(setup.fuel, state)?;
        let params = setup.params;
        let call = async {
            match setup.ready {
                Ready::Flow(pre) => {
                    let flow = pre.instantiate_async(&mut store).await?;
                    let returned = flow.call_run(&mut store, &params).await?;
                    Ok(Ended::Returned(returned))
                }
                Ready::Command(pre) => {
                    let command = pre.instantiate_async(&mut store).await?;
                    let status = command.wasi_cli_run().call_run(&mut store).await;
                    exited(status, |s| if s.is_ok() { 0 } else { 1 })
                }
                Ready::Preview1(_) => Err(wasmtime::format_err!("a module is not a component")),
            }
        };
        let ended = supervise(call, &setup.ctl, &setup.capture, logs).await;
        Ok((ended, store.data().common.limiter.hit))
    }

    async fn run_module(
        &self,
        setup: Setup<'_>,
        state: ModuleState,
        logs: &dyn LogSink,
    ) -> Result<Supervised, FlowOutcome> {
        let mut store = self.new_store(setup.fuel, state)?;
        let call = async {
            match setup.ready {
                Ready::Preview1(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    exited(start.call_async(&mut store, ()).await, |()| 0)
                }
                _ => Err(wasmtime::format_err!("a component is not a module")),
            }
        };
        let ended = supervise(call, &setup.ctl, &setup.capture, logs).await;
        Ok((ended, store.data().common.limiter.hit))
    }

    /// Maps how the flow ended to the run's outcome.
    fn outcome(
        &self,
        (ended, hit): Supervised,
        ctl: &RunCtl,
        limits: &PoolLimits,
        result_file: Option<Result<Option<Vec<u8>>, scratch::ResultFileError>>,
    ) -> FlowOutcome {
        let stopped = |reason: StopReason| match reason {
            StopReason::Cancelled => FlowOutcome::Cancelled,
            StopReason::Timeout => failed(
                FailureReason::Timeout,
                format!(
                    "the flow ran past its timeout of {}s",
                    limits.timeout_s.unwrap_or(0)
                ),
            ),
            StopReason::ScratchLimit(why) => failed(FailureReason::Trap, why),
        };
        let ended = match ended {
            Err(reason) => return stopped(reason),
            Ok(Err(error)) => {
                if let Some(reason) = ctl.reason() {
                    return stopped(reason);
                }
                return self.trapped(&error, hit, limits);
            }
            Ok(Ok(ended)) => ended,
        };
        match ended {
            Ended::Returned(Ok(result)) => self.parse_result(result.as_bytes()),
            Ended::Returned(Err(message)) => failed(FailureReason::ExitCode, message),
            Ended::Exited(0) => match result_file {
                None | Some(Ok(None)) => FlowOutcome::Completed {
                    result: serde_json::Value::Null,
                },
                Some(Ok(Some(bytes))) => self.parse_result(&bytes),
                Some(Err(error)) => failed(FailureReason::ExitCode, error.to_string()),
            },
            Ended::Exited(code) => failed(FailureReason::ExitCode, format!("exited with {code}")),
        }
    }

    fn parse_result(&self, bytes: &[u8]) -> FlowOutcome {
        FlowOutcome::from_result(bytes, self.inner.config.max_result_bytes)
    }

    /// A run that ended in an error of its own: a trap, a refused resource, a host call that
    /// failed because of what the flow asked.
    fn trapped(
        &self,
        error: &wasmtime::Error,
        hit: Option<Hit>,
        limits: &PoolLimits,
    ) -> FlowOutcome {
        match hit {
            Some(Hit::Memory) => {
                return failed(
                    FailureReason::MemoryLimit,
                    format!(
                        "the flow needed more than its memory limit of {} MiB",
                        limits.memory_mb.unwrap_or(0)
                    ),
                )
            }
            Some(Hit::Table) => {
                return failed(
                    FailureReason::MemoryLimit,
                    "the flow grew a table past its limit",
                )
            }
            None => {}
        }
        if let Some(trap) = error.downcast_ref::<Trap>() {
            return match *trap {
                Trap::OutOfFuel => failed(
                    FailureReason::CpuLimit,
                    format!(
                        "the flow used its CPU budget of {} million fuel units",
                        limits.cpu_fuel_m.unwrap_or(0)
                    ),
                ),
                Trap::StackOverflow => {
                    failed(FailureReason::Trap, "stack overflow (call stack exhausted)")
                }
                other => failed(FailureReason::Trap, other.to_string()),
            };
        }
        if error
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            // Not the flow's fault: the pool is full. Retryable.
            return crashed(FailureReason::Capacity, format!("{error:#}"));
        }
        // Everything else comes from a host function refusing what the flow did (a resource
        // table full, a stream trap): the flow's failure, not retried.
        failed(FailureReason::Trap, format!("{error:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_unset_limits_but_not_fuel() {
        let l = effective(PoolLimits::default());
        assert_eq!(l.memory_mb, PoolLimits::DEFAULT.memory_mb);
        assert_eq!(l.cpu_fuel_m, None);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let s = "é".repeat(MAX_MESSAGE);
        let c = cut(s);
        assert!(c.len() <= MAX_MESSAGE + " [cut]".len());
        assert!(c.ends_with(" [cut]"));
    }

    #[test]
    fn the_first_stop_reason_wins() {
        let ctl = RunCtl::new(
            CancellationToken::new(),
            Instant::now() + Duration::from_secs(60),
        );
        assert!(!ctl.must_stop());
        ctl.trigger(StopReason::Timeout);
        ctl.trigger(StopReason::Cancelled);
        assert!(ctl.must_stop());
        assert_eq!(ctl.reason(), Some(StopReason::Timeout));
    }
}
