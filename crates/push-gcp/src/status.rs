//! Pure mappings from what Cloud Run answers to Ferry's terms: an execution's conditions and
//! counts to a [`PushStatus`], an API error to a typed [`PushError`]. Kept free of I/O so every
//! case has a one-line table test.

use ferry_core::port::{PushError, PushStatus};
use ferry_core::{Failure, FailureReason};
use google_cloud_run_v2::model::condition::Reasons;
use google_cloud_run_v2::model::Execution;

/// The name of the one container in Ferry's jobs.
pub const CONTAINER: &str = "flow";

/// One condition of an execution, as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    /// `Completed`, `Started`, `ResourcesAvailable`, `Retry`, ...
    pub kind: String,
    /// `CONDITION_SUCCEEDED`, `CONDITION_FAILED`, `CONDITION_PENDING`, `CONDITION_RECONCILING`.
    pub state: String,
    /// The execution or common reason: `NON_ZERO_EXIT_CODE`, `CANCELLED`, `CONTAINER_MISSING`, ...
    pub reason: String,
    pub message: String,
}

/// The parts of an execution that decide its status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionState {
    pub conditions: Vec<Condition>,
    pub running: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub cancelled: i32,
    /// Cloud Run set a completion time: the execution has ended.
    pub finished: bool,
}

impl From<&Execution> for ExecutionState {
    fn from(e: &Execution) -> Self {
        let conditions = e
            .conditions
            .iter()
            .map(|c| Condition {
                kind: c.r#type.clone(),
                state: c.state.name().unwrap_or_default().to_owned(),
                reason: match &c.reasons {
                    Some(Reasons::ExecutionReason(r)) => r.name().unwrap_or_default().to_owned(),
                    Some(Reasons::Reason(r)) => r.name().unwrap_or_default().to_owned(),
                    Some(Reasons::RevisionReason(r)) => r.name().unwrap_or_default().to_owned(),
                    _ => String::new(),
                },
                message: c.message.clone(),
            })
            .collect();
        Self {
            conditions,
            running: e.running_count,
            succeeded: e.succeeded_count,
            failed: e.failed_count,
            cancelled: e.cancelled_count,
            finished: e.completion_time.is_some(),
        }
    }
}

const SUCCEEDED: &str = "CONDITION_SUCCEEDED";
const FAILED: &str = "CONDITION_FAILED";

/// An execution's status, from its `Completed` condition (the terminal one), else from whether
/// it has started.
pub fn status_of(e: &ExecutionState) -> PushStatus {
    let find = |kind: &str| e.conditions.iter().find(|c| c.kind == kind);
    match find("Completed") {
        Some(c) if c.state == SUCCEEDED => return PushStatus::Completed,
        Some(c) if c.state == FAILED => return failed(e, c),
        _ => {}
    }
    if e.finished && e.succeeded > 0 && e.failed == 0 && e.cancelled == 0 {
        return PushStatus::Completed;
    }
    if let Some(c) = find("ResourcesAvailable").filter(|c| c.state == FAILED) {
        return failed(e, c);
    }
    let started = find("Started").is_some_and(|c| c.state == SUCCEEDED);
    if started || e.running > 0 {
        PushStatus::Running
    } else {
        PushStatus::Starting
    }
}

