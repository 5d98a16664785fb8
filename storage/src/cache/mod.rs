//! The watch cache: one per key prefix (one per resource type), in front of
//! any [`Store`].
//!
//! - [`reflector`]: lists the prefix once, then follows one backend watch,
//!   re-watching after a broken stream and re-listing after compaction.
//! - [`state`]: the current objects, the window of recent events and the
//!   registered watchers; every change is applied and fanned out under one lock.
//! - [`watcher`]: [`CacheWatcher`], what a client's watch reads from.
//! - [`fresh`]: batches the store-revision reads of consistent reads.
//! - [`mailbox`]: the bounded queue from the fan-out to one watcher.
//!
//! Lists are served from memory: a consistent list first waits until the
//! cache has seen the backend's current revision (asking the backend watch
//! for a progress notification, as kube-apiserver's consistent list from
//! cache does).

mod fresh;
mod mailbox;
mod reflector;
mod state;
mod watcher;

use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::error::{Result, StorageError};
use crate::store::Store;
use crate::types::{KeyValue, RangeRequest, Revision};
use state::State;
pub use watcher::CacheWatcher;

/// Tuning of one watch cache.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// How many recent events are kept for watchers that resume.
    pub window: usize,
    /// Events a watcher may have unread before it is cut off.
    pub watcher_buffer: usize,
    /// Keys per page of the initial list.
    pub page_size: usize,
    /// How often a quiet cache asks the backend for progress (and sends bookmarks).
    pub progress_interval: Duration,
    /// How long a consistent read waits for the cache to catch up.
    pub fresh_timeout: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            window: 10_000,
            watcher_buffer: 1024,
            page_size: 5_000,
            progress_interval: Duration::from_secs(5),
            fresh_timeout: Duration::from_secs(3),
        }
    }
}

/// What changed, as a Kubernetes watch reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created.
    Added,
    /// The key was updated.
    Modified,
    /// The key was deleted.
    Deleted,
}

/// One change, shared by every watcher that receives it.
#[derive(Debug, PartialEq, Eq)]
pub struct CacheEvent {
    /// What happened.
    pub kind: EventKind,
    /// The value after the change; for a delete, the last value with the
    /// delete's revision as its mod revision.
    pub object: Arc<KeyValue>,
    /// The value before the change, if any.
    pub prev: Option<Arc<KeyValue>>,
    /// The revision of the change.
    pub revision: Revision,
    /// A slot for the layer above to keep one encoding of this event (with
    /// the key it was made for), shared by every watcher that sends it.
    pub encoded: std::sync::OnceLock<(String, bytes::Bytes)>,
}

/// What a [`CacheWatcher`] yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    /// A change under the watched prefix.
    Event(Arc<CacheEvent>),
    /// Nothing under the prefix changed up to this revision.
    Bookmark(Revision),
}

/// Which revision a read wants, as kube-apiserver's resourceVersion/resourceVersionMatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadRevision {
    /// The latest state: wait until the cache has seen the store's current revision.
    Consistent,
    /// Whatever the cache holds now.
    Any,
    /// At least this revision.
    NotOlderThan(Revision),
    /// Exactly this revision (served by the store when the cache has moved on).
    Exact(Revision),
}

/// A list request.
#[derive(Clone, Debug)]
pub struct ListOptions {
    /// Keys under this prefix (within the cache's prefix).
    pub prefix: String,
    /// The first key of the page (inclusive).
    pub start: Option<String>,
    /// At most this many keys; 0 means all.
    pub limit: usize,
    /// Which revision to read.
    pub revision: ReadRevision,
}

