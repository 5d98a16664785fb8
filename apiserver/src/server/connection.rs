//! One connection: the TLS handshake within the header timeout, the client
//! certificate classified, HTTP/2 or HTTP/1.1 by ALPN, each request sent
//! through the corridor with its deadline and its peer, and the connection
//! closed when the server stops or it stays idle.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::batched_io::{batched, drive, Pacing};
use super::client_auth::RefusalLog;
use super::tls::PeerClassifier;
use super::Timeouts;
use crate::endpoints::request::Deadline;
use crate::endpoints::respond::Body;
use crate::filters::{Corridor, Handle};
use crate::status::ApiError;

/// What every connection task shares.
pub(super) struct Shared {
    pub(super) acceptor: TlsAcceptor,
    pub(super) h1: hyper::server::conn::http1::Builder,
    pub(super) h2: hyper::server::conn::http2::Builder<TokioExecutor>,
    pub(super) peers: Arc<PeerClassifier>,
    /// The filters and the endpoints (see [`crate::filters`]).
    pub(super) corridor: Corridor,
    pub(super) timeouts: Timeouts,
    pub(super) refusals: RefusalLog,
    /// Set when the server stops accepting: each connection takes no new
    /// requests (HTTP/2 GOAWAY, no HTTP/1.1 keep-alive) and finishes its own.
    pub(super) closing: watch::Receiver<bool>,
    /// Requests taken and not yet answered, server-wide.
    pub(super) dispatch: Arc<Dispatch>,
}

/// Requests between their arrival and the head of their answer, server-wide
/// (a watch counts until its stream starts), and whether new ones are still
/// taken. At shutdown new requests are refused (429 with `Retry-After`, as
/// kube-apiserver's `--shutdown-send-retry-after`) and the server waits for
/// those taken: after that, no write can be acknowledged that the open
/// watches would not see.
#[derive(Debug, Default)]
pub(super) struct Dispatch {
    active: AtomicUsize,
    refusing: std::sync::atomic::AtomicBool,
}

/// A request taken; counted until dropped.
struct Taken(Arc<Dispatch>);

impl Drop for Taken {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Dispatch {
    /// Takes a request, unless new ones are refused (health checks always are taken).
    fn take(self: &Arc<Self>, path: &str) -> Option<Taken> {
        // Counted first, then checked: `refuse_new` followed by `active() == 0`
        // cannot miss a request that got past the check.
        self.active.fetch_add(1, Ordering::SeqCst);
        let taken = Taken(self.clone());
        let health = matches!(path, "/healthz" | "/livez" | "/readyz");
        (health || !self.refusing.load(Ordering::SeqCst)).then_some(taken)
    }

    /// From now on, new requests are refused.
    pub(super) fn refuse_new(&self) {
        self.refusing.store(true, Ordering::SeqCst);
    }

    /// Requests taken and not yet answered.
    pub(super) fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

pub(super) async fn connection(shared: Arc<Shared>, stream: tokio::net::TcpStream, _alive: watch::Receiver<()>) {
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
        let (corridor, activity, dispatch) = (shared.corridor.clone(), activity.clone(), shared.dispatch.clone());
        hyper::service::service_fn(move |mut req| {
            let (corridor, active) = (corridor.clone(), activity.begin());
            let taken = dispatch.take(req.uri().path());
            req.extensions_mut().insert(Deadline(tokio::time::Instant::now() + timeouts.request));
            req.extensions_mut().insert(peer.clone());
            async move {
                let resp = match taken {
                    Some(taken) => {
                        // Run in place: `tower`'s `call` would clone the corridor once more.
                        let resp = Handle::handle(corridor, req).await;
                        drop(taken);
                        resp
                    }
                    None => {
                        crate::filters::refuse(
                            req,
                            &ApiError::too_many("The apiserver is shutting down, please try again later."),
                        )
                        .await
                    }
                };
                let mut active = active;
                if resp.extensions().get::<crate::endpoints::watch::Streaming>().is_some() {
                    active.streams();
                }
                Ok::<_, Infallible>(resp.map(|body| Tracked { body, _active: active }))
            }
        })
    };
    let (io, io_handle) = batched(tls);
    let stop = shared.closing.clone();
    let result = if h2 {
        let conn = shared.h2.serve_connection(TokioIo::new(io), service);
        drive(bounded(conn, activity.clone(), stop, timeouts), &io_handle, activity).await
    } else {
        let conn = shared.h1.serve_connection(TokioIo::new(io), service);
        drive(bounded(conn, activity.clone(), stop, timeouts), &io_handle, activity).await
    };
    io_handle.linger(LINGER).await;
    match result {
        Some(Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
        None => tracing::debug!("an idle connection did not close when asked; dropped"),
        Some(Ok(())) => {}
    }
}

/// How long a closed connection reads what its peer still sends (see
/// [`super::batched_io::Handle::linger`]).
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// Of those, the watches whose events are streaming.
    streaming: AtomicUsize,
    /// A request ended or a stream began since the last write.
    answered: AtomicBool,
    /// When the connection started, or its last request ended; whether any request came.
    since: Mutex<(Instant, bool)>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            active: AtomicUsize::new(0),
            streaming: AtomicUsize::new(0),
            answered: AtomicBool::new(false),
            since: Mutex::new((Instant::now(), false)),
        }
    }

    /// A request began; it ends when the guard (kept by its response body) drops.
    fn begin(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        ActiveGuard { activity: self.clone(), streaming: false }
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

/// The writes of a connection may be held while it carries requests, every
/// one of them a streaming watch, and nothing was answered since the last
/// write (see [`super::batched_io`]).
impl Pacing for Activity {
    fn write_now(&self) -> bool {
        // A stream counts as begun before it counts as streaming, and as
        // ended after: the check errs towards writing.
        let answered = self.answered.swap(false, Ordering::AcqRel);
        let active = self.active.load(Ordering::Acquire);
        answered || active == 0 || active > self.streaming.load(Ordering::Acquire)
    }
}

/// One request in flight (see [`Activity::begin`]).
struct ActiveGuard {
    activity: Arc<Activity>,
    /// Its answer is a watch that streams events.
    streaming: bool,
}

impl ActiveGuard {
    /// The answer is a watch's stream: its head goes out at once, and its
    /// events may be held a moment with those of the connection's other watches.
    fn streams(&mut self) {
        if !self.streaming {
            self.streaming = true;
            self.activity.streaming.fetch_add(1, Ordering::AcqRel);
            self.activity.answered.store(true, Ordering::Release);
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let a = &self.activity;
        *a.since.lock().unwrap_or_else(|p| p.into_inner()) = (Instant::now(), true);
        a.answered.store(true, Ordering::Release);
        if self.streaming {
            a.streaming.fetch_sub(1, Ordering::AcqRel);
        }
        a.active.fetch_sub(1, Ordering::AcqRel);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_of_streaming_watches_may_hold_its_writes() {
        let activity = Arc::new(Activity::new());
        assert!(activity.write_now(), "no request: handshakes and pings go out at once");
        let mut watch = activity.begin();
        assert!(activity.write_now(), "a request being served");
        watch.streams();
        assert!(activity.write_now(), "the head of the new stream");
        assert!(!activity.write_now(), "only events of streaming watches");
        let get = activity.begin();
        assert!(activity.write_now(), "a request beside the watch");
        drop(get);
        assert!(activity.write_now(), "its answer");
        assert!(!activity.write_now());
        drop(watch);
        assert!(activity.write_now(), "the end of the watch");
    }
}