fn failed(e: &ExecutionState, c: &Condition) -> PushStatus {
    let message = if c.message.is_empty() {
        format!("the execution failed ({})", c.reason)
    } else {
        c.message.clone()
    };
    let lower = message.to_ascii_lowercase();
    let says = |what: &str| lower.contains(what);
    let fail = |r| PushStatus::Failed(Failure::new(r, message.clone()));
    let crash = |r| PushStatus::Crashed(Failure::new(r, message.clone()));
    match c.reason.as_str() {
        "CANCELLED" | "CANCELLING" => return PushStatus::Cancelled,
        "DELETED" => return PushStatus::Gone,
        _ => {}
    }
    if e.cancelled > 0 && e.failed == 0 && e.succeeded == 0 {
        return PushStatus::Cancelled;
    }
    if says("timeout") || says("deadline exceeded") || says("timed out") {
        return fail(FailureReason::Timeout);
    }
    if says("memory limit") || says("out of memory") || says("oom") {
        return fail(FailureReason::Oom);
    }
    match c.reason.as_str() {
        "CONTAINER_MISSING" => return crash(FailureReason::ImagePull),
        "CONTAINER_IMAGE_UNAUTHORIZED"
        | "CONTAINER_IMAGE_AUTHORIZATION_CHECK_FAILED"
        | "CONTAINER_PERMISSION_DENIED"
        | "SECRETS_ACCESS_CHECK_FAILED"
        | "ENCRYPTION_KEY_PERMISSION_DENIED"
        | "ENCRYPTION_KEY_CHECK_FAILED" => return fail(FailureReason::PermissionDenied),
        "VPC_NETWORK_NOT_FOUND" => return fail(FailureReason::InvalidConfig),
        "INTERNAL" => return crash(FailureReason::Internal),
        _ => {}
    }
    if says("image") && (says("not found") || says("pull") || says("does not exist")) {
        return crash(FailureReason::ImagePull);
    }
    if says("quota") || says("capacity") || says("insufficient resources") {
        return crash(FailureReason::Capacity);
    }
    if c.reason == "NON_ZERO_EXIT_CODE" || e.failed > 0 || says("exit") || says("signal") {
        return fail(FailureReason::ExitCode);
    }
    crash(FailureReason::TaskFailedToStart)
}

/// The reason for a Google API status (its canonical code name) and message.
pub fn reason_for(code: &str, http_status: Option<u16>, message: &str) -> FailureReason {
    let lower = message.to_ascii_lowercase();
    match code {
        "PERMISSION_DENIED" | "UNAUTHENTICATED" => FailureReason::PermissionDenied,
        // Request-rate quotas (per minute) pass; Cloud Run says "Quota exceeded" for both.
        "RESOURCE_EXHAUSTED"
            if lower.contains("per minute")
                || lower.contains("requests")
                || !lower.contains("quota") =>
        {
            FailureReason::Throttled
        }
        "RESOURCE_EXHAUSTED" if lower.contains("concurrent") || lower.contains("limit of") => {
            FailureReason::Quota
        }
        "RESOURCE_EXHAUSTED" => FailureReason::Throttled,
        "INVALID_ARGUMENT"
        | "FAILED_PRECONDITION"
        | "OUT_OF_RANGE"
        | "NOT_FOUND"
        | "ALREADY_EXISTS"
        | "UNIMPLEMENTED" => FailureReason::InvalidConfig,
        "UNKNOWN" if http_status.is_some_and(|s| (400..500).contains(&s)) => {
            reason_for("", http_status, message)
        }
        "UNAVAILABLE" | "DEADLINE_EXCEEDED" | "INTERNAL" | "UNKNOWN" | "ABORTED" | "CANCELLED"
        | "DATA_LOSS" => FailureReason::Internal,
        _ => match http_status {
            Some(401 | 403) => FailureReason::PermissionDenied,
            Some(429) => FailureReason::Throttled,
            Some(s) if (400..500).contains(&s) => FailureReason::InvalidConfig,
            _ => FailureReason::Internal,
        },
    }
}

/// The canonical name of a `google.rpc.Code` number (as an operation's error carries it).
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// The canonical code name of an API error, if Google answered one.
pub fn code_of(e: &google_cloud_run_v2::Error) -> Option<&'static str> {
    e.status().map(|s| s.code.name())
}

