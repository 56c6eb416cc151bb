//! The executor worker's confinement (Linux): a child process — this test binary run again,
//! with `FERRY_TEST_CONFINE` naming what it should do — confines itself exactly as a worker
//! does and then tries what it may and may not do. Every denial has its positive control
//! beside it: the same thing done before confining, or the allowed neighbour of the denied
//! thing done after.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use async_trait::async_trait;
use ferry_core::port::{FlowOutcome, FlowRunner, RunJob};
use ferry_core::{FailureReason, Name, PoolId, PoolLimits, PoolType, RunId, WorkspaceId};
use ferry_wasm_host::worker::{WorkerCommand, WorkerPool};
use ferry_wasm_host::{confine, ArtifactSource, HostConfig, NoGrants, SourceError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::support::{self, RecordingSink};

/// Names the child's role; unset, [`child`] does nothing.
const ROLE: &str = "FERRY_TEST_CONFINE";
/// The child's data directory: `cache/compiled` inside it is its cache, `root.key` its secret.
const DATA: &str = "FERRY_TEST_CONFINE_DATA";
/// The child's scratch root.
const SCRATCH: &str = "FERRY_TEST_CONFINE_SCRATCH";
/// A secret the child must not be able to read once confined.
const ROOT_KEY: &str = "root-key-canary-6f1d";
/// SIGSYS: how seccomp's kill-process action ends a process.
const SIGSYS: i32 = 31;

/// Not a test of its own: the body of the child processes the tests below start. Without
/// `FERRY_TEST_CONFINE` (as when the suite runs) it returns at once.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    if let Err(e) = child_role(&role) {
        println!("child_error={e:#}");
        std::process::exit(3);
    }
}

fn env_path(name: &str) -> Result<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .with_context(|| format!("{name} is not set"))
}

/// The host configuration of a worker over the child's directories.
fn child_config() -> Result<HostConfig> {
    let mut config = HostConfig::new(env_path(DATA)?.join("cache").join("compiled"));
    config.scratch_root = env_path(SCRATCH)?;
    config.max_concurrent_instances = 4;
    Ok(config)
}

/// What an I/O attempt came to: `ok`, or the error's kind.
fn outcome<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

fn say(key: &str, value: impl std::fmt::Display) {
    // A line of its own: the test harness has written "test confine::child ... " before.
    println!("\n{key}={value}");
    let _ = std::io::stdout().flush();
}

/// Writes a file in `dir` and reads it back.
fn write_read(dir: &Path) -> std::io::Result<()> {
    let path = dir.join("probe.txt");
    std::fs::write(&path, b"probe")?;
    let back = std::fs::read(&path)?;
    std::fs::remove_file(&path)?;
    if back == b"probe" {
        Ok(())
    } else {
        Err(std::io::Error::other("read back something else"))
    }
}

/// The value of `field` in a `/proc/.../status` file.
fn status_field(status: &str, field: &str) -> Option<String> {
    status.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    })
}

