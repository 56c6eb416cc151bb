//! Pushed runs through the fake cloud: the submission saga and reconciliation.

use ferry_core::{FailureReason, PoolLimits, RunState::*};
use serde_json::json;

use crate::both_backends;
use crate::support::Env;

both_backends!(a_pushed_run_is_submitted_once_and_completes, completes);
async fn completes(env: Env) {
    let run = env.submit(&env.ecs, json!({"polls": 3})).await;
    let h = env.start("s1");
    let done = env.wait_for(run.id, Completed).await;
    h.stop().await;
    assert_eq!(
        done.infrastructure,
        Some(json!({"task": format!("fake-task/{}/1", run.id)}))
    );
    assert_eq!(env.cloud.journal.entries(), vec![(run.id, 1)]);
    assert!(
        done.submit_intent.is_some(),
        "the intent is stored before the submission"
    );
}

both_backends!(a_job_that_fails_fails, fails);
async fn fails(env: Env) {
    let run = env.submit(&env.ecs, json!({"fail": "exit 3"})).await;
    let h = env.start("s1");
    let done = env.wait_for(run.id, Failed).await;
    h.stop().await;
    assert_eq!(done.state_reason, Some(FailureReason::ExitCode));
}

both_backends!(a_refused_submission_fails_without_retry, refused);
async fn refused(env: Env) {
    let run = env
        .submit_with(
            &env.ecs,
            json!({"reject": "no such cluster"}),
            PoolLimits::default(),
            3,
        )
        .await;
    let h = env.start("s1");
    let done = env.wait_for(run.id, Failed).await;
    h.stop().await;
    assert_eq!(done.state_reason, Some(FailureReason::InvalidConfig));
    assert_eq!(done.attempt, 1);
}

both_backends!(cancel_stops_the_task_then_records_cancelled, cancel);
async fn cancel(env: Env) {
    let run = env.submit(&env.ecs, json!({"polls": 1_000_000})).await;
    let h = env.start("s1");
    env.wait_for(run.id, Running).await;
    env.store.run_request_cancel(env.ws, run.id).await.unwrap();
    h.scheduler().notify_cancel_requested();
    env.wait_for(run.id, Cancelled).await;
    h.stop().await;
}

both_backends!(
    max_runtime_stops_the_task_and_fails_with_timeout,
    max_runtime
);
async fn max_runtime(env: Env) {
    let limits = PoolLimits {
        timeout_s: Some(1),
        ..Default::default()
    };
    let run = env
        .submit_with(&env.ecs, json!({"polls": 1_000_000}), limits, 0)
        .await;
    let h = env.start("s1");
    let done = env.wait_for(run.id, Failed).await;
    h.stop().await;
    assert_eq!(done.state_reason, Some(FailureReason::Timeout));
}

both_backends!(a_task_deleted_out_of_band_is_crashed_vanished, vanished);
async fn vanished(env: Env) {
    let run = env.submit(&env.ecs, json!({"polls": 1_000_000})).await;
    let h = env.start("s1");
    env.wait_for(run.id, Running).await;
    env.cloud.delete_out_of_band(run.id, 1);
    let done = env.wait_for(run.id, Crashed).await;
    h.stop().await;
    assert_eq!(done.state_reason, Some(FailureReason::Vanished));
}

both_backends!(
    a_task_that_never_starts_is_stopped_and_retried_then_crashed,
    never_starts
);
async fn never_starts(env: Env) {
    let run = env
        .submit_with(
            &env.ecs,
            json!({"never_starts": "stuck in PROVISIONING"}),
            PoolLimits::default(),
            1,
        )
        .await;
    let h = env.start("s1");
    let done = env.wait_for(run.id, Crashed).await;
    h.stop().await;
    assert_eq!(done.state_reason, Some(FailureReason::StartDeadline));
    // One retry on fresh infrastructure, then the terminal crash.
    assert_eq!(done.attempt, 2);
    assert_eq!(env.cloud.journal.entries(), vec![(run.id, 1), (run.id, 2)]);
    let path = env.path(run.id).await;
    assert!(
        path.contains(&(Some(Running), Scheduled)),
        "the first attempt was requeued: {path:?}"
    );
}