/// An error of the call `what`, as a typed error. Network failures, timeouts and 5xx are
/// `internal` (transient); a credential that cannot make a token is `invalid_config` unless
/// the failure is transient (a token endpoint that is down).
pub fn api_error(what: &str, e: &google_cloud_run_v2::Error) -> PushError {
    if let Some(status) = e.status() {
        let code = status.code.name();
        let reason = reason_for(code, e.http_status_code(), &status.message);
        return PushError::new(reason, format!("{what}: {code}: {}", status.message));
    }
    if e.is_authentication() {
        let transient = std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<google_cloud_auth::errors::CredentialsError>())
            .is_some_and(google_cloud_auth::errors::CredentialsError::is_transient);
        // The token source's own text (which may quote a token endpoint's answer) is the
        // operator's; the tenant is told what failed.
        let (reason, message) = if transient {
            (
                FailureReason::Internal,
                format!("{what}: the credential could not make a token for now"),
            )
        } else {
            (
                FailureReason::InvalidConfig,
                format!(
                    "{what}: the credential could not make a token; check it with `ferry credential validate`"
                ),
            )
        };
        return PushError::upstream(reason, message, e);
    }
    if let Some(status) = e.http_status_code() {
        let reason = reason_for("", Some(status), "");
        return PushError::upstream(reason, format!("{what}: HTTP {status}"), e);
    }
    PushError::upstream(
        FailureReason::Internal,
        format!("{what}: Cloud Run could not be reached or answered something unreadable"),
        e,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(kind: &str, state: &str, reason: &str, message: &str) -> Condition {
        Condition {
            kind: kind.into(),
            state: state.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn exec(conditions: Vec<Condition>, counts: [i32; 4], finished: bool) -> ExecutionState {
        ExecutionState {
            conditions,
            running: counts[0],
            succeeded: counts[1],
            failed: counts[2],
            cancelled: counts[3],
            finished,
        }
    }

    fn show(s: &PushStatus) -> String {
        match s {
            PushStatus::Failed(f) => format!("failed:{}", f.reason),
            PushStatus::Crashed(f) => format!("crashed:{}", f.reason),
            other => format!("{other:?}").to_lowercase(),
        }
    }

    #[test]
    fn executions_map_to_statuses() {
        let completed = |state: &str, reason: &str, message: &str| {
            vec![
                cond("ResourcesAvailable", SUCCEEDED, "", ""),
                cond("Started", SUCCEEDED, "", ""),
                cond("Completed", state, reason, message),
            ]
        };
        let cases: Vec<(ExecutionState, &str)> = vec![
            (exec(vec![], [0, 0, 0, 0], false), "starting"),
            (
                exec(
                    vec![cond("Completed", "CONDITION_PENDING", "", "")],
                    [0, 0, 0, 0],
                    false,
                ),
                "starting",
            ),
            (
                exec(
                    vec![cond("Started", SUCCEEDED, "", "")],
                    [1, 0, 0, 0],
                    false,
                ),
                "running",
            ),
            (exec(vec![], [1, 0, 0, 0], false), "running"),
            (
                exec(completed("CONDITION_PENDING", "", ""), [1, 0, 0, 0], false),
                "running",
            ),
            (
                exec(
                    completed(SUCCEEDED, "", "Execution completed successfully."),
                    [0, 1, 0, 0],
                    true,
                ),
                "completed",
            ),
            (exec(vec![], [0, 1, 0, 0], true), "completed"),
            (
                exec(
                    completed(
                        FAILED,
                        "NON_ZERO_EXIT_CODE",
                        "Task x-0 failed with message: The container exited with an error.",
                    ),
                    [0, 0, 1, 0],
                    true,
                ),
                "failed:exit_code",
            ),
            (
                exec(
                    completed(
                        FAILED,
                        "NON_ZERO_EXIT_CODE",
                        "Task x-0 failed with message: The configured timeout was reached.",
                    ),
                    [0, 0, 1, 0],
                    true,
                ),
                "failed:timeout",
            ),
            (
                exec(
                    completed(
                        FAILED,
                        "NON_ZERO_EXIT_CODE",
                        "Memory limit of 512 MiB exceeded with 600 MiB used.",
                    ),
                    [0, 0, 1, 0],
                    true,
                ),
                "failed:oom",
            ),
            (
                exec(
                    completed(FAILED, "CANCELLED", "The execution was cancelled."),
                    [0, 0, 0, 1],
                    true,
                ),
                "cancelled",
            ),
            (
                exec(completed(FAILED, "CANCELLING", ""), [1, 0, 0, 0], false),
                "cancelled",
            ),
            (
                exec(completed(FAILED, "", ""), [0, 0, 0, 1], true),
                "cancelled",
            ),
            (
                exec(completed(FAILED, "DELETED", ""), [0, 0, 0, 0], true),
                "gone",
            ),
            (
                exec(
                    completed(FAILED, "CONTAINER_MISSING", "Image 'x' not found."),
                    [0, 0, 1, 0],
                    true,
                ),
                "crashed:image_pull",
            ),
            (
                exec(
                    completed(FAILED, "", "Failed to pull image us-docker.pkg.dev/x/y"),
                    [0, 0, 1, 0],
                    true,
                ),
                "crashed:image_pull",
            ),
            (
                exec(
                    completed(FAILED, "CONTAINER_IMAGE_UNAUTHORIZED", "denied"),
                    [0, 0, 1, 0],
                    true,
                ),
                "failed:permission_denied",
            ),
            (
                exec(
                    completed(FAILED, "SECRETS_ACCESS_CHECK_FAILED", "no access to secret"),
                    [0, 0, 1, 0],
                    true,
                ),
                "failed:permission_denied",
            ),
            (
                exec(
                    completed(FAILED, "VPC_NETWORK_NOT_FOUND", "no vpc"),
                    [0, 0, 1, 0],
                    true,
                ),
                "failed:invalid_config",
            ),
            (
                exec(completed(FAILED, "INTERNAL", "oops"), [0, 0, 1, 0], true),
                "crashed:internal",
            ),
            (
                exec(
                    completed(FAILED, "", "Insufficient resources in region"),
                    [0, 0, 0, 0],
                    true,
                ),
                "crashed:capacity",
            ),
            (
                exec(
                    completed(FAILED, "", "Container terminated on signal 9."),
                    [0, 0, 0, 0],
                    true,
                ),
                "failed:exit_code",
            ),
            (
                exec(completed(FAILED, "", "something odd"), [0, 0, 0, 0], true),
                "crashed:task_failed_to_start",
            ),
            (
                exec(
                    vec![cond(
                        "ResourcesAvailable",
                        FAILED,
                        "",
                        "Quota exceeded for CPU",
                    )],
                    [0, 0, 0, 0],
                    false,
                ),
                "crashed:capacity",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(show(&status_of(&e)), want, "{e:?}");
        }
    }

    #[test]
    fn api_errors_map_to_reasons() {
        use FailureReason::*;
        let cases = [
            ("PERMISSION_DENIED", Some(403), "Permission 'run.jobs.run' denied", PermissionDenied),
            ("UNAUTHENTICATED", Some(401), "bad token", PermissionDenied),
            ("RESOURCE_EXHAUSTED", Some(429), "Quota exceeded for quota metric 'Job run requests' and limit 'per minute per region'", Throttled),
            ("RESOURCE_EXHAUSTED", Some(429), "Too many requests", Throttled),
            ("RESOURCE_EXHAUSTED", Some(429), "Quota exceeded: limit of 1000 concurrent executions", Quota),
            ("INVALID_ARGUMENT", Some(400), "bad image", InvalidConfig),
            ("FAILED_PRECONDITION", Some(400), "x", InvalidConfig),
            ("NOT_FOUND", Some(404), "x", InvalidConfig),
            ("UNAVAILABLE", Some(503), "x", Internal),
            ("DEADLINE_EXCEEDED", Some(504), "x", Internal),
            ("INTERNAL", Some(500), "x", Internal),
            ("", Some(429), "", Throttled),
            ("UNKNOWN", Some(400), "", InvalidConfig),
            ("UNKNOWN", Some(500), "", Internal),
            ("", Some(403), "", PermissionDenied),
            ("", Some(418), "", InvalidConfig),
            ("", Some(502), "", Internal),
            ("", None, "", Internal),
        ];
        for (code, http, message, want) in cases {
            assert_eq!(
                reason_for(code, http, message),
                want,
                "{code} {http:?} {message}"
            );
        }
        assert!(PushError::new(
            reason_for("RESOURCE_EXHAUSTED", Some(429), "Quota exceeded."),
            "x"
        )
        .is_transient());
        assert!(
            !PushError::new(reason_for("PERMISSION_DENIED", Some(403), ""), "x").is_transient()
        );
    }
}
