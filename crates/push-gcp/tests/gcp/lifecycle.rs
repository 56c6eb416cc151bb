//! The execution lifecycle: batched polls mapped to statuses, cancel verified by a poll and
//! safe to repeat, an execution deleted out of band reported gone, idle jobs cleaned up.

use std::time::Duration;

use ferry_cloudrun_fake::ExecutionPlan;
use ferry_core::port::{PushBackend, PushStatus, RunJob};
use ferry_core::{FailureReason, Name, PoolId};
use serde_json::json;

use crate::support::{execution, job, template, Env, PROJECT_A, PROJECT_B};

async fn submitted(env: &Env, ws: ferry_core::WorkspaceId, project: &str, pool: PoolId) -> RunJob {
    let mut j = job(ws, pool, template(project), json!({}));
    j.infrastructure = Some(env.backend.submit(&j).await.unwrap());
    j
}

fn show(s: &Result<PushStatus, ferry_core::port::PushError>) -> String {
    match s {
        Ok(PushStatus::Failed(f)) => format!("failed:{}", f.reason),
        Ok(PushStatus::Crashed(f)) => format!("crashed:{}", f.reason),
        Ok(other) => format!("{other:?}").to_lowercase(),
        Err(e) => format!("error:{e}"),
    }
}

#[tokio::test]
async fn polls_are_batched_per_location_and_mapped() {
    let env = Env::start().await;
    let pool = PoolId::new();
    env.fake
        .queue_execution_plan(ExecutionPlan::Succeed { after_polls: 1 });
    env.fake.queue_execution_plan(ExecutionPlan::Fail {
        after_polls: 1,
        message: "The container exited with an error.".into(),
    });
    env.fake.queue_execution_plan(ExecutionPlan::Fail {
        after_polls: 1,
        message: "The configured timeout was reached.".into(),
    });
    env.fake.queue_execution_plan(ExecutionPlan::NeverFinish);
    env.fake
        .queue_execution_plan(ExecutionPlan::Succeed { after_polls: 1 });
    let mut jobs = Vec::new();
    for _ in 0..4 {
        jobs.push(submitted(&env, env.ws_a, PROJECT_A, pool).await);
    }
    jobs.push(submitted(&env, env.ws_b, PROJECT_B, PoolId::new()).await);
    // A job without a handle is an error of its own, not of the batch.
    jobs.push(job(env.ws_a, pool, template(PROJECT_A), json!({})));
    env.fake.clear_journal();
    let opened = || env.secrets.opened.load(std::sync::atomic::Ordering::SeqCst);
    let before = opened();

    let statuses: Vec<String> = env.backend.poll(&jobs).await.iter().map(show).collect();
    assert_eq!(
        statuses[..5],
        [
            "completed",
            "failed:exit_code",
            "failed:timeout",
            "running",
            "completed"
        ]
    );
    assert!(statuses[5].starts_with("error:"), "{statuses:?}");
    // One list for customer A's four; B's single execution by GET.
    assert_eq!(env.fake.calls("jobs.executions.list"), 1);
    assert_eq!(env.fake.calls("jobs.executions.get"), 1);
    assert_eq!(env.fake.journal().len(), 2);
    // Each workspace's credential was opened once for the whole batch.
    assert_eq!(opened() - before, 2);
}

#[tokio::test]
async fn cancel_is_verified_by_a_poll_and_safe_to_repeat() {
    let env = Env::start().await;
    env.fake.set_execution_plan(ExecutionPlan::NeverFinish);
    let j = submitted(&env, env.ws_a, PROJECT_A, PoolId::new()).await;
    assert_eq!(
        show(&env.backend.poll(std::slice::from_ref(&j)).await[0]),
        "running"
    );
    env.backend.cancel(&j).await.unwrap();
    assert_eq!(
        show(&env.backend.poll(std::slice::from_ref(&j)).await[0]),
        "cancelled"
    );
    // Cancelling what has ended is success.
    env.backend.cancel(&j).await.unwrap();
    assert_eq!(env.fake.calls("jobs.executions.cancel"), 2);
    let exec = env
        .fake
        .execution(&execution(j.infrastructure.as_ref().unwrap()))
        .unwrap();
    assert_eq!(exec["cancelledCount"], 1);
}

