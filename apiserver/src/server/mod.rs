//! The accept loop and its connections (see [`connection`]): TLS, then
//! HTTP/1.1 or HTTP/2 as ALPN chose, the client certificate's identity, then
//! the request corridor ([`crate::filters::corridor`]). Shutdown is passed in as a future: when it
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
pub mod connection;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::filters::corridor;
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

/// How the server stops once the shutdown future resolves.
pub struct Stopping {
    /// Flipped when watches are to end (the last step before connections close).
    pub end_watches: watch::Sender<bool>,
}

/// Serves HTTPS until `shutdown` resolves, then stops in kube-apiserver's
/// order: stop accepting connections, and new requests on open ones (429
/// with `Retry-After` to those that still come); let the requests in flight
/// finish
/// (within `--request-timeout`); let their events reach the open watches
/// (every served type's cache catches up with the store); end the watches;
/// close the connections. (`/readyz` fails from the moment `shutdown` begins,
/// see `--shutdown-delay-duration`.)
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    peers: Arc<PeerClassifier>,
    app: Arc<App>,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
    stopping: Stopping,
) -> std::io::Result<()> {
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new()).header_read_timeout(timeouts.header).max_buf_size(MAX_HEADER_BYTES.max(8192));
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(1000)
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT);
    let (closing_tx, closing_rx) = watch::channel(false);
    let dispatch = Arc::new(connection::Dispatch::default());
    let shared = Arc::new(connection::Shared {
        acceptor: TlsAcceptor::from(tls),
        h1,
        h2,
        peers,
        corridor: corridor(app.clone()),
        timeouts,
        refusals: RefusalLog::default(),
        closing: closing_rx,
        dispatch: dispatch.clone(),
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
        tokio::spawn(connection::connection(shared.clone(), stream, connections.subscribe()));
    }
    drop(listener);
    let _ = closing_tx.send(true);
    dispatch.refuse_new();
    let began = Instant::now();
    while dispatch.active() > 0 && began.elapsed() < timeouts.request {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let caught_up = tokio::time::timeout(CATCH_UP_TIMEOUT, catch_up(&app)).await.is_ok();
    tracing::info!(
        in_flight = dispatch.active(),
        caught_up,
        "requests in flight finished in {:?}; ending watches",
        began.elapsed()
    );
    let _ = stopping.end_watches.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.closed()).await.is_err() {
        tracing::warn!("connections did not close within {DRAIN_TIMEOUT:?}");
    }
    Ok(())
}

/// Longest wait for the watch caches to deliver the last writes at shutdown.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits until every served type's cache has seen the store's current
/// revision, so that open watches get every write answered before them.
async fn catch_up(app: &App) {
    let Ok(revision) = app.store.current_revision().await else { return };
    for t in app.served.all() {
        let opts = storage::ListOptions {
            prefix: t.key_prefix.clone(),
            start: None,
            limit: 1,
            revision: storage::ReadRevision::NotOlderThan(revision),
        };
        let _ = t.cache.list(&opts).await;
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