fn child_role(role: &str) -> Result<()> {
    let config = child_config()?;
    let data = env_path(DATA)?;
    let scratch = config.scratch_root.clone();
    match role {
        "files" => {
            // The positive controls first: before confining, all of this works.
            say(
                "before_root_key",
                outcome(std::fs::read(data.join("root.key"))),
            );
            say("before_etc", outcome(std::fs::read("/etc/passwd")));
            let confined = confine::apply(&config)?;
            say("landlock", format!("{:?}", confined.landlock));
            say("cache_rw", outcome(write_read(&config.cache_dir)));
            say("scratch_rw", outcome(write_read(&scratch)));
            say("root_key", outcome(std::fs::read(data.join("root.key"))));
            say("data_listing", outcome(std::fs::read_dir(&data)));
            say(
                "data_write",
                outcome(std::fs::write(data.join("planted"), b"x")),
            );
            say("etc", outcome(std::fs::read("/etc/passwd")));
            // A thread started afterwards is confined too.
            let (key, scratch_rw) = std::thread::scope(|s| {
                s.spawn(|| {
                    (
                        outcome(std::fs::read(data.join("root.key"))),
                        outcome(write_read(&scratch)),
                    )
                })
                .join()
                .unwrap_or_else(|_| ("panicked".into(), "panicked".into()))
            });
            say("thread_root_key", key);
            say("thread_scratch_rw", scratch_rw);
            let status = std::fs::read_to_string("/proc/thread-self/status")?;
            say(
                "seccomp",
                status_field(&status, "Seccomp").unwrap_or_default(),
            );
            say(
                "no_new_privs",
                status_field(&status, "NoNewPrivs").unwrap_or_default(),
            );
            // Every thread of the process, the harness's own included.
            let mut unfiltered = 0;
            for task in std::fs::read_dir("/proc/self/task")? {
                let status = std::fs::read_to_string(task?.path().join("status"))?;
                if status_field(&status, "Seccomp").as_deref() != Some("2") {
                    unfiltered += 1;
                }
            }
            say("threads_without_seccomp", unfiltered);
            let limits = std::fs::read_to_string("/proc/self/limits")?;
            for (key, name) in [("core", "Max core file size"), ("nofile", "Max open files")] {
                let line = limits.lines().find(|l| l.starts_with(name)).unwrap_or("");
                let values: Vec<&str> = line[name.len().min(line.len())..]
                    .split_whitespace()
                    .take(2)
                    .collect();
                say(key, values.join(" "));
            }
        }
        "socket" => {
            say(
                "before_socket",
                outcome(std::net::UdpSocket::bind("127.0.0.1:0")),
            );
            confine::apply(&config)?;
            say("allowed", outcome(write_read(&scratch)));
            let socket = std::net::UdpSocket::bind("127.0.0.1:0");
            // Not reached: creating a socket kills the process.
            say("socket", outcome(socket));
        }
        "spawn" => {
            say("before_spawn", outcome(Command::new("true").status()));
            confine::apply(&config)?;
            say("allowed", outcome(write_read(&scratch)));
            let spawned = Command::new("true").status();
            // Not reached: starting a process kills this one.
            say("spawn", outcome(spawned));
        }
        "worker" => {
            let mut config = config;
            // The suite's shared cache: each flow is compiled once for every test.
            config.cache_dir = support::shared_cache_dir();
            std::fs::create_dir_all(&config.cache_dir)?;
            // End the test harness's "test confine::child ... " line, so the first frame
            // starts a line of its own.
            println!();
            std::io::stdout().flush()?;
            ferry_wasm_host::worker::serve_confined(config)?;
        }
        other => bail!("unknown role {other:?}"),
    }
    Ok(())
}

/// A data directory laid out like the server's (the compiled-flow cache inside it, the root
/// key beside it) and a scratch root elsewhere.
struct Dirs {
    data: tempfile::TempDir,
    scratch: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Result<Dirs> {
        let data = tempfile::tempdir()?;
        std::fs::create_dir_all(data.path().join("cache").join("compiled"))?;
        std::fs::write(data.path().join("root.key"), ROOT_KEY)?;
        Ok(Dirs {
            data,
            scratch: tempfile::tempdir()?,
        })
    }

    fn env(&self, role: &str) -> Vec<(String, String)> {
        vec![
            (ROLE.to_owned(), role.to_owned()),
            (DATA.to_owned(), self.data.path().display().to_string()),
            (
                SCRATCH.to_owned(),
                self.scratch.path().display().to_string(),
            ),
        ]
    }
}

/// This test binary, asked to run only [`child`], with its output on stdout.
fn child_args() -> Vec<String> {
    [
        "confine::child",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ]
    .map(String::from)
    .to_vec()
}

/// Runs a child in `role` to its end; returns its output and its `key=value` lines.
fn run_child(dirs: &Dirs, role: &str) -> Result<(Output, HashMap<String, String>)> {
    let out = Command::new(std::env::current_exe()?)
        .args(child_args())
        .env_clear()
        .envs(dirs.env(role))
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Ok((out, said))
}

fn said<'a>(said: &'a HashMap<String, String>, key: &str) -> &'a str {
    said.get(key).map_or("(not said)", String::as_str)
}

