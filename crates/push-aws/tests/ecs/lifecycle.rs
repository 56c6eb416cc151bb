//! A task's life as the reconciler sees it through `poll`: moto's state progression to
//! STOPPED (completed), cancel (StopTask, then cancelled), a task stopped by someone else,
//! a task ECS does not know (gone), and batches across accounts, in order.

use std::sync::Arc;

use ferry_core::port::{PushBackend, PushStatus, RunJob};
use ferry_core::WorkspaceId;
use serde_json::{json, Value};

use crate::support::{arn, backend, ecs_as, job, template, Secrets};
use ferry_moto::moto;

async fn submitted(backend: &ferry_push_aws::EcsBackend, mut run: RunJob) -> RunJob {
    let infra = backend.submit(&run).await.unwrap();
    run.infrastructure = Some(infra);
    run
}

async fn poll_one(backend: &ferry_push_aws::EcsBackend, run: &RunJob) -> PushStatus {
    let mut out = backend.poll(std::slice::from_ref(run)).await;
    out.remove(0).unwrap()
}

fn setup(accounts: &[&str]) -> (Arc<Secrets>, Vec<(WorkspaceId, Value)>) {
    let secrets = Arc::new(Secrets::default());
    let mut out = Vec::new();
    for id in accounts {
        let account = moto().account(id);
        let ws = WorkspaceId::new();
        secrets.assume_role(ws, "aws", id);
        out.push((ws, template(&account)));
    }
    (secrets, out)
}

#[tokio::test]
async fn a_task_runs_to_completion() {
    let (secrets, wss) = setup(&["111111111111"]);
    let backend = backend(secrets);
    let (ws, t) = wss[0].clone();
    let run = submitted(&backend, job(ws, "aws", t, json!({}))).await;
    // moto moves a task one step per DescribeTasks: DEACTIVATING, STOPPING,
    // DEPROVISIONING (all still running for Ferry), then STOPPED with exit code 0.
    let mut seen = Vec::new();
    for _ in 0..6 {
        let s = poll_one(&backend, &run).await;
        seen.push(s.clone());
        if s == PushStatus::Completed {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            PushStatus::Running,
            PushStatus::Running,
            PushStatus::Running,
            PushStatus::Completed
        ]
    );
}

#[tokio::test]
async fn cancel_stops_the_task_and_the_next_poll_says_cancelled() {
    let (secrets, wss) = setup(&["111111111111"]);
    let backend = backend(secrets);
    let (ws, t) = wss[0].clone();
    let run = submitted(&backend, job(ws, "aws", t, json!({}))).await;
    backend.cancel(&run).await.unwrap();
    assert_eq!(poll_one(&backend, &run).await, PushStatus::Cancelled);
    // Repeating both is harmless.
    backend.cancel(&run).await.unwrap();
    assert_eq!(poll_one(&backend, &run).await, PushStatus::Cancelled);
}

#[tokio::test]
async fn a_task_stopped_by_someone_else_shows_as_cancelled() {
    let (secrets, wss) = setup(&["111111111111"]);
    let backend = backend(secrets);
    let (ws, t) = wss[0].clone();
    let run = submitted(&backend, job(ws, "aws", t, json!({}))).await;
    let infra = run.infrastructure.clone().unwrap();
    ecs_as("111111111111")
        .await
        .stop_task()
        .cluster("flows")
        .task(arn(&infra))
        .reason("stopped by an operator")
        .send()
        .await
        .unwrap();
    // The engine, not cancelling this run, ends it crashed: stopped_externally.
    assert_eq!(poll_one(&backend, &run).await, PushStatus::Cancelled);
}

#[tokio::test]
async fn a_batch_across_accounts_keeps_its_order_and_reports_the_unknown_as_gone() {
    let (secrets, wss) = setup(&["111111111111", "222222222222"]);
    let backend = backend(secrets);
    let mut runs = Vec::new();
    for i in 0..5 {
        let (ws, t) = wss[i % 2].clone();
        runs.push(submitted(&backend, job(ws, "aws", t, json!({}))).await);
    }
    // Cancel two of them, and make one point at a task ECS never had.
    backend.cancel(&runs[1]).await.unwrap();
    backend.cancel(&runs[4]).await.unwrap();
    let mut ghost = runs[2].clone();
    let mut infra = ghost.infrastructure.take().unwrap();
    let real = arn(&infra);
    infra["task_arn"] = json!(format!("{}0000", &real[..real.len() - 4]));
    ghost.infrastructure = Some(infra);
    runs.push(ghost);

    let statuses: Vec<PushStatus> = backend
        .poll(&runs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        statuses,
        [
            PushStatus::Running,
            PushStatus::Cancelled,
            PushStatus::Running,
            PushStatus::Running,
            PushStatus::Cancelled,
            PushStatus::Gone,
        ]
    );
}
