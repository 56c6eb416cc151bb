//! Bounded log capture: a flow's stdout, stderr and structured log calls become log lines,
//! up to the run's `log_bytes`; past that, output is counted and discarded and the log is
//! marked truncated, while the flow runs on.
//!
//! wasmtime-wasi's `MemoryOutputPipe` will not do: once full it fails the guest's writes.
//! Writes here never fail and never block: they are split into lines into a buffer that the
//! run's supervisor drains to the [`LogSink`](ferry_core::port::LogSink) while the flow runs.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use chrono::Utc;
use ferry_core::port::{LogLine, LogStream};
use tokio::sync::Notify;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::LogStats;

/// Lines buffered before the supervisor is woken to hand them to the sink.
const WAKE_AT_LINES: usize = 256;
/// What a guest may write in one call, as told through `check-write`. Anything works: every
/// write is accepted whole.
const WRITE_PERMIT: usize = 1024 * 1024;

/// The capture of one run, shared by its streams, its host calls and its supervisor.
#[derive(Debug)]
pub(crate) struct Capture {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Debug)]
struct State {
    cap: u64,
    max_line: usize,
    stats: LogStats,
    /// Bytes of a line not yet ended, per stream: stdout, stderr.
    partial: [Vec<u8>; 2],
    pending: Vec<LogLine>,
}

impl State {
    /// Keeps `line` if it fits under the cap; otherwise marks the log truncated. Once
    /// truncated everything after is dropped too, so the kept log is a prefix of the output.
    fn keep(&mut self, stream: LogStream, line: String) {
        let cost = line.len() as u64 + 1;
        if self.stats.truncated || self.stats.kept_bytes + cost > self.cap {
            self.stats.truncated = true;
            self.stats.dropped_bytes += cost;
            return;
        }
        self.stats.kept_bytes += cost;
        self.pending.push(LogLine {
            ts: Utc::now(),
            stream,
            line,
        });
    }

    fn keep_bytes(&mut self, stream: LogStream, bytes: &[u8]) {
        let mut line = String::from_utf8_lossy(bytes).into_owned();
        if line.ends_with('\r') {
            line.pop();
        }
        self.keep(stream, line);
    }
}

fn index(stream: LogStream) -> usize {
    match stream {
        LogStream::Stderr => 1,
        _ => 0,
    }
}

impl Capture {
    pub(crate) fn new(cap_bytes: u64, max_line_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                cap: cap_bytes,
                max_line: max_line_bytes.max(1),
                stats: LogStats::default(),
                partial: [Vec::new(), Vec::new()],
                pending: Vec::new(),
            }),
            wake: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent in a way that
        // matters more than losing the log: carry on with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Raw output of a stream (stdout or stderr): split into lines, a line longer than the
    /// line limit split too.
    pub(crate) fn write(&self, stream: LogStream, mut bytes: &[u8]) {
        let mut s = self.state();
        if s.stats.truncated {
            // The common case of a flood: count and drop without looking at the bytes.
            s.stats.dropped_bytes += bytes.len() as u64;
            return;
        }
        let i = index(stream);
        while !bytes.is_empty() {
            let room = s.max_line - s.partial[i].len();
            let window = &bytes[..bytes.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let mut line = std::mem::take(&mut s.partial[i]);
                    line.extend_from_slice(&window[..nl]);
                    s.keep_bytes(stream, &line);
                    bytes = &bytes[nl + 1..];
                }
                None if window.len() == room => {
                    let mut line = std::mem::take(&mut s.partial[i]);
                    line.extend_from_slice(window);
                    s.keep_bytes(stream, &line);
                    bytes = &bytes[room..];
                }
                None => {
                    s.partial[i].extend_from_slice(window);
                    bytes = &[];
                }
            }
            if s.stats.truncated {
                s.stats.dropped_bytes += bytes.len() as u64;
                break;
            }
        }
        if s.pending.len() >= WAKE_AT_LINES {
            self.wake.notify_one();
        }
    }

    /// One whole line (a structured log call, a progress report).
    pub(crate) fn line(&self, stream: LogStream, line: String) {
        let mut s = self.state();
        s.keep(stream, line);
        if s.pending.len() >= WAKE_AT_LINES {
            self.wake.notify_one();
        }
    }

    /// Resolves when enough lines are buffered to be worth handing over.
    pub(crate) async fn wanted(&self) {
        self.wake.notified().await;
    }

    /// The lines buffered so far.
    pub(crate) fn drain(&self) -> Vec<LogLine> {
        std::mem::take(&mut self.state().pending)
    }

    /// Ends the capture: unfinished lines are kept as lines; returns the last lines and the
    /// totals.
    pub(crate) fn finish(&self) -> (Vec<LogLine>, LogStats) {
        let mut s = self.state();
        for (i, stream) in [(0, LogStream::Stdout), (1, LogStream::Stderr)] {
            let rest = std::mem::take(&mut s.partial[i]);
            if !rest.is_empty() {
                s.keep_bytes(stream, &rest);
            }
        }
        (std::mem::take(&mut s.pending), s.stats)
    }

    #[cfg(test)]
    fn stats(&self) -> LogStats {
        self.state().stats
    }
}

/// stdout or stderr of a run, as WASI sees it.
#[derive(Debug, Clone)]
pub(crate) struct CaptureStream {
    capture: Arc<Capture>,
    stream: LogStream,
}

impl CaptureStream {
    pub(crate) fn new(capture: Arc<Capture>, stream: LogStream) -> Self {
        Self { capture, stream }
    }
}

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.capture.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.capture.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(c: &Capture) -> Vec<String> {
        c.finish().0.into_iter().map(|l| l.line).collect()
    }

    #[test]
    fn output_is_split_into_lines_across_writes() {
        let c = Capture::new(1000, 100);
        c.write(LogStream::Stdout, b"a\nb");
        c.write(LogStream::Stdout, b"c\r\nd");
        assert_eq!(lines(&c), ["a", "bc", "d"]);
    }

    #[test]
    fn streams_keep_their_own_partial_lines() {
        let c = Capture::new(1000, 100);
        c.write(LogStream::Stdout, b"out-");
        c.write(LogStream::Stderr, b"err\n");
        c.write(LogStream::Stdout, b"line\n");
        let got: Vec<(LogStream, String)> = c
            .finish()
            .0
            .into_iter()
            .map(|l| (l.stream, l.line))
            .collect();
        assert_eq!(
            got,
            [
                (LogStream::Stderr, "err".to_owned()),
                (LogStream::Stdout, "out-line".to_owned())
            ]
        );
    }

    #[test]
    fn long_lines_are_split() {
        let c = Capture::new(1000, 4);
        c.write(LogStream::Stdout, b"abcdefghij\n");
        assert_eq!(lines(&c), ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn past_the_cap_output_is_counted_and_dropped() {
        let c = Capture::new(6, 100);
        c.write(LogStream::Stdout, b"ab\ncd\nef\ngh\n");
        let (kept, stats) = c.finish();
        assert_eq!(kept.len(), 2);
        assert_eq!(
            stats,
            LogStats {
                kept_bytes: 6,
                dropped_bytes: 6,
                truncated: true
            }
        );
        c.write(LogStream::Stdout, b"more");
        assert_eq!(c.stats().dropped_bytes, 10);
    }

    #[test]
    fn a_zero_cap_keeps_nothing() {
        let c = Capture::new(0, 100);
        c.line(LogStream::Flow, "x".to_owned());
        let (kept, stats) = c.finish();
        assert!(kept.is_empty());
        assert!(stats.truncated);
    }
}
