//! Pure mappings from what ECS answers to Ferry's terms: a described task to a
//! [`PushStatus`], a RunTask `failures[]` entry or an SDK error to a typed [`PushError`].
//! Kept free of I/O so every case has a one-line table test (moto cannot produce stop codes
//! or exit codes).

use aws_sdk_ecs::config::http::HttpResponse;
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use ferry_core::port::{PushError, PushStatus};
use ferry_core::{Failure, FailureReason};

/// The reason Ferry gives ECS when it stops a task.
pub const CANCEL_REASON: &str = "cancelled by Ferry";

/// The name of the one container in Ferry's task definitions.
pub const CONTAINER: &str = "flow";

/// The parts of a described task that decide its status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskState {
    pub last_status: String,
    pub desired_status: String,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    /// The flow container's exit code and reason.
    pub exit_code: Option<i32>,
    pub container_reason: Option<String>,
}

impl From<&aws_sdk_ecs::types::Task> for TaskState {
    fn from(t: &aws_sdk_ecs::types::Task) -> Self {
        let container = t
            .containers()
            .iter()
            .find(|c| c.name() == Some(CONTAINER))
            .or_else(|| t.containers().first());
        Self {
            last_status: t.last_status().unwrap_or_default().to_owned(),
            desired_status: t.desired_status().unwrap_or_default().to_owned(),
            stop_code: t.stop_code().map(|c| c.as_str().to_owned()),
            stopped_reason: t.stopped_reason().map(str::to_owned),
            exit_code: container.and_then(|c| c.exit_code()),
            container_reason: container.and_then(|c| c.reason()).map(str::to_owned),
        }
    }
}

/// A task's status, from its last status, stop code, reasons and the flow container's exit
/// code.
pub fn status_of(t: &TaskState) -> PushStatus {
    match t.last_status.as_str() {
        "PROVISIONING" | "PENDING" | "ACTIVATING" => return PushStatus::Starting,
        "STOPPED" => {}
        // RUNNING, and on its way down (DEACTIVATING, STOPPING, DEPROVISIONING): not ended yet.
        _ => return PushStatus::Running,
    }
    let reason = t.stopped_reason.as_deref().unwrap_or_default();
    let container_reason = t.container_reason.as_deref().unwrap_or_default();
    let says = |what: &str| reason.contains(what) || container_reason.contains(what);
    let crashed = |r, m: String| PushStatus::Crashed(Failure::new(r, m));
    match t.stop_code.as_deref() {
        Some("UserInitiated") => return PushStatus::Cancelled,
        Some("TaskFailedToStart") if says("CannotPullContainer") => {
            return crashed(
                FailureReason::ImagePull,
                format!("task failed to start: {reason}"),
            )
        }
        Some("TaskFailedToStart") => {
            return crashed(
                FailureReason::TaskFailedToStart,
                format!("task failed to start: {reason}"),
            )
        }
        Some("SpotInterruption") => {
            return crashed(
                FailureReason::SpotInterruption,
                "the Spot capacity was reclaimed".to_owned(),
            )
        }
        Some("TerminationNotice") => {
            return crashed(
                FailureReason::WorkerLost,
                format!("the task's host was retired: {reason}"),
            )
        }
        Some("ServiceSchedulerInitiated") => {
            return crashed(
                FailureReason::StoppedExternally,
                format!("stopped by an ECS service: {reason}"),
            )
        }
        // Without a stop code (older APIs, emulators): a StopTask shows as a desired STOPPED
        // with the caller's reason.
        None if reason.starts_with(CANCEL_REASON)
            || (t.desired_status == "STOPPED"
                && !reason.is_empty()
                && !reason.starts_with("Essential container")
                && t.exit_code.is_none_or(|c| c == 0)
                && !says("OutOfMemory")) =>
        {
            return PushStatus::Cancelled
        }
        _ => {}
    }
    if says("OutOfMemory") {
        return PushStatus::Failed(Failure::new(
            FailureReason::Oom,
            "the container ran out of memory",
        ));
    }
    if says("CannotPullContainer") {
        return crashed(FailureReason::ImagePull, reason.to_owned());
    }
    match t.exit_code {
        Some(0) => PushStatus::Completed,
        Some(code) => PushStatus::Failed(Failure::new(
            FailureReason::ExitCode,
            format!("the flow exited with code {code}"),
        )),
        None => crashed(
            FailureReason::TaskFailedToStart,
            format!("the task stopped without an exit code: {reason}"),
        ),
    }
}

