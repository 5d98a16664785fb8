//! Watch responses: one JSON event per line over a chunked 200 response,
//! flushed per event, from a watch-cache watcher.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use serde_json::{json, Value};
use storage::cache::EventKind;
use storage::cache::WatchStart;
use storage::{CacheEvent, CacheWatcher, WatchItem, WatchRequest};

use super::read;
use super::resources::Call;
use crate::endpoints::respond::Body;
use crate::registry::decode;
use crate::registry::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;

/// What a watch stream needs besides the watcher.
pub struct WatchParams {
    /// `group/version` of the URL.
    pub api_version: String,
    /// Kind of the type (for bookmarks and tombstones).
    pub kind: String,
    /// The type's storage prefix (names and namespaces of tombstones).
    pub key_prefix: String,
    /// Selectors applied to every event.
    pub labels: LabelSelector,
    /// Field selectors applied to every event.
    pub fields: FieldSelector,
    /// Send BOOKMARK events.
    pub bookmarks: bool,
    /// After the initial state, send a bookmark marked `k8s.io/initial-events-end`.
    pub initial_events_end: bool,
    /// End the watch after this long.
    pub timeout: Duration,
    /// Ends the watch when the server shuts down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// This watch's place in the server-wide count.
    pub slot: WatchSlot,
    /// Send each object as a one-row Table (`kubectl get -w`).
    pub table: Option<TableOutput>,
    /// Counts this watch in `apiserver_longrunning_requests` while it is open.
    pub gauge: Option<crate::observe::WatchGauge>,
}

/// Objects answered as Tables (see [`discovery::table`]).
#[derive(Clone, Debug)]
pub struct TableOutput {
    /// `v1` or `v1beta1` of meta.k8s.io.
    pub version: &'static str,
    /// What each row carries of its object.
    pub include: discovery::table::IncludeObject,
    /// The type (its columns).
    pub resource: discovery::Resource,
}

impl TableOutput {
    /// A Table of `items`, with column definitions, carrying `metadata` (list metadata).
    pub fn table(&self, items: Vec<Value>, metadata: Value) -> Value {
        let columns = discovery::table::columns(&self.resource);
        let now = std::time::SystemTime::now();
        let rows = items.into_iter().map(|o| discovery::table::row(o, &self.resource, self.include, now)).collect();
        discovery::table::table(self.version, Some(&columns), rows, metadata)
    }

    /// A one-row Table of `obj` (its resourceVersion as the table's).
    pub fn single(&self, obj: Value) -> Value {
        let rv = crate::registry::meta_value(&obj, "resourceVersion").cloned().unwrap_or(Value::Null);
        self.table(vec![obj], json!({ "resourceVersion": rv }))
    }
}

