//! Submission: exactly one execution per attempt even when a call times out after it took
//! effect; one reused job per pool and content; the run's identity, parameters and token in
//! the execution's overrides; secrets only as Secret Manager references.

use std::time::Duration;

use ferry_cloudrun_fake::Fault;
use ferry_core::port::PushBackend;
use ferry_core::{FailureReason, PoolId};
use serde_json::{json, Value};

use crate::support::{backend, env_of, execution, job, template, Env, PROJECT_A};

#[tokio::test]
async fn a_submission_that_timed_out_after_success_is_found_not_repeated() {
    let env = Env::start().await;
    let backend = backend(&env.fake, env.secrets.clone()).with_call_timeout(Duration::from_secs(2));
    let j = job(env.ws_a, PoolId::new(), template(PROJECT_A), json!({}));
    assert_eq!(backend.find(&j).await.unwrap(), None);

    env.fake
        .inject_fault(Some("jobs.run"), Fault::TimeoutAfterSuccess);
    let e = backend.submit(&j).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(env.fake.executions().len(), 1);

    // The engine retries the transient error: the retry finds the execution.
    let infra = backend.submit(&j).await.unwrap();
    let started = env.fake.executions();
    assert_eq!(started.len(), 1);
    assert_eq!(execution(&infra), started[0]["name"].as_str().unwrap());
    assert_eq!(env.fake.calls("jobs.run"), 1);

    // After a restart (a new backend), find sees it too; another attempt is another matter.
    let fresh = backend_fresh(&env);
    assert_eq!(
        fresh.find(&j).await.unwrap().map(|v| execution(&v)),
        Some(execution(&infra))
    );
    let mut next = j.clone();
    next.attempt = 2;
    assert_eq!(fresh.find(&next).await.unwrap(), None);
}

fn backend_fresh(env: &Env) -> ferry_push_gcp::CloudRunBackend {
    backend(&env.fake, env.secrets.clone())
}

#[tokio::test]
async fn a_hundred_runs_reuse_one_job() {
    let env = Env::start().await;
    let pool = PoolId::new();
    let mut names = std::collections::HashSet::new();
    for i in 0..100 {
        // Per-run overrides (args, env, timeout) do not make another job.
        let vars =
            json!({"args": [format!("--n={i}")], "env": {"I": i.to_string()}, "timeout": 60 + i});
        let infra = env
            .backend
            .submit(&job(env.ws_a, pool, template(PROJECT_A), vars))
            .await
            .unwrap();
        names.insert(infra["job"].as_str().unwrap().to_owned());
    }
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(env.fake.job_names().len(), 1);
    assert_eq!(env.fake.calls("jobs.create"), 1);
    assert_eq!(env.fake.executions().len(), 100);

    // Another process creates it again: ALREADY_EXISTS is success.
    let fresh = backend_fresh(&env);
    fresh
        .submit(&job(env.ws_a, pool, template(PROJECT_A), json!({})))
        .await
        .unwrap();
    assert_eq!(env.fake.calls("jobs.create"), 2);
    assert_eq!(env.fake.job_names().len(), 1);

    // What the job holds (the image) or another pool: another job.
    env.backend
        .submit(&job(
            env.ws_a,
            pool,
            template(PROJECT_A),
            json!({"image": "europe-docker.pkg.dev/acme/flows/runner:2"}),
        ))
        .await
        .unwrap();
    env.backend
        .submit(&job(
            env.ws_a,
            PoolId::new(),
            template(PROJECT_A),
            json!({}),
        ))
        .await
        .unwrap();
    assert_eq!(env.fake.job_names().len(), 3);
}

#[tokio::test]
async fn the_run_token_parameters_and_identity_are_in_the_overrides_and_secrets_are_references() {
    let env = Env::start().await;
    let mut j = job(
        env.ws_a,
        PoolId::new(),
        template(PROJECT_A),
        json!({"timeout": "10m"}),
    );
    j.limits.timeout_s = Some(120);
    let infra = env.backend.submit(&j).await.unwrap();
    let token = format!("token-{}", j.run_id);

    let exec = env.fake.execution(&execution(&infra)).unwrap();
    let env_vars = env_of(&exec);
    assert_eq!(env_vars["FERRY_RUN_TOKEN"], json!(token));
    assert_eq!(env_vars["FERRY_RUN_ID"], json!(j.run_id.to_string()));
    assert_eq!(env_vars["FERRY_ATTEMPT"], json!("1"));
    let params: Value =
        serde_json::from_str(env_vars["FERRY_PARAMETERS"].as_str().unwrap()).unwrap();
    assert_eq!(params, json!({"n": 3}));
    assert_eq!(env_vars["STAGE"], json!("test"));
    assert_eq!(
        env_vars["DB_PASSWORD"],
        json!({"secretKeyRef": {"secret": "projects/cust-a-flows/secrets/db-password", "version": "latest"}})
    );
    assert_eq!(
        exec["template"]["containers"][0]["args"],
        json!(["--stage", "test"])
    );
    assert_eq!(
        exec["template"]["containers"][0]["command"],
        json!(["python", "-m", "flow"])
    );
    // The run's own limit is tighter than the template's ten minutes.
    assert_eq!(exec["template"]["timeout"], "120s");
    assert_eq!(exec["taskCount"], 1);

    // The token and parameters went in jobs.run's overrides, never into the reused job.
    let journal = env.fake.journal();
    let run = journal.iter().find(|e| e.is("jobs.run")).unwrap();
    let overrides = &run.body.as_ref().unwrap()["overrides"];
    assert!(overrides.to_string().contains(&token));
    assert_eq!(overrides["timeout"], "120s");
    let create = journal.iter().find(|e| e.is("jobs.create")).unwrap();
    let body = create.body.as_ref().unwrap().to_string();
    assert!(!body.contains(&token) && !body.contains("FERRY_"), "{body}");
    let job_value = env.fake.job(infra["job"].as_str().unwrap()).unwrap();
    let job_env = job_value["template"]["template"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    assert!(
        job_env
            .iter()
            .all(|e| e.get("value").is_none() && e.get("valueSource").is_some()),
        "{job_env:?}"
    );
    assert_eq!(
        job_value["template"]["template"]["containers"][0]["resources"]["limits"],
        json!({"cpu": "1", "memory": "512Mi"})
    );
    assert_eq!(job_value["template"]["template"]["maxRetries"], 0);
}

#[tokio::test]
async fn errors_are_typed_and_only_transient_ones_are_retryable() {
    let env = Env::start().await;
    let pool = PoolId::new();
    for (status, reason, transient) in [
        (429, FailureReason::Throttled, true),
        (503, FailureReason::Internal, true),
        (400, FailureReason::InvalidConfig, false),
    ] {
        env.fake
            .inject_fault(Some("jobs.run"), Fault::Status(status));
        let j = job(env.ws_a, pool, template(PROJECT_A), json!({}));
        let e = env.backend.submit(&j).await.unwrap_err();
        assert_eq!(
            (e.failure.reason, e.is_transient()),
            (reason, transient),
            "{status}: {e}"
        );
    }
    // Nothing was started by the refused calls.
    assert!(env.fake.executions().is_empty());
    env.fake
        .set_permissions(&crate::support::accounts().0.email, Some(vec![]));
    let e = env
        .backend
        .submit(&job(
            env.ws_a,
            PoolId::new(),
            template(PROJECT_A),
            json!({}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.failure.reason, FailureReason::PermissionDenied, "{e}");
    assert!(e.failure.message.contains("run.jobs.create"), "{e}");
}
