//! The `ferry` binary as real processes: a restart (and a crash) keeps everything; two
//! servers on one PostgreSQL database share the work with every run claimed exactly once; and
//! an API key never shows in the server's output, even at trace level.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use ferry_client::{Client, NewPool, NewRun, RunsQuery};
use futures::StreamExt;
use serde_json::json;

use crate::support::{
    all_runs, ferry_command, managed_run, run_cli, wait_for_state, wait_until, FerryProcess,
};

const FAKES: (&str, &str) = ("FERRY_TESTING_FAKE_EXECUTORS", "1");

/// `ferry admin bootstrap --workspace NAME --data-dir DIR`; returns the key it printed.
async fn bootstrap(data_dir: &Path, workspace: &str) -> String {
    let mut cmd = ferry_command();
    cmd.args(["admin", "bootstrap", "--workspace", workspace, "--data-dir"])
        .arg(data_dir);
    let out = run_cli(cmd).await;
    out.assert_success(&[
        &format!("Created workspace {workspace}"),
        "export FERRY_API_KEY=fry_key_",
    ]);
    let key = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("export FERRY_API_KEY="))
        .unwrap()
        .to_owned();
    assert!(key.len() > "fry_key_".len() + 16, "{key}");
    key
}

/// Everything a client of the workspace can read.
#[derive(Debug, PartialEq)]
struct Everything {
    pools: Vec<ferry_client::Pool>,
    runs: BTreeMap<
        String,
        (
            ferry_client::Run,
            Vec<ferry_client::RunEvent>,
            ferry_client::Logs,
        ),
    >,
}

