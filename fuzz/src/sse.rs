//! `sse`: the client's parser of server-sent events (crates/client/src/sse.rs), which reads
//! `GET /v1/runs/{id}/events?follow=1` and `/logs?follow=1` streams, whose data lines carry a
//! flow's own log output.
//!
//! Input: the stream's bytes; its first byte also picks how they are cut into chunks.
//!
//! Properties:
//! - the events are those of a plain reading of the text/event-stream format (the reference
//!   below: lines ended by CR, LF or CRLF; a leading BOM skipped; `event`, `data`, `id`
//!   fields; comments and other fields ignored; an event dispatched at a blank line when it
//!   has data), however the bytes are cut into chunks;
//! - a line over the limit is refused at the same point however the bytes are cut, after the
//!   same events;
//! - no event name holds a line break, no data a CR, no id a NUL or line break.

use super::parsers::sse::{SseEvent, SseParser};

/// A small line limit, so the fuzzer reaches it.
const MAX_LINE: usize = 64;

pub fn check(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = feed(stream, &[stream.len()]);
    let cuts = cuts(seed, stream.len());
    assert_eq!(feed(stream, &cuts), whole, "cut at {cuts:?}");
    let bytewise: Vec<usize> = vec![1; stream.len()];
    assert_eq!(feed(stream, &bytewise), whole, "fed byte by byte");
    let (events, too_long) = &whole;
    assert_eq!(
        (events.as_slice(), *too_long),
        (reference(stream).0.as_slice(), reference(stream).1),
        "not what the format says"
    );
    for e in events {
        assert!(!e.event.contains(['\r', '\n']), "event name {:?}", e.event);
        assert!(!e.data.contains('\r'), "data {:?}", e.data);
        if let Some(id) = &e.id {
            assert!(!id.contains(['\0', '\r', '\n']), "id {id:?}");
        }
    }
}

/// Chunk lengths from `seed`: sizes 1 to 16 in a pattern the seed picks.
fn cuts(seed: u8, len: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = len;
    let mut state = u32::from(seed) | 1;
    while left > 0 {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = ((state >> 16) as usize % 16 + 1).min(left);
        out.push(n);
        left -= n;
    }
    out
}

/// The events, in order, until the stream ends or a line is too long (then `true`).
fn feed(stream: &[u8], chunks: &[usize]) -> (Vec<SseEvent>, bool) {
    let mut parser = SseParser::new(MAX_LINE);
    let mut events = Vec::new();
    let mut rest = stream;
    for &n in chunks {
        let (chunk, after) = rest.split_at(n.min(rest.len()));
        rest = after;
        let fed = parser.feed(chunk);
        while let Some(e) = parser.next_event() {
            events.push(e);
        }
        if fed.is_err() {
            return (events, true);
        }
    }
    (events, false)
}

/// The format read plainly: the whole stream at once, split into lines first.
fn reference(stream: &[u8]) -> (Vec<SseEvent>, bool) {
    let stream = stream.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(stream);
    let mut events = Vec::new();
    let (mut event, mut data, mut has_data, mut id) = (String::new(), String::new(), false, None);
    let mut i = 0;
    let mut start = 0;
    while i < stream.len() {
        let b = stream[i];
        if b != b'\r' && b != b'\n' {
            if i - start >= MAX_LINE {
                return (events, true);
            }
            i += 1;
            continue;
        }
        let line = String::from_utf8_lossy(&stream[start..i]).into_owned();
        i += if b == b'\r' && stream.get(i + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        start = i;
        if line.is_empty() {
            if has_data {
                events.push(SseEvent {
                    event: if event.is_empty() {
                        "message".into()
                    } else {
                        event.clone()
                    },
                    data: std::mem::take(&mut data),
                    id: id.clone(),
                });
            }
            has_data = false;
            event.clear();
            data.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => event = value.to_owned(),
            "data" => {
                if has_data {
                    data.push('\n');
                }
                data.push_str(value);
                has_data = true;
            }
            "id" if !value.contains('\0') => id = Some(value.to_owned()),
            _ => {}
        }
    }
    (events, false)
}