/// A page of a list.
#[derive(Clone, Debug)]
pub struct ListResult {
    /// The values, in key order.
    pub items: Vec<Arc<KeyValue>>,
    /// The revision the page was read at.
    pub revision: Revision,
    /// How many keys follow this page.
    pub remaining: usize,
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchStart {
    /// Every event after this revision (`TooOld` when outside the window).
    After(Revision),
    /// Only changes from now on.
    Now,
    /// One `Added` event per current key, then every later change.
    WithInitialState,
}

/// A watch request.
#[derive(Clone, Debug)]
pub struct WatchRequest {
    /// Keys under this prefix (within the cache's prefix).
    pub prefix: String,
    /// Where to start.
    pub start: WatchStart,
}

/// How long a consistent read waits for in-flight events when the backend
/// cannot be asked for progress, before it reads the store instead.
const CONSISTENT_READ_PATIENCE: Duration = Duration::from_millis(50);

/// Where a read is served (see [`WatchCache::read_point`]).
enum ReadPoint {
    /// From memory, at exactly this revision if one is given.
    Cache(Option<Revision>),
    /// From the store, at this revision (the latest if none).
    Store(Option<Revision>),
}

/// Shared between the handle, the reflector task and watchers.
pub(crate) struct Inner {
    store: Arc<dyn Store>,
    prefix: String,
    config: CacheConfig,
    state: RwLock<State>,
    /// The revision the cache has reached (-1 until the first list is in).
    revision: watch::Sender<Revision>,
    /// Wakes the reflector to ask the backend for progress.
    progress_wanted: Notify,
    /// Batched reads of the store's current revision.
    fresh: fresh::FreshRevision,
}

impl Inner {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A watch cache over the keys under one prefix. Dropping it stops the
/// backend watch; watchers then end.
pub struct WatchCache {
    inner: Arc<Inner>,
    _stop: watch::Sender<()>,
}

impl WatchCache {
    /// Starts a cache of `prefix`: lists it, then follows a backend watch.
    pub fn start(store: Arc<dyn Store>, prefix: &str, config: CacheConfig) -> Result<Self> {
        if !prefix.starts_with(store.prefix()) {
            return Err(StorageError::invalid(prefix, format!("it is outside the store prefix {:?}", store.prefix())));
        }
        let inner = Arc::new(Inner {
            fresh: fresh::FreshRevision::start(store.clone()),
            store,
            prefix: prefix.to_string(),
            state: RwLock::new(State::new(config.window)),
            config,
            revision: watch::channel(-1).0,
            progress_wanted: Notify::new(),
        });
        let (stop, stopped) = watch::channel(());
        tokio::spawn(reflector::run(inner.clone(), stopped));
        Ok(WatchCache { inner, _stop: stop })
    }

    /// The prefix this cache holds.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The revision the cache has caught up to.
    pub fn revision(&self) -> Revision {
        *self.inner.revision.borrow()
    }

    /// How many watchers are registered.
    pub fn watcher_count(&self) -> usize {
        self.inner.read().watcher_count()
    }

    /// Waits until the cache has seen `target`, asking the backend for
    /// progress; false when it has not within `patience`.
    async fn wait_for(&self, target: Revision, patience: Duration) -> Result<bool> {
        let mut rx = self.inner.revision.subscribe();
        let reached = |r: &Revision| *r >= target && *r >= 0;
        if reached(&rx.borrow()) {
            return Ok(true);
        }
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            self.inner.progress_wanted.notify_one();
            let step = deadline.min(tokio::time::Instant::now() + Duration::from_millis(100));
            match tokio::time::timeout_at(step, rx.wait_for(reached)).await {
                Ok(Ok(_)) => return Ok(true),
                Ok(Err(_)) => return Err(StorageError::Unavailable("the watch cache stopped".into())),
                Err(_) if tokio::time::Instant::now() >= deadline => return Ok(false),
                Err(_) => {}
            }
        }
    }

    /// Waits until the cache can serve reads at `target`: `Timeout` when it cannot.
    async fn fresh(&self, target: Revision) -> Result<()> {
        let patience = self.inner.config.fresh_timeout;
        match self.wait_for(target, patience).await? {
            true => Ok(()),
            false => Err(StorageError::Timeout(patience)),
        }
    }

    fn check_prefix(&self, prefix: &str) -> Result<()> {
        if prefix.starts_with(&self.inner.prefix) {
            Ok(())
        } else {
            Err(StorageError::invalid(prefix, format!("it is outside the cached prefix {:?}", self.inner.prefix)))
        }
    }

