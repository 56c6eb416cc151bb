//! Prometheus metrics: request counts by route template (bounded labels) and status class,
//! and run counts by state read from the store at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// Requests counted by (method, route template, status).
type RequestCounts = BTreeMap<(String, String, u16), u64>;

#[derive(Clone, Default)]
pub struct Metrics {
    requests: Arc<Mutex<RequestCounts>>,
}

impl Metrics {
    /// Counts a request. `route` must be the matched route template, never the raw path.
    pub fn record_request(&self, method: &str, route: &str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        *m.entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
    }

    /// The text exposition format.
    pub fn render(&self, runs_by_state: &[(String, i64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP ferry_http_requests_total HTTP requests handled.\n");
        out.push_str("# TYPE ferry_http_requests_total counter\n");
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for ((method, route, status), n) in requests {
            let _ = writeln!(
                out,
                "ferry_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP ferry_runs Runs by state.\n# TYPE ferry_runs gauge\n");
        for (state, n) in runs_by_state {
            let _ = writeln!(out, "ferry_runs{{state=\"{state}\"}} {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::default();
        m.record_request("GET", "/v1/runs/{id}", 200);
        m.record_request("GET", "/v1/runs/{id}", 200);
        let text = m.render(&[("completed".into(), 3)]);
        assert!(text.contains(
            "ferry_http_requests_total{method=\"GET\",route=\"/v1/runs/{id}\",status=\"200\"} 2"
        ));
        assert!(text.contains("ferry_runs{state=\"completed\"} 3"));
    }
}
