//! Following a run's log as it is written: `GET /v1/runs/{id}/logs?follow=true` streams
//! server-sent events (`line`, then one `end`); a connection that drops before `end` is
//! resumed after the last line seen, so no line is lost or repeated. An `error` event (the
//! key the stream was opened with was revoked) ends it with that error, not resumed.

use std::time::Duration;

use futures::Stream;
use reqwest::{Method, Response};

use crate::models::{FollowEvent, LogLine};
use crate::sse::{SseEvent, SseParser};
use crate::{Client, Error};

/// Reconnections in a row (without a byte received in between) before giving up.
const MAX_RECONNECTS: u32 = 10;
/// The first delay before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(serde::Deserialize)]
struct EndData {
    state: String,
    #[serde(default)]
    truncated: bool,
}

impl Client {
    /// Follows the log of run `id` from after line `after` (a `seq`; from the start when
    /// `None`) until the run ends. The stream yields each line once, in order, then
    /// [`FollowEvent::End`], then finishes.
    ///
    /// If the connection drops, it reconnects with `after` = the last line seen (up to
    /// ten times in a row, backing off from 100 ms to 5 s; a 502, 503 or 504 answer to a
    /// reconnection counts as a drop). An error ends the stream: the first connection failing,
    /// any other error status, a malformed event, or too many drops in a row.
    pub fn follow_logs(
        &self,
        id: &str,
        after: Option<i64>,
    ) -> impl Stream<Item = Result<FollowEvent, Error>> + Send + 'static {
        let follow = Follow {
            client: self.clone(),
            run_id: id.to_owned(),
            last_seq: after,
            conn: None,
            connected_once: false,
            failures: 0,
            done: false,
        };
        futures::stream::unfold(follow, |mut f| async move {
            let item = f.next().await?;
            Some((item, f))
        })
    }
}

struct Follow {
    client: Client,
    run_id: String,
    last_seq: Option<i64>,
    conn: Option<(Response, SseParser)>,
    connected_once: bool,
    /// Reconnections since a byte last arrived.
    failures: u32,
    done: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<Result<FollowEvent, Error>> {
        loop {
            if self.done {
                return None;
            }
            let Some((response, parser)) = &mut self.conn else {
                match self.connect().await {
                    Ok(response) => {
                        self.connected_once = true;
                        self.conn = Some((response, SseParser::default()));
                    }
                    // Only a stream that worked once is worth waiting for: a first failure
                    // is more likely a wrong URL or run id than a restart. A 502-504 from a
                    // proxy or a restarting server counts as transient.
                    Err(e) if e.is_transient() && self.connected_once => {
                        if let Err(e) = self.backoff(e).await {
                            return Some(Err(e));
                        }
                    }
                    Err(e) => return Some(self.fail(e)),
                }
                continue;
            };
            if let Some(event) = parser.next_event() {
                match self.handle(event) {
                    Some(item) => return Some(item),
                    None => continue,
                }
            }
            match response.chunk().await {
                Ok(Some(bytes)) => {
                    self.failures = 0;
                    if let Err(e) = parser.feed(&bytes) {
                        let e = Error::Stream {
                            what: self.what(),
                            reason: e.to_string(),
                        };
                        return Some(self.fail(e));
                    }
                }
                Ok(None) => {
                    self.conn = None;
                    let e = Error::Stream {
                        what: self.what(),
                        reason: "the server closed the stream before the run ended".into(),
                    };
                    if let Err(e) = self.backoff(e).await {
                        return Some(Err(e));
                    }
                }
                Err(e) => {
                    self.conn = None;
                    let e = self.client.transport(e);
                    if let Err(e) = self.backoff(e).await {
                        return Some(Err(e));
                    }
                }
            }
        }
    }

    fn what(&self) -> String {
        format!("the log of run {}", self.run_id)
    }

    async fn connect(&self) -> Result<Response, Error> {
        let mut query = vec![("follow", "true".to_owned())];
        if let Some(after) = self.last_seq {
            query.push(("after", after.to_string()));
        }
        let request = self
            .client
            .streaming_request(Method::GET, &["v1", "runs", &self.run_id, "logs"])?
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .query(&query);
        let response = self.client.send(request).await?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("text/event-stream") {
            return Err(Error::Stream {
                what: self.what(),
                reason: format!("expected text/event-stream, got {content_type:?}"),
            });
        }
        Ok(response)
    }

    /// Waits before the next reconnection, or gives up with `e` after too many.
    async fn backoff(&mut self, e: Error) -> Result<(), Error> {
        if self.failures >= MAX_RECONNECTS {
            self.done = true;
            return Err(e);
        }
        let delay = FIRST_BACKOFF
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_BACKOFF);
        self.failures += 1;
        tokio::time::sleep(delay).await;
        Ok(())
    }

    fn fail(&mut self, e: Error) -> Result<FollowEvent, Error> {
        self.done = true;
        self.conn = None;
        Err(e)
    }

    /// Turns an event into what the stream yields; `None` for what it skips.
    fn handle(&mut self, event: SseEvent) -> Option<Result<FollowEvent, Error>> {
        match event.event.as_str() {
            "line" => {
                let line: LogLine = match serde_json::from_str(&event.data) {
                    Ok(line) => line,
                    Err(source) => {
                        let what = self.what();
                        return Some(self.fail(Error::Decode { what, source }));
                    }
                };
                // A resumed stream starts after `last_seq`; this guards against a server that
                // repeats itself anyway.
                if self.last_seq.is_some_and(|last| line.seq <= last) {
                    return None;
                }
                self.last_seq = Some(line.seq);
                Some(Ok(FollowEvent::Line(line)))
            }
            "end" => {
                let end: EndData = match serde_json::from_str(&event.data) {
                    Ok(end) => end,
                    Err(source) => {
                        let what = self.what();
                        return Some(self.fail(Error::Decode { what, source }));
                    }
                };
                self.done = true;
                self.conn = None;
                Some(Ok(FollowEvent::End {
                    state: end.state,
                    truncated: end.truncated,
                }))
            }
            // The server ended the stream for a reason that a reconnection would meet again
            // (the key was revoked): an API error, as a 401 would be.
            "error" => {
                #[derive(serde::Deserialize)]
                struct Body {
                    error: Detail,
                }
                #[derive(serde::Deserialize)]
                struct Detail {
                    code: String,
                    message: String,
                }
                let body: Body = match serde_json::from_str(&event.data) {
                    Ok(body) => body,
                    Err(source) => {
                        let what = self.what();
                        return Some(self.fail(Error::Decode { what, source }));
                    }
                };
                Some(self.fail(Error::Api {
                    status: 401,
                    code: body.error.code,
                    message: body.error.message,
                    request_id: None,
                }))
            }
            // Event types this client does not know are for newer clients.
            _ => None,
        }
    }
}
