//! The key index: every key's revisions, in memory (etcd's `treeIndex` is
//! the model). The history table on disk is keyed by revision alone, so a
//! write appends to its end and dirties no page of a key-ordered index; the
//! index is rebuilt from the history when the store opens.
//!
//! The writer pushes a write's revision before its commit (and takes it back
//! if the commit fails); readers only look at revisions at or below the
//! published one, so they never see a revision that is not durable.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::types::Revision;

/// One revision of a key, as the history row written at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    /// The revision the row was written at.
    pub rev: Revision,
    /// The revision the key was created at.
    pub create_rev: Revision,
    /// False for a tombstone (a delete).
    pub live: bool,
}

/// Every key's history rows, by key; each key's versions in revision order.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    keys: BTreeMap<String, Vec<Version>>,
}

/// A page of live keys at a revision.
pub(crate) struct Page {
    /// The keys found, in key order, with the version each has then.
    pub found: Vec<(String, Version)>,
    /// How many more live keys the range holds after the page.
    pub remaining: usize,
}

/// The shared index, read (a poisoned lock still holds a consistent index: every
/// change to it is one call).
pub(crate) fn read_index(index: &RwLock<KeyIndex>) -> RwLockReadGuard<'_, KeyIndex> {
    index.read().unwrap_or_else(|p| p.into_inner())
}

/// The index, to change.
pub(crate) fn write_index(index: &RwLock<KeyIndex>) -> RwLockWriteGuard<'_, KeyIndex> {
    index.write().unwrap_or_else(|p| p.into_inner())
}

/// The latest of `versions` at or below `revision`.
fn at(versions: &[Version], revision: Revision) -> Option<Version> {
    let n = versions.partition_point(|v| v.rev <= revision);
    n.checked_sub(1).and_then(|i| versions.get(i)).copied()
}

impl KeyIndex {
    /// Records the row of `key` written at `v.rev`, above every row it has.
    pub fn push(&mut self, key: &str, v: Version) {
        match self.keys.get_mut(key) {
            Some(versions) => versions.push(v),
            None => {
                self.keys.insert(key.to_string(), vec![v]);
            }
        }
    }

