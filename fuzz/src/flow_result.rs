//! `flow_result`: what a managed flow hands back as its result (a component's return value, a
//! module's `/run/result.json`), `ferry_core::port::FlowOutcome::from_result`
//! (crates/core/src/port.rs), which ferry-wasm-host calls when a flow ends.
//!
//! Input: the result's bytes; the first byte also picks the result limit.
//!
//! Properties: the run completes exactly when the bytes fit the limit and are JSON, with that
//! very value, which prints as JSON that reads back the same (it is stored and served); else
//! it fails with `exit_code` and a message no longer than a tenant-visible message may be.

use ferry_core::port::FlowOutcome;
use ferry_core::{Failure, FailureReason};
use serde_json::Value;

pub fn check(data: &[u8]) {
    let Some((&seed, bytes)) = data.split_first() else {
        return;
    };
    let max = usize::from(seed) * 4;
    let parsed = serde_json::from_slice::<Value>(bytes).ok();
    match (FlowOutcome::from_result(bytes, max), parsed) {
        (FlowOutcome::Completed { result }, Some(want)) if bytes.len() <= max => {
            assert_eq!(result, want);
            let text = serde_json::to_string(&result)
                .unwrap_or_else(|e| panic!("the result does not print: {e}"));
            let back: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("the printed result {text:?} does not parse: {e}"));
            assert_eq!(back, result, "the stored result would read back otherwise");
        }
        (FlowOutcome::Failed(f), parsed) if bytes.len() > max || parsed.is_none() => {
            assert_eq!(f.reason, FailureReason::ExitCode);
            assert!(
                f.message.chars().count() <= Failure::MAX_MESSAGE_CHARS,
                "a message of {} characters",
                f.message.chars().count()
            );
        }
        (outcome, parsed) => panic!(
            "{} bytes (limit {max}), JSON: {}: {outcome:?}",
            bytes.len(),
            parsed.is_some()
        ),
    }
}