/// A `failures[]` entry of RunTask or DescribeTasks, as an error.
pub fn failure_error(reason: &str, detail: &str) -> PushError {
    let r = if reason.contains("Capacity")
        || reason.starts_with("RESOURCE")
        || reason.starts_with("AGENT")
        || reason.contains("capacity")
    {
        FailureReason::Capacity
    } else if reason.contains("ACCESS") || reason.contains("AccessDenied") {
        FailureReason::PermissionDenied
    } else if reason.starts_with("ATTRIBUTE") || reason == "MISSING" {
        FailureReason::InvalidConfig
    } else {
        FailureReason::Internal
    };
    let message = if detail.is_empty() {
        reason.to_owned()
    } else {
        format!("{reason}: {detail}")
    };
    PushError::new(r, message)
}

/// The reason for an AWS error code, or HTTP status when there is no code.
pub fn reason_for_code(code: Option<&str>, http_status: Option<u16>) -> FailureReason {
    match code.unwrap_or_default() {
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "SignatureDoesNotMatch" => FailureReason::PermissionDenied,
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded" => FailureReason::Throttled,
        "LimitExceededException" => FailureReason::Quota,
        "ClientException"
        | "InvalidParameterException"
        | "ClusterNotFoundException"
        | "PlatformUnknownException"
        | "PlatformTaskDefinitionIncompatibilityException"
        | "UnsupportedFeatureException"
        | "ValidationException"
        | "ValidationError" => FailureReason::InvalidConfig,
        _ => match http_status {
            Some(403) => FailureReason::PermissionDenied,
            Some(429) => FailureReason::Throttled,
            Some(s) if (400..500).contains(&s) => FailureReason::InvalidConfig,
            _ => FailureReason::Internal,
        },
    }
}