both_backends!(
    a_submission_that_timed_out_after_success_is_found_not_repeated,
    timeout_after_success
);
async fn timeout_after_success(env: Env) {
    let run = env
        .submit(
            &env.ecs,
            json!({"timeout_after_success": "once", "polls": 1}),
        )
        .await;
    let h = env.start("s1");
    let done = env.wait_for(run.id, Completed).await;
    h.stop().await;
    assert_eq!(env.cloud.journal.entries(), vec![(run.id, 1)]);
    assert_eq!(
        env.cloud
            .submit_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the retry looked first and found the task"
    );
    assert_eq!(done.attempt, 1);
}

both_backends!(
    a_run_whose_status_cannot_be_read_still_ends_at_its_max_runtime,
    unreadable_past_max_runtime
);
async fn unreadable_past_max_runtime(env: Env) {
    let limits = PoolLimits {
        timeout_s: Some(1),
        ..Default::default()
    };
    let run = env
        .submit_with(&env.ecs, json!({"unreadable": true}), limits, 2)
        .await;
    // More failed polls allowed than fit in its runtime: the deadline is what ends it.
    let h = env.start_with("s1", |c| c.failed_poll_limit = 1_000_000);
    let done = env.wait_for(run.id, Crashed).await;
    h.stop().await;
    assert_eq!(done.state_reason, Some(FailureReason::StatusUnknown));
    assert!(
        done.state_message
            .as_deref()
            .unwrap_or("")
            .contains("maximum runtime"),
        "{done:?}"
    );
    // Not retried (the job may still run), and a stop was asked for.
    assert_eq!(done.attempt, 1);
    assert_eq!(env.cloud.journal.entries(), vec![(run.id, 1)]);
    assert!(env.cloud.cancel_requested(run.id, 1));
}

both_backends!(
    a_run_whose_status_cannot_be_read_ends_after_the_failed_poll_limit,
    unreadable_forever
);
async fn unreadable_forever(env: Env) {
    let run = env.submit(&env.ecs, json!({"unreadable": true})).await;
    let h = env.start("s1");
    let done = env.wait_for(run.id, Crashed).await;
    h.stop().await;
    assert_eq!(done.state_reason, Some(FailureReason::StatusUnknown));
    assert!(
        done.state_message
            .as_deref()
            .unwrap_or("")
            .contains("could not be read"),
        "{done:?}"
    );
}

both_backends!(
    a_cancel_whose_stop_cannot_be_confirmed_still_ends_cancelled,
    unreadable_cancel
);
async fn unreadable_cancel(env: Env) {
    // The positive control is `cancel` above: with readable polls the stop is confirmed.
    let run = env.submit(&env.ecs, json!({"unreadable": true})).await;
    let h = env.start("s1");
    env.wait_for(run.id, Running).await;
    env.store.run_request_cancel(env.ws, run.id).await.unwrap();
    h.scheduler().notify_cancel_requested();
    env.wait_for(run.id, Cancelled).await;
    h.stop().await;
    // The stop was sent although no poll could confirm it, and the run says so.
    assert!(env.cloud.cancel_requested(run.id, 1));
    let path = env.events(run.id).await;
    assert!(
        path.iter().any(|cause| cause.contains("not confirmed")),
        "{path:?}"
    );
}

both_backends!(
    throttled_submissions_are_retried_within_the_start_deadline_each_an_event,
    throttled_then_accepted
);
async fn throttled_then_accepted(env: Env) {
    let run = env.submit(&env.ecs, json!({"throttle": 4})).await;
    let h = env.start_with("s1", |c| {
        c.start_deadline = std::time::Duration::from_secs(60)
    });
    let done = env.wait_for(run.id, Completed).await;
    h.stop().await;
    // One task, and each throttled try recorded on the run.
    assert_eq!(env.cloud.journal.entries(), vec![(run.id, 1)]);
    let retries: Vec<String> = env
        .events(run.id)
        .await
        .into_iter()
        .filter(|c| c.contains("retry"))
        .collect();
    assert_eq!(retries.len(), 4, "{retries:?}");
    assert!(retries[0].contains("throttled"), "{retries:?}");
    assert_eq!(done.attempt, 1);
}

both_backends!(
    throttling_past_the_start_deadline_crashes_the_attempt,
    throttled_past_the_deadline
);
async fn throttled_past_the_deadline(env: Env) {
    let run = env.submit(&env.ecs, json!({"throttle": 1_000})).await;
    // fast_config's start deadline is 500 ms: a few retries fit, then it gives up.
    let h = env.start("s1");
    let done = env.wait_for(run.id, Crashed).await;
    h.stop().await;
    assert_eq!(done.state_reason, Some(FailureReason::Throttled));
    assert!(env.cloud.journal.entries().is_empty());
}
