//! The scheduler's knobs.

use std::time::Duration;

/// How a scheduler claims and holds runs. Defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct Config {
    /// This scheduler's identity in leases and run events. Unique per process.
    pub owner: String,
    /// How often to look for due runs when none were found last time.
    pub poll_interval: Duration,
    /// How long a claim lasts without renewal; another scheduler takes over after it.
    pub lease_ttl: Duration,
    /// How often held leases are renewed and cancel requests picked up (well under the TTL).
    pub renew_interval: Duration,
    /// How often pushed runs are polled.
    pub push_poll_interval: Duration,
    /// Most runs claimed in one round.
    pub claim_batch: u32,
    /// Most managed runs executing at once in this process.
    pub managed_slots: usize,
    /// The memory (MiB) the managed runs this process holds may ask for in all: a run is
    /// claimed only when its memory limit fits in what is left, and waits `scheduled`
    /// otherwise. `None`: no budget (tests).
    pub managed_memory_mb: Option<u64>,
    /// Most pushed runs held (submitted and being watched) at once.
    pub push_slots: usize,
    /// Extra wall time past a run's timeout before the engine's own backstop fires.
    pub timeout_grace: Duration,
    /// How long a pushed run may stay accepted-but-not-started (ECS PROVISIONING/PENDING, an
    /// execution not yet running) before it is stopped and counts as `crashed:
    /// start_deadline` (retried if its pool allows).
    pub start_deadline: Duration,
    /// Polls in a row that may fail (5xx, timeouts, garbage) before a pushed run is given up:
    /// a running one ends `crashed` (`status_unknown`), a cancelling one `cancelled` with a
    /// note that the stop was not confirmed. Its max runtime is enforced meanwhile.
    pub failed_poll_limit: u32,
}

impl Config {
    pub fn with_owner(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            poll_interval: Duration::from_millis(250),
            lease_ttl: Duration::from_secs(30),
            renew_interval: Duration::from_secs(10),
            push_poll_interval: Duration::from_secs(5),
            claim_batch: 64,
            managed_slots: 64,
            managed_memory_mb: None,
            push_slots: 10_000,
            timeout_grace: Duration::from_secs(2),
            start_deadline: Duration::from_secs(15 * 60),
            failed_poll_limit: 60,
        }
    }
}