async fn everything(client: &Client) -> Everything {
    let pools = client.list_pools().await.unwrap();
    let mut runs = BTreeMap::new();
    for run in all_runs(client, RunsQuery::default()).await {
        let events = client.run_events(&run.id).await.unwrap();
        let logs = client.run_logs(&run.id, None, None).await.unwrap();
        runs.insert(run.id.clone(), (run, events, logs));
    }
    Everything { pools, runs }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_and_a_crash_keep_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let key = bootstrap(&data, "acme").await;

    let mut first = FerryProcess::serve(
        dir.path(),
        dir.path(),
        "first",
        &["--data-dir", data_arg],
        &[FAKES],
    )
    .await;
    let client = Client::new(&first.public_url, &key).unwrap();
    crate::support::upload(&first.public_url, &key, crate::support::NOOP_WASM.to_vec()).await;
    client
        .create_pool(&NewPool {
            limits: Some(json!({"memory_mb": 64, "timeout_s": 30})),
            ..crate::support::managed_pool("sbx")
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for params in [
        json!({"log": ["a", "b"], "result": {"n": 1}}),
        json!({"fail": "bad input"}),
        json!({"result": [1, 2, 3]}),
    ] {
        ids.push(
            client
                .create_run(&managed_run("sbx", params))
                .await
                .unwrap()
                .0
                .id,
        );
    }
    let later = NewRun {
        scheduled_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        ..managed_run("sbx", json!({}))
    };
    let later = client.create_run(&later).await.unwrap().0.id;
    for (id, state) in ids.iter().zip(["completed", "failed", "completed"]) {
        wait_for_state(&client, id, state).await;
    }
    let before = everything(&client).await;
    assert_eq!((before.pools.len(), before.runs.len()), (1, 4));

    let status = first.terminate().await;
    assert!(
        status.success(),
        "SIGTERM must stop ferry cleanly, got {status}"
    );
    assert!(
        first.output().contains("Shutting down"),
        "{}",
        first.output()
    );

    let mut second = FerryProcess::serve(
        dir.path(),
        dir.path(),
        "second",
        &["--data-dir", data_arg],
        &[FAKES],
    )
    .await;
    let client = Client::new(&second.public_url, &key).unwrap();
    let after = everything(&client).await;
    assert_eq!(after, before, "the restart lost or changed something");
    assert_eq!(client.get_run(&later).await.unwrap().state, "scheduled");
    // And it keeps working: a new run completes.
    let (run, _) = client
        .create_run(&managed_run("sbx", json!({"result": "after"})))
        .await
        .unwrap();
    wait_for_state(&client, &run.id, "completed").await;
    let before_crash = everything(&client).await;

    // SIGKILL: what was acknowledged survives a crash too.
    let killed = Command::new("kill")
        .args(["-KILL", &second.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_until("the killed ferry to exit", || {
        let s = second.try_wait();
        async move { s.ok_or_else(|| "still running".to_owned()) }
    })
    .await;
    assert!(!status.success());
    let mut third = FerryProcess::serve(
        dir.path(),
        dir.path(),
        "third",
        &["--data-dir", data_arg],
        &[FAKES],
    )
    .await;
    let client = Client::new(&third.public_url, &key).unwrap();
    assert_eq!(
        everything(&client).await,
        before_crash,
        "the crash lost something"
    );
    assert!(third.terminate().await.success());
}

/// Drops a test database when the test ends, also when it panics.
struct Database(String);

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.0.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(ferry_store::testing::drop_postgres_database(&name))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("test database {} was not dropped", self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_claim_each_run_exactly_once() {
    let (url, name) = ferry_store::testing::create_postgres_database()
        .await
        .unwrap();
    let _database = Database(name);
    let dir = tempfile::tempdir().unwrap();
    let pepper = format!("fry_pepper_{}", uuid::Uuid::new_v4().simple());
    let token = format!("fry_internal_{}", uuid::Uuid::new_v4().simple());
    let mut servers = Vec::new();
    for host in ["ferry-one", "ferry-two"] {
        let data = dir.path().join(host);
        // Processes sharing a database share its root key too (the audit key, the workspace
        // keys and the issuer's are wrapped by it): the second gets the first's key file.
        if !servers.is_empty() {
            std::fs::create_dir_all(&data).unwrap();
            std::fs::copy(dir.path().join("ferry-one/root-key"), data.join("root-key")).unwrap();
        }
        let env = [
            FAKES,
            ("FERRY_DATABASE_URL", url.as_str()),
            ("FERRY_API_KEY_PEPPER", pepper.as_str()),
            ("FERRY_INTERNAL_TOKEN", token.as_str()),
            ("HOSTNAME", host),
        ];
        let args = ["--data-dir", data.to_str().unwrap()];
        servers.push(FerryProcess::serve(dir.path(), dir.path(), host, &args, &env).await);
    }
    let internal = Client::new(&servers[0].internal_url, &token).unwrap();
    let ws = internal.create_workspace("acme").await.unwrap();
    let key = internal.create_api_key(&ws.id, "admin").await.unwrap().key;
    let one = Client::new(&servers[0].public_url, &key).unwrap();
    crate::support::upload(
        &servers[0].public_url,
        &key,
        crate::support::NOOP_WASM.to_vec(),
    )
    .await;
    let two = Client::new(&servers[1].public_url, &key).unwrap();
    one.create_pool(&crate::support::managed_pool("sbx"))
        .await
        .unwrap();
    // The second process knows the key and the pool: one database, one pepper.
    assert_eq!(two.list_pools().await.unwrap().len(), 1);

    // All due at the same moment, each taking a while: more than one process's slots.
    let due = chrono::Utc::now() + chrono::Duration::seconds(3);
    let ids: Vec<String> = futures::stream::iter(0..200)
        .map(|i| {
            let one = one.clone();
            async move {
                let body = NewRun {
                    scheduled_at: Some(due),
                    ..managed_run("sbx", json!({"i": i, "sleep_ms": 300}))
                };
                one.create_run(&body).await.unwrap().0.id
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    wait_until("all 200 runs to complete", || {
        let two = two.clone();
        async move {
            let q = RunsQuery {
                state: Some("completed".into()),
                ..Default::default()
            };
            let n = all_runs(&two, q).await.len();
            if n == 200 {
                Ok(())
            } else {
                Err(format!("{n} completed"))
            }
        }
    })
    .await;

    let mut claims_by: BTreeMap<String, usize> = BTreeMap::new();
    for id in &ids {
        let events = one.run_events(id).await.unwrap();
        let path: Vec<(Option<&str>, &str)> = events
            .iter()
            .map(|e| (e.from.as_deref(), e.to.as_str()))
            .collect();
        assert_eq!(
            path,
            vec![
                (None, "scheduled"),
                (Some("scheduled"), "pending"),
                (Some("pending"), "running"),
                (Some("running"), "completed")
            ],
            "run {id}: {events:#?}"
        );
        let claims: Vec<_> = events
            .iter()
            .filter(|e| e.from.as_deref() == Some("scheduled") && e.to == "pending")
            .collect();
        assert_eq!(
            claims.len(),
            1,
            "run {id} claimed more than once: {events:#?}"
        );
        let owner = claims[0]
            .cause
            .strip_prefix("claimed by ")
            .unwrap_or_else(|| panic!("cause {:?}", claims[0].cause));
        let started = &events[2].cause;
        assert_eq!(
            started,
            &format!("started by {owner}"),
            "run {id} was started by another scheduler than claimed it"
        );
        let host = owner.split('-').take(2).collect::<Vec<_>>().join("-");
        *claims_by.entry(host).or_default() += 1;
    }
    assert_eq!(claims_by.values().sum::<usize>(), 200);
    assert_eq!(
        claims_by.keys().collect::<Vec<_>>(),
        ["ferry-one", "ferry-two"],
        "both schedulers must claim runs: {claims_by:?}"
    );

    // Paging through them on PostgreSQL, seven at a time, visits each exactly once.
    let mut query = RunsQuery {
        limit: Some(7),
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = two.list_runs(&query).await.unwrap();
        seen.extend(page.items.into_iter().map(|r| r.id));
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (200, 200));
    assert!(ids.iter().all(|id| unique.contains(id)));

    for server in &mut servers {
        assert!(server.terminate().await.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_never_show_in_the_server_output() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [FAKES, ("FERRY_LOG", "trace")];
    let mut server = FerryProcess::serve(
        dir.path(),
        dir.path(),
        "traced",
        &["--data-dir", data.to_str().unwrap()],
        &env,
    )
    .await;
    let token = std::fs::read_to_string(data.join("internal-token"))
        .unwrap()
        .trim()
        .to_owned();
    let pepper = std::fs::read_to_string(data.join("api-key-pepper"))
        .unwrap()
        .trim()
        .to_owned();
    let internal = Client::new(&server.internal_url, &token).unwrap();
    let ws = internal.create_workspace("acme").await.unwrap();
    let key = internal.create_api_key(&ws.id, "admin").await.unwrap().key;

    let client = Client::new(&server.public_url, &key).unwrap();
    crate::support::upload(&server.public_url, &key, crate::support::NOOP_WASM.to_vec()).await;
    client
        .create_pool(&crate::support::managed_pool("sbx"))
        .await
        .unwrap();
    client.list_pools().await.unwrap();
    let (run, _) = client
        .create_run(&managed_run(
            "sbx",
            json!({"log": ["working"], "result": 1}),
        ))
        .await
        .unwrap();
    wait_for_state(&client, &run.id, "completed").await;
    client.list_runs(&RunsQuery::default()).await.unwrap();
    client.run_events(&run.id).await.unwrap();
    let followed: Vec<_> = client.follow_logs(&run.id, None).collect().await;
    assert_eq!(followed.len(), 2, "{followed:?}");
    // A second key, minted and used over the public API.
    let http = reqwest::Client::new();
    let minted: serde_json::Value = http
        .post(format!("{}/v1/api-keys", server.public_url))
        .bearer_auth(&key)
        .json(&json!({"role": "runner"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let runner_key = minted["key"].as_str().unwrap().to_owned();
    Client::new(&server.public_url, &runner_key)
        .unwrap()
        .list_runs(&RunsQuery::default())
        .await
        .unwrap();
    // Refused uses of the key: the wrong scheme, and on the internal listener.
    let wrong = http
        .get(format!("{}/v1/pools", server.public_url))
        .header("authorization", format!("Token {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(Client::new(&server.internal_url, &key)
        .unwrap()
        .list_workspaces()
        .await
        .is_err());
    // A revoked key used again.
    let id = minted["id"].as_str().unwrap();
    http.delete(format!("{}/v1/api-keys/{id}", server.public_url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert!(Client::new(&server.public_url, &runner_key)
        .unwrap()
        .list_pools()
        .await
        .is_err());

    assert!(server.terminate().await.success());
    let output = server.output();
    assert!(
        output.contains("Run submitted"),
        "the server logged nothing useful: {output}"
    );
    assert!(output.contains("TRACE"), "FERRY_LOG=trace was not honoured");
    for (what, secret) in [
        ("admin key", key.as_str()),
        ("runner key", runner_key.as_str()),
        ("internal token", token.as_str()),
        ("pepper", pepper.as_str()),
    ] {
        assert!(!secret.is_empty());
        if let Some(at) = output.find(secret) {
            let line = output[..at].rsplit('\n').next().unwrap_or("");
            panic!("the {what} appears in the server's output, in: {line}…");
        }
    }
}

/// A client following the log of a run that has not ended must not keep `ferry serve` from
/// stopping: SIGTERM has to end the stream (the client reconnects to the next process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_while_a_log_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = bootstrap(&data, "acme").await;
    let args = ["--data-dir", data.to_str().unwrap()];
    let mut server = FerryProcess::serve(dir.path(), dir.path(), "followed", &args, &[FAKES]).await;
    let client = Client::new(&server.public_url, &key).unwrap();
    crate::support::upload(&server.public_url, &key, crate::support::NOOP_WASM.to_vec()).await;
    client
        .create_pool(&crate::support::managed_pool("sbx"))
        .await
        .unwrap();
    let params = json!({"sleep_ms": 600_000, "log": ["started"]});
    let (run, _) = client
        .create_run(&managed_run("sbx", params))
        .await
        .unwrap();
    wait_for_state(&client, &run.id, "running").await;
    let mut stream = Box::pin(client.follow_logs(&run.id, None));
    let first = stream.next().await.unwrap().unwrap();
    assert!(
        matches!(&first, ferry_client::FollowEvent::Line(l) if l.line == "started"),
        "{first:?}"
    );
    let follower = tokio::spawn(async move { while stream.next().await.is_some() {} });

    let status = server.terminate().await;
    assert!(status.success(), "{status}");
    follower.abort();
}

/// The `executor-worker` children of `pid`.
fn worker_pids(pid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
        if ppid == Some(pid) && String::from_utf8_lossy(&cmdline).contains("executor-worker") {
            pids.push(child);
        }
    }
    pids
}

fn status_field(pid: u32, field: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_owned())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_workers_hold_no_secret_and_run_confined() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secrets = [
        ("FERRY_INTERNAL_TOKEN", "fry_internal_canary-7d2e0c"),
        ("FERRY_API_KEY_PEPPER", "pepper-canary-5b81f4a0c9"),
        ("AWS_SECRET_ACCESS_KEY", "aws-canary-e3c1b7"),
    ];
    let mut server = FerryProcess::serve(
        dir.path(),
        dir.path(),
        "confined",
        &["--data-dir", data.to_str().unwrap()],
        &secrets,
    )
    .await;
    let pid = server.pid();
    let workers = wait_until("the executor workers to start", || {
        let found = worker_pids(pid);
        async move {
            if found.len() >= 2 {
                Ok(found)
            } else {
                Err(format!("{found:?}"))
            }
        }
    })
    .await;
    // Positive control: the server itself holds them.
    let server_env =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap())
            .into_owned();
    for (_, value) in secrets {
        assert!(server_env.contains(value));
    }
    for worker in workers {
        // A worker confines itself right after it starts: give it that moment.
        wait_until("the worker to confine itself", || {
            let seccomp = status_field(worker, "Seccomp");
            async move {
                if seccomp.as_deref() == Some("2") {
                    Ok(())
                } else {
                    Err(format!("Seccomp: {seccomp:?}"))
                }
            }
        })
        .await;
        let environ = std::fs::read(format!("/proc/{worker}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        for (name, value) in secrets {
            assert!(
                !environ.contains(value) && !environ.contains(name),
                "worker {worker} holds {name}"
            );
        }
        assert!(!environ.contains("FERRY_DATABASE_URL"), "{environ}");
        assert_eq!(
            status_field(worker, "Seccomp").as_deref(),
            Some("2"),
            "worker {worker}"
        );
        assert_eq!(
            status_field(worker, "NoNewPrivs").as_deref(),
            Some("1"),
            "worker {worker}"
        );
    }
    server.terminate().await;
}