    /// Takes back the row of `key` at `rev` (a write whose commit failed).
    pub fn pop(&mut self, key: &str, rev: Revision) {
        if let Some(versions) = self.keys.get_mut(key) {
            versions.retain(|v| v.rev != rev);
            if versions.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// The newest row of `key`, live or not.
    pub fn latest(&self, key: &str) -> Option<Version> {
        self.keys.get(key).and_then(|v| v.last()).copied()
    }

    /// The newest row of `key` strictly below `below`.
    pub fn before(&self, key: &str, below: Revision) -> Option<Version> {
        self.keys.get(key).and_then(|v| at(v, below.saturating_sub(1)))
    }

    /// The live keys in `[start, end)` at `revision`, at most `limit` of them
    /// (0: no limit), and how many live keys follow.
    pub fn live_at(&self, start: &str, end: &str, revision: Revision, limit: usize) -> Page {
        let mut page = Page { found: Vec::new(), remaining: 0 };
        if start >= end {
            return page;
        }
        let range = self.keys.range::<str, _>((Bound::Included(start), Bound::Excluded(end)));
        for (key, versions) in range {
            let Some(v) = at(versions, revision).filter(|v| v.live) else { continue };
            if limit == 0 || page.found.len() < limit {
                page.found.push((key.clone(), v));
            } else {
                page.remaining += 1;
            }
        }
        page
    }

    /// The rows compaction at `revision` discards: each key's rows superseded
    /// by a newer row at or below `revision`, and a tombstone below it.
    pub fn compactable(&self, revision: Revision) -> Vec<(String, Revision)> {
        let mut out = Vec::new();
        for (key, versions) in &self.keys {
            let n = versions.partition_point(|v| v.rev <= revision);
            let Some(last) = n.checked_sub(1) else { continue };
            for v in versions.iter().take(last) {
                out.push((key.clone(), v.rev));
            }
            if let Some(v) = versions.get(last).filter(|v| !v.live && v.rev < revision) {
                out.push((key.clone(), v.rev));
            }
        }
        out
    }

    /// Forgets the rows `rows` (once their deletion is durable).
    pub fn forget(&mut self, rows: &[(String, Revision)]) {
        for (key, rev) in rows {
            self.pop(key, *rev);
        }
    }

    /// How many keys have rows.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(rev: Revision, create_rev: Revision) -> Version {
        Version { rev, create_rev, live: true }
    }

    fn tombstone(rev: Revision, create_rev: Revision) -> Version {
        Version { rev, create_rev, live: false }
    }

    /// `/a` written at 1 and 3, deleted at 5; `/b` written at 2; `/c` at 4.
    fn sample() -> KeyIndex {
        let mut i = KeyIndex::default();
        i.push("/a", put(1, 1));
        i.push("/b", put(2, 2));
        i.push("/a", put(3, 1));
        i.push("/c", put(4, 4));
        i.push("/a", tombstone(5, 1));
        i
    }

    fn keys(page: &Page) -> Vec<&str> {
        page.found.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn a_range_sees_each_key_as_it_was_at_the_revision() {
        let i = sample();
        assert_eq!(keys(&i.live_at("/", "0", 1, 0)), ["/a"]);
        assert_eq!(keys(&i.live_at("/", "0", 4, 0)), ["/a", "/b", "/c"]);
        assert_eq!(i.live_at("/", "0", 4, 0).found[0].1, put(3, 1));
        assert_eq!(keys(&i.live_at("/", "0", 5, 0)), ["/b", "/c"]);
        assert_eq!(keys(&i.live_at("/b", "0", 5, 0)), ["/b", "/c"]);
    }

    #[test]
    fn a_limited_range_counts_what_remains() {
        let i = sample();
        let page = i.live_at("/", "0", 4, 2);
        assert_eq!(keys(&page), ["/a", "/b"]);
        assert_eq!(page.remaining, 1);
        assert_eq!(i.live_at("/", "0", 5, 2).remaining, 0);
    }

    #[test]
    fn an_empty_or_inverted_range_is_empty() {
        let i = sample();
        assert!(i.live_at("/z", "/a", 5, 0).found.is_empty());
        assert!(i.live_at("/a", "/a", 5, 0).found.is_empty());
    }

    #[test]
    fn before_finds_the_previous_row() {
        let i = sample();
        assert_eq!(i.before("/a", 5), Some(put(3, 1)));
        assert_eq!(i.before("/a", 3), Some(put(1, 1)));
        assert_eq!(i.before("/a", 1), None);
        assert_eq!(i.latest("/a"), Some(tombstone(5, 1)));
        assert_eq!(i.latest("/nope"), None);
    }

    #[test]
    fn compaction_discards_superseded_rows_and_old_tombstones() {
        let mut i = sample();
        assert_eq!(i.compactable(3), [("/a".to_string(), 1)]);
        // At 5 the tombstone is the newest row of /a: it stays until a later compaction.
        assert_eq!(i.compactable(5), [("/a".to_string(), 1), ("/a".to_string(), 3)]);
        let rows = i.compactable(6);
        assert_eq!(rows, [("/a".to_string(), 1), ("/a".to_string(), 3), ("/a".to_string(), 5)]);
        i.forget(&rows);
        assert_eq!(i.len(), 2);
        assert_eq!(i.latest("/a"), None);
    }

    #[test]
    fn a_failed_write_is_taken_back() {
        let mut i = sample();
        i.push("/d", put(6, 6));
        i.push("/b", put(7, 2));
        i.pop("/b", 7);
        i.pop("/d", 6);
        assert_eq!(i.latest("/b"), Some(put(2, 2)));
        assert_eq!(i.latest("/d"), None);
        assert_eq!(i.len(), 3);
    }
}
