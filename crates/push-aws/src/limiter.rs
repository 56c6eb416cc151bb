//! A token bucket per workspace credential and region, taken before every ECS call, so a burst
//! of runs (or several pools on one credential) stays under ECS's API rate limits instead of
//! turning into throttling errors; the SDK's own retries with backoff handle what still gets
//! through. Keyed by what Ferry knows, not by the account id a tenant wrote, so no tenant can
//! spend another's budget by naming its account.
//! Waiters queue fairly: each takes a token ahead of time and sleeps off its deficit.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// One bucket: `per_sec` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub struct Bucket {
    per_sec: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub fn new(per_sec: f64, burst: f64) -> Self {
        Self {
            per_sec,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits for a token.
    pub async fn take(&self) {
        let wait = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let refill = now.saturating_duration_since(s.1).as_secs_f64() * self.per_sec;
            s.0 = (s.0 + refill).min(self.burst) - 1.0;
            s.1 = now;
            if s.0 >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-s.0 / self.per_sec)
        };
        tokio::time::sleep(wait).await;
    }
}

/// ECS's documented sustained rates are per account and region, shared by every caller; Ferry
/// stays well inside them: mutating calls (RunTask, StopTask, RegisterTaskDefinition, ...)
/// and reads (DescribeTasks, ListTasks, ...).
#[derive(Debug)]
pub struct AccountLimits {
    pub writes: Bucket,
    pub reads: Bucket,
}

impl Default for AccountLimits {
    fn default() -> Self {
        Self {
            writes: Bucket::new(10.0, 20.0),
            reads: Bucket::new(20.0, 50.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_the_rate_holds() {
        let b = Bucket::new(10.0, 5.0);
        let start = Instant::now();
        for _ in 0..5 {
            b.take().await;
        }
        assert_eq!(Instant::now(), start, "the burst needs no waiting");
        for _ in 0..10 {
            b.take().await;
        }
        // Ten more tokens at ten a second: one second of (virtual) time.
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_millis(999) && waited <= Duration::from_millis(1100),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_share_the_rate() {
        let b = std::sync::Arc::new(Bucket::new(4.0, 1.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..9)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move { b.take().await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap_or_else(|e| panic!("{e}"));
        }
        // One from the burst, eight more at four a second.
        let waited = Instant::now() - start;
        assert!(
            waited >= Duration::from_millis(1999) && waited <= Duration::from_millis(2100),
            "{waited:?}"
        );
    }
}
