//! Rate limits on the public API: token buckets (governor's GCRA) per API key, per workspace
//! (all its keys together) and per pushed run (its container's run token). A request over any
//! of them is answered 429 `rate_limited` with `Retry-After` and the `RateLimit-*` headers of
//! the IETF draft (limit, remaining, reset in seconds); one workspace's flood draws only on its
//! own buckets. Buckets are per process: behind N API replicas a workspace gets up to N times
//! the figures, which the operator divides accordingly.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use ferry_core::{ApiKeyId, RunId, WorkspaceId};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use super::settings::{Bucket, EdgeSettings};
use crate::error::ApiError;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

struct Limiter<K: Hash + Eq + Clone> {
    bucket: Bucket,
    what: &'static str,
    inner: Keyed<K>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn new(bucket: Bucket, what: &'static str) -> Self {
        let rps = NonZeroU32::new(bucket.rps).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(bucket.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(rps).allow_burst(burst);
        Self {
            bucket,
            what,
            inner: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
        }
    }

    fn check(&self, key: &K) -> Result<(), ApiError> {
        match self.inner.check_key(key) {
            Ok(_) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(rate_limited(self.what, self.bucket, wait))
            }
        }
    }

    fn prune(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }
}

/// The answer to a request over `bucket`: 429 with when to come back.
fn rate_limited(what: &str, bucket: Bucket, wait: Duration) -> ApiError {
    // Whole seconds, rounded up: a client waiting that long finds a token.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let n = |v: u64| HeaderValue::from(v);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many requests for this {what} ({} a second, bursts of {}); retry after {secs} s",
            bucket.rps, bucket.burst
        ),
    )
    .with_header(axum::http::header::RETRY_AFTER, n(secs))
    .with_header("ratelimit-limit", n(u64::from(bucket.burst)))
    .with_header("ratelimit-remaining", n(0))
    .with_header("ratelimit-reset", n(secs))
}

/// Every bucket of this process's public listener.
pub struct RateLimits {
    per_key: Limiter<ApiKeyId>,
    per_workspace: Limiter<WorkspaceId>,
    per_run: Limiter<RunId>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_key", &self.per_key.bucket)
            .field("per_workspace", &self.per_workspace.bucket)
            .field("per_run", &self.per_run.bucket)
            .finish()
    }
}

impl RateLimits {
    pub fn new(s: &EdgeSettings) -> Arc<Self> {
        Arc::new(Self {
            per_key: Limiter::new(s.per_key, "API key"),
            per_workspace: Limiter::new(s.per_workspace, "workspace"),
            per_run: Limiter::new(s.per_run, "run token"),
        })
    }

    /// A request with API key `key` of workspace `ws`: one token from each of their buckets.
    pub fn check_key(&self, ws: WorkspaceId, key: ApiKeyId) -> Result<(), ApiError> {
        self.per_key.check(&key)?;
        self.per_workspace.check(&ws)
    }

    /// A request with run `run`'s token.
    pub fn check_run(&self, run: RunId) -> Result<(), ApiError> {
        self.per_run.check(&run)
    }

    /// Forgets buckets that are full again, every minute until `stop`: memory stays bounded by
    /// the keys seen in the last minute.
    pub fn spawn_pruner(self: &Arc<Self>, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                this.per_key.prune();
                this.per_workspace.prune();
                this.per_run.prune();
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits(key: (u32, u32), ws: (u32, u32)) -> Arc<RateLimits> {
        RateLimits::new(&EdgeSettings {
            per_key: Bucket {
                rps: key.0,
                burst: key.1,
            },
            per_workspace: Bucket {
                rps: ws.0,
                burst: ws.1,
            },
            ..EdgeSettings::default()
        })
    }

    #[test]
    fn a_key_gets_its_burst_then_429_with_when_to_retry() {
        let l = limits((1, 3), (100, 100));
        let (ws, key) = (WorkspaceId::new(), ApiKeyId::new());
        for _ in 0..3 {
            assert!(l.check_key(ws, key).is_ok());
        }
        let e = l.check_key(ws, key).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (429, "rate_limited"));
        let h = e.headers.unwrap();
        assert_eq!(h["retry-after"], "1");
        assert_eq!(h["ratelimit-limit"], "3");
        assert_eq!(h["ratelimit-remaining"], "0");
        // Positive control: another key of the same workspace still has its own bucket.
        assert!(l.check_key(ws, ApiKeyId::new()).is_ok());
    }

    #[test]
    fn a_workspace_bucket_holds_all_its_keys_and_no_other_workspaces() {
        let l = limits((100, 100), (1, 2));
        let ws = WorkspaceId::new();
        assert!(l.check_key(ws, ApiKeyId::new()).is_ok());
        assert!(l.check_key(ws, ApiKeyId::new()).is_ok());
        assert_eq!(
            l.check_key(ws, ApiKeyId::new()).unwrap_err().code,
            "rate_limited"
        );
        assert!(l.check_key(WorkspaceId::new(), ApiKeyId::new()).is_ok());
    }

    #[test]
    fn run_tokens_have_their_own_budget() {
        let l = RateLimits::new(&EdgeSettings {
            per_run: Bucket { rps: 1, burst: 1 },
            ..EdgeSettings::default()
        });
        let run = RunId::new();
        assert!(l.check_run(run).is_ok());
        assert_eq!(l.check_run(run).unwrap_err().code, "rate_limited");
        assert!(l.check_run(RunId::new()).is_ok());
        // API keys are untouched by a run's flood.
        assert!(l.check_key(WorkspaceId::new(), ApiKeyId::new()).is_ok());
    }
}
