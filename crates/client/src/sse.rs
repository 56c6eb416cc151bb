//! A parser of server-sent events (the `text/event-stream` format of the HTML standard), fed
//! with chunks that may split lines, line endings and UTF-8 characters anywhere.
//!
//! Only what a client needs: `event`, `data` (multi-line), `id`; `retry` and unknown fields are
//! ignored, as are comments (lines starting with `:`, used for keep-alives).

use std::collections::VecDeque;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event` field, `message` when absent.
    pub event: String,
    /// The `data` lines joined with `\n`.
    pub data: String,
    /// The last event id seen so far in the stream, if any.
    pub id: Option<String>,
}

/// A line longer than the parser accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a line is longer than {max} bytes")]
pub(crate) struct LineTooLong {
    pub max: usize,
}

/// The incremental parser: feed it bytes, take the events out.
#[derive(Debug)]
pub(crate) struct SseParser {
    /// The bytes of the line being read, without its ending.
    line: Vec<u8>,
    /// The previous byte was a CR: a LF right after it belongs to the same line ending.
    after_cr: bool,
    /// Still at the start of the stream, where a UTF-8 BOM is skipped.
    at_start: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    ready: VecDeque<SseEvent>,
    max_line: usize,
}

/// Longest line accepted by default: far beyond any log line Ferry keeps.
pub(crate) const DEFAULT_MAX_LINE: usize = 16 * 1024 * 1024;

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_LINE)
    }
}

impl SseParser {
    pub fn new(max_line: usize) -> Self {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            event: String::new(),
            data: String::new(),
            has_data: false,
            last_id: None,
            ready: VecDeque::new(),
            max_line,
        }
    }

    /// Consumes a chunk; complete events become available from [`SseParser::next_event`].
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), LineTooLong> {
        if self.at_start {
            // The BOM may itself arrive split across chunks.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let have = self.line.len();
            let take = chunk.len().min(BOM.len() - have);
            if chunk[..take] == BOM[have..have + take] {
                self.line.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if self.line.len() < BOM.len() {
                    return Ok(());
                }
                self.line.clear();
            }
            self.at_start = false;
        }
        for &b in chunk {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line();
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() >= self.max_line {
                        return Err(LineTooLong { max: self.max_line });
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    /// The next complete event, in order.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    fn end_line(&mut self) {
        let raw = std::mem::take(&mut self.line);
        let line = String::from_utf8_lossy(&raw);
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            return;
        }
        self.has_data = false;
        self.ready.push_back(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            id: None,
        }
    }

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c).unwrap();
            while let Some(e) = p.next_event() {
                out.push(e);
            }
        }
        out
    }

    /// Feeds `input` split at every pair of positions (every single split point, and every
    /// split into three) and checks each gives `want`.
    fn check_every_split(input: &[u8], want: &[SseEvent]) {
        assert_eq!(parse_chunks(&[input]), want, "whole input");
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes), want, "byte by byte");
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let got = parse_chunks(&[&input[..i], &input[i..j], &input[j..]]);
                assert_eq!(got, want, "split at {i} and {j}");
            }
        }
    }

    const STREAM: &str = ": keep-alive\n\
        event: line\n\
        data: {\"seq\":1,\"line\":\"héllo wörld ✓\"}\n\
        \n\
        event: line\r\n\
        data: first\r\n\
        data:second\r\n\
        data\r\n\
        \r\n\
        event: end\r\
        data: {\"state\":\"completed\",\"truncated\":false}\r\
        \r";

    #[test]
    fn every_chunk_boundary_gives_the_same_events() {
        let want = vec![
            ev("line", "{\"seq\":1,\"line\":\"héllo wörld ✓\"}"),
            ev("line", "first\nsecond\n"),
            ev("end", "{\"state\":\"completed\",\"truncated\":false}"),
        ];
        check_every_split(STREAM.as_bytes(), &want);
    }

    #[test]
    fn bom_is_skipped_at_every_split() {
        let mut input = b"\xEF\xBB\xBF".to_vec();
        input.extend_from_slice(b"data: x\n\n");
        check_every_split(&input, &[ev("message", "x")]);
    }

    #[test]
    fn a_partial_bom_is_data() {
        // Only a whole BOM is skipped; "\xEF" followed by something else is line content.
        let got = parse_chunks(&[b"\xEF", b"data: x\n\n"]);
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn field_parsing_table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("data: a\n\n", &[("message", "a")]),
            ("data:a\n\n", &[("message", "a")]),
            ("data:  a\n\n", &[("message", " a")]),
            ("data: a:b: c\n\n", &[("message", "a:b: c")]),
            ("data\n\n", &[("message", "")]),
            ("data:\ndata:\n\n", &[("message", "\n")]),
            ("event: x\n\n", &[]),
            (
                "event: x\ndata: 1\n\ndata: 2\n\n",
                &[("x", "1"), ("message", "2")],
            ),
            (": comment\ndata: 1\n\n", &[("message", "1")]),
            (":\n\n", &[]),
            ("retry: 1000\ndata: 1\n\n", &[("message", "1")]),
            ("unknown: z\ndata: 1\n\n", &[("message", "1")]),
            ("EVENT: x\ndata: 1\n\n", &[("message", "1")]),
            ("data: 1\n", &[]),
            ("data: 1", &[]),
            ("\n\n\ndata: 1\n\n\n", &[("message", "1")]),
            ("data: 1\r\n\r\n", &[("message", "1")]),
            (
                "data: 1\r\rdata: 2\n\n",
                &[("message", "1"), ("message", "2")],
            ),
            ("data: 1\n\r\n", &[("message", "1")]),
            ("data: 1\r\n\n", &[("message", "1")]),
        ];
        for (input, want) in cases {
            let want: Vec<SseEvent> = want.iter().map(|(e, d)| ev(e, d)).collect();
            assert_eq!(parse_chunks(&[input.as_bytes()]), want, "input {input:?}");
        }
    }

    #[test]
    fn ids_are_remembered_across_events() {
        let got =
            parse_chunks(&[b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: x\0y\ndata: d\n\n"]);
        let ids: Vec<Option<&str>> = got.iter().map(|e| e.id.as_deref()).collect();
        assert_eq!(ids, [Some("7"), Some("7"), Some(""), Some("")]);
    }

    #[test]
    fn overlong_lines_are_refused() {
        let mut p = SseParser::new(8);
        p.feed(b"data: 12").unwrap();
        assert_eq!(p.feed(b"3"), Err(LineTooLong { max: 8 }));
        let mut p = SseParser::new(8);
        p.feed(b"data: 12\ndata: 34\n\n").unwrap();
        assert_eq!(p.next_event(), Some(ev("message", "12\n34")));
    }
}
