//! The vocabulary of the storage contract.

use bytes::Bytes;

/// A store-wide revision: it grows by one with every successful write.
pub type Revision = i64;

/// One stored key with its value and revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, including the store prefix.
    pub key: String,
    /// The stored bytes.
    pub value: Bytes,
    /// The revision at which this key was (last) created.
    pub create_revision: Revision,
    /// The revision of the last write to this key.
    pub mod_revision: Revision,
}

/// The result of a successful delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The value the key held just before the delete.
    pub prev: KeyValue,
    /// The revision of the delete itself.
    pub revision: Revision,
}

/// One change to one key, as a watcher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A create (`prev` is `None`) or an update.
    Put {
        /// The new value.
        kv: KeyValue,
        /// The value before, when it was an update and history still had it.
        prev: Option<KeyValue>,
    },
    /// A delete.
    Delete {
        /// The deleted key.
        key: String,
        /// The revision of the delete.
        revision: Revision,
        /// The value before the delete, when history still had it.
        prev: Option<KeyValue>,
    },
}

impl Event {
    /// The revision at which this change happened.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }

    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { key, .. } => key,
        }
    }
}

/// What a backend watch delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMessage {
    /// Changes in revision order; every event exactly once.
    Events(Vec<Event>),
    /// No event under the watched prefix up to this revision.
    Progress(Revision),
}

/// A paged read of the keys under a prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// Keys that start with this prefix (it must lie within the store prefix).
    pub prefix: String,
    /// The first key to return (inclusive), for the next page; within `prefix`.
    pub start: Option<String>,
    /// At most this many keys; 0 means no limit.
    pub limit: usize,
    /// Read at this revision; `None` reads the current revision.
    pub revision: Option<Revision>,
}

/// One page of a range read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResponse {
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// The revision the page was read at: pass it to the next page.
    pub revision: Revision,
    /// How many keys in the range follow this page.
    pub remaining: usize,
}