/// One counted open watch; released when dropped.
pub struct WatchSlot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl WatchSlot {
    /// Takes a place if fewer than `max` watches are open.
    pub fn acquire(count: &std::sync::Arc<std::sync::atomic::AtomicUsize>, max: usize) -> Option<WatchSlot> {
        use std::sync::atomic::Ordering;
        count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(WatchSlot(count.clone()))
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Events ready at once are sent together, up to about this many bytes.
const BATCH_BYTES: usize = 64 * 1024;

fn line(kind: &str, object: Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(p: &WatchParams, revision: i64, end_of_initial: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if end_of_initial {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line("BOOKMARK", json!({"kind": p.kind, "apiVersion": p.api_version, "metadata": meta}))
}

/// What one cache event becomes for a watcher.
enum Line {
    /// Send this line.
    Send(Bytes),
    /// Nothing for this watcher (its selectors do not match).
    Skip,
    /// The object cannot be read: send this ERROR line and end the watch,
    /// so that the client re-lists and meets the list's StorageReadError
    /// instead of silently missing an event.
    End(Bytes),
}

/// The object of an event: decoded, or, for a DELETED event of an object
/// that cannot be read, its tombstone (kind, name, namespace, revision).
fn event_object(p: &WatchParams, e: &CacheEvent) -> Result<Value, Bytes> {
    match decode(&e.object, &p.api_version) {
        Ok(obj) => Ok(obj),
        Err(_) if e.kind == EventKind::Deleted => {
            Ok(crate::registry::tombstone(&e.object, &p.key_prefix, &p.kind, &p.api_version))
        }
        Err(err) => {
            tracing::error!(key = %e.object.key, error = %err.message, "a watched object cannot be read; ending the watch");
            Err(line("ERROR", err.to_status()))
        }
    }
}

/// Turns one cache event into the line a client sees, applying selectors:
/// an object that starts matching is ADDED, one that stops is DELETED.
fn event_line(p: &WatchParams, e: &CacheEvent) -> Line {
    if p.labels.is_empty() && p.fields.is_empty() && p.table.is_none() {
        // Every watcher without selectors sends the same line: encode it once.
        if let Some((version, line)) = e.encoded.get() {
            if *version == p.api_version {
                return Line::Send(line.clone());
            }
        }
        let kind = match e.kind {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        };
        let obj = match event_object(p, e) {
            Ok(obj) => obj,
            Err(error) => return Line::End(error),
        };
        let encoded = line(kind, obj);
        let _ = e.encoded.set((p.api_version.clone(), encoded.clone()));
        return Line::Send(encoded);
    }
    let obj = match event_object(p, e) {
        Ok(obj) => obj,
        Err(error) => return Line::End(error),
    };
    let matches = |o: &Value| p.labels.matches(o) && p.fields.matches(o);
    let now = matches(&obj);
    // A previous version that cannot be read matched nothing.
    let before =
        e.prev.as_ref().and_then(|prev| decode(prev, &p.api_version).ok()).map(|o| matches(&o)).unwrap_or(false);
    let kind = match (e.kind, before, now) {
        (EventKind::Added, _, true) => "ADDED",
        (EventKind::Modified, true, true) => "MODIFIED",
        (EventKind::Modified, false, true) => "ADDED",
        (EventKind::Modified, true, false) => "DELETED",
        (EventKind::Deleted, _, _) if now || before => "DELETED",
        _ => return Line::Skip,
    };
    let obj = match &p.table {
        Some(t) => t.single(obj),
        None => obj,
    };
    Line::Send(line(kind, obj))
}

struct State {
    watcher: CacheWatcher,
    params: WatchParams,
    /// Resolves at timeoutSeconds or at shutdown.
    end: End,
    initial_end_pending: bool,
    done: bool,
}

/// The end of a watch: its timeout or the server's shutdown. One future for
/// the whole watch wakes the task then; between events it is polled again only
/// when the clock or the shutdown signal says it may be ready (or the task's
/// waker changed), which keeps the wait for each event cheap.
struct End {
    future: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    deadline: tokio::time::Instant,
    shutdown: tokio::sync::watch::Receiver<bool>,
    registered: Option<std::task::Waker>,
}

impl End {
    fn new(timeout: Duration, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut signal = shutdown.clone();
        let future = Box::pin(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = signal.wait_for(|down| *down) => {}
            }
        });
        End { future, deadline, shutdown, registered: None }
    }

    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let registered = self.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        let maybe_ready = tokio::time::Instant::now() >= self.deadline || self.shutdown.has_changed().unwrap_or(true);
        if registered && !maybe_ready {
            return std::task::Poll::Pending;
        }
        self.registered = Some(cx.waker().clone());
        self.future.as_mut().poll(cx)
    }
}

/// Marks a watch's streaming response (a response extension): the
/// connection may hold its events a moment to send more of them per write
/// (see [`crate::server::batched_io`]).
#[derive(Clone, Copy, Debug)]
pub struct Streaming;

/// The streaming 200 response of a watch.
pub fn respond(watcher: CacheWatcher, params: WatchParams) -> Response<Body> {
    let end = End::new(params.timeout, params.shutdown.clone());
    let initial_end_pending = params.initial_events_end;
    let state = State { watcher, params, end, initial_end_pending, done: false };
    let mut resp = Response::new(WatchBody(state).boxed_unsync());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    resp.extensions_mut().insert(Streaming);
    resp
}

/// The body of a watch response: polled in place, so that an event costs no
/// new future and no move of the watch's state.
struct WatchBody(State);

impl hyper::body::Body for WatchBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        let st = &mut self.get_mut().0;
        loop {
            if st.done {
                return Poll::Ready(None);
            }
            if st.initial_end_pending && !st.watcher.has_pending() {
                st.initial_end_pending = false;
                let b = bookmark(&st.params, st.watcher.start_revision(), true);
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            let next = match st.watcher.poll_recv(cx) {
                Poll::Ready(next) => next,
                Poll::Pending => {
                    // Nothing to send: the watch may have reached its end.
                    if st.end.poll(cx).is_ready() {
                        st.done = true;
                        return Poll::Ready(None);
                    }
                    return Poll::Pending;
                }
            };
            let bytes = match next {
                None => return Poll::Ready(None),
                Some(Ok(WatchItem::Event(e))) => match event_line(&st.params, &e) {
                    Line::Send(l) => l,
                    Line::Skip => continue,
                    Line::End(l) => {
                        st.done = true;
                        l
                    }
                },
                Some(Ok(WatchItem::Bookmark(r))) if st.params.bookmarks => bookmark(&st.params, r, false),
                Some(Ok(WatchItem::Bookmark(_))) => continue,
                Some(Err(e)) => {
                    st.done = true;
                    let status = ApiError::from_storage(e, &Default::default()).to_status();
                    line("ERROR", status)
                }
            };
            return Poll::Ready(Some(Ok(Frame::data(st.with_ready_events(bytes)))));
        }
    }
}

