//! [`Mailbox`]: the bounded queue between the cache's fan-out and one watcher.
//!
//! A lock-protected `VecDeque` and one waker: the fan-out pushes every event to
//! thousands of mailboxes, so a push is one uncontended lock, one push and at
//! most one wake, with no allocation once the queue has grown (an idle
//! watcher's queue allocates nothing).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::WatchItem;

/// Why a push was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue holds its capacity: the watcher is too slow.
    Full,
    /// The receiver is gone.
    Closed,
}

struct Queue {
    items: VecDeque<WatchItem>,
    capacity: usize,
    /// The sender (the cache's slot) is gone: no more items will come.
    sender_gone: bool,
    /// The receiver is gone: pushing is pointless.
    receiver_gone: bool,
    waker: Option<Waker>,
}

/// A bounded single-producer, single-consumer queue of watch items.
pub(crate) struct Mailbox {
    queue: Mutex<Queue>,
}

impl Mailbox {
    /// An empty mailbox holding at most `capacity` items.
    pub(crate) fn new(capacity: usize) -> Self {
        let queue = Queue {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            sender_gone: false,
            receiver_gone: false,
            waker: None,
        };
        Mailbox { queue: Mutex::new(queue) }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `item` and wakes the receiver if it waits.
    pub(crate) fn push(&self, item: WatchItem) -> Result<(), PushError> {
        let waker = {
            let mut q = self.lock();
            if q.receiver_gone {
                return Err(PushError::Closed);
            }
            if q.items.len() >= q.capacity {
                return Err(PushError::Full);
            }
            q.items.push_back(item);
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// No more items will be pushed; the receiver sees the end after the queued ones.
    pub(crate) fn close_sender(&self) {
        let waker = {
            let mut q = self.lock();
            q.sender_gone = true;
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The receiver is gone: drop what is queued and refuse further pushes.
    pub(crate) fn close_receiver(&self) {
        let mut q = self.lock();
        q.receiver_gone = true;
        q.items.clear();
        q.waker = None;
    }

    /// Moves every queued item to the end of `into`, under one lock (the
    /// buffers are swapped when `into` is empty, so nothing is copied).
    pub(crate) fn take_all(&self, into: &mut VecDeque<WatchItem>) {
        let mut q = self.lock();
        if into.is_empty() {
            std::mem::swap(&mut q.items, into);
        } else {
            into.extend(q.items.drain(..));
        }
    }

    /// Like [`Mailbox::take_all`], but registers the receiver's waker when
    /// nothing is queued; `Ready(false)` once the sender is gone and the queue is empty.
    pub(crate) fn poll_take_all(&self, into: &mut VecDeque<WatchItem>, cx: &mut Context<'_>) -> Poll<bool> {
        let mut q = self.lock();
        if !q.items.is_empty() {
            if into.is_empty() {
                std::mem::swap(&mut q.items, into);
            } else {
                into.extend(q.items.drain(..));
            }
            return Poll::Ready(true);
        }
        if q.sender_gone {
            return Poll::Ready(false);
        }
        match &mut q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// True if an item is queued.
    pub(crate) fn has_items(&self) -> bool {
        !self.lock().items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_in_order_then_the_end() {
        let m = std::sync::Arc::new(Mailbox::new(4));
        for r in 1..=3 {
            m.push(WatchItem::Bookmark(r)).expect("room");
        }
        m.close_sender();
        let mut got = VecDeque::new();
        while std::future::poll_fn(|cx| m.poll_take_all(&mut got, cx)).await {}
        let got: Vec<i64> =
            got.into_iter().filter_map(|i| if let WatchItem::Bookmark(r) = i { Some(r) } else { None }).collect();
        assert_eq!(got, vec![1, 2, 3]);
    }

    #[test]
    fn bounded_and_closed() {
        let m = Mailbox::new(2);
        assert_eq!(m.push(WatchItem::Bookmark(1)), Ok(()));
        assert_eq!(m.push(WatchItem::Bookmark(2)), Ok(()));
        assert_eq!(m.push(WatchItem::Bookmark(3)), Err(PushError::Full));
        m.close_receiver();
        assert_eq!(m.push(WatchItem::Bookmark(4)), Err(PushError::Closed));
        assert!(!m.has_items());
    }

    #[tokio::test]
    async fn a_push_wakes_the_waiting_receiver() {
        let m = std::sync::Arc::new(Mailbox::new(2));
        let receiver = {
            let m = m.clone();
            tokio::spawn(async move {
                let mut got = VecDeque::new();
                std::future::poll_fn(|cx| m.poll_take_all(&mut got, cx)).await;
                got
            })
        };
        tokio::task::yield_now().await;
        m.push(WatchItem::Bookmark(7)).expect("room");
        let got = receiver.await.expect("join");
        assert!(matches!(got.front(), Some(WatchItem::Bookmark(7))));
    }
}
