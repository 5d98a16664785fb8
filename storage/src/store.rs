//! The storage contract: one async interface, implemented by every backend.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use crate::error::Result;
use crate::types::{Deleted, KeyValue, RangeRequest, RangeResponse, Revision, WatchMessage};

/// A revisioned key-value store, modelled on etcd's MVCC.
///
/// Every key lives under [`Store::prefix`]. Every successful write moves the
/// store-wide revision up by exactly one, so every event has its own revision.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The prefix every key must start with, with its trailing `/`.
    fn prefix(&self) -> &str;

    /// True when [`WatchStream::request_progress`] is answered promptly and
    /// reliably. etcd before 3.4.31 / 3.5.13 could report a progress revision
    /// ahead of events still in flight, so there the etcd backend relies on
    /// etcd's periodic progress notifications instead.
    fn progress_on_request(&self) -> bool {
        true
    }

    /// The current revision when this process knows it without asking
    /// anyone (the embedded store); `None` for a remote store.
    fn local_revision(&self) -> Option<Revision> {
        None
    }

    /// The current store-wide revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// The current value of `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// One page of the keys under a prefix, read at one revision.
    async fn range(&self, req: &RangeRequest) -> Result<RangeResponse>;

    /// Creates `key` only if it is absent; otherwise `AlreadyExists` with the current value.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;

    /// Replaces the value of an existing `key`. With `expected`, only if its
    /// mod revision still equals it; otherwise `Conflict` with the current value.
    async fn update(&self, key: &str, value: Bytes, expected: Option<Revision>) -> Result<KeyValue>;

    /// Deletes `key`, with the same condition as [`Store::update`].
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted>;

    /// Deletes every key under `prefix`, each at its own revision (one event per key).
    async fn delete_prefix(&self, prefix: &str) -> Result<Vec<Deleted>>;

    /// Watches `prefix`, delivering every event with a revision greater than
    /// `after`, exactly once and in order. `Compacted` when that history is gone.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Discards history older than `revision`: reads and watches below it fail
    /// with `Compacted`.
    async fn compact(&self, revision: Revision) -> Result<()>;
}

/// The receiving end of a backend watch.
///
/// It ends with an error (or `None`) when the backend watch breaks; resume
/// with a new watch after the last revision received.
#[derive(Debug)]
pub struct WatchStream {
    rx: mpsc::Receiver<Result<WatchMessage>>,
    progress: Arc<Notify>,
}

/// The sending end of a backend watch, held by the backend's watch task.
#[derive(Debug)]
pub(crate) struct WatchSender {
    pub tx: mpsc::Sender<Result<WatchMessage>>,
    pub progress: Arc<Notify>,
}

impl WatchStream {
    /// A connected sender and stream with room for `capacity` messages.
    pub(crate) fn channel(capacity: usize) -> (WatchSender, WatchStream) {
        let (tx, rx) = mpsc::channel(capacity);
        let progress = Arc::new(Notify::new());
        (WatchSender { tx, progress: progress.clone() }, WatchStream { rx, progress })
    }

    /// The next message; `None` when the watch has ended.
    pub async fn recv(&mut self) -> Option<Result<WatchMessage>> {
        self.rx.recv().await
    }

    /// Polls for the next message; `Ready(None)` when the watch has ended.
    pub fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Result<WatchMessage>>> {
        self.rx.poll_recv(cx)
    }

    /// The next message if one is ready now.
    pub fn try_recv(&mut self) -> Option<Result<WatchMessage>> {
        self.rx.try_recv().ok()
    }

    /// True when a message is ready now.
    pub fn has_ready(&self) -> bool {
        !self.rx.is_empty()
    }

    /// Asks the backend for a [`WatchMessage::Progress`] as soon as the watch
    /// has delivered everything up to the current revision.
    pub fn request_progress(&self) {
        self.progress.notify_one();
    }
}
