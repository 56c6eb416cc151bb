//! Runs: their states, the one transition table every state change goes through, and the
//! typed failure reasons that decide whether an infrastructure retry is allowed.

use std::fmt;

/// Where a run is in its life. See DESIGN §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for its scheduled time or for a scheduler to claim it.
    Scheduled,
    /// Claimed by a scheduler, being submitted or started.
    Pending,
    /// Executing (a sandbox, an ECS task, a Cloud Run execution).
    Running,
    /// Cancellation requested; the owner is stopping it.
    Cancelling,
    /// Finished successfully.
    Completed,
    /// The flow failed: non-zero exit, trap, a limit it exceeded, a deadline.
    Failed,
    /// The infrastructure failed: the task vanished, the image did not pull, the host died.
    Crashed,
    /// Stopped on request.
    Cancelled,
}

/// A state change the transition table forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a run cannot go from {from} to {to}")]
pub struct TransitionError {
    pub from: RunState,
    pub to: RunState,
}

impl RunState {
    pub const ALL: [RunState; 8] = [
        RunState::Scheduled,
        RunState::Pending,
        RunState::Running,
        RunState::Cancelling,
        RunState::Completed,
        RunState::Failed,
        RunState::Crashed,
        RunState::Cancelled,
    ];

    /// The transition table: every allowed edge, and nothing else.
    ///
    /// - `pending -> scheduled` and `running -> scheduled` are infrastructure retries (the
    ///   attempt number goes up) and releases of a run that could not be started here.
    /// - `cancelling` may still end `completed`, `failed` or `crashed`: the run may finish
    ///   before the stop takes effect, and what really happened is recorded.
    pub fn can_become(self, to: RunState) -> bool {
        use RunState::*;
        matches!(
            (self, to),
            (Scheduled, Pending | Cancelled)
                | (Pending, Running | Scheduled | Failed | Crashed | Cancelling)
                | (
                    Running,
                    Completed | Failed | Crashed | Cancelling | Scheduled
                )
                | (Cancelling, Cancelled | Completed | Failed | Crashed)
        )
    }

    /// Checks an edge against the table.
    pub fn transition(self, to: RunState) -> Result<RunState, TransitionError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Completed | RunState::Failed | RunState::Crashed | RunState::Cancelled
        )
    }

    /// States in which a scheduler owns the run (holds its lease).
    pub fn is_owned(self) -> bool {
        matches!(
            self,
            RunState::Pending | RunState::Running | RunState::Cancelling
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Scheduled => "scheduled",
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Cancelling => "cancelling",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Crashed => "crashed",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run failed, crashed or was stopped. Serialized in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    // The flow's own failures.
    /// The flow exited non-zero, or returned an error.
    ExitCode,
    /// The flow trapped (a WebAssembly trap: unreachable, stack overflow, ...).
    Trap,
    /// The flow exceeded its memory limit (managed).
    MemoryLimit,
    /// The flow exceeded its CPU (fuel) limit.
    CpuLimit,
    /// The flow ran past its wall-clock deadline.
    Timeout,
    /// The container was killed for using too much memory (push).
    Oom,
    // The infrastructure's failures.
    /// The image could not be pulled.
    ImagePull,
    /// No capacity (Fargate, Spot, region quota of tasks).
    Capacity,
    /// A Spot task was reclaimed.
    SpotInterruption,
    /// The cloud refused Ferry's credential the permission it needed.
    PermissionDenied,
    /// The cloud refused the job as configured.
    InvalidConfig,
    /// The cloud throttled Ferry.
    Throttled,
    /// A quota of the customer's project or account was exhausted.
    Quota,
    /// The task failed to start.
    TaskFailedToStart,
    /// The run did not start within its start deadline.
    StartDeadline,
    /// The task or execution disappeared.
    Vanished,
    /// The worker or host executing the run died.
    WorkerLost,
    /// Something other than Ferry stopped the task or execution (an operator, a script).
    StoppedExternally,
    /// No executor for the run's pool type could take it.
    Unavailable,
    /// The cloud's status of the job could not be read for too long (errors, garbage): the
    /// run cannot be followed. Not retried: the job may still be running.
    StatusUnknown,
    /// Anything else that went wrong on Ferry's side.
    Internal,
}

impl FailureReason {
    /// Whether the infrastructure (not the flow) is at fault: the run ends `crashed`.
    pub fn is_infrastructure(self) -> bool {
        use FailureReason::*;
        matches!(
            self,
            ImagePull
                | Capacity
                | SpotInterruption
                | Throttled
                | TaskFailedToStart
                | StartDeadline
                | Vanished
                | WorkerLost
                | StoppedExternally
                | Unavailable
                | StatusUnknown
                | Internal
        )
    }

    /// Whether retrying on fresh infrastructure may help. Configuration, permission and quota
    /// problems, and every failure of the flow itself, are not retried.
    pub fn is_retryable(self) -> bool {
        use FailureReason::*;
        matches!(
            self,
            Capacity
                | SpotInterruption
                | Throttled
                | TaskFailedToStart
                | StartDeadline
                | Vanished
                | WorkerLost
                | Internal
        )
    }

    /// The terminal state a run with this failure ends in when it is not retried.
    pub fn terminal_state(self) -> RunState {
        if self.is_infrastructure() {
            RunState::Crashed
        } else {
            RunState::Failed
        }
    }

    pub fn as_str(self) -> &'static str {
        use FailureReason::*;
        match self {
            ExitCode => "exit_code",
            Trap => "trap",
            MemoryLimit => "memory_limit",
            CpuLimit => "cpu_limit",
            Timeout => "timeout",
            Oom => "oom",
            ImagePull => "image_pull",
            Capacity => "capacity",
            SpotInterruption => "spot_interruption",
            PermissionDenied => "permission_denied",
            InvalidConfig => "invalid_config",
            Throttled => "throttled",
            Quota => "quota",
            TaskFailedToStart => "task_failed_to_start",
            StartDeadline => "start_deadline",
            Vanished => "vanished",
            WorkerLost => "worker_lost",
            StoppedExternally => "stopped_externally",
            Unavailable => "unavailable",
            StatusUnknown => "status_unknown",
            Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Option<FailureReason> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with its typed reason and a human message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    pub reason: FailureReason,
    /// What the tenant sees (a run's `state_message`): built from typed facts and the cloud
    /// API's own message about the tenant's own resources, never upstream transport or token
    /// text; at most [`Failure::MAX_MESSAGE_CHARS`] characters.
    pub message: String,
}

impl Failure {
    /// The longest message a tenant is shown.
    pub const MAX_MESSAGE_CHARS: usize = 512;

    pub fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: tenant_text(message),
        }
    }
}

