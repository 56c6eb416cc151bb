//! Executor worker processes: sandboxes run in child processes of the control plane, so a
//! wasmtime panic or abort (or a flow that finds a way to crash its host) loses one worker,
//! not the service. [`WorkerPool`] is the control plane's [`FlowRunner`]: it supervises the
//! workers, hands each run to one of them, relays its log and outcome, and restarts a worker
//! that died — whose in-flight runs end `crashed` (`worker_lost`) and are retried per their
//! pool's policy. [`serve_stdio`] is the worker's side (`ferry executor-worker`).
//!
//! A worker is a sandbox boundary of its own: it starts with an empty environment (nothing
//! of the control plane's secrets; [`WorkerCommand::env`] is all it gets) and, on Linux,
//! confines itself before it reads a frame ([`serve_confined`], `confine.rs`): no core dumps,
//! bounded descriptors, no_new_privs, Landlock (only its cache and scratch directories are
//! writable, the rest of the data directory unreadable) and a seccomp allow-list.
//!
//! The protocol is one JSON object per line on the worker's stdin and stdout. The worker asks
//! for an artifact's bytes only when neither of its caches has the compiled artifact; the
//! on-disk cache is shared by all workers, so only the first compile of a digest is paid.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use ferry_core::port::{FlowOutcome, FlowRunner, LogLine, LogSink, RunJob};
use ferry_core::{Failure, FailureReason, Name, PoolId, PoolLimits, PoolType, RunId, WorkspaceId};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::runner::{ArtifactSource, Grants, SourceError};
use crate::{Host, HostConfig, HostError, WasmRunner};