impl State {
    /// Appends whatever else is ready to `first`: under load this turns many
    /// small writes and wake-ups into few. A lone event is sent as is (its
    /// bytes are shared by every watcher).
    fn with_ready_events(&mut self, first: Bytes) -> Bytes {
        if self.done || (!self.initial_end_pending && !self.watcher.has_ready()) {
            return first;
        }
        let mut buf = Vec::with_capacity(first.len().saturating_mul(4).min(BATCH_BYTES));
        crate::copy::extend(&mut buf, &first);
        while buf.len() < BATCH_BYTES && !self.done {
            if self.initial_end_pending && !self.watcher.has_pending() {
                self.initial_end_pending = false;
                crate::copy::extend(&mut buf, &bookmark(&self.params, self.watcher.start_revision(), true));
                continue;
            }
            match self.watcher.try_recv() {
                Some(WatchItem::Event(e)) => match event_line(&self.params, &e) {
                    Line::Send(l) => crate::copy::extend(&mut buf, &l),
                    Line::Skip => {}
                    Line::End(l) => {
                        crate::copy::extend(&mut buf, &l);
                        self.done = true;
                    }
                },
                Some(WatchItem::Bookmark(r)) if self.params.bookmarks => {
                    crate::copy::extend(&mut buf, &bookmark(&self.params, r, false))
                }
                Some(WatchItem::Bookmark(_)) => {}
                None => break,
            }
        }
        Bytes::from(buf)
    }
}

/// A stream with one ERROR event, for a watch that cannot start (e.g. 410).
pub fn error_stream(e: &ApiError) -> Response<Body> {
    let mut resp = Response::new(crate::endpoints::respond::full(line("ERROR", e.to_status())));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Longest watch a client may ask for with timeoutSeconds.
const MAX_WATCH_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Longest watch when the client gives no timeoutSeconds (kube: 30–60 min).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Starts a watch (`watch=true` or the `/watch/` path): registered on the
/// type's cache, streamed by [`respond`], counted in `apiserver_longrunning_requests`.
pub async fn start(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let (app, scope, q, name) = (call.app, call.scope, &call.req.query, call.req.name.as_deref());
    let table = read::table_output(call)?;
    let gauge = app.metrics.watch_opened(&call.req.recorded());
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let mut fields = FieldSelector::parse_for(
        q.get("fieldSelector").map(String::as_str).unwrap_or(""),
        scope.rt.builtin.map_or(&[], |b| b.field_labels()),
    )?;
    if let Some(name) = name {
        fields = FieldSelector::parse(&format!("metadata.name={name}"))?;
    }
    let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
    let rv = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let start = match rv {
        "" | "0" => WatchStart::WithInitialState,
        _ if send_initial => WatchStart::WithInitialState,
        r => WatchStart::After(read::parse_revision(r)?),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| Duration::from_secs(t.min(MAX_WATCH_TIMEOUT.as_secs())))
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let slot = WatchSlot::acquire(&app.watches, app.max_watches).ok_or_else(|| {
        ApiError::too_many(format!("too many open watches (at most {}); retry later", app.max_watches))
    })?;
    let req = WatchRequest { prefix: scope.rt.list_prefix(scope.namespace), start };
    let watcher = match scope.rt.cache.watch(&req).await {
        Ok(w) => w,
        Err(e @ (storage::StorageError::TooOld { .. } | storage::StorageError::Compacted { .. })) => {
            return Ok(error_stream(&ApiError::from_storage(e, &scope.target(""))));
        }
        Err(e) => return Err(ApiError::from_storage(e, &scope.target(""))),
    };
    let params = WatchParams {
        api_version: scope.rt.api_version(scope.version),
        kind: scope.rt.kind.clone(),
        key_prefix: scope.rt.key_prefix.clone(),
        labels,
        fields,
        bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
        initial_events_end: send_initial,
        timeout,
        shutdown: app.shutdown.clone(),
        slot,
        table,
        gauge: Some(gauge),
    };
    Ok(respond(watcher, params))
}
