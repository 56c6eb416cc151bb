//! Test support: builds the flows (once per test process, and only when stale), hands out
//! hosts sharing one compiled-artifact cache, and records log lines.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use ferry_core::port::{FlowOutcome, LogLine, LogSink, LogStream};
use ferry_core::PoolLimits;
use ferry_wasm_host::{Host, HostConfig, Prepared, RunReport, RunSpec};
use tokio_util::sync::CancellationToken;

pub fn sandbox_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sandbox")
}

/// The newest modification time of the files under `dir` (skipping build output).
fn newest(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == "out")
            {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if let Ok(m) = meta.modified() {
                newest = newest.max(m);
            }
        }
    }
    newest
}

/// Whether every flow in out/ is newer than every source of the sandbox.
fn up_to_date(sandbox: &Path) -> bool {
    let out = sandbox.join("out");
    let Ok(entries) = std::fs::read_dir(&out) else {
        return false;
    };
    let oldest_out = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .min();
    let all_there = FLOWS.iter().all(|f| out.join(format!("{f}.wasm")).exists());
    all_there && oldest_out.is_some_and(|o| o >= newest(sandbox))
}

/// Every flow the tests use.
const FLOWS: &[&str] = &[
    "hello",
    "params",
    "logs",
    "fails",
    "grants",
    "command",
    "preview1",
    "infinite-loop",
    "memory-bomb",
    "deep-recursion",
    "stdout-flood",
    "huge-result",
    "fs-escape",
    "network",
    "sleep-forever",
    "trap",
    "disk-fill",
];

/// Runs sandbox/build.sh once per test process when the flows are missing or stale.
fn ensure_built() -> Result<()> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let sandbox = sandbox_dir();
            if up_to_date(&sandbox) {
                return Ok(());
            }
            let output = std::process::Command::new("bash")
                .arg(sandbox.join("build.sh"))
                .output()
                .map_err(|e| format!("running sandbox/build.sh: {e}"))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "sandbox/build.sh failed ({}):\n{}\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The bytes of a built flow.
pub fn flow(name: &str) -> Result<Vec<u8>> {
    ensure_built()?;
    let path = sandbox_dir().join("out").join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// A cache shared by every test process: each flow is compiled once for the whole suite
/// (wasmtime's compiler is slow in a debug build). Writes are atomic, so processes may race.
pub fn shared_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-host-cache")
}

pub fn config() -> HostConfig {
    let mut config = HostConfig::new(shared_cache_dir());
    // Tests run many hosts side by side: a small pool each.
    config.max_concurrent_instances = 4;
    config
}

pub fn host() -> Result<Host> {
    Ok(Host::new(config())?)
}

pub fn host_with(change: impl FnOnce(&mut HostConfig)) -> Result<Host> {
    let mut config = config();
    change(&mut config);
    Ok(Host::new(config)?)
}

pub async fn prepare(host: &Host, name: &str) -> Result<Prepared> {
    Ok(host.prepare(&flow(name)?, false).await?)
}

pub async fn prepare_metered(host: &Host, name: &str) -> Result<Prepared> {
    Ok(host.prepare(&flow(name)?, true).await?)
}

/// Default limits, but a timeout short enough that a broken test does not hang for an hour.
pub fn limits() -> PoolLimits {
    PoolLimits {
        timeout_s: Some(60),
        ..PoolLimits::DEFAULT
    }
}

pub fn spec(params: serde_json::Value) -> RunSpec {
    RunSpec {
        params,
        limits: limits(),
        secrets: Default::default(),
        env: Vec::new(),
    }
}

/// A log sink that keeps every line.
#[derive(Debug, Default)]
pub struct RecordingSink {
    lines: Mutex<Vec<LogLine>>,
}

#[async_trait]
impl LogSink for RecordingSink {
    async fn write(&self, lines: Vec<LogLine>) {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(lines);
    }
}

impl RecordingSink {
    pub fn all(&self) -> Vec<LogLine> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The lines of one stream, in order.
    pub fn lines(&self, stream: LogStream) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.line)
            .collect()
    }

    /// Bytes of flow output kept (lines plus newlines), Ferry's own lines excluded.
    pub fn flow_bytes(&self) -> u64 {
        self.all()
            .iter()
            .filter(|l| l.stream != LogStream::Ferry)
            .map(|l| l.line.len() as u64 + 1)
            .sum()
    }
}

/// Runs a prepared flow to its end with a recording sink.
pub async fn run(host: &Host, prepared: &Prepared, spec: RunSpec) -> (RunReport, RecordingSink) {
    let sink = RecordingSink::default();
    let report = host
        .run_report(prepared, spec, &sink, CancellationToken::new())
        .await;
    (report, sink)
}

/// Prepares and runs the named flow with `params` and default limits.
pub async fn run_flow(
    host: &Host,
    name: &str,
    params: serde_json::Value,
) -> Result<(FlowOutcome, RecordingSink)> {
    let prepared = prepare(host, name).await?;
    let (report, sink) = run(host, &prepared, spec(params)).await;
    Ok((report.outcome, sink))
}

/// The result of a completed run, or an error saying how it ended instead.
pub fn completed(outcome: FlowOutcome) -> Result<serde_json::Value> {
    match outcome {
        FlowOutcome::Completed { result } => Ok(result),
        other => bail!("expected the run to complete, got {other:?}"),
    }
}

/// After a hostile flow: the host still runs `hello` fine.
pub async fn assert_host_still_works(host: &Host) -> Result<()> {
    let (outcome, _) = run_flow(host, "hello", serde_json::json!({"name": "again"})).await?;
    let result = completed(outcome)?;
    anyhow::ensure!(
        result == serde_json::json!({"greeting": "hello again"}),
        "hello returned {result}"
    );
    Ok(())
}

/// A generous bound for "stops within the deadline": slow CI machines, debug builds.
pub const STOP_BOUND: Duration = Duration::from_secs(10);