/// A run as it crosses the pipe: the job and what it is granted.
#[derive(Serialize, Deserialize)]
struct WireJob {
    run_id: RunId,
    workspace_id: WorkspaceId,
    pool_id: PoolId,
    pool: Name,
    attempt: u32,
    artifact: Option<String>,
    parameters: Value,
    limits: PoolLimits,
    secrets: HashMap<String, String>,
    env: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToWorker {
    Run {
        id: u64,
        job: Box<WireJob>,
    },
    Cancel {
        id: u64,
    },
    Artifact {
        req: u64,
        bytes: Option<String>,
        error: Option<String>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FromWorker {
    Log { id: u64, lines: Vec<LogLine> },
    Need { req: u64, digest: String },
    Done { id: u64, outcome: WireOutcome },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireOutcome {
    Completed { result: Value },
    Failed { failure: Failure },
    Crashed { failure: Failure },
    Cancelled,
}

impl From<FlowOutcome> for WireOutcome {
    fn from(o: FlowOutcome) -> Self {
        match o {
            FlowOutcome::Completed { result } => WireOutcome::Completed { result },
            FlowOutcome::Failed(failure) => WireOutcome::Failed { failure },
            FlowOutcome::Crashed(failure) => WireOutcome::Crashed { failure },
            FlowOutcome::Cancelled => WireOutcome::Cancelled,
        }
    }
}

impl From<WireOutcome> for FlowOutcome {
    fn from(o: WireOutcome) -> Self {
        match o {
            WireOutcome::Completed { result } => FlowOutcome::Completed { result },
            WireOutcome::Failed { failure } => FlowOutcome::Failed(failure),
            WireOutcome::Crashed { failure } => FlowOutcome::Crashed(failure),
            WireOutcome::Cancelled => FlowOutcome::Cancelled,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn worker_lost(message: impl Into<String>) -> FlowOutcome {
    FlowOutcome::Crashed(Failure::new(FailureReason::WorkerLost, message))
}

// ---------------------------------------------------------------------------------------
// The worker's side.

type Out = mpsc::UnboundedSender<FromWorker>;

/// Fetches artifact bytes from the parent.
struct PipeSource {
    out: Out,
    next: AtomicU64,
    waiting: Arc<Mutex<HashMap<u64, ArtifactReply>>>,
}

/// Where the parent's answer to one artifact request goes.
type ArtifactReply = oneshot::Sender<Result<Vec<u8>, SourceError>>;

#[async_trait]
impl ArtifactSource for PipeSource {
    async fn get(&self, digest: &str) -> Result<Vec<u8>, SourceError> {
        let req = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(req, tx);
        if self
            .out
            .send(FromWorker::Need {
                req,
                digest: digest.to_owned(),
            })
            .is_err()
        {
            return Err(SourceError::Unavailable("the control plane is gone".into()));
        }
        rx.await
            .unwrap_or_else(|_| Err(SourceError::Unavailable("the control plane is gone".into())))
    }
}

/// What the parent granted each run.
/// A run's grants: secrets by name, and environment variables.
type Granted = (HashMap<String, SecretString>, Vec<(String, String)>);

/// What the parent granted each run.
type GrantTable = Arc<Mutex<HashMap<RunId, Granted>>>;

struct PipeGrants(GrantTable);

#[async_trait]
impl Grants for PipeGrants {
    async fn grants(&self, job: &RunJob) -> Result<Granted, Failure> {
        Ok(lock(&self.0).remove(&job.run_id).unwrap_or_default())
    }
}

struct PipeSink {
    id: u64,
    out: Out,
}

#[async_trait]
impl LogSink for PipeSink {
    async fn write(&self, lines: Vec<LogLine>) {
        let _ = self.out.send(FromWorker::Log { id: self.id, lines });
    }
}

/// Why a worker process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[cfg(target_os = "linux")]
    #[error("confining the executor worker")]
    Confine(#[source] crate::confine::Error),
    #[error("starting the executor worker's async runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Host(#[from] HostError),
}

/// The executor worker process's main (`ferry executor-worker`): confines the process (on
/// Linux; see `confine.rs`), then starts the async runtime and serves on stdin and stdout
/// until the parent closes stdin. Call it while the process has a single thread — before any
/// async runtime exists — so that every thread the worker ever has is confined; its
/// `cache_dir` and `scratch_root` must exist.
pub fn serve_confined(config: HostConfig) -> Result<(), ServeError> {
    #[cfg(target_os = "linux")]
    {
        let confined = crate::confine::apply(&config).map_err(ServeError::Confine)?;
        match confined.landlock {
            crate::confine::LandlockStatus::Full => {
                tracing::info!(landlock = "full", "Executor worker confined")
            }
            status => tracing::warn!(
                landlock = ?status,
                "Executor worker confined, but this kernel does not enforce all of Landlock: \
                 its filesystem is less restricted than it should be"
            ),
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::warn!("Executor worker not confined: confinement exists on Linux only");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(serve_stdio(config))?;
    Ok(())
}

/// Runs a worker on this process's stdin and stdout until the parent closes stdin. The
/// process is not confined by this (see [`serve_confined`]).
pub async fn serve_stdio(config: HostConfig) -> Result<(), HostError> {
    let host = Host::new(config)?;
    let (out, mut out_rx) = mpsc::unbounded_channel::<FromWorker>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(frame) = out_rx.recv().await {
            let Ok(mut line) = serde_json::to_vec(&frame) else {
                continue;
            };
            line.push(b'\n');
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                return;
            }
        }
    });
    let waiting: Arc<Mutex<HashMap<u64, ArtifactReply>>> = Arc::new(Mutex::new(HashMap::new()));
    let source = PipeSource {
        out: out.clone(),
        next: AtomicU64::new(1),
        waiting: waiting.clone(),
    };
    let grants: GrantTable = Arc::new(Mutex::new(HashMap::new()));
    let runner =
        WasmRunner::new(host, Arc::new(source)).with_grants(Arc::new(PipeGrants(grants.clone())));
    let cancels: Arc<Mutex<HashMap<u64, CancellationToken>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let frame: ToWorker = match serde_json::from_str(&line) {
            Ok(f) => f,
            Err(error) => {
                tracing::error!(error = %error, "Unreadable frame from the control plane");
                continue;
            }
        };
        match frame {
            ToWorker::Run { id, job } => {
                let token = CancellationToken::new();
                lock(&cancels).insert(id, token.clone());
                let secrets = job
                    .secrets
                    .into_iter()
                    .map(|(k, v)| (k, SecretString::from(v)))
                    .collect();
                lock(&grants).insert(job.run_id, (secrets, job.env));
                let run_job = RunJob {
                    run_id: job.run_id,
                    workspace_id: job.workspace_id,
                    pool_id: job.pool_id,
                    pool: job.pool,
                    pool_type: PoolType::Managed,
                    attempt: job.attempt,
                    artifact: job.artifact,
                    parameters: job.parameters,
                    job_template: Value::Null,
                    job_variables: Value::Null,
                    credential: None,
                    limits: job.limits,
                    has_sensitive_parameters: false,
                    infrastructure: None,
                };
                let (runner, out, cancels) = (runner.clone(), out.clone(), cancels.clone());
                tokio::spawn(async move {
                    let sink = PipeSink {
                        id,
                        out: out.clone(),
                    };
                    let outcome = runner.run(&run_job, &sink, token).await;
                    lock(&cancels).remove(&id);
                    let _ = out.send(FromWorker::Done {
                        id,
                        outcome: outcome.into(),
                    });
                });
            }
            ToWorker::Cancel { id } => {
                if let Some(token) = lock(&cancels).get(&id) {
                    token.cancel();
                }
            }
            ToWorker::Artifact { req, bytes, error } => {
                let answer = match (bytes, error) {
                    (Some(b64), _) => base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| SourceError::Unavailable(format!("bad artifact frame: {e}"))),
                    (None, Some(e)) => Err(SourceError::NotFound(e)),
                    (None, None) => Err(SourceError::Unavailable("empty artifact frame".into())),
                };
                if let Some(tx) = lock(&waiting).remove(&req) {
                    let _ = tx.send(answer);
                }
            }
        }
    }
    // The parent is gone: stop every run and leave.
    for token in lock(&cancels).values() {
        token.cancel();
    }
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The control plane's side.

/// How to start a worker process.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The worker's whole environment: it inherits none of the control plane's, which holds
    /// its secrets (API-key pepper, internal token, database URL, cloud credentials). Put
    /// nothing secret here; what a run needs reaches the worker in its frame.
    pub env: Vec<(String, String)>,
}

enum Event {
    Log(Vec<LogLine>),
    Done(FlowOutcome),
}

struct Worker {
    slot: usize,
    pid: Option<u32>,
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Mutex<HashMap<u64, mpsc::UnboundedSender<Event>>>,
    dead: AtomicBool,
}

impl Worker {
    async fn send(&self, frame: &ToWorker) -> bool {
        let Ok(mut line) = serde_json::to_vec(frame) else {
            return false;
        };
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        stdin.write_all(&line).await.is_ok() && stdin.flush().await.is_ok()
    }

    fn load(&self) -> usize {
        lock(&self.pending).len()
    }
}

struct PoolInner {
    command: WorkerCommand,
    source: Arc<dyn ArtifactSource>,
    grants: Arc<dyn Grants>,
    slots: Mutex<Vec<Option<Arc<Worker>>>>,
    next_id: AtomicU64,
    shutdown: CancellationToken,
    /// How long a cancelled run's worker gets to report before it is killed.
    cancel_grace: Duration,
}

/// Supervised executor worker processes, as a [`FlowRunner`]. Cheap to clone.
#[derive(Clone)]
pub struct WorkerPool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("command", &self.inner.command)
            .finish_non_exhaustive()
    }
}

/// A worker could not be started.
#[derive(Debug, thiserror::Error)]
#[error("starting executor worker {program}")]
pub struct SpawnError {
    program: String,
    #[source]
    source: std::io::Error,
}

impl WorkerPool {
    /// Starts `workers` worker processes.
    pub fn start(
        command: WorkerCommand,
        workers: usize,
        source: Arc<dyn ArtifactSource>,
        grants: Arc<dyn Grants>,
    ) -> Result<WorkerPool, SpawnError> {
        let pool = WorkerPool {
            inner: Arc::new(PoolInner {
                command,
                source,
                grants,
                slots: Mutex::new(vec![None; workers.max(1)]),
                next_id: AtomicU64::new(1),
                shutdown: CancellationToken::new(),
                cancel_grace: Duration::from_secs(5),
            }),
        };
        for slot in 0..workers.max(1) {
            let worker = pool.spawn(slot)?;
            lock(&pool.inner.slots)[slot] = Some(worker);
        }
        Ok(pool)
    }

    /// The process ids of the live workers (for operators and tests).
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.inner.slots)
            .iter()
            .flatten()
            .filter(|w| !w.dead.load(Ordering::SeqCst))
            .filter_map(|w| w.pid)
            .collect()
    }