#[tokio::test]
async fn an_execution_deleted_out_of_band_is_gone() {
    let env = Env::start().await;
    env.fake.set_execution_plan(ExecutionPlan::NeverFinish);
    let pool = PoolId::new();
    let one = submitted(&env, env.ws_a, PROJECT_A, pool).await;
    let two = submitted(&env, env.ws_a, PROJECT_A, pool).await;
    assert!(env
        .fake
        .delete_execution(&execution(one.infrastructure.as_ref().unwrap())));
    // Alone (by GET) and in a batch (listed, then a GET for what the list lacks).
    assert_eq!(
        show(&env.backend.poll(std::slice::from_ref(&one)).await[0]),
        "gone"
    );
    let both: Vec<String> = env
        .backend
        .poll(&[one.clone(), two])
        .await
        .iter()
        .map(show)
        .collect();
    assert_eq!(both, ["gone", "running"]);
    // Stopping what is gone is success.
    env.backend.cancel(&one).await.unwrap();
}

#[tokio::test]
async fn idle_jobs_are_deleted_and_a_deleted_job_is_made_again() {
    let env = Env::start().await;
    let (idle_pool, busy_pool) = (PoolId::new(), PoolId::new());
    env.fake
        .queue_execution_plan(ExecutionPlan::Succeed { after_polls: 0 });
    env.fake.queue_execution_plan(ExecutionPlan::NeverFinish);
    let idle = submitted(&env, env.ws_a, PROJECT_A, idle_pool).await;
    let busy = submitted(&env, env.ws_a, PROJECT_A, busy_pool).await;
    let b = submitted(&env, env.ws_b, PROJECT_B, PoolId::new()).await;
    let name = |j: &RunJob| {
        j.infrastructure.as_ref().unwrap()["job"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let gcp = Name::parse("gcp").unwrap();

    // Nothing is idle for an hour yet.
    let deleted = env
        .backend
        .delete_idle_jobs(
            env.ws_a,
            &Name::parse("cr-pool").unwrap(),
            &gcp,
            &template(PROJECT_A),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    assert!(deleted.is_empty(), "{deleted:?}");
    // Idle now: only the job with no running execution goes; B's project is untouched.
    let deleted = env
        .backend
        .delete_idle_jobs(
            env.ws_a,
            &Name::parse("cr-pool").unwrap(),
            &gcp,
            &template(PROJECT_A),
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(deleted, [name(&idle)]);
    let mut left = env.fake.job_names();
    left.sort();
    let mut want = vec![name(&busy), name(&b)];
    want.sort();
    assert_eq!(left, want);
    // Another workspace's cleanup does not touch A's jobs in a shared project... nor fails.
    let none = env
        .backend
        .delete_idle_jobs(
            env.ws_b,
            &Name::parse("cr-pool").unwrap(),
            &gcp,
            &template(PROJECT_B),
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(none, [name(&b)]);
    assert!(env.fake.job(&name(&busy)).is_some());

    // The idle pool runs again: its job is created anew.
    let again = submitted(&env, env.ws_a, PROJECT_A, idle_pool).await;
    assert_eq!(name(&again), name(&idle));
    // A job deleted behind Ferry's back (it still thinks it exists) is made again too.
    assert!(env.fake.delete_job(&name(&busy)));
    let creates = env.fake.calls("jobs.create");
    let busy_again = submitted(&env, env.ws_a, PROJECT_A, busy_pool).await;
    assert_eq!(name(&busy_again), name(&busy));
    assert_eq!(env.fake.calls("jobs.create"), creates + 1);
    assert!(env
        .backend
        .delete_idle_jobs(
            env.ws_a,
            &Name::parse("cr-pool").unwrap(),
            &gcp,
            &json!({"project": PROJECT_A}),
            Duration::ZERO
        )
        .await
        .is_err_and(|e| e.failure.reason == FailureReason::InvalidConfig));
}
