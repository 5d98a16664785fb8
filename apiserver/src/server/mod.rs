//! The accept loop and its connections: TLS, then HTTP/1.1 or HTTP/2 as
//! ALPN chose, the client certificate's identity, then
//! [`crate::endpoints::handle`]. Shutdown is passed in as a future: when it
//! resolves, the listener closes, in-flight requests finish, and `serve`
//! returns.
//!
//! Every connection is bounded in time: the TLS handshake and the first
//! request's headers must come within [`Timeouts::header`] (HTTP/1.1: every
//! request's headers), a connection with no request for [`Timeouts::idle`]
//! is closed (HTTP/2: GOAWAY), HTTP/2 peers must answer keep-alive pings,
//! and a request body must arrive within [`Timeouts::request`] (see
//! [`crate::endpoints::request::read_bytes`]). When `accept` fails (out of file
//! descriptors), the loop backs off and logs once per interval instead of
//! spinning.

pub mod batched_io;
pub mod client_auth;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::app::App;
use crate::endpoints::request::Deadline;
use crate::endpoints::respond::Body;
use crate::filters::{corridor, Corridor};
use crate::server::batched_io::{batched, drive};
use crate::server::client_auth::RefusalLog;
use crate::server::tls::PeerClassifier;

/// How long in-flight requests may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request header block.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// HTTP/2: a ping when nothing arrived for this long...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// ...which must be answered within this.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The time bounds of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// TLS handshake, then the first request's headers (HTTP/1.1: each request's headers).
    pub header: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle: Duration,
    /// A request's body must arrive within this of its start (`--request-timeout`).
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { header: Duration::from_secs(10), idle: Duration::from_secs(90), request: Duration::from_secs(60) }
    }
}

/// Serves HTTPS until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    peers: Arc<PeerClassifier>,
    app: Arc<App>,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new()).header_read_timeout(timeouts.header).max_buf_size(MAX_HEADER_BYTES.max(8192));
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(1000)
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT);
    let shared = Arc::new(Shared {
        acceptor: TlsAcceptor::from(tls),
        h1,
        h2,
        peers,
        corridor: corridor(app.clone()),
        app,
        timeouts,
        refusals: RefusalLog::default(),
    });
    // Each connection holds a receiver: `closed()` tells when all are gone.
    let (connections, _) = watch::channel(());
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.succeeded();
                    stream
                }
                Err(e) => {
                    backoff.failed(&e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // The handshake runs in the connection's own task, so that a slow
        // client cannot hold up the accept loop.
        tokio::spawn(connection(shared.clone(), stream, connections.subscribe()));
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.closed()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}");
    }
    Ok(())
}

/// What every connection task shares.
struct Shared {
    acceptor: TlsAcceptor,
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
    peers: Arc<PeerClassifier>,
    /// The filters and the endpoints (see [`crate::filters`]).
    corridor: Corridor,
    app: Arc<App>,
    timeouts: Timeouts,
    refusals: RefusalLog,
}

