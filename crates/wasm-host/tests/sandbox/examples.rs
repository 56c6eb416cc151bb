//! Example flows of all three kinds run with the right result and log.

use anyhow::Result;
use ferry_core::port::{FlowOutcome, LogStream};
use ferry_core::FailureReason;
use serde_json::json;

use crate::support::{completed, host, run_flow};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_greets_by_name() -> Result<()> {
    let host = host()?;
    let (outcome, _) = run_flow(&host, "hello", json!({"name": "ada"})).await?;
    assert_eq!(completed(outcome)?, json!({"greeting": "hello ada"}));
    let (outcome, _) = run_flow(&host, "hello", json!({})).await?;
    assert_eq!(completed(outcome)?, json!({"greeting": "hello world"}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_are_transformed_into_the_result() -> Result<()> {
    let host = host()?;
    let (outcome, _) =
        run_flow(&host, "params", json!({"numbers": [1, 2, 3], "scale": 10})).await?;
    assert_eq!(
        completed(outcome)?,
        json!({"count": 3, "sum": 6, "scaled": [10, 20, 30]})
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_params_are_the_flows_error() -> Result<()> {
    let host = host()?;
    let (outcome, _) = run_flow(&host, "params", json!({"numbers": "three"})).await?;
    match outcome {
        FlowOutcome::Failed(f) => {
            assert_eq!(f.reason, FailureReason::ExitCode);
            assert!(f.message.starts_with("invalid parameters"), "{}", f.message);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_reach_the_sink_by_stream() -> Result<()> {
    let host = host()?;
    let (outcome, sink) = run_flow(&host, "logs", json!({})).await?;
    assert_eq!(completed(outcome)?, json!({"logged": 4, "printed": 4}));
    assert_eq!(
        sink.lines(LogStream::Flow),
        [
            "[debug] debug line",
            "[info] info line",
            "[progress 50%] half way",
            "[warn] warn line",
            "[error] error line"
        ]
    );
    assert_eq!(
        sink.lines(LogStream::Stdout),
        ["stdout line 1", "stdout line 2", "stdout tail"]
    );
    assert_eq!(sink.lines(LogStream::Stderr), ["stderr line"]);
    assert!(sink.lines(LogStream::Ferry).is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_error_fails_the_run_with_its_message() -> Result<()> {
    let host = host()?;
    let (outcome, sink) = run_flow(&host, "fails", json!({})).await?;
    assert_eq!(
        outcome,
        FlowOutcome::Failed(ferry_core::Failure::new(
            FailureReason::ExitCode,
            "the flow failed on purpose"
        ))
    );
    assert_eq!(sink.lines(LogStream::Flow), ["[error] about to fail"]);
    Ok(())
}

/// Kinds 2 and 3 share the contract: params on stdin, output in the log, the result file.
async fn command_contract(name: &str) -> Result<()> {
    let host = host()?;
    let (outcome, sink) = run_flow(&host, name, json!({"name": "ada"})).await?;
    assert_eq!(
        completed(outcome)?,
        json!({"greeting": "hello ada", "kind": name})
    );
    assert_eq!(sink.lines(LogStream::Stdout), ["hello from a command, ada"]);
    assert_eq!(sink.lines(LogStream::Stderr), ["a line on stderr"]);

    // No result file: the result is null.
    let (outcome, _) = run_flow(&host, name, json!({"result": null})).await?;
    assert_eq!(completed(outcome)?, serde_json::Value::Null);

    // A result file that is not JSON fails the run, saying so.
    let (outcome, _) = run_flow(&host, name, json!({"result": "not json"})).await?;
    match outcome {
        FlowOutcome::Failed(f) => {
            assert_eq!(f.reason, FailureReason::ExitCode);
            assert!(f.message.contains("not JSON"), "{}", f.message);
        }
        other => panic!("expected a failure, got {other:?}"),
    }

    // A non-zero exit fails the run with its code.
    let (outcome, sink) = run_flow(&host, name, json!({"exit": 3})).await?;
    match outcome {
        FlowOutcome::Failed(f) => {
            assert_eq!(f.reason, FailureReason::ExitCode);
            assert!(f.message.starts_with("exited with "), "{}", f.message);
            assert_ne!(f.message, "exited with 0");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(sink.lines(LogStream::Stderr), ["exiting with 3 as asked"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasi_command_component_follows_the_command_contract() -> Result<()> {
    command_contract("command").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview1_module_follows_the_command_contract() -> Result<()> {
    command_contract("preview1").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview1_exit_code_is_kept() -> Result<()> {
    let host = host()?;
    let (outcome, _) = run_flow(&host, "preview1", json!({"exit": 3})).await?;
    assert_eq!(
        outcome,
        FlowOutcome::Failed(ferry_core::Failure::new(
            FailureReason::ExitCode,
            "exited with 3"
        ))
    );
    Ok(())
}
