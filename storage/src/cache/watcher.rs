//! [`CacheWatcher`]: the receiving end of one watch on the cache, or, for a
//! watch resuming from a revision older than the cache's window, on the
//! store itself (which may still hold that history).

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock, Weak};

use super::mailbox::Mailbox;
use super::state::Cut;
use super::{CacheEvent, EventKind, Inner, WatchItem};
use crate::error::{Result, StorageError};
use crate::store::WatchStream;
use crate::types::{Event, KeyValue, Revision, WatchMessage};

/// Where a watcher's live items come from.
enum Source {
    /// The cache's fan-out.
    Cache { cache: Weak<Inner>, id: u64, mailbox: Arc<Mailbox>, cut: Arc<OnceLock<Cut>> },
    /// A watch on the store, from a revision the cache no longer holds.
    Store(WatchStream),
}

/// One registered watch. Yields the replayed or initial events first, then
/// live ones. Ends with an error when the cache cut it off (or the store's
/// watch broke); resume by watching again after [`CacheWatcher::last_revision`].
pub struct CacheWatcher {
    source: Source,
    start_revision: Revision,
    pending: VecDeque<WatchItem>,
    /// Live items already taken (in one lock), not yet yielded.
    ready: VecDeque<WatchItem>,
    last: Revision,
    ended: bool,
}

impl CacheWatcher {
    pub(crate) fn new(
        cache: Weak<Inner>,
        id: u64,
        start_revision: Revision,
        pending: VecDeque<WatchItem>,
        mailbox: Arc<Mailbox>,
        cut: Arc<OnceLock<Cut>>,
    ) -> Self {
        let source = Source::Cache { cache, id, mailbox, cut };
        CacheWatcher { source, start_revision, pending, ready: VecDeque::new(), last: start_revision, ended: false }
    }

    /// A watcher fed by a store watch after `after`.
    pub(crate) fn from_store(stream: WatchStream, after: Revision) -> Self {
        let source = Source::Store(stream);
        CacheWatcher {
            source,
            start_revision: after,
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            last: after,
            ended: false,
        }
    }

    /// The cache revision when the watch was registered: the initial state
    /// (with `WithInitialState`) is complete at this revision.
    pub fn start_revision(&self) -> Revision {
        self.start_revision
    }

    /// True while replayed or initial events are still to be yielded.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// True if an item can be taken now without waiting.
    pub fn has_ready(&self) -> bool {
        let live = match &self.source {
            Source::Cache { mailbox, .. } => mailbox.has_items(),
            Source::Store(stream) => stream.has_ready(),
        };
        !self.ended && (!self.pending.is_empty() || !self.ready.is_empty() || live)
    }

    /// The revision of the last event or bookmark received.
    pub fn last_revision(&self) -> Revision {
        self.last
    }

    /// The next event or bookmark; `None` once the watch has ended.
    pub async fn recv(&mut self) -> Option<Result<WatchItem>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next event or bookmark; `Ready(None)` once the watch has ended.
    pub fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Result<WatchItem>>> {
        use std::task::Poll;
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            if let Some(item) = self.pending.pop_front().or_else(|| self.ready.pop_front()) {
                self.saw(&item);
                return Poll::Ready(Some(Ok(item)));
            }
            let next = match &mut self.source {
                Source::Cache { mailbox, cut, .. } => match mailbox.poll_take_all(&mut self.ready, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(true) if self.ready.is_empty() => return Poll::Pending,
                    Poll::Ready(true) => continue,
                    Poll::Ready(false) => Err(match cut.get() {
                        Some(Cut::TooSlow) => Some(StorageError::WatcherTooSlow { last_revision: self.last }),
                        Some(Cut::Reset { oldest }) => {
                            Some(StorageError::TooOld { requested: self.last, oldest: *oldest })
                        }
                        None => None,
                    }),
                },
                Source::Store(stream) => match stream.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(message))) => Ok(message),
                    Poll::Ready(Some(Err(e))) => Err(Some(e)),
                    Poll::Ready(None) => Err(Some(StorageError::Unavailable("the store's watch ended".into()))),
                },
            };
            match next {
                Ok(message) => self.ready.extend(items_of(message)),
                Err(end) => {
                    self.ended = true;
                    return Poll::Ready(end.map(Err));
                }
            }
        }
    }

    fn saw(&mut self, item: &WatchItem) {
        match item {
            WatchItem::Event(e) if e.revision > self.last => self.last = e.revision,
            WatchItem::Bookmark(r) if *r > self.last => self.last = *r,
            _ => {}
        }
    }

    /// The next event or bookmark if one is ready now, without waiting. The
    /// end of the watch (and its error) is reported by [`CacheWatcher::recv`].
    pub fn try_recv(&mut self) -> Option<WatchItem> {
        if self.ended {
            return None;
        }
        if self.pending.is_empty() && self.ready.is_empty() {
            match &mut self.source {
                Source::Cache { mailbox, .. } => mailbox.take_all(&mut self.ready),
                Source::Store(stream) => {
                    if let Some(Ok(message)) = stream.try_recv() {
                        self.ready.extend(items_of(message));
                    }
                }
            }
        }
        let item = self.pending.pop_front().or_else(|| self.ready.pop_front())?;
        self.saw(&item);
        Some(item)
    }
}

/// The watch items of a message of the store's watch (as the cache would
/// have made them: a put that created the key is ADDED).
fn items_of(message: WatchMessage) -> Vec<WatchItem> {
    match message {
        WatchMessage::Progress(r) => vec![WatchItem::Bookmark(r)],
        WatchMessage::Events(events) => events
            .into_iter()
            .map(|event| {
                let revision = event.revision();
                let (kind, object, prev) = match event {
                    Event::Put { kv, prev } => {
                        let kind =
                            if kv.create_revision == kv.mod_revision { EventKind::Added } else { EventKind::Modified };
                        (kind, kv, prev)
                    }
                    Event::Delete { key, revision, prev } => {
                        let last = match &prev {
                            Some(p) => KeyValue { mod_revision: revision, ..p.clone() },
                            None => {
                                KeyValue { key, value: Default::default(), create_revision: 0, mod_revision: revision }
                            }
                        };
                        (EventKind::Deleted, last, prev)
                    }
                };
                WatchItem::Event(Arc::new(CacheEvent {
                    kind,
                    object: Arc::new(object),
                    prev: prev.map(Arc::new),
                    revision,
                    encoded: Default::default(),
                }))
            })
            .collect(),
    }
}

impl Drop for CacheWatcher {
    fn drop(&mut self) {
        if let Source::Cache { cache, id, mailbox, .. } = &self.source {
            mailbox.close_receiver();
            if let Some(cache) = cache.upgrade() {
                cache.write().remove(*id);
            }
        }
    }
}