    /// A page of the keys under `opts.prefix`.
    pub async fn list(&self, opts: &ListOptions) -> Result<ListResult> {
        self.check_prefix(&opts.prefix)?;
        if let Some(start) = &opts.start {
            if !start.starts_with(&opts.prefix) {
                return Err(StorageError::invalid(start, "the start key is outside the listed prefix"));
            }
        }
        let page = match self.read_point(opts.revision).await? {
            ReadPoint::Cache(exact) => self.inner.read().list(&opts.prefix, opts.start.as_deref(), opts.limit, exact),
            ReadPoint::Store(revision) => return self.list_from_store(opts, revision).await,
        };
        match (page, opts.revision) {
            (Some(page), _) => Ok(page),
            (None, ReadRevision::Exact(r)) => self.list_from_store(opts, Some(r)).await,
            (None, _) => Err(StorageError::Internal("cache list without a revision".into())),
        }
    }

    /// Where a read at `revision` is served: from memory once the cache has
    /// caught up (at exactly the given revision, if any), or from the store.
    async fn read_point(&self, revision: ReadRevision) -> Result<ReadPoint> {
        let target = match revision {
            ReadRevision::Consistent => {
                let target = match self.inner.store.local_revision() {
                    Some(known) => known,
                    None => self.inner.fresh.get().await?,
                };
                if !self.inner.store.progress_on_request() {
                    // Progress cannot be asked for: give in-flight events a
                    // moment, then read the store itself.
                    if !self.wait_for(target, CONSISTENT_READ_PATIENCE).await? {
                        return Ok(ReadPoint::Store(None));
                    }
                }
                target
            }
            ReadRevision::Any => 0,
            ReadRevision::NotOlderThan(r) | ReadRevision::Exact(r) => r,
        };
        self.fresh(target).await?;
        Ok(ReadPoint::Cache(match revision {
            ReadRevision::Exact(r) => Some(r),
            _ => None,
        }))
    }

    async fn list_from_store(&self, opts: &ListOptions, revision: Option<Revision>) -> Result<ListResult> {
        let req = RangeRequest { prefix: opts.prefix.clone(), start: opts.start.clone(), limit: opts.limit, revision };
        let page = self.inner.store.range(&req).await?;
        Ok(ListResult {
            items: page.kvs.into_iter().map(Arc::new).collect(),
            revision: page.revision,
            remaining: page.remaining,
        })
    }

    /// The value of `key` at the requested revision (a lookup in memory,
    /// unless the revision is one the cache has moved past).
    pub async fn get(&self, key: &str, revision: ReadRevision) -> Result<Option<Arc<KeyValue>>> {
        self.check_prefix(key)?;
        let from_store = match self.read_point(revision).await? {
            ReadPoint::Cache(exact) => match self.inner.read().get(key, exact) {
                Some(found) => return Ok(found),
                None => exact,
            },
            ReadPoint::Store(revision) => revision,
        };
        let opts = ListOptions { prefix: key.to_string(), start: None, limit: 1, revision };
        let page = self.list_from_store(&opts, from_store).await?;
        Ok(page.items.into_iter().find(|kv| kv.key == key))
    }

    /// Registers a watcher. `After(r)` older than the window is served from
    /// the store's history (a watch of the store's own) while the store still
    /// holds it (after a restart, or on another replica), else `Compacted`.
    pub async fn watch(&self, req: &WatchRequest) -> Result<CacheWatcher> {
        self.check_prefix(&req.prefix)?;
        match req.start {
            WatchStart::After(r) => self.fresh(r).await?,
            _ => self.fresh(0).await?,
        }
        let registered = self.inner.write().register(&req.prefix, req.start, self.inner.config.watcher_buffer);
        match (registered, req.start) {
            (Ok((id, start_revision, pending, mailbox, cut)), _) => {
                Ok(CacheWatcher::new(Arc::downgrade(&self.inner), id, start_revision, pending, mailbox, cut))
            }
            (Err(StorageError::TooOld { .. }), WatchStart::After(after)) => {
                let stream = self.inner.store.watch(&req.prefix, after).await?;
                Ok(CacheWatcher::from_store(stream, after))
            }
            (Err(e), _) => Err(e),
        }
    }
}

/// The keys of `map` under `prefix` from `start`, in order.
pub(crate) fn keys_from<'a, V>(
    map: &'a std::collections::BTreeMap<String, V>,
    prefix: &'a str,
    start: Option<&str>,
) -> impl Iterator<Item = (&'a String, &'a V)> + 'a {
    let from = start.filter(|s| *s > prefix).unwrap_or(prefix).to_string();
    map.range::<String, _>((Bound::Included(from), Bound::Unbounded)).take_while(move |(k, _)| k.starts_with(prefix))
}
