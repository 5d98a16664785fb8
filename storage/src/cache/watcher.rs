//! [`CacheWatcher`]: the receiving end of one watch on the cache.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock, Weak};

use super::mailbox::Mailbox;
use super::state::Cut;
use super::{Inner, WatchItem};
use crate::error::{Result, StorageError};
use crate::types::Revision;

/// One registered watch. Yields the replayed or initial events first, then
/// live ones. Ends with an error when the cache cut it off; resume by
/// watching again after [`CacheWatcher::last_revision`].
pub struct CacheWatcher {
    cache: Weak<Inner>,
    id: u64,
    start_revision: Revision,
    pending: VecDeque<WatchItem>,
    /// Live items already taken from the mailbox (in one lock), not yet yielded.
    ready: VecDeque<WatchItem>,
    mailbox: Arc<Mailbox>,
    cut: Arc<OnceLock<Cut>>,
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
        let last = start_revision;
        CacheWatcher { cache, id, start_revision, pending, ready: VecDeque::new(), mailbox, cut, last, ended: false }
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
        !self.ended && (!self.pending.is_empty() || !self.ready.is_empty() || self.mailbox.has_items())
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
        if self.ended {
            return Poll::Ready(None);
        }
        let item = match self.pending.pop_front().or_else(|| self.ready.pop_front()) {
            Some(item) => item,
            None => match self.mailbox.poll_take_all(&mut self.ready, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(true) => match self.ready.pop_front() {
                    Some(item) => item,
                    None => return Poll::Pending,
                },
                Poll::Ready(false) => {
                    self.ended = true;
                    return Poll::Ready(match self.cut.get() {
                        Some(Cut::TooSlow) => Some(Err(StorageError::WatcherTooSlow { last_revision: self.last })),
                        Some(Cut::Reset { oldest }) => {
                            Some(Err(StorageError::TooOld { requested: self.last, oldest: *oldest }))
                        }
                        None => None,
                    });
                }
            },
        };
        match &item {
            WatchItem::Event(e) if e.revision > self.last => self.last = e.revision,
            WatchItem::Bookmark(r) if *r > self.last => self.last = *r,
            _ => {}
        }
        Poll::Ready(Some(Ok(item)))
    }
}

impl CacheWatcher {
    /// The next event or bookmark if one is ready now, without waiting. The
    /// end of the watch (and its error) is reported by [`CacheWatcher::recv`].
    pub fn try_recv(&mut self) -> Option<WatchItem> {
        if self.ended {
            return None;
        }
        if self.pending.is_empty() && self.ready.is_empty() {
            self.mailbox.take_all(&mut self.ready);
        }
        let item = self.pending.pop_front().or_else(|| self.ready.pop_front())?;
        match &item {
            WatchItem::Event(e) if e.revision > self.last => self.last = e.revision,
            WatchItem::Bookmark(r) if *r > self.last => self.last = *r,
            _ => {}
        }
        Some(item)
    }
}

impl Drop for CacheWatcher {
    fn drop(&mut self) {
        self.mailbox.close_receiver();
        if let Some(cache) = self.cache.upgrade() {
            cache.write().remove(self.id);
        }
    }
}