#[test]
fn a_confined_worker_reads_and_writes_only_its_cache_and_scratch() -> Result<()> {
    let dirs = Dirs::new()?;
    let (out, s) = run_child(&dirs, "files")?;
    ensure!(
        out.status.success(),
        "child failed: {out:?}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let expect = [
        // Before confining: the root key and the system are readable.
        ("before_root_key", "ok"),
        ("before_etc", "ok"),
        // After: its cache and its scratch root are read-write...
        ("cache_rw", "ok"),
        ("scratch_rw", "ok"),
        ("thread_scratch_rw", "ok"),
        // ...the rest of the data directory, and everything else, is not.
        ("root_key", "PermissionDenied"),
        ("thread_root_key", "PermissionDenied"),
        ("data_listing", "PermissionDenied"),
        ("data_write", "PermissionDenied"),
        ("etc", "PermissionDenied"),
        // Seccomp filter mode and no_new_privs, on every thread.
        ("seccomp", "2"),
        ("no_new_privs", "1"),
        ("threads_without_seccomp", "0"),
        // No core dumps; a bounded descriptor table.
        ("core", "0 0"),
    ];
    for (key, want) in expect {
        assert_eq!(said(&s, key), want, "{key}: {s:?}");
    }
    // Enforced in full, or in the subset an older kernel has (which still covers files; the
    // denials above prove it).
    assert!(
        ["Full", "Partial"].contains(&said(&s, "landlock")),
        "landlock: {s:?}"
    );
    let nofile: Vec<u64> = said(&s, "nofile")
        .split(' ')
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        nofile.len() == 2 && nofile.iter().all(|n| *n <= confine::MAX_OPEN_FILES),
        "nofile {nofile:?}"
    );
    assert!(!dirs.data.path().join("planted").exists());
    Ok(())
}

/// Asserts the child did the allowed work and was then killed by seccomp.
fn assert_killed_after_allowed_work(out: &Output, s: &HashMap<String, String>, denied: &str) {
    assert_eq!(said(s, "allowed"), "ok", "{s:?}");
    assert_eq!(
        out.status.signal(),
        Some(SIGSYS),
        "{denied} did not kill the child: {out:?}"
    );
    assert!(!s.contains_key(denied), "{denied} returned: {s:?}");
}

#[test]
fn a_confined_worker_that_creates_a_socket_is_killed() -> Result<()> {
    let dirs = Dirs::new()?;
    let (out, s) = run_child(&dirs, "socket")?;
    assert_eq!(said(&s, "before_socket"), "ok", "{s:?}");
    assert_killed_after_allowed_work(&out, &s, "socket");
    Ok(())
}

#[test]
fn a_confined_worker_that_starts_a_process_is_killed() -> Result<()> {
    let dirs = Dirs::new()?;
    let (out, s) = run_child(&dirs, "spawn")?;
    assert_eq!(said(&s, "before_spawn"), "ok", "{s:?}");
    assert_killed_after_allowed_work(&out, &s, "spawn");
    Ok(())
}

/// Every built flow, by digest.
struct Flows(HashMap<String, Vec<u8>>);

#[async_trait]
impl ArtifactSource for Flows {
    async fn get(&self, digest: &str) -> Result<Vec<u8>, SourceError> {
        self.0
            .get(digest)
            .cloned()
            .ok_or_else(|| SourceError::NotFound(digest.to_owned()))
    }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn job(digest: &str, parameters: Value, limits: PoolLimits) -> Result<RunJob> {
    Ok(RunJob {
        run_id: RunId::new(),
        workspace_id: WorkspaceId::new(),
        pool_id: PoolId::new(),
        pool: Name::parse("confined")?,
        pool_type: PoolType::Managed,
        attempt: 1,
        artifact: Some(digest.to_owned()),
        parameters,
        job_template: json!({}),
        job_variables: json!({}),
        credential: None,
        limits,
        has_sensitive_parameters: false,
        infrastructure: None,
    })
}

/// What a run must end as.
enum Expect {
    Completed(fn(&Value) -> bool),
    /// With this reason, saying this.
    Failed(FailureReason, &'static str),
}

/// The worker's side of the real thing: `serve_confined` in a child started by a
/// `WorkerPool` with an explicit environment, running example flows of the three kinds and
/// two hostile ones, ending as they do unconfined (`examples.rs`, `hostile.rs`). Every
/// hostile flow runs in confined workers in the black-box suite (`tests/blackbox/managed.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confined_worker_runs_every_kind_of_flow_and_hostile_ones_end_as_before() -> Result<()> {
    let dirs = Dirs::new()?;
    let names = ["hello", "command", "preview1", "memory-bomb", "trap"];
    let mut flows = HashMap::new();
    let mut digests = HashMap::new();
    for name in names {
        let bytes = support::flow(name)?;
        digests.insert(name, digest(&bytes));
        flows.insert(digest(&bytes), bytes);
    }
    let env = dirs.env("worker");
    let command = WorkerCommand {
        program: std::env::current_exe()?,
        args: child_args(),
        env: env.clone(),
    };
    let pool = WorkerPool::start(command, 1, Arc::new(Flows(flows)), Arc::new(NoGrants))?;
    let pids = pool.pids();
    ensure!(pids.len() == 1, "one worker: {pids:?}");
    let pid = pids[0];