    /// Stops supervising: workers are not restarted; each exits when its stdin closes.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
        lock(&self.inner.slots).iter_mut().for_each(|w| *w = None);
    }

    fn spawn(&self, slot: usize) -> Result<Arc<Worker>, SpawnError> {
        let cmd = &self.inner.command;
        let mut child: Child = Command::new(&cmd.program)
            .args(&cmd.args)
            .env_clear()
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SpawnError {
                program: cmd.program.display().to_string(),
                source,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(SpawnError {
                program: cmd.program.display().to_string(),
                source: std::io::Error::other("no pipes to the worker"),
            });
        };
        let worker = Arc::new(Worker {
            slot,
            pid: child.id(),
            stdin: tokio::sync::Mutex::new(stdin),
            pending: Mutex::new(HashMap::new()),
            dead: AtomicBool::new(false),
        });
        tracing::info!(slot, pid = ?worker.pid, "Executor worker started");
        let pool = self.clone();
        let w = worker.clone();
        tokio::spawn(async move { pool.read(w, child, stdout).await });
        Ok(worker)
    }

    /// Relays one worker's frames until it exits, then fails its runs and restarts it.
    async fn read(
        self,
        worker: Arc<Worker>,
        mut child: Child,
        stdout: tokio::process::ChildStdout,
    ) {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<FromWorker>(&line) {
                Ok(FromWorker::Log { id, lines }) => {
                    if let Some(tx) = lock(&worker.pending).get(&id) {
                        let _ = tx.send(Event::Log(lines));
                    }
                }
                Ok(FromWorker::Done { id, outcome }) => {
                    if let Some(tx) = lock(&worker.pending).remove(&id) {
                        let _ = tx.send(Event::Done(outcome.into()));
                    }
                }
                Ok(FromWorker::Need { req, digest }) => {
                    let (source, w) = (self.inner.source.clone(), worker.clone());
                    tokio::spawn(async move {
                        let frame = match source.get(&digest).await {
                            Ok(bytes) => ToWorker::Artifact {
                                req,
                                bytes: Some(
                                    base64::engine::general_purpose::STANDARD.encode(bytes),
                                ),
                                error: None,
                            },
                            Err(e) => ToWorker::Artifact {
                                req,
                                bytes: None,
                                error: Some(e.to_string()),
                            },
                        };
                        w.send(&frame).await;
                    });
                }
                Err(error) => {
                    tracing::warn!(slot = worker.slot, error = %error, "Unreadable frame from an executor worker")
                }
            }
        }
        worker.dead.store(true, Ordering::SeqCst);
        // Dropping the senders tells every run on this worker that it was lost.
        let lost = std::mem::take(&mut *lock(&worker.pending));
        let status = child.wait().await.ok();
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        tracing::error!(slot = worker.slot, pid = ?worker.pid, status = ?status, runs_lost = lost.len(), "Executor worker exited; restarting it");
        drop(lost);
        let mut delay = Duration::from_millis(100);
        loop {
            if self.inner.shutdown.is_cancelled() {
                return;
            }
            match self.spawn(worker.slot) {
                Ok(fresh) => {
                    if let Some(slot) = lock(&self.inner.slots).get_mut(worker.slot) {
                        *slot = Some(fresh);
                    }
                    return;
                }
                Err(error) => {
                    tracing::error!(slot = worker.slot, error = %error, "Executor worker could not be restarted; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// The live worker with the fewest runs.
    fn pick(&self) -> Option<Arc<Worker>> {
        lock(&self.inner.slots)
            .iter()
            .flatten()
            .filter(|w| !w.dead.load(Ordering::SeqCst))
            .min_by_key(|w| w.load())
            .cloned()
    }
}

#[async_trait]
impl FlowRunner for WorkerPool {
    async fn run(
        &self,
        job: &RunJob,
        logs: &dyn LogSink,
        cancel: CancellationToken,
    ) -> FlowOutcome {
        let (secrets, env) = match self.inner.grants.grants(job).await {
            Ok(g) => g,
            Err(failure) => return FlowOutcome::Crashed(failure),
        };
        let Some(worker) = self.pick() else {
            return worker_lost("no executor worker is running");
        };
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        lock(&worker.pending).insert(id, tx);
        let wire = WireJob {
            run_id: job.run_id,
            workspace_id: job.workspace_id,
            pool_id: job.pool_id,
            pool: job.pool.clone(),
            attempt: job.attempt,
            artifact: job.artifact.clone(),
            parameters: job.parameters.clone(),
            limits: job.limits,
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
                .collect(),
            env,
        };
        if !worker
            .send(&ToWorker::Run {
                id,
                job: Box::new(wire),
            })
            .await
        {
            lock(&worker.pending).remove(&id);
            return worker_lost("the executor worker did not take the run");
        }
        let mut cancel_sent = false;
        let kill_after = tokio::time::sleep(Duration::from_secs(u64::MAX / 4));
        tokio::pin!(kill_after);
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(Event::Log(lines)) => logs.write(lines).await,
                    Some(Event::Done(outcome)) => return outcome,
                    None if cancel_sent => return FlowOutcome::Cancelled,
                    None => return worker_lost("the executor worker running it exited"),
                },
                _ = cancel.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    worker.send(&ToWorker::Cancel { id }).await;
                    kill_after.as_mut().reset(tokio::time::Instant::now() + self.inner.cancel_grace);
                }
                _ = &mut kill_after => {
                    // The worker ignored the cancel: it is stuck. Kill it; its other runs
                    // are retried as lost.
                    tracing::error!(slot = worker.slot, pid = ?worker.pid, run_id = %job.run_id, "Executor worker did not stop a cancelled run; killing it");
                    if let Some(pid) = worker.pid {
                        let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                    }
                    lock(&worker.pending).remove(&id);
                    return FlowOutcome::Cancelled;
                }
            }
        }
    }
}
