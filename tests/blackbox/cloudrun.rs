//! A cloud-run pool through `ferry serve` and the CLI, against the in-repo Cloud Run fake:
//! a service-account key registered and validated, bad job variables refused before Google,
//! runs that succeed and fail shown with their execution, state and typed reason, and the
//! execution's overrides carrying the run's identity and token.

use std::path::Path;

use ferry_cloudrun_fake::{ExecutionPlan, FakeCloudRun, Options, ServiceAccount};
use serde_json::json;

use crate::ecs::{bootstrap, ferry, shown_in, submitted_id};
use crate::support::FerryProcess;

const PROJECT: &str = "acme-flows";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_run_runs_from_submit_to_show() {
    let account = ServiceAccount::cached(
        "ferry-runs",
        PROJECT,
        Path::new(env!("CARGO_TARGET_TMPDIR")),
    )
    .unwrap();
    let fake = FakeCloudRun::start(Options::default()).await.unwrap();
    fake.register_project(PROJECT, &account.email, account.public_key_pem())
        .unwrap();
    fake.queue_execution_plan(ExecutionPlan::Succeed { after_polls: 2 });
    fake.queue_execution_plan(ExecutionPlan::Fail {
        after_polls: 1,
        message: "The container exited with an error.".into(),
    });

    let dir = tempfile::tempdir().unwrap();
    let mut server = FerryProcess::serve(
        dir.path(),
        dir.path(),
        "cloud-run",
        &[],
        &[
            ("FERRY_EXECUTOR_WORKERS", "1"),
            // The operator allows the fake as a pool endpoint (the default would not).
            ("FERRY_ALLOWED_ENDPOINTS", &fake.endpoint()),
        ],
    )
    .await;
    let url = server.public_url.clone();
    let key = bootstrap(dir.path()).await;
    let d = dir.path();

    let cred_file = d.join("gcp.json");
    std::fs::write(
        &cred_file,
        json!({"name": "gcp", "kind": "gcp-service-account-key", "key": account.key_json()})
            .to_string(),
    )
    .unwrap();
    let created = ferry(
        d,
        &url,
        &key,
        &[
            "credential",
            "create",
            "--from",
            cred_file.to_str().unwrap(),
        ],
    )
    .await;
    created.assert_success(&["gcp-service-account-key"]);
    assert!(
        !created.stdout.contains("PRIVATE KEY"),
        "the key is never shown: {created:#?}"
    );

    let template = json!({
        "project": PROJECT, "region": "europe-west1",
        "image": "europe-docker.pkg.dev/acme/flows/runner:1",
        "endpoint": fake.endpoint(),
    });
    ferry(
        d,
        &url,
        &key,
        &[
            "pool",
            "create",
            "cr",
            "--type",
            "cloud-run",
            "--credential",
            "gcp",
            "--job-template",
            &template.to_string(),
        ],
    )
    .await
    .assert_success(&["Created pool cr"]);
    ferry(
        d,
        &url,
        &key,
        &["credential", "validate", "gcp", "--pool", "cr"],
    )
    .await
    .assert_success(&["passed", "run.jobs.create", "iam.serviceAccounts.actAs"]);

    // Bad job variables: refused with the field named, and nothing reaches the fake.
    fake.clear_journal();
    let bad = ferry(
        d,
        &url,
        &key,
        &["run", "submit", "--pool", "cr", "--var", "memory=lots"],
    )
    .await;
    assert_ne!(bad.code, Some(0), "{bad:#?}");
    assert!(bad.stderr.contains("memory"), "{bad:#?}");
    assert!(fake.journal().is_empty(), "{:?}", fake.journal());

    // A run that succeeds: shown with its execution; the execution carries the run.
    let ok = submitted_id(
        &ferry(
            d,
            &url,
            &key,
            &["run", "submit", "--pool", "cr", "--param", "n=3"],
        )
        .await,
    );
    let shown = shown_in(d, &url, &key, &ok, "completed", "execution").await;
    let execution = shown
        .lines()
        .find_map(|l| l.split("execution: ").nth(1))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        execution.starts_with(&format!("projects/{PROJECT}/locations/europe-west1/jobs/")),
        "{execution}"
    );
    let recorded = fake.execution(&execution).unwrap().to_string();
    assert!(
        recorded.contains(&ok),
        "the execution carries the run id: {recorded}"
    );
    assert!(recorded.contains("FERRY_RUN_TOKEN"), "{recorded}");
    assert!(!recorded.contains(&key), "never the API key: {recorded}");

    // A run whose container fails: failed, with the typed reason.
    let failed = submitted_id(&ferry(d, &url, &key, &["run", "submit", "--pool", "cr"]).await);
    let shown = shown_in(d, &url, &key, &failed, "failed", "execution").await;
    assert!(shown.contains("Reason"), "{shown}");
    assert!(shown.contains("exit_code"), "{shown}");
    server.terminate().await;
}
