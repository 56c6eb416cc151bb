//! Managed execution for real: WebAssembly flows uploaded and run through the API by
//! supervised executor worker processes (the `ferry` binary's `executor-worker`): every
//! example flow, every hostile flow next to a normal one, a killed worker, a thousand runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use ferry_client::{Client, NewPool, NewRun, Run};
use serde_json::{json, Value};

use crate::support::{engine_config, ferry_bin, make_tenant, wait_until, Tenant};

/// Builds the example and hostile flows once per test binary (`sandbox/build.sh`).
pub fn build_flows() {
    flows();
}

fn flows() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let sandbox = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sandbox");
        let out = std::process::Command::new("bash")
            .arg(sandbox.join("build.sh"))
            .output()
            .expect("running sandbox/build.sh");
        assert!(
            out.status.success(),
            "sandbox/build.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sandbox.join("out")
    })
}

/// Ferry in-process with its real executors: managed runs on two worker processes.
struct Real {
    server: ferry_server::Server,
    tenant: Tenant,
    dir: tempfile::TempDir,
}

impl Real {
    async fn start() -> Real {
        Self::start_with(|_| {}).await
    }

    async fn start_with(configure: impl FnOnce(&mut ferry_server::Config)) -> Real {
        let flows = flows().to_owned();
        assert!(flows.join("hello.wasm").exists());
        let dir = tempfile::tempdir().unwrap();
        let mut config = ferry_server::Config {
            engine: Some(engine_config()),
            executor_program: Some(PathBuf::from(ferry_bin())),
            executor_workers: 2,
            ..ferry_server::Config::for_tests(dir.path())
        };
        configure(&mut config);
        let server = ferry_server::Server::start_real(config).await.unwrap();
        let token = secrecy::ExposeSecret::expose_secret(&server.internal_token).to_owned();
        let tenant =
            make_tenant(&server.public_url(), &server.internal_url(), &token, "acme").await;
        let real = Real {
            server,
            tenant,
            dir,
        };
        real.admin()
            .create_pool(&NewPool {
                name: "sbx".into(),
                pool_type: "managed".into(),
                limits: Some(json!({"memory_mb": 128, "timeout_s": 120})),
                ..Default::default()
            })
            .await
            .unwrap();
        real
    }

    fn admin(&self) -> Client {
        self.tenant.client("admin")
    }

    /// Uploads `sandbox/out/<name>.wasm`; returns its digest.
    async fn upload(&self, name: &str) -> String {
        let bytes = std::fs::read(flows().join(format!("{name}.wasm"))).unwrap();
        self.admin().upload_artifact(bytes).await.unwrap().0.digest
    }

    async fn submit(&self, digest: &str, parameters: Value, limits: Option<Value>) -> Run {
        let run = NewRun {
            pool: "sbx".into(),
            artifact: Some(digest.to_owned()),
            parameters: Some(parameters),
            limits,
            ..Default::default()
        };
        self.admin().create_run(&run).await.unwrap().0
    }

