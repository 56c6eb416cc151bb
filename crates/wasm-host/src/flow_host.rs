//! The `ferry:flow` world (sandbox/wit, the single source of truth) on the host side: the
//! generated bindings, the per-run store state, and the `ferry:flow/host` implementation with
//! its call limits.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_core::port::LogStream;
use secrecy::{ExposeSecret, SecretString};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capture::Capture;
use crate::config::HostCallLimits;
use crate::limiter::Limiter;
use crate::run::RunCtl;

wasmtime::component::bindgen!({
    path: "../../sandbox/wit",
    world: "flow",
    // Host functions are quick and synchronous; the export is called asynchronously so the
    // run can be interrupted (epoch yields) and raced against its deadline.
    exports: { default: async },
});

use self::ferry::flow::host::{self, LogLevel};

/// Longest secret name looked up; a longer one is answered `none` without a lookup.
const MAX_SECRET_NAME: usize = 256;

/// What every run's store holds, whatever the artifact's kind.
pub(crate) struct RunCommon {
    pub(crate) limiter: Limiter,
    pub(crate) ctl: Arc<RunCtl>,
}

/// Store state of a component run (kinds 1 and 2).
pub(crate) struct ComponentState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) common: RunCommon,
    pub(crate) flow: FlowHost,
}

/// Store state of a preview1 module run (kind 3).
pub(crate) struct ModuleState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) common: RunCommon,
}

/// Access to the part of the store state every run has.
pub(crate) trait HasCommon: Send + 'static {
    fn common(&mut self) -> &mut RunCommon;
    fn common_ref(&self) -> &RunCommon;
}

impl HasCommon for ComponentState {
    fn common(&mut self) -> &mut RunCommon {
        &mut self.common
    }
    fn common_ref(&self) -> &RunCommon {
        &self.common
    }
}

impl HasCommon for ModuleState {
    fn common(&mut self) -> &mut RunCommon {
        &mut self.common
    }
    fn common_ref(&self) -> &RunCommon {
        &self.common
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The `ferry:flow/host` side of one run.
pub(crate) struct FlowHost {
    capture: Arc<Capture>,
    secrets: HashMap<String, SecretString>,
    limits: HostCallLimits,
    log_calls: u64,
    secret_lookups: u64,
    progress_calls: u64,
}

impl FlowHost {
    pub(crate) fn new(
        capture: Arc<Capture>,
        secrets: HashMap<String, SecretString>,
        limits: HostCallLimits,
    ) -> Self {
        Self {
            capture,
            secrets,
            limits,
            log_calls: 0,
            secret_lookups: 0,
            progress_calls: 0,
        }
    }

    /// Counts a call against its limit; says so in the log the first time the limit is
    /// passed. Returns whether the call may proceed.
    fn admit(&self, count: u64, limit: u64, what: &str) -> bool {
        if count <= limit {
            return true;
        }
        if count == limit + 1 {
            self.capture.line(
                LogStream::Ferry,
                format!("the flow made more than {limit} {what} calls; further ones are ignored"),
            );
        }
        false
    }

    /// `message` cut to the message limit (on a character boundary) and made one line: a
    /// flow cannot forge further log lines with newlines.
    fn one_line(&self, message: &str) -> String {
        let max = self.limits.max_log_message_bytes;
        let mut cut = message.len().min(max);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut line = message[..cut].replace('\r', "\\r").replace('\n', "\\n");
        if cut < message.len() {
            line.push_str(" [cut]");
        }
        line
    }
}

impl host::Host for ComponentState {
    fn log(&mut self, level: LogLevel, message: String) {
        let f = &mut self.flow;
        f.log_calls += 1;
        if !f.admit(f.log_calls, f.limits.max_log_calls, "log") {
            return;
        }
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        let line = format!("[{level}] {}", f.one_line(&message));
        f.capture.line(LogStream::Flow, line);
    }

    fn secret(&mut self, name: String) -> Option<String> {
        let f = &mut self.flow;
        f.secret_lookups += 1;
        if !f.admit(f.secret_lookups, f.limits.max_secret_lookups, "secret")
            || name.len() > MAX_SECRET_NAME
        {
            return None;
        }
        f.secrets.get(&name).map(|s| s.expose_secret().to_owned())
    }

    fn progress(&mut self, fraction: f32, message: String) {
        let f = &mut self.flow;
        f.progress_calls += 1;
        if !f.admit(f.progress_calls, f.limits.max_progress_calls, "progress") {
            return;
        }
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let line = format!(
            "[progress {:.0}%] {}",
            f64::from(fraction) * 100.0,
            f.one_line(&message)
        );
        f.capture.line(LogStream::Flow, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(limits: HostCallLimits) -> (Arc<Capture>, FlowHost) {
        let capture = Capture::new(1 << 20, 1 << 10);
        let mut secrets = HashMap::new();
        secrets.insert("token".to_owned(), SecretString::from("s3cret"));
        (capture.clone(), FlowHost::new(capture, secrets, limits))
    }

    #[test]
    fn messages_are_cut_and_kept_on_one_line() {
        let (_, h) = host(HostCallLimits {
            max_log_message_bytes: 5,
            ..HostCallLimits::default()
        });
        assert_eq!(h.one_line("a\nb"), "a\\nb");
        assert_eq!(h.one_line("abcdefgh"), "abcde [cut]");
        // "é" is two bytes: the cut backs off to a character boundary.
        assert_eq!(h.one_line("abcdé"), "abcd [cut]");
    }

    #[test]
    fn calls_past_the_limit_are_refused_and_noted_once() {
        let (capture, h) = host(HostCallLimits::default());
        assert!(h.admit(2, 2, "log"));
        assert!(!h.admit(3, 2, "log"));
        assert!(!h.admit(4, 2, "log"));
        let lines = capture.drain();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].stream, LogStream::Ferry);
    }
}
