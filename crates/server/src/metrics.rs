//! Prometheus metrics, with `prometheus-client`: a registry per server (tests run several in
//! one process), counters kept as things happen in this process — never a query per scrape,
//! so a scrape costs the same however many runs the database holds. Each process counts what
//! it did itself (the requests it served, the runs it took in, the state changes its
//! scheduler made); Prometheus sums across processes (`sum(rate(...))`), and a restart's
//! reset is what `rate` and `increase` expect of a counter.
//!
//! Labels are bounded: method, route template (never the raw path), status, pool type, run
//! state and typed failure reason. Never a workspace, pool, key or run: those are unbounded,
//! and would tell whoever reads the metrics who Ferry's tenants are and what they do.
//!
//! Metric names are listed in `infra/observability/README.md`.

use std::sync::Arc;

use ferry_core::port::RunObserver;
use ferry_core::{FailureReason, PoolType, RunState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The exposition's content type (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolTypeLabels {
    pool_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishedLabels {
    pool_type: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    pool_type: &'static str,
    reason: &'static str,
}

/// `FERRY_METRICS_TOKEN`: the bearer token that opens `/metrics` on the public listener. Only
/// its SHA-256 is kept, and a presented token is compared with it in constant time.
#[derive(Clone)]
pub struct MetricsToken([u8; 32]);

impl MetricsToken {
    /// The token `token` (`None` if empty: no token, no public `/metrics`).
    pub fn new(token: &str) -> Option<MetricsToken> {
        let token = token.trim();
        (!token.is_empty()).then(|| MetricsToken(Sha256::digest(token.as_bytes()).into()))
    }

    /// Whether `given` is the token.
    pub fn matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(given.ct_eq(&self.0))
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken([REDACTED])")
    }
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    submitted: Family<PoolTypeLabels, Counter>,
    started: Family<PoolTypeLabels, Counter>,
    finished: Family<FinishedLabels, Counter>,
    failures: Family<ReasonLabels, Counter>,
    retries: Family<ReasonLabels, Counter>,
}

/// This server's metrics. Cheap to clone: clones count into the same registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let submitted = Family::<PoolTypeLabels, Counter>::default();
        let started = Family::<PoolTypeLabels, Counter>::default();
        let finished = Family::<FinishedLabels, Counter>::default();
        let failures = Family::<ReasonLabels, Counter>::default();
        let retries = Family::<ReasonLabels, Counter>::default();
        // Counter names get their `_total` in the exposition.
        registry.register(
            "ferry_http_requests",
            "HTTP requests handled, by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "ferry_runs_submitted",
            "Runs submitted to this process's API (not an idempotent replay)",
            submitted.clone(),
        );
        registry.register(
            "ferry_runs_started",
            "Run attempts this process's scheduler saw start running",
            started.clone(),
        );
        registry.register(
            "ferry_runs_finished",
            "Runs this process ended, by final state (its scheduler, or its API cancelling a \
             run that had not started)",
            finished.clone(),
        );
        registry.register(
            "ferry_run_failures",
            "Runs this process's scheduler ended failed or crashed, by typed reason",
            failures.clone(),
        );
        registry.register(
            "ferry_run_retries",
            "Run attempts this process's scheduler ended and scheduled again, by typed reason",
            retries.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            requests,
            submitted,
            started,
            finished,
            failures,
            retries,
        }))
    }
}

impl Metrics {
    /// Counts a request. `route` must be the matched route template, never the raw path.
    pub fn record_request(&self, method: &str, route: &str, status: u16) {
        self.0
            .requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    /// Counts a run submitted through this process's API.
    pub fn run_submitted(&self, pool_type: PoolType) {
        self.0
            .submitted
            .get_or_create(&PoolTypeLabels {
                pool_type: pool_type.as_str(),
            })
            .inc();
    }

    /// Counts a run this process ended (its API cancelling a scheduled run).
    pub fn run_finished(&self, pool_type: PoolType, state: RunState) {
        self.0
            .finished
            .get_or_create(&FinishedLabels {
                pool_type: pool_type.as_str(),
                state: state.as_str(),
            })
            .inc();
    }

    /// The exposition (OpenMetrics text).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0.registry);
        out
    }
}

impl RunObserver for Metrics {
    fn transitioned(
        &self,
        pool_type: PoolType,
        _from: RunState,
        to: RunState,
        reason: Option<FailureReason>,
    ) {
        let pool_type = pool_type.as_str();
        match to {
            RunState::Running => self
                .0
                .started
                .get_or_create(&PoolTypeLabels { pool_type })
                .inc(),
            RunState::Scheduled => {
                let reason = reason.map_or("none", FailureReason::as_str);
                self.0
                    .retries
                    .get_or_create(&ReasonLabels { pool_type, reason })
                    .inc()
            }
            s if s.is_terminal() => {
                if let (RunState::Failed | RunState::Crashed, Some(reason)) = (s, reason) {
                    self.0
                        .failures
                        .get_or_create(&ReasonLabels {
                            pool_type,
                            reason: reason.as_str(),
                        })
                        .inc();
                }
                self.0
                    .finished
                    .get_or_create(&FinishedLabels {
                        pool_type,
                        state: s.as_str(),
                    })
                    .inc()
            }
            _ => 0,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_and_run_changes_as_they_happen() {
        let m = Metrics::default();
        m.record_request("GET", "/v1/runs/{id}", 200);
        m.record_request("GET", "/v1/runs/{id}", 200);
        m.run_submitted(PoolType::Managed);
        m.transitioned(
            PoolType::Managed,
            RunState::Pending,
            RunState::Running,
            None,
        );
        m.transitioned(
            PoolType::Managed,
            RunState::Running,
            RunState::Failed,
            Some(FailureReason::Timeout),
        );
        m.transitioned(
            PoolType::Ecs,
            RunState::Running,
            RunState::Scheduled,
            Some(FailureReason::Throttled),
        );
        m.run_finished(PoolType::Ecs, RunState::Cancelled);
        let text = m.render();
        for line in [
            r#"ferry_http_requests_total{method="GET",route="/v1/runs/{id}",status="200"} 2"#,
            r#"ferry_runs_submitted_total{pool_type="managed"} 1"#,
            r#"ferry_runs_started_total{pool_type="managed"} 1"#,
            r#"ferry_runs_finished_total{pool_type="managed",state="failed"} 1"#,
            r#"ferry_run_failures_total{pool_type="managed",reason="timeout"} 1"#,
            r#"ferry_run_retries_total{pool_type="ecs",reason="throttled"} 1"#,
            r#"ferry_runs_finished_total{pool_type="ecs",state="cancelled"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Two servers in one process count apart.
        assert!(!Metrics::default()
            .render()
            .contains("ferry_runs_submitted_total{"));
    }

    #[test]
    fn the_metrics_token_matches_only_itself() {
        let Some(t) = MetricsToken::new("s3cret-token") else {
            panic!("a token that is not empty")
        };
        assert!(t.matches("s3cret-token"));
        for wrong in ["", "s3cret-toke", "s3cret-token2", "S3CRET-TOKEN"] {
            assert!(!t.matches(wrong), "{wrong:?}");
        }
        assert!(MetricsToken::new("  ").is_none());
        assert_eq!(format!("{t:?}"), "MetricsToken([REDACTED])");
    }
}
