//! Every hostile flow ends with its expected outcome, and the host runs `hello` fine after.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use ferry_core::port::{FlowOutcome, LogStream};
use ferry_core::FailureReason;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{
    assert_host_still_works, completed, host, host_with, prepare, prepare_metered, run, spec,
    RecordingSink, STOP_BOUND,
};

/// The failure of a run that failed, or an error.
fn failure(outcome: &FlowOutcome) -> Result<&ferry_core::Failure> {
    match outcome {
        FlowOutcome::Failed(f) => Ok(f),
        other => anyhow::bail!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_times_out_at_its_deadline() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "infinite-loop").await?;
    let mut spec = spec(json!({}));
    spec.limits.timeout_s = Some(1);
    let started = Instant::now();
    let (report, _) = run(&host, &prepared, spec).await;
    let took = started.elapsed();
    let f = failure(&report.outcome)?;
    assert_eq!(f.reason, FailureReason::Timeout, "{f}");
    assert!(f.message.contains("1s"), "{f}");
    assert!(
        took >= Duration::from_secs(1) && took < STOP_BOUND,
        "took {took:?}"
    );
    assert_host_still_works(&host).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_runs_out_of_fuel() -> Result<()> {
    let host = host()?;
    let prepared = prepare_metered(&host, "infinite-loop").await?;
    let mut spec = spec(json!({}));
    spec.limits.cpu_fuel_m = Some(20);
    let (report, _) = run(&host, &prepared, spec).await;
    let f = failure(&report.outcome)?;
    assert_eq!(f.reason, FailureReason::CpuLimit, "{f}");
    assert_host_still_works(&host).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metered_flow_without_a_cpu_limit_runs_normally() -> Result<()> {
    let host = host()?;
    let prepared = prepare_metered(&host, "hello").await?;
    let (report, _) = run(&host, &prepared, spec(json!({"name": "fuel"}))).await;
    assert_eq!(
        completed(report.outcome)?,
        json!({"greeting": "hello fuel"})
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_limit_needs_a_metered_artifact() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "hello").await?;
    let mut spec = spec(json!({}));
    spec.limits.cpu_fuel_m = Some(20);
    let (report, _) = run(&host, &prepared, spec).await;
    match report.outcome {
        FlowOutcome::Crashed(f) => assert_eq!(f.reason, FailureReason::Internal),
        other => anyhow::bail!("expected a crash, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_memory_limit() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "memory-bomb").await?;
    let mut spec = spec(json!({}));
    spec.limits.memory_mb = Some(32);
    let (report, _) = run(&host, &prepared, spec).await;
    let f = failure(&report.outcome)?;
    assert_eq!(f.reason, FailureReason::MemoryLimit, "{f}");
    assert!(f.message.contains("32 MiB"), "{f}");
    assert_host_still_works(&host).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_traps() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "deep-recursion").await?;
    let (report, _) = run(&host, &prepared, spec(json!({}))).await;
    let f = failure(&report.outcome)?;
    assert_eq!(f.reason, FailureReason::Trap, "{f}");
    assert_host_still_works(&host).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdout_flood_is_truncated_and_the_flow_runs_on() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "stdout-flood").await?;
    let cap = 64 * 1024;
    let mut spec = spec(json!({}));
    spec.limits.log_bytes = Some(cap);
    let (report, sink) = run(&host, &prepared, spec).await;
    // The flow wrote all 100 MB and finished: past the cap, writes were accepted and dropped.
    assert_eq!(completed(report.outcome)?, json!({"written": 100_000_000}));
    assert!(report.log.truncated);
    assert!(report.log.kept_bytes <= cap, "{:?}", report.log);
    assert_eq!(
        report.log.kept_bytes + report.log.dropped_bytes,
        100_000_000
    );
    assert_eq!(sink.flow_bytes(), report.log.kept_bytes);
    let ferry = sink.lines(LogStream::Ferry);
    ensure!(
        ferry.len() == 1 && ferry[0].starts_with("log truncated"),
        "{ferry:?}"
    );
    assert_host_still_works(&host).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_result_fails_the_run() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "huge-result").await?;
    let (report, _) = run(&host, &prepared, spec(json!({}))).await;
    let f = failure(&report.outcome)?;
    assert_eq!(f.reason, FailureReason::ExitCode, "{f}");
    assert!(f.message.contains("over the result limit"), "{f}");
    assert_host_still_works(&host).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_forever_in_a_host_call_times_out() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "sleep-forever").await?;
    let mut spec = spec(json!({}));
    spec.limits.timeout_s = Some(1);
    let started = Instant::now();
    let (report, sink) = run(&host, &prepared, spec).await;
    let took = started.elapsed();
    let f = failure(&report.outcome)?;
    assert_eq!(f.reason, FailureReason::Timeout, "{f}");
    assert!(took < STOP_BOUND, "took {took:?}");
    // It did get as far as the host call.
    assert_eq!(sink.lines(LogStream::Flow), ["[info] going to sleep"]);
    assert_host_still_works(&host).await
}