    let limits = support::limits();
    let with = |change: fn(&mut PoolLimits)| {
        let mut l = limits;
        change(&mut l);
        l
    };
    let cases: Vec<(&str, Value, PoolLimits, Expect)> = vec![
        (
            "hello",
            json!({"name": "confined"}),
            limits,
            Expect::Completed(|r| *r == json!({"greeting": "hello confined"})),
        ),
        (
            "command",
            json!({"name": "ada"}),
            limits,
            Expect::Completed(|r| r["kind"] == "command"),
        ),
        (
            "preview1",
            json!({"name": "ada"}),
            limits,
            Expect::Completed(|r| r["kind"] == "preview1"),
        ),
        (
            "memory-bomb",
            json!({}),
            with(|l| l.memory_mb = Some(32)),
            Expect::Failed(FailureReason::MemoryLimit, ""),
        ),
        (
            "trap",
            json!({"how": "unreachable"}),
            limits,
            Expect::Failed(FailureReason::Trap, ""),
        ),
    ];
    let mut runs = tokio::task::JoinSet::new();
    for (i, (name, params, limits, _)) in cases.iter().enumerate() {
        let job = job(&digests[name], params.clone(), *limits)?;
        let pool = pool.clone();
        runs.spawn(async move {
            let sink = RecordingSink::default();
            (i, pool.run(&job, &sink, CancellationToken::new()).await)
        });
    }
    let mut outcomes: Vec<Option<FlowOutcome>> = vec![None; cases.len()];
    // Bounded: a run that never reports fails the test instead of hanging it.
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Some(done) = runs.join_next().await {
            let (i, outcome) = done?;
            outcomes[i] = Some(outcome);
        }
        Ok::<_, tokio::task::JoinError>(())
    })
    .await
    .context("the runs did not all report within 120 s")??;
    for ((name, _, _, expect), outcome) in cases.iter().zip(outcomes) {
        let outcome = outcome.context("a run did not report")?;
        match (expect, &outcome) {
            (Expect::Completed(check), FlowOutcome::Completed { result }) => {
                assert!(check(result), "{name}: {result}")
            }
            (Expect::Failed(reason, saying), FlowOutcome::Failed(f)) => {
                assert_eq!(f.reason, *reason, "{name}: {f}");
                assert!(f.message.contains(saying), "{name}: {f}");
            }
            _ => panic!("{name}: unexpected {outcome:?}"),
        }
    }
    // The same worker did all of it: nothing killed it.
    assert_eq!(pool.pids(), vec![pid]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    assert_eq!(status_field(&status, "Seccomp").as_deref(), Some("2"));
    assert_eq!(status_field(&status, "NoNewPrivs").as_deref(), Some("1"));
    // Its environment is exactly what the pool gave it: none of this process's.
    assert!(
        std::env::var_os("PATH").is_some(),
        "the parent has a PATH..."
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
    let mut seen: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    seen.sort();
    let mut given: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    given.sort();
    assert_eq!(seen, given, "...which the worker does not get");
    pool.shutdown();
    Ok(())
}