    /// Waits for the run to end. Longer than the shared deadline: hostile flows run their
    /// limits out, and CI runs this beside everything else on 2 cores.
    async fn finished(&self, id: &str) -> Run {
        let client = self.admin();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let run = client.get_run(id).await.unwrap();
            if run.is_terminal() {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} still {} after 120 s",
                run.state
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn log_text(&self, id: &str) -> String {
        let logs = self.admin().run_logs(id, None, Some(10_000)).await.unwrap();
        logs.lines
            .iter()
            .map(|l| format!("{} {}\n", l.stream, l.line))
            .collect()
    }

    async fn stop(self) {
        self.server.shutdown().await;
        drop(self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_flow_runs_end_to_end() {
    let app = Real::start().await;
    let cases: &[(&str, Value, &str, Value)] = &[
        (
            "hello",
            json!({"name": "world"}),
            "completed",
            json!({"greeting": "hello world"}),
        ),
        (
            "params",
            json!({"numbers": [1, 2, 3], "scale": 10}),
            "completed",
            json!({"count": 3, "sum": 6, "scaled": [10, 20, 30]}),
        ),
        (
            "logs",
            json!({}),
            "completed",
            json!({"logged": 4, "printed": 4}),
        ),
        (
            "command",
            json!({"name": "ada"}),
            "completed",
            json!({"greeting": "hello ada", "kind": "command"}),
        ),
        (
            "preview1",
            json!({"name": "ada"}),
            "completed",
            json!({"greeting": "hello ada", "kind": "preview1"}),
        ),
        ("fails", json!({}), "failed", Value::Null),
    ];
    let mut runs = Vec::new();
    for (flow, params, _, _) in cases {
        let digest = app.upload(flow).await;
        runs.push(app.submit(&digest, params.clone(), None).await);
    }
    for ((flow, _, state, result), run) in cases.iter().zip(runs) {
        let done = app.finished(&run.id).await;
        assert_eq!(done.state, *state, "{flow}: {done:?}");
        if *state == "completed" {
            assert_eq!(done.result.as_ref(), Some(result), "{flow}");
        } else {
            assert_eq!(done.state_reason.as_deref(), Some("exit_code"), "{flow}");
        }
    }
    // The logging flow's structured and printed lines are the run's log.
    let logs_run = app.admin().list_runs(&Default::default()).await.unwrap();
    let logs_id = &logs_run
        .items
        .iter()
        .find(|r| r.result == Some(json!({"logged": 4, "printed": 4})))
        .unwrap()
        .id;
    let text = app.log_text(logs_id).await;
    assert!(
        text.lines().filter(|l| l.starts_with("flow ")).count() >= 4,
        "{text}"
    );
    assert!(
        text.lines()
            .filter(|l| l.starts_with("stdout ") || l.starts_with("stderr "))
            .count()
            >= 4,
        "{text}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_flows_end_typed_and_a_normal_run_alongside_completes() {
    let app = Real::start().await;
    // (flow, limits, state, reason or None, check of the result)
    let cases: &[(&str, Value, &str, Option<&str>)] = &[
        (
            "infinite-loop",
            json!({"timeout_s": 2}),
            "failed",
            Some("timeout"),
        ),
        (
            "memory-bomb",
            json!({"memory_mb": 32}),
            "failed",
            Some("memory_limit"),
        ),
        ("deep-recursion", json!({}), "failed", Some("trap")),
        (
            "stdout-flood",
            json!({"log_bytes": 65536}),
            "completed",
            None,
        ),
        ("huge-result", json!({}), "failed", Some("exit_code")),
        ("fs-escape", json!({}), "completed", None),
        ("network", json!({}), "completed", None),
        (
            "sleep-forever",
            json!({"timeout_s": 2}),
            "failed",
            Some("timeout"),
        ),
        ("trap", json!({}), "failed", Some("trap")),
    ];
    let mut runs = Vec::new();
    for (flow, limits, _, _) in cases {
        let digest = app.upload(flow).await;
        runs.push(app.submit(&digest, json!({}), Some(limits.clone())).await);
    }
    let hello = app.upload("hello").await;
    let normal = app.submit(&hello, json!({"name": "neighbour"}), None).await;
    let mut results = HashMap::new();
    for ((flow, _, state, reason), run) in cases.iter().zip(&runs) {
        let done = app.finished(&run.id).await;
        assert_eq!(done.state, *state, "{flow}: {done:?}");
        assert_eq!(done.state_reason.as_deref(), *reason, "{flow}: {done:?}");
        results.insert(*flow, done);
    }
    let flood = &results["stdout-flood"];
    assert!(flood.log_truncated, "the flood's log is marked truncated");
    let kept: usize = app
        .admin()
        .run_logs(&flood.id, None, Some(10_000))
        .await
        .unwrap()
        .lines
        .iter()
        .map(|l| l.line.len())
        .sum();
    assert!(kept <= 65_536, "kept {kept} bytes of a 64 KiB log");
    let escape = results["fs-escape"].result.clone().unwrap_or_default();
    assert_eq!(
        escape["read"],
        json!([]),
        "read nothing outside /run: {escape}"
    );
    assert_eq!(escape["listed"], json!([]), "{escape}");
    let network = results["network"].result.clone().unwrap_or_default();
    assert_eq!(network["allowed"], json!([]), "no network: {network}");
    let done = app.finished(&normal.id).await;
    assert_eq!(done.result, Some(json!({"greeting": "hello neighbour"})));
    let health = reqwest::get(format!("{}/healthz", app.server.public_url()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await;
}

/// Kills every executor worker of this test's server (found by its cache directory).
fn kill_workers(data_dir: &Path) -> usize {
    let pattern = format!("executor-worker --cache-dir {}", data_dir.display());
    let out = std::process::Command::new("pkill")
        .args(["-KILL", "-c", "-f", &pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_worker_crashes_its_runs_and_new_runs_still_complete() {
    let app = Real::start().await;
    let sleeper = app.upload("sleep-forever").await;
    let run = app
        .submit(&sleeper, json!({}), Some(json!({"timeout_s": 20})))
        .await;
    let client = app.admin();
    wait_until("the sleeper to run", || {
        let client = client.clone();
        let id = run.id.clone();
        async move {
            match client.get_run(&id).await {
                Ok(r) if r.state == "running" => Ok(r),
                Ok(r) => Err(format!("state {}", r.state)),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
    assert_eq!(kill_workers(app.dir.path()), 2, "both workers killed");
    let done = app.finished(&run.id).await;
    assert_eq!(done.state, "crashed");
    assert_eq!(done.state_reason.as_deref(), Some("worker_lost"));
    // The supervisor restarts the workers; the next run completes.
    let hello = app.upload("hello").await;
    let next = app.submit(&hello, json!({"name": "again"}), None).await;
    let next = app.finished(&next.id).await;
    assert_eq!(next.result, Some(json!({"greeting": "hello again"})));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_runs_submitted_at_once_all_complete_exactly_once() {
    let app = Real::start().await;
    let hello = app.upload("hello").await;
    let client = app.admin();
    let mut ids = Vec::new();
    for chunk in 0..20 {
        let submits = (0..50).map(|i| {
            let client = client.clone();
            let run = NewRun {
                pool: "sbx".into(),
                artifact: Some(hello.clone()),
                parameters: Some(json!({"name": format!("n{}", chunk * 50 + i)})),
                ..Default::default()
            };
            async move { client.create_run(&run).await.unwrap().0.id }
        });
        ids.extend(futures::future::join_all(submits).await);
    }
    assert_eq!(ids.len(), 1000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    for id in &ids {
        loop {
            let run = client.get_run(id).await.unwrap();
            if run.is_terminal() {
                assert_eq!(run.state, "completed", "{run:?}");
                assert_eq!(run.attempt, 1);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} still {}",
                run.state
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Each ran once: one claim and one start in its history, and its own result.
    for (i, id) in ids.iter().enumerate().step_by(37) {
        let events = client.run_events(id).await.unwrap();
        let starts = events.iter().filter(|e| e.to == "running").count();
        let claims = events.iter().filter(|e| e.to == "pending").count();
        assert_eq!((claims, starts), (1, 1), "run {id}: {events:?}");
        let run = client.get_run(id).await.unwrap();
        assert_eq!(run.result, Some(json!({"greeting": format!("hello n{i}")})));
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_gets_exactly_what_its_pool_grants() {
    let app = Real::start().await;
    let admin = app.admin();
    admin
        .put_secret("db-password", "s3cret-value")
        .await
        .unwrap();
    admin
        .put_secret("not-granted", "other-value")
        .await
        .unwrap();
    admin
        .create_pool(&NewPool {
            name: "granted".into(),
            pool_type: "managed".into(),
            job_template: Some(json!({"secrets": ["db-password"], "env": {"MODE": "prod"}})),
            ..Default::default()
        })
        .await
        .unwrap();
    let digest = app.upload("grants").await;
    let run = NewRun {
        pool: "granted".into(),
        artifact: Some(digest.clone()),
        parameters: Some(json!({"secrets": ["db-password", "not-granted", "missing"]})),
        ..Default::default()
    };
    let run = admin.create_run(&run).await.unwrap().0;
    let done = app.finished(&run.id).await;
    assert_eq!(done.state, "completed", "{done:?}");
    let result = done.result.unwrap_or_default();
    assert_eq!(
        result["secrets"],
        json!({"db-password": "s3cret-value", "not-granted": null, "missing": null})
    );
    assert_eq!(
        result["env"],
        json!({"MODE": "prod"}),
        "only the granted environment"
    );
    // The same flow in a pool that grants nothing gets nothing.
    let bare = app
        .submit(&digest, json!({"secrets": ["db-password"]}), None)
        .await;
    let bare = app.finished(&bare.id).await;
    let result = bare.result.unwrap_or_default();
    assert_eq!(result["secrets"], json!({"db-password": null}));
    assert_eq!(result["env"], json!({}));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_are_not_flows_are_refused_with_what_is_wrong() {
    let app = Real::start().await;
    let url = format!("{}/v1/artifacts", app.server.public_url());
    let key = app.tenant.key("admin").to_owned();
    let post = |body: Vec<u8>| {
        let (url, key) = (url.clone(), key.clone());
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or_default())
        }
    };
    let (status, body) = post(b"#!/bin/sh\necho not wasm\n".to_vec()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_artifact");
    // A core module importing something Ferry does not provide: the import is named.
    let imports_exec: Vec<u8> = [
        &b"\0asm\x01\0\0\0"[..],
        &[0x01, 0x04, 0x01, 0x60, 0x00, 0x00], // types: () -> ()
        &[
            0x02, 0x0c, 0x01, 0x03, b'e', b'n', b'v', 0x04, b'e', b'x', b'e', b'c', 0x00, 0x00,
        ], // import env.exec
        &[0x03, 0x02, 0x01, 0x00],             // one function
        &[
            0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x01,
        ], // export _start
        &[0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b],
    ]
    .concat();
    let (status, body) = post(imports_exec).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("exec"),
        "the refused import is named: {message}"
    );
    // Nothing was stored: the workspace has only the fixture's no-op flow.
    let stored: Vec<String> = app
        .admin()
        .list_artifacts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.digest)
        .collect();
    assert_eq!(stored, vec![crate::support::artifact()]);
    // A real flow is accepted; the same bytes again are not a new artifact.
    let hello = std::fs::read(flows().join("hello.wasm")).unwrap();
    let (status, body) = post(hello.clone()).await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (201, Some("component")),
        "{body}"
    );
    let (status, _) = post(hello).await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// Sensitive parameters reach the flow, merged over its parameters, while the API and the
/// database only ever show them sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_receives_its_sensitive_parameters() {
    build_flows();
    let app = Real::start().await;
    let digest = app.upload("params").await;
    let run = NewRun {
        pool: "sbx".into(),
        artifact: Some(digest),
        parameters: Some(json!({"numbers": [1, 2]})),
        sensitive_parameters: Some(json!({"scale": 10})),
        ..Default::default()
    };
    let run = app.admin().create_run(&run).await.unwrap().0;
    let done = app.finished(&run.id).await;
    assert_eq!(done.state, "completed", "{done:?}");
    assert_eq!(
        done.result,
        Some(json!({"count": 2, "sum": 3, "scaled": [10, 20]}))
    );
    assert_eq!(done.parameters, json!({"numbers": [1, 2]}));
    app.stop().await;
}

/// The resident memory of this process (the in-process server) and its children (the
/// executor workers), in bytes.
fn resident_bytes_with_children() -> u64 {
    let me = std::process::id();
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024
    };
    let mut total = rss(me);
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: the fields after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) {
            total += rss(pid);
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_runs_wait_for_memory_within_the_executor_budget() {
    const GIB: u64 = 1 << 30;
    let app = Real::start_with(|c| c.executor_memory_mb = 2048).await;
    app.admin()
        .create_pool(&NewPool {
            name: "big".into(),
            pool_type: "managed".into(),
            limits: Some(json!({"memory_mb": 1024, "timeout_s": 120})),
            ..Default::default()
        })
        .await
        .unwrap();
    let hoard = app.upload("hoard").await;
    let baseline = resident_bytes_with_children();
    // Eight runs, each slowly taking ~900 MiB of its 1 GiB: the budget lets two at a time.
    let mut ids = Vec::new();
    for _ in 0..8 {
        let run = NewRun {
            pool: "big".into(),
            artifact: Some(hoard.clone()),
            parameters: Some(json!({"mib": 900, "passes": 2})),
            ..Default::default()
        };
        ids.push(app.admin().create_run(&run).await.unwrap().0.id);
    }
    let client = app.admin();
    let mut peak = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        peak = peak.max(resident_bytes_with_children());
        let mut done = 0;
        for id in &ids {
            if client.get_run(id).await.unwrap().is_terminal() {
                done += 1;
            }
        }
        if done == ids.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{done} of 8 ended in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server's own timestamps: never more than two runs between start and end at once.
    let mut edges = Vec::new();
    for id in &ids {
        let run = client.get_run(id).await.unwrap();
        assert_eq!(run.state, "completed", "{run:?}");
        assert_eq!(
            run.result.as_ref().map(|r| r["mib"].clone()),
            Some(json!(900))
        );
        edges.push((run.started_at.unwrap(), 1i32));
        edges.push((run.ended_at.unwrap(), -1i32));
    }
    // Ends sort before starts at the same instant: a slot freed is a slot taken.
    edges.sort();
    let (mut at_once, mut most) = (0, 0);
    for (_, step) in edges {
        at_once += step;
        most = most.max(at_once);
    }
    assert!(
        most <= 2,
        "{most} runs executing at once under a 2 GiB budget"
    );
    assert!(
        peak < 3 * GIB,
        "Ferry's processes peaked at {} MiB (baseline {} MiB)",
        peak >> 20,
        baseline >> 20
    );
    app.stop().await;
}