async fn connection(shared: Arc<Shared>, stream: tokio::net::TcpStream, _alive: watch::Receiver<()>) {
    let timeouts = shared.timeouts;
    let Ok(Ok(tls)) = tokio::time::timeout(timeouts.header, shared.acceptor.accept(stream)).await else {
        return;
    };
    let (peer, refused) = shared.peers.classify(tls.get_ref().1.peer_certificates());
    if let Some(why) = refused {
        shared.refusals.record(&why);
    }
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let activity = Arc::new(Activity::new());
    let service = {
        let (corridor, activity) = (shared.corridor.clone(), activity.clone());
        hyper::service::service_fn(move |mut req| {
            let (corridor, active) = (corridor.clone(), activity.begin());
            req.extensions_mut().insert(Deadline(tokio::time::Instant::now() + timeouts.request));
            req.extensions_mut().insert(peer.clone());
            async move {
                let resp = corridor.oneshot(req).await?;
                Ok::<_, Infallible>(resp.map(|body| Tracked { body, _active: active }))
            }
        })
    };
    let (io, io_handle) = batched(tls);
    let stop = shared.app.shutdown.clone();
    let result = if h2 {
        let conn = shared.h2.serve_connection(TokioIo::new(io), service);
        drive(bounded(conn, activity, stop, timeouts), io_handle).await
    } else {
        let conn = shared.h1.serve_connection(TokioIo::new(io), service);
        drive(bounded(conn, activity, stop, timeouts), io_handle).await
    };
    match result {
        Some(Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
        None => tracing::debug!("an idle connection did not close when asked; dropped"),
        Some(Ok(())) => {}
    }
}

/// Runs a connection until it ends, shutting it down gracefully when the
/// server stops or when it stays idle (no request in flight) too long: the
/// header timeout before its first request, the idle timeout after. One
/// timer per connection, re-armed only when it fires.
async fn bounded<C>(conn: C, activity: Arc<Activity>, mut stop: watch::Receiver<bool>, t: Timeouts) -> Option<C::Output>
where
    C: GracefulConnection,
{
    tokio::pin!(conn);
    let timer = tokio::time::sleep(t.header);
    tokio::pin!(timer);
    // Set once the connection was asked to close because it was idle: it then
    // has a header timeout to go (a peer that never finished its HTTP/2
    // handshake never will), else it is dropped.
    let mut closing = false;
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => return Some(result),
            _ = stop.wait_for(|stopped| *stopped), if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
            _ = &mut timer => {
                if closing {
                    return None;
                }
                let now = Instant::now();
                match activity.idle_deadline(t) {
                    Some(deadline) if deadline <= now => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                        timer.as_mut().reset((now + t.header).into());
                    }
                    Some(deadline) => timer.as_mut().reset(deadline.into()),
                    // Busy: look again an idle period from now.
                    None => timer.as_mut().reset((now + t.idle).into()),
                }
            }
        }
    }
}

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    active: AtomicUsize,
    /// When the connection started, or its last request ended; whether any request came.
    since: Mutex<(Instant, bool)>,
}

impl Activity {
    fn new() -> Self {
        Activity { active: AtomicUsize::new(0), since: Mutex::new((Instant::now(), false)) }
    }

    /// A request began; it ends when the guard (kept by its response body) drops.
    fn begin(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        ActiveGuard(self.clone())
    }

    /// When the connection counts as idle, if no request is in flight.
    fn idle_deadline(&self, t: Timeouts) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        let (since, served) = *self.since.lock().unwrap_or_else(|p| p.into_inner());
        Some(since + if served { t.idle } else { t.header })
    }
}

/// One request in flight (see [`Activity::begin`]).
struct ActiveGuard(Arc<Activity>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        *self.0.since.lock().unwrap_or_else(|p| p.into_inner()) = (Instant::now(), true);
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until it is
/// sent or dropped (a watch is in flight while it streams).
struct Tracked {
    body: Body,
    _active: ActiveGuard,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Failed accepts (EMFILE, ENFILE, ENOBUFS...): wait before the next, longer
/// each time up to a second, and log once per [`AcceptBackoff::LOG_EVERY`].
#[derive(Default)]
struct AcceptBackoff {
    delay: Duration,
    failures: u64,
    logged: Option<Instant>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(10);

    async fn failed(&mut self, e: &std::io::Error) {
        self.failures += 1;
        if self.logged.is_none_or(|t| t.elapsed() >= Self::LOG_EVERY) {
            tracing::warn!(error = %e, failures = self.failures, "accept failed; backing off (is the file descriptor limit reached?)");
            self.logged = Some(Instant::now());
            self.failures = 0;
        }
        self.delay = (self.delay * 2).clamp(Self::FIRST, Self::MAX);
        tokio::time::sleep(self.delay).await;
    }

    fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}
