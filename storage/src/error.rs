//! The one error type of the storage layer.

use std::time::Duration;

use crate::types::{KeyValue, Revision};

/// Result of every storage call.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything a storage call can fail with. The API server maps each variant
/// to one Kubernetes Status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// Create of a key that exists; carries the current value.
    #[error("key {:?} already exists", current.key)]
    AlreadyExists {
        /// The value that won.
        current: Box<KeyValue>,
    },
    /// The key does not exist.
    #[error("key {key:?} not found")]
    NotFound {
        /// The missing key.
        key: String,
    },
    /// A conditional update or delete lost a race; carries the current value.
    #[error("conflict on key {:?}: expected revision {expected}, current revision {}", current.key, current.mod_revision)]
    Conflict {
        /// The revision the caller expected.
        expected: Revision,
        /// The value that won.
        current: Box<KeyValue>,
    },
    /// The requested revision is older than the compacted history.
    #[error("revision {requested} has been compacted; the oldest available is {compacted}")]
    Compacted {
        /// What was asked for.
        requested: Revision,
        /// The compaction revision.
        compacted: Revision,
    },
    /// A watch cache no longer holds events after this revision.
    #[error("revision {requested} is too old; the oldest that can be resumed from is {oldest}")]
    TooOld {
        /// What was asked for.
        requested: Revision,
        /// The oldest revision a watch can start after.
        oldest: Revision,
    },
    /// The requested revision has not happened yet.
    #[error("revision {requested} is in the future; the current revision is {current}")]
    FutureRevision {
        /// What was asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// A key, prefix or argument that the store refuses.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The offending key.
        key: String,
        /// Why it is refused.
        reason: String,
    },
    /// The watcher did not read its events fast enough and was cut off.
    #[error("watcher fell behind and was cut off; resume after revision {last_revision}")]
    WatcherTooSlow {
        /// The last revision the watcher received.
        last_revision: Revision,
    },
    /// The store cannot be reached: the request certainly did not reach it
    /// (nothing was applied), so a retry is safe.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A write reached the store but its answer was lost (the store was
    /// killed, paused or partitioned): it may or may not have been applied.
    #[error("the outcome of the request is unknown: {0}")]
    Indeterminate(String),
    /// The store did not answer within the deadline.
    #[error("storage did not answer within {0:?}")]
    Timeout(Duration),
    /// A fault inside the store (corruption, I/O error, a bug).
    #[error("internal storage error: {0}")]
    Internal(String),
}

impl StorageError {
    /// True for the errors that a retry later may cure.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Unavailable(_) | StorageError::Timeout(_) | StorageError::Indeterminate(_))
    }

    pub(crate) fn invalid(key: &str, reason: impl Into<String>) -> Self {
        StorageError::InvalidKey { key: key.to_string(), reason: reason.into() }
    }
}

/// Runs `fut` with a deadline, mapping an expired deadline to [`StorageError::Timeout`].
pub(crate) async fn with_deadline<T>(
    deadline: Duration,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(StorageError::Timeout(deadline)),
    }
}
