//! A scheduler that dies: its runs are taken over once their leases expire, and nothing is
//! executed or submitted twice.

use chrono::Utc;
use ferry_core::port::{PushBackend, RunJob};
use ferry_core::{FailureReason, PoolType, RunState::*};
use serde_json::json;

use crate::both_backends;
use crate::support::Env;

both_backends!(
    a_managed_run_of_a_dead_scheduler_is_taken_over_and_crashed,
    managed_takeover
);
async fn managed_takeover(env: Env) {
    let run = env.submit(&env.managed, json!({"sleep_ms": 60_000})).await;
    let a = env.start("dead");
    let running = env.wait_for(run.id, Running).await;
    a.stop().await; // as kill -9: no more writes, the lease stays until it expires
    assert_eq!(env.run(run.id).await.state, Running);
    let b = env.start("heir");
    let done = env.wait_for(run.id, Crashed).await;
    b.stop().await;
    assert_eq!(done.state_reason, Some(FailureReason::WorkerLost));
    assert!(
        done.generation > running.generation,
        "the takeover fenced the dead owner out"
    );
    let dead_write = env
        .store
        .run_transition(&ferry_store::Transition {
            run_id: run.id,
            from: Running,
            generation: running.generation,
            to: Completed,
            cause: "late write of the dead owner".into(),
            reason: None,
            message: None,
            result: None,
            infrastructure: None,
        })
        .await;
    assert!(
        dead_write.is_err(),
        "a write at the old generation must be refused"
    );
}

both_backends!(
    a_pushed_run_of_a_dead_scheduler_is_watched_by_the_next,
    push_takeover
);
async fn push_takeover(env: Env) {
    let run = env.submit(&env.ecs, json!({"polls": 40})).await;
    let a = env.start("dead");
    env.wait_for(run.id, Running).await;
    a.stop().await;
    let b = env.start("heir");
    let done = env.wait_for(run.id, Completed).await;
    b.stop().await;
    assert_eq!(
        env.cloud.journal.entries(),
        vec![(run.id, 1)],
        "submitted exactly once"
    );
    assert_eq!(done.lease_owner, None);
}

/// Claims the run as a scheduler that then dies, leaving the lease to expire at once.
async fn claim_as_dead_owner(env: &Env) -> ferry_store::Run {
    let now = Utc::now();
    let claimed = env
        .store
        .runs_claim("dead", now, now, 10, &[PoolType::Ecs])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    claimed.into_iter().next().unwrap()
}

fn job_of(env: &Env, run: &ferry_store::Run) -> RunJob {
    RunJob {
        run_id: run.id,
        workspace_id: env.ws,
        pool_id: env.ecs.id,
        pool: env.ecs.name.clone(),
        pool_type: PoolType::Ecs,
        attempt: run.attempt,
        artifact: None,
        parameters: run.parameters.clone(),
        job_template: json!({}),
        job_variables: json!({}),
        credential: None,
        limits: Default::default(),
        has_sensitive_parameters: false,
        infrastructure: None,
    }
}

both_backends!(
    killed_after_the_cloud_call_resumes_without_a_duplicate,
    killed_after_submit
);
async fn killed_after_submit(env: Env) {
    let run = env.submit(&env.ecs, json!({"polls": 2})).await;
    let claimed = claim_as_dead_owner(&env).await;
    env.store
        .run_record_intent(run.id, claimed.generation, &json!({"attempt": 1}))
        .await
        .unwrap();
    // The cloud accepted the task; the scheduler died before recording it.
    env.cloud.submit(&job_of(&env, &claimed)).await.unwrap();
    let h = env.start("heir");
    env.wait_for(run.id, Completed).await;
    h.stop().await;
    assert_eq!(env.cloud.journal.entries(), vec![(run.id, 1)]);
    assert!(env.cloud.journal.duplicates().is_empty());
}

both_backends!(
    killed_between_intent_and_cloud_call_submits_once,
    killed_before_submit
);
async fn killed_before_submit(env: Env) {
    let run = env.submit(&env.ecs, json!({"polls": 2})).await;
    let claimed = claim_as_dead_owner(&env).await;
    env.store
        .run_record_intent(run.id, claimed.generation, &json!({"attempt": 1}))
        .await
        .unwrap();
    let h = env.start("heir");
    env.wait_for(run.id, Completed).await;
    h.stop().await;
    assert_eq!(env.cloud.journal.entries(), vec![(run.id, 1)]);
}