/// `message`, cut to what a tenant-visible field holds ([`Failure::MAX_MESSAGE_CHARS`]).
pub fn tenant_text(message: impl Into<String>) -> String {
    let mut message: String = message.into();
    if let Some((cut, _)) = message.char_indices().nth(Failure::MAX_MESSAGE_CHARS) {
        message.truncate(cut);
    }
    message
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunState::*;

    #[test]
    fn failure_messages_are_cut_at_512_characters() {
        let long = "é".repeat(600);
        let f = Failure::new(FailureReason::Internal, long);
        assert_eq!(f.message.chars().count(), Failure::MAX_MESSAGE_CHARS);
        let short = Failure::new(FailureReason::Internal, "short");
        assert_eq!(short.message, "short");
    }

    /// Every allowed edge, written out once more by hand: the table must equal this list.
    const ALLOWED: &[(RunState, RunState)] = &[
        (Scheduled, Pending),
        (Scheduled, Cancelled),
        (Pending, Running),
        (Pending, Scheduled),
        (Pending, Failed),
        (Pending, Crashed),
        (Pending, Cancelling),
        (Running, Completed),
        (Running, Failed),
        (Running, Crashed),
        (Running, Cancelling),
        (Running, Scheduled),
        (Cancelling, Cancelled),
        (Cancelling, Completed),
        (Cancelling, Failed),
        (Cancelling, Crashed),
    ];

    #[test]
    fn every_pair_of_states_is_allowed_exactly_when_listed() {
        for from in RunState::ALL {
            for to in RunState::ALL {
                let listed = ALLOWED.contains(&(from, to));
                assert_eq!(from.can_become(to), listed, "{from} -> {to}");
                assert_eq!(from.transition(to).is_ok(), listed, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn terminal_states_have_no_way_out() {
        for from in RunState::ALL.into_iter().filter(|s| s.is_terminal()) {
            assert!(
                RunState::ALL.iter().all(|to| !from.can_become(*to)),
                "{from}"
            );
        }
    }

    #[test]
    fn no_state_goes_to_itself() {
        for s in RunState::ALL {
            assert!(!s.can_become(s), "{s}");
        }
    }

    #[test]
    fn owned_states_are_the_non_terminal_claimed_ones() {
        let owned: Vec<_> = RunState::ALL.into_iter().filter(|s| s.is_owned()).collect();
        assert_eq!(owned, vec![Pending, Running, Cancelling]);
    }

    #[test]
    fn states_round_trip() {
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::json!(s.as_str()))
            );
        }
        assert_eq!(RunState::parse("done"), None);
    }

    #[test]
    fn failure_reasons() {
        use FailureReason::*;
        let cases: &[(FailureReason, &str, RunState, bool)] = &[
            (ExitCode, "exit_code", Failed, false),
            (Trap, "trap", Failed, false),
            (MemoryLimit, "memory_limit", Failed, false),
            (CpuLimit, "cpu_limit", Failed, false),
            (Timeout, "timeout", Failed, false),
            (Oom, "oom", Failed, false),
            (PermissionDenied, "permission_denied", Failed, false),
            (InvalidConfig, "invalid_config", Failed, false),
            (Quota, "quota", Failed, false),
            (ImagePull, "image_pull", Crashed, false),
            (Capacity, "capacity", Crashed, true),
            (SpotInterruption, "spot_interruption", Crashed, true),
            (Throttled, "throttled", Crashed, true),
            (TaskFailedToStart, "task_failed_to_start", Crashed, true),
            (StartDeadline, "start_deadline", Crashed, true),
            (Vanished, "vanished", Crashed, true),
            (WorkerLost, "worker_lost", Crashed, true),
            (StoppedExternally, "stopped_externally", Crashed, false),
            (Unavailable, "unavailable", Crashed, false),
            (StatusUnknown, "status_unknown", Crashed, false),
            (Internal, "internal", Crashed, true),
        ];
        for (r, s, state, retry) in cases {
            assert_eq!(r.as_str(), *s);
            assert_eq!(FailureReason::parse(s), Some(*r));
            assert_eq!(r.terminal_state(), *state, "{r}");
            assert_eq!(r.is_retryable(), *retry, "{r}");
        }
        assert_eq!(FailureReason::parse("nope"), None);
    }
}