/// Cancels a run of `name` once it is under way; it must end `Cancelled` soon after.
async fn cancel_stops(name: &str) -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, name).await?;
    let cancel = CancellationToken::new();
    let sink = RecordingSink::default();
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel();
            Instant::now()
        })
    };
    let outcome = host.run(&prepared, spec(json!({})), &sink, cancel).await;
    let ended = Instant::now();
    let cancelled_at = canceller.await?;
    assert_eq!(outcome, FlowOutcome::Cancelled);
    let took = ended.saturating_duration_since(cancelled_at);
    assert!(took < STOP_BOUND, "stopped {took:?} after the cancel");
    assert_host_still_works(&host).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_flow_blocked_in_a_host_call() -> Result<()> {
    cancel_stops("sleep-forever").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_computing_flow() -> Result<()> {
    cancel_stops("infinite-loop").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_before_it_starts_does_not_start() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "logs").await?;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let sink = RecordingSink::default();
    let outcome = host.run(&prepared, spec(json!({})), &sink, cancel).await;
    assert_eq!(outcome, FlowOutcome::Cancelled);
    assert!(sink.all().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_traps_and_its_message_is_in_the_log() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "trap").await?;
    let (report, sink) = run(&host, &prepared, spec(json!({}))).await;
    let f = failure(&report.outcome)?;
    assert_eq!(f.reason, FailureReason::Trap, "{f}");
    let stderr = sink.lines(LogStream::Stderr).join("\n");
    assert!(stderr.contains("the flow panicked on purpose"), "{stderr}");
    assert_host_still_works(&host).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_traps() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "trap").await?;
    let (report, _) = run(&host, &prepared, spec(json!({"how": "unreachable"}))).await;
    let f = failure(&report.outcome)?;
    assert_eq!(f.reason, FailureReason::Trap, "{f}");
    assert!(f.message.contains("unreachable"), "{f}");
    assert_host_still_works(&host).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filling_the_scratch_directory_stops_the_flow() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "disk-fill").await?;
    let mut spec = spec(json!({"bytes": 1u64 << 30}));
    spec.limits.scratch_bytes = Some(4 << 20);
    let (report, _) = run(&host, &prepared, spec).await;
    let f = failure(&report.outcome)?;
    assert!(f.message.contains("scratch limit"), "{f}");
    assert_host_still_works(&host).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_just_past_the_scratch_cap_never_completes() -> Result<()> {
    // 2 MiB against a 1 MiB cap is written faster than the watcher looks: the final check
    // must still fail the run.
    let host = host_with(|c| c.scratch_check_interval = Duration::from_secs(3600))?;
    let prepared = prepare(&host, "disk-fill").await?;
    let mut spec = spec(json!({"bytes": 2u64 << 20}));
    spec.limits.scratch_bytes = Some(1 << 20);
    let (report, _) = run(&host, &prepared, spec).await;
    let f = failure(&report.outcome)?;
    assert!(f.message.contains("scratch limit"), "{f}");
    // Under the cap, the same flow completes.
    let mut spec = crate::support::spec(json!({"bytes": 1u64 << 20}));
    spec.limits.scratch_bytes = Some(2 << 20);
    let (report, _) = run(&host, &prepared, spec).await;
    assert_eq!(completed(report.outcome)?, json!({"written": 1u64 << 20}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_at_once_share_the_slots() -> Result<()> {
    let host = host_with(|c| c.max_concurrent_instances = 2)?;
    let prepared = prepare(&host, "hello").await?;
    let runs = (0..8).map(|i| {
        let host = host.clone();
        let prepared = prepared.clone();
        tokio::spawn(async move {
            let sink = RecordingSink::default();
            let spec = crate::support::spec(json!({"name": format!("n{i}")}));
            host.run(&prepared, spec, &sink, CancellationToken::new())
                .await
        })
    });
    for (i, run) in runs.collect::<Vec<_>>().into_iter().enumerate() {
        assert_eq!(
            completed(run.await?)?,
            json!({"greeting": format!("hello n{i}")})
        );
    }
    Ok(())
}
