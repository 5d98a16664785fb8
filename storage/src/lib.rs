//! Storage for tpr-apiserver: a revisioned key-value store modelled on etcd's
//! MVCC, with two interchangeable backends and a watch cache in front.
//!
//! Layout of this crate:
//! - [`types`]: keys, values, revisions, events: the vocabulary of the contract.
//! - [`error`]: [`StorageError`], the one error type every backend returns.
//! - [`keys`]: key validation against the configured prefix, prefix ranges.
//! - [`store`]: the [`Store`] trait (the contract) and [`WatchStream`].
//! - [`etcd`]: [`EtcdStore`], the backend on a real etcd cluster.
//! - [`embedded`]: [`EmbeddedStore`], the default single-machine backend
//!   (SQLite in WAL mode, group commit, a revision log).
//! - [`cache`]: [`WatchCache`], one per key prefix: current objects in memory,
//!   consistent lists, a window of recent events, and fan-out to watchers.
//! - [`compaction`]: the automatic compaction policy.
//!
//! Every call on a backend has a deadline: a store that is down or slow
//! answers [`StorageError::Unavailable`] or [`StorageError::Timeout`].
#![forbid(unsafe_code)]

pub mod cache;
pub mod compaction;
pub mod embedded;
pub mod error;
pub mod etcd;
pub mod keys;
pub mod store;
pub mod types;

pub use cache::{
    CacheConfig, CacheEvent, CacheWatcher, ListOptions, ListResult, ReadRevision, WatchCache, WatchItem, WatchRequest,
};
pub use compaction::{spawn_compactor, CompactionPolicy};
pub use embedded::{EmbeddedConfig, EmbeddedStore};
pub use error::{Result, StorageError};
pub use etcd::{EtcdConfig, EtcdStore};
pub use store::{Store, WatchStream};
pub use types::{Deleted, Event, KeyValue, RangeRequest, RangeResponse, Revision, WatchMessage};
