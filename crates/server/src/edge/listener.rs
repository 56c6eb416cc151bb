//! The accept loop: TLS (when configured), HTTP/1.1 with a header-read timeout, a watchdog
//! that closes connections on which nothing moves, and caps on open connections per client
//! address and in all. A connection over a cap is closed at once, before a byte is read: a
//! flood of half-open connections costs the flooder its own slots, not other clients theirs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::client::Peer;
use super::settings::EdgeSettings;

/// What a listener enforces on its connections.
#[derive(Clone)]
pub struct Listening {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
}

impl Listening {
    pub fn new(s: &EdgeSettings, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Self {
            tls,
            header_timeout: s.header_timeout,
            idle_timeout: s.idle_timeout,
            max_connections: s.max_connections,
            max_connections_per_peer: s.max_connections_per_peer,
        }
    }
}

/// Binds `addr` and serves `app` on it until `shutdown`; then stops accepting, lets requests
/// in flight finish, and ends.
pub async fn listen(
    addr: SocketAddr,
    app: Router,
    listening: Listening,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(accept_loop(listener, app, Arc::new(listening), shutdown));
    Ok((local, task))
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    listening: Arc<Listening>,
    shutdown: CancellationToken,
) {
    let caps = Arc::new(Caps::new(
        listening.max_connections,
        listening.max_connections_per_peer,
    ));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(error) => {
                // Out of file descriptors, or a connection reset before it was accepted: wait
                // a little rather than spin.
                tracing::warn!(error = %error, "Accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = caps.admit(peer.ip()) else {
            tracing::debug!(%peer, "Connection refused: over the connection cap");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tracing::trace!(%peer, "Connection accepted");
        connections.spawn(serve_connection(
            stream,
            peer,
            app.clone(),
            listening.clone(),
            shutdown.clone(),
            slot,
        ));
    }
    connections.close();
    connections.wait().await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    listening: Arc<Listening>,
    shutdown: CancellationToken,
    _slot: Slot,
) {
    let moved = Arc::new(LastMoved::new());
    let stream = Watched {
        inner: stream,
        moved: moved.clone(),
    };
    match &listening.tls {
        None => serve_http(TokioIo::new(stream), peer, app, &listening, shutdown, moved).await,
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
            let handshake = tokio::time::timeout(listening.header_timeout, acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(tls)) => {
                    serve_http(TokioIo::new(tls), peer, app, &listening, shutdown, moved).await
                }
                Ok(Err(error)) => tracing::debug!(%peer, error = %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_http<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    app: Router,
    listening: &Listening,
    shutdown: CancellationToken,
    moved: Arc<LastMoved>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(listening.header_timeout)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let idle_left = listening.idle_timeout.saturating_sub(moved.since());
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, error = %error, "Connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(idle_left) => {
                if moved.since() >= listening.idle_timeout {
                    tracing::debug!(%peer, "Connection closed: nothing moved for the idle timeout");
                    return;
                }
            }
        }
    }
}

/// When a byte last moved on a connection, in either direction.
struct LastMoved {
    start: Instant,
    /// Milliseconds after `start`.
    at: AtomicU64,
}

impl LastMoved {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            at: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.at.store(ms, Ordering::Relaxed);
    }

    fn since(&self) -> Duration {
        let at = Duration::from_millis(self.at.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(at)
    }
}

/// A stream that notes when bytes move through it.
struct Watched<S> {
    inner: S,
    moved: Arc<LastMoved>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Open connections, by client (an IPv6 client by its /64: one host owns a whole /64) and in
/// all.
struct Caps {
    total_max: usize,
    per_peer_max: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; released when dropped.
struct Slot {
    caps: Arc<Caps>,
    peer: IpAddr,
}

fn peer_key(ip: IpAddr) -> IpAddr {
    match ferry_core::net::canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Caps {
    fn new(total_max: usize, per_peer_max: usize) -> Self {
        Self {
            total_max,
            per_peer_max,
            open: Mutex::new((0, HashMap::new())),
        }
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let peer = peer_key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, per_peer) = &mut *open;
        let mine = per_peer.entry(peer).or_insert(0);
        if *total >= self.total_max || *mine >= self.per_peer_max {
            if *mine == 0 {
                per_peer.remove(&peer);
            }
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(Slot {
            caps: self.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .caps
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (total, per_peer) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_peer_and_in_all_and_free_on_drop() {
        let caps = Arc::new(Caps::new(3, 2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = caps.admit(a).unwrap();
        let _a2 = caps.admit(a).unwrap();
        assert!(caps.admit(a).is_none(), "a third from one peer");
        let _b1 = caps.admit(b).unwrap();
        assert!(caps.admit(b).is_none(), "a fourth in all");
        drop(a1);
        assert!(caps.admit(a).is_some(), "a slot freed is a slot again");
    }

    #[test]
    fn an_ipv6_host_counts_by_its_slash_64() {
        let caps = Arc::new(Caps::new(100, 1));
        let _x = caps.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(caps.admit("2001:db8:1:2::ffff".parse().unwrap()).is_none());
        assert!(caps.admit("2001:db8:1:3::1".parse().unwrap()).is_some());
    }
}