/// An SDK error of the call `what`, as a typed error. Network failures, timeouts and 5xx are
/// `internal` (transient); ECS's "too many concurrent attempts" is `throttled`.
pub fn sdk_error<E>(what: &str, e: &SdkError<E, HttpResponse>) -> PushError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let status = Some(se.raw().status().as_u16());
            let message = err.message().unwrap_or_default();
            let mut reason = reason_for_code(err.code(), status);
            if message.contains("Too many concurrent attempts") {
                reason = FailureReason::Throttled;
            }
            PushError::new(
                reason,
                format!("{what}: {}: {message}", err.code().unwrap_or("error")),
            )
        }
        other => {
            // Transport, timeout and unreadable answers: the chain is the operator's.
            let text = format!("{other:?}");
            let reason = if text.contains("AccessDenied") || text.contains("not authorized") {
                FailureReason::PermissionDenied
            } else {
                FailureReason::Internal
            };
            PushError::upstream(
                reason,
                format!("{what}: AWS could not be reached or answered something unreadable"),
                other,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(
        last: &str,
        desired: &str,
        code: Option<&str>,
        reason: &str,
        exit: Option<i32>,
        creason: &str,
    ) -> TaskState {
        TaskState {
            last_status: last.into(),
            desired_status: desired.into(),
            stop_code: code.map(Into::into),
            stopped_reason: Some(reason.into()).filter(|r: &String| !r.is_empty()),
            exit_code: exit,
            container_reason: Some(creason.into()).filter(|r: &String| !r.is_empty()),
        }
    }

    fn reason(s: &PushStatus) -> String {
        match s {
            PushStatus::Failed(f) => format!("failed:{}", f.reason),
            PushStatus::Crashed(f) => format!("crashed:{}", f.reason),
            other => format!("{other:?}").to_lowercase(),
        }
    }

    #[test]
    fn task_statuses() {
        use PushStatus as S;
        let _ = S::Gone;
        let cases: &[(TaskState, &str)] = &[
            (
                task("PROVISIONING", "RUNNING", None, "", None, ""),
                "starting",
            ),
            (task("PENDING", "RUNNING", None, "", None, ""), "starting"),
            (
                task("ACTIVATING", "RUNNING", None, "", None, ""),
                "starting",
            ),
            (task("RUNNING", "RUNNING", None, "", None, ""), "running"),
            (
                task("DEACTIVATING", "RUNNING", None, "", None, ""),
                "running",
            ),
            (task("STOPPING", "STOPPED", None, "", None, ""), "running"),
            (
                task("DEPROVISIONING", "STOPPED", None, "", None, ""),
                "running",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    Some("UserInitiated"),
                    "whatever",
                    Some(137),
                    "",
                ),
                "cancelled",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    None,
                    "cancelled by Ferry",
                    Some(0),
                    "",
                ),
                "cancelled",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    None,
                    "stopped by an operator",
                    Some(0),
                    "",
                ),
                "cancelled",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    Some("TaskFailedToStart"),
                    "ResourceInitializationError: no route",
                    None,
                    "",
                ),
                "crashed:task_failed_to_start",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    Some("TaskFailedToStart"),
                    "CannotPullContainerError: pull access denied",
                    None,
                    "",
                ),
                "crashed:image_pull",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    Some("TaskFailedToStart"),
                    "x",
                    None,
                    "CannotPullContainerError: not found",
                ),
                "crashed:image_pull",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    Some("SpotInterruption"),
                    "Your Spot Task was interrupted.",
                    Some(143),
                    "",
                ),
                "crashed:spot_interruption",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    Some("TerminationNotice"),
                    "retired",
                    None,
                    "",
                ),
                "crashed:worker_lost",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    Some("ServiceSchedulerInitiated"),
                    "scaled in",
                    None,
                    "",
                ),
                "crashed:stopped_externally",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    Some("EssentialContainerExited"),
                    "Essential container in task exited",
                    Some(0),
                    "",
                ),
                "completed",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    Some("EssentialContainerExited"),
                    "Essential container in task exited",
                    Some(1),
                    "",
                ),
                "failed:exit_code",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    Some("EssentialContainerExited"),
                    "Essential container in task exited",
                    Some(137),
                    "OutOfMemoryError: Container killed due to memory usage",
                ),
                "failed:oom",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    None,
                    "Essential container in task exited",
                    Some(2),
                    "",
                ),
                "failed:exit_code",
            ),
            (
                task(
                    "STOPPED",
                    "STOPPED",
                    None,
                    "Essential container in task exited",
                    None,
                    "",
                ),
                "crashed:task_failed_to_start",
            ),
            // moto: stopped by its state progression, desired status still RUNNING.
            (
                task("STOPPED", "RUNNING", None, "", Some(0), ""),
                "completed",
            ),
            (
                task("STOPPED", "RUNNING", None, "", Some(3), ""),
                "failed:exit_code",
            ),
        ];
        for (t, want) in cases {
            assert_eq!(reason(&status_of(t)), *want, "{t:?}");
        }
    }

    #[test]
    fn failures() {
        let cases = [
            ("RESOURCE:MEMORY", "capacity"),
            (
                "Capacity is unavailable at this time. Please try again later.",
                "capacity",
            ),
            ("AGENT", "capacity"),
            ("ATTRIBUTE", "invalid_config"),
            ("MISSING", "invalid_config"),
            ("ACCESS DENIED", "permission_denied"),
            ("something new", "internal"),
        ];
        for (r, want) in cases {
            assert_eq!(failure_error(r, "").failure.reason.to_string(), want, "{r}");
        }
    }

    #[test]
    fn error_codes() {
        let cases = [
            (Some("AccessDeniedException"), None, "permission_denied"),
            (Some("AccessDenied"), Some(403), "permission_denied"),
            (Some("ThrottlingException"), Some(400), "throttled"),
            (Some("ClientException"), Some(400), "invalid_config"),
            (
                Some("InvalidParameterException"),
                Some(400),
                "invalid_config",
            ),
            (
                Some("ClusterNotFoundException"),
                Some(400),
                "invalid_config",
            ),
            (Some("LimitExceededException"), Some(400), "quota"),
            (Some("ServerException"), Some(500), "internal"),
            (None, Some(503), "internal"),
            (None, Some(429), "throttled"),
            (None, None, "internal"),
        ];
        for (code, status, want) in cases {
            assert_eq!(reason_for_code(code, status).to_string(), want, "{code:?}");
        }
    }
}
