//! The scheduler's timings and sizes, as an operator tunes them: the config file's `[engine]`
//! table or `FERRY_*` variables (which win), checked together when Ferry starts.

use std::time::Duration;

use anyhow::{bail, Context};

/// Every knob is optional: unset keeps the engine's default.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// `FERRY_LEASE_TTL_S`: how long a claim lasts unrenewed (default 30).
    pub lease_ttl_s: Option<u64>,
    /// `FERRY_LEASE_RENEW_S`: how often held leases are renewed (default 10; at most a third of
    /// the lease).
    pub lease_renew_s: Option<u64>,
    /// `FERRY_RECONCILE_INTERVAL_S`: how often pushed runs are polled (default 5).
    pub reconcile_interval_s: Option<u64>,
    /// `FERRY_CLAIM_POLL_MS`: how often due runs are looked for when none were found (default
    /// 250).
    pub claim_poll_ms: Option<u64>,
    /// `FERRY_CLAIM_BATCH`: most runs claimed in one round (default 64).
    pub claim_batch: Option<u32>,
    /// `FERRY_EXECUTOR_SLOTS`: most managed runs executing at once per process (default 64).
    pub executor_slots: Option<usize>,
    /// `FERRY_START_DEADLINE_S`: how long a pushed run may wait to start (default 900).
    pub start_deadline_s: Option<u64>,
    /// `FERRY_FAILED_POLL_LIMIT`: polls in a row that may fail before a pushed run is given up
    /// (default 60).
    pub failed_poll_limit: Option<u32>,
}

pub(crate) fn var<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .ok()
            .with_context(|| format!("{name} must be a whole number (got {v:?})")),
    }
}

impl EngineSettings {
    /// The file's settings with the environment's over them.
    pub fn with_env(self) -> anyhow::Result<Self> {
        Ok(Self {
            lease_ttl_s: var("FERRY_LEASE_TTL_S")?.or(self.lease_ttl_s),
            lease_renew_s: var("FERRY_LEASE_RENEW_S")?.or(self.lease_renew_s),
            reconcile_interval_s: var("FERRY_RECONCILE_INTERVAL_S")?.or(self.reconcile_interval_s),
            claim_poll_ms: var("FERRY_CLAIM_POLL_MS")?.or(self.claim_poll_ms),
            claim_batch: var("FERRY_CLAIM_BATCH")?.or(self.claim_batch),
            executor_slots: var("FERRY_EXECUTOR_SLOTS")?.or(self.executor_slots),
            start_deadline_s: var("FERRY_START_DEADLINE_S")?.or(self.start_deadline_s),
            failed_poll_limit: var("FERRY_FAILED_POLL_LIMIT")?.or(self.failed_poll_limit),
        })
    }

    /// Sets what is set on `c`, then checks the whole: a lease renewed at least three times
    /// per term, every size at least one.
    pub fn apply(&self, c: &mut ferry_engine::Config) -> anyhow::Result<()> {
        let secs = Duration::from_secs;
        if let Some(s) = self.lease_ttl_s {
            c.lease_ttl = secs(s);
        }
        if let Some(s) = self.lease_renew_s {
            c.renew_interval = secs(s);
        }
        if let Some(s) = self.reconcile_interval_s {
            c.push_poll_interval = secs(s);
        }
        if let Some(ms) = self.claim_poll_ms {
            c.poll_interval = Duration::from_millis(ms);
        }
        if let Some(n) = self.claim_batch {
            c.claim_batch = n;
        }
        if let Some(n) = self.executor_slots {
            c.managed_slots = n;
        }
        if let Some(s) = self.start_deadline_s {
            c.start_deadline = secs(s);
        }
        if let Some(n) = self.failed_poll_limit {
            c.failed_poll_limit = n;
        }
        if c.renew_interval.is_zero() || c.renew_interval * 3 > c.lease_ttl {
            bail!(
                "the lease ({}s, FERRY_LEASE_TTL_S) must be at least three renewals ({}s, \
                 FERRY_LEASE_RENEW_S) long, so a live scheduler never loses its runs",
                c.lease_ttl.as_secs(),
                c.renew_interval.as_secs()
            );
        }
        for (what, zero) in [
            ("FERRY_RECONCILE_INTERVAL_S", c.push_poll_interval.is_zero()),
            ("FERRY_CLAIM_POLL_MS", c.poll_interval.is_zero()),
            ("FERRY_CLAIM_BATCH", c.claim_batch == 0),
            ("FERRY_EXECUTOR_SLOTS", c.managed_slots == 0),
            ("FERRY_START_DEADLINE_S", c.start_deadline.is_zero()),
            ("FERRY_FAILED_POLL_LIMIT", c.failed_poll_limit == 0),
        ] {
            if zero {
                bail!("{what} must be at least 1");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn applied(s: EngineSettings) -> anyhow::Result<ferry_engine::Config> {
        let mut c = ferry_engine::Config::with_owner("t");
        s.apply(&mut c)?;
        Ok(c)
    }

    #[test]
    fn unset_keeps_the_defaults_and_set_values_apply() {
        let d = ferry_engine::Config::with_owner("t");
        let c = applied(EngineSettings::default()).unwrap();
        assert_eq!(
            (c.lease_ttl, c.start_deadline),
            (d.lease_ttl, d.start_deadline)
        );
        let c = applied(EngineSettings {
            lease_ttl_s: Some(60),
            lease_renew_s: Some(15),
            reconcile_interval_s: Some(2),
            claim_poll_ms: Some(50),
            claim_batch: Some(8),
            executor_slots: Some(4),
            start_deadline_s: Some(120),
            failed_poll_limit: Some(5),
        })
        .unwrap();
        assert_eq!(c.lease_ttl, Duration::from_secs(60));
        assert_eq!(c.renew_interval, Duration::from_secs(15));
        assert_eq!(c.push_poll_interval, Duration::from_secs(2));
        assert_eq!(c.poll_interval, Duration::from_millis(50));
        assert_eq!(
            (c.claim_batch, c.managed_slots, c.failed_poll_limit),
            (8, 4, 5)
        );
        assert_eq!(c.start_deadline, Duration::from_secs(120));
    }

    #[test]
    fn inconsistent_settings_say_what_to_fix() {
        let e = applied(EngineSettings {
            lease_ttl_s: Some(20),
            lease_renew_s: Some(10),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("FERRY_LEASE_TTL_S") && e.contains("FERRY_LEASE_RENEW_S"),
            "{e}"
        );
        let e = applied(EngineSettings {
            claim_batch: Some(0),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("FERRY_CLAIM_BATCH"), "{e}");
    }

    #[test]
    fn the_file_takes_an_engine_table_and_refuses_unknown_keys() {
        let s: EngineSettings = toml::from_str("lease_ttl_s = 45\nfailed_poll_limit = 9").unwrap();
        assert_eq!((s.lease_ttl_s, s.failed_poll_limit), (Some(45), Some(9)));
        assert!(toml::from_str::<EngineSettings>("lease = 1").is_err());
    }
}
