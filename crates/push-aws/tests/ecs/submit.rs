//! Submission: found instead of repeated (moto ignores `clientToken`, so Ferry's
//! find-before-submit is what keeps it to one task), one task definition for many runs, and
//! bad job variables refused before anything reaches AWS.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ferry_core::port::PushBackend;
use ferry_core::{FailureReason, WorkspaceId};
use serde_json::json;
use tokio::task::JoinSet;

use crate::support::{arn, backend, ecs_as, job, tasks_in, template, Secrets};
use ferry_moto::moto;

#[tokio::test]
async fn a_retried_submission_finds_the_task_instead_of_submitting_again() {
    let a = moto().account("111111111111");
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    secrets.assume_role(ws, "aws", &a.id);
    let backend = backend(secrets);
    let mut run = job(ws, "aws", template(&a), json!({}));

    // Nothing submitted yet: nothing found.
    assert_eq!(backend.find(&run).await.unwrap(), None);
    let infra = backend.submit(&run).await.unwrap();

    // The engine's saga after a crash between intent and record: find, submit only if absent.
    for _ in 0..3 {
        let found = backend.find(&run).await.unwrap();
        assert_eq!(found.as_ref(), Some(&infra));
        if found.is_none() {
            backend.submit(&run).await.unwrap();
        }
    }
    let ecs = ecs_as(&a.id).await;
    assert_eq!(tasks_in(&ecs, "flows").await, vec![arn(&infra)]);

    // Another attempt of the same run is another submission.
    run.attempt = 2;
    assert_eq!(backend.find(&run).await.unwrap(), None);
    let second = backend.submit(&run).await.unwrap();
    assert_ne!(arn(&second), arn(&infra));
    assert_eq!(backend.find(&run).await.unwrap(), Some(second));
    assert_eq!(tasks_in(&ecs, "flows").await.len(), 2);
}

#[tokio::test]
async fn a_hundred_runs_of_one_pool_share_one_task_definition() {
    let a = moto().account("111111111111");
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    secrets.assume_role(ws, "aws", &a.id);
    let backend = Arc::new(backend(secrets.clone()));
    let pool_template = template(&a);

    // Concurrently: the per-family lock keeps it to one registration.
    let mut set = JoinSet::new();
    for i in 0..100 {
        let backend = backend.clone();
        let run = job(
            ws,
            "aws",
            pool_template.clone(),
            json!({"env": {"I": i.to_string()}}),
        );
        set.spawn(async move { backend.submit(&run).await });
    }
    let mut definitions = std::collections::HashSet::new();
    while let Some(r) = set.join_next().await {
        let infra = r.unwrap().unwrap();
        definitions.insert(infra["task_definition"].as_str().unwrap().to_owned());
    }
    assert_eq!(definitions.len(), 1, "{definitions:?}");

    let ecs = ecs_as(&a.id).await;
    // (moto's familyPrefix matches whole families only: filter here.)
    let listed = ecs.list_task_definitions().send().await.unwrap();
    let ours: Vec<&String> = listed
        .task_definition_arns()
        .iter()
        .filter(|a| a.contains(":task-definition/ferry-"))
        .collect();
    assert_eq!(ours.len(), 1, "{listed:?}");
    assert!(definitions.contains(ours[0]));
    assert_eq!(tasks_in(&ecs, "flows").await.len(), 100);

    // A new backend (another process) reuses the registered definition too.
    let other = crate::support::backend(secrets);
    let infra = other
        .submit(&job(ws, "aws", pool_template, json!({})))
        .await
        .unwrap();
    assert!(definitions.contains(infra["task_definition"].as_str().unwrap()));

    // Another image: another family.
    let infra = other
        .submit(&job(ws, "aws", template(&a), json!({"image": "busybox:1"})))
        .await
        .unwrap();
    assert!(!definitions.contains(infra["task_definition"].as_str().unwrap()));
}

#[tokio::test]
async fn bad_job_variables_are_refused_before_aws() {
    let a = moto().account("111111111111");
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    secrets.assume_role(ws, "aws", &a.id);
    let backend = backend(secrets.clone());
    let cases = [
        (json!({"cpu": 256, "memory": 4096}), "memory"),
        (json!({"secrets": {"DB": "hunter2"}}), "secrets"),
        (json!({"privileged": true}), "privileged"),
        (json!({"subnets": []}), "subnets"),
    ];
    for (vars, field) in cases {
        let e = backend
            .submit(&job(ws, "aws", template(&a), vars.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.failure.reason, FailureReason::InvalidConfig, "{vars}");
        assert!(e.failure.message.contains(field), "{vars}: {e}");
        // The plaintext value is never echoed back.
        assert!(!e.failure.message.contains("hunter2"), "{e}");
    }
    // The credential was never even opened, and nothing ran.
    assert_eq!(secrets.opened.load(Ordering::SeqCst), 0);
    assert!(tasks_in(&ecs_as(&a.id).await, "flows").await.is_empty());
}

/// The task definitions of a pool's old template are deregistered once nothing uses them;
/// one still used is kept; a run needing a deregistered one registers it anew.
#[tokio::test]
async fn unused_task_definitions_are_deregistered() {
    let a = moto().account("111111111111");
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    secrets.assume_role(ws, "aws", &a.id);
    let backend = backend(secrets);
    let old = job(ws, "aws", template(&a), json!({}));
    let infra = backend.submit(&old).await.unwrap();
    let registered = infra["task_definition"].as_str().unwrap().to_owned();
    let family = backend.family(&old).await.unwrap().unwrap();
    assert!(
        registered.contains(&format!("task-definition/{family}:")),
        "{registered}"
    );

    let ecs = ecs_as(&a.id).await;
    let status = |arn: String| {
        let ecs = ecs.clone();
        async move {
            ecs.describe_task_definition()
                .task_definition(arn)
                .send()
                .await
                .unwrap()
                .task_definition
                .unwrap()
                .status
                .unwrap()
                .as_str()
                .to_owned()
        }
    };
    // Still used (by another pool or a run in flight): kept.
    assert!(backend
        .deregister_unused(&old, std::slice::from_ref(&family))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(status(registered.clone()).await, "ACTIVE");
    // Unused: deregistered, and only it.
    let other = backend
        .submit(&job(ws, "aws", template(&a), json!({"image": "busybox:1"})))
        .await
        .unwrap();
    let gone = backend.deregister_unused(&old, &[]).await.unwrap();
    assert_eq!(gone, vec![registered.clone()]);
    assert_eq!(status(registered.clone()).await, "INACTIVE");
    assert_eq!(
        status(other["task_definition"].as_str().unwrap().to_owned()).await,
        "ACTIVE"
    );
    // A run of the old template again: registered anew (a new revision), and it runs.
    let mut again = old.clone();
    again.run_id = ferry_core::RunId::new();
    let infra = backend.submit(&again).await.unwrap();
    let revived = infra["task_definition"].as_str().unwrap();
    assert_ne!(revived, registered);
    assert_eq!(status(revived.to_owned()).await, "ACTIVE");
}
