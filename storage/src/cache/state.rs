//! The cache's state: current objects, the window of recent events, and the
//! registered watchers. Every change is applied and fanned out under the one
//! write lock, so a watcher registered at revision R gets exactly the events
//! after R.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use super::mailbox::{Mailbox, PushError};
use super::{keys_from, CacheEvent, EventKind, ListResult, WatchItem, WatchStart};
use crate::error::{Result, StorageError};
use crate::types::{Event, KeyValue, Revision};

/// Why the cache cut a watcher off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Its buffer was full.
    TooSlow,
    /// The cache re-listed (history compacted while it was disconnected).
    Reset { oldest: Revision },
}

struct Slot {
    mailbox: Arc<Mailbox>,
    cut: Arc<OnceLock<Cut>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The watcher sees its end (and reads `cut`) after the queued events.
        self.mailbox.close_sender();
    }
}

/// What [`State::register`] hands to a new watcher.
pub(crate) type Registration = (u64, Revision, VecDeque<WatchItem>, Arc<Mailbox>, Arc<OnceLock<Cut>>);

pub(crate) struct State {
    objects: BTreeMap<String, Arc<KeyValue>>,
    revision: Revision,
    window: VecDeque<Arc<CacheEvent>>,
    window_capacity: usize,
    /// Watches may start after any revision at or above this one.
    oldest: Revision,
    /// Watchers grouped by prefix: an event's key is compared once per prefix.
    watchers: HashMap<String, HashMap<u64, Slot>>,
    /// The prefix of each watcher.
    prefix_of: HashMap<u64, String>,
    next_id: u64,
}

impl State {
    pub(crate) fn new(window_capacity: usize) -> Self {
        State {
            objects: BTreeMap::new(),
            revision: 0,
            window: VecDeque::new(),
            window_capacity: window_capacity.max(1),
            oldest: 0,
            watchers: HashMap::new(),
            prefix_of: HashMap::new(),
            next_id: 0,
        }
    }

    pub(crate) fn revision(&self) -> Revision {
        self.revision
    }

    pub(crate) fn watcher_count(&self) -> usize {
        self.prefix_of.len()
    }

    /// Replaces everything with a fresh list. Watchers of an earlier list are
    /// cut off: the events between the two lists are unknown.
    pub(crate) fn reset(&mut self, objects: Vec<KeyValue>, revision: Revision) {
        self.objects = objects.into_iter().map(|kv| (kv.key.clone(), Arc::new(kv))).collect();
        self.revision = revision;
        self.window.clear();
        self.oldest = revision;
        self.prefix_of.clear();
        for slot in self.watchers.drain().flat_map(|(_, group)| group.into_values()) {
            let _ = slot.cut.set(Cut::Reset { oldest: revision });
        }
    }

    /// Applies backend events in order, fanning each out to its watchers.
    pub(crate) fn apply(&mut self, events: Vec<Event>) {
        for event in events {
            let revision = event.revision();
            if revision <= self.revision {
                continue; // already applied (a re-established watch may repeat)
            }
            let cached = match event {
                Event::Put { kv, .. } => {
                    let object = Arc::new(kv);
                    let prev = self.objects.insert(object.key.clone(), object.clone());
                    let kind = if prev.is_some() { EventKind::Modified } else { EventKind::Added };
                    CacheEvent { kind, object, prev, revision, encoded: Default::default() }
                }
                Event::Delete { key, revision, prev } => {
                    let prev = self.objects.remove(&key).or_else(|| prev.map(Arc::new));
                    let last = match &prev {
                        Some(p) => KeyValue { mod_revision: revision, ..(**p).clone() },
                        None => KeyValue { key, value: Default::default(), create_revision: 0, mod_revision: revision },
                    };
                    CacheEvent {
                        kind: EventKind::Deleted,
                        object: Arc::new(last),
                        prev,
                        revision,
                        encoded: Default::default(),
                    }
                }
            };
            self.revision = revision;
            let cached = Arc::new(cached);
            self.fan_out(&cached);
            self.window.push_back(cached);
            if self.window.len() > self.window_capacity {
                if let Some(evicted) = self.window.pop_front() {
                    self.oldest = evicted.revision;
                }
            }
        }
    }

    fn fan_out(&mut self, event: &Arc<CacheEvent>) {
        let mut gone = Vec::new();
        for (prefix, group) in &self.watchers {
            if !event.object.key.starts_with(prefix.as_str()) {
                continue;
            }
            for (id, slot) in group {
                match slot.mailbox.push(WatchItem::Event(event.clone())) {
                    Ok(()) => {}
                    Err(PushError::Full) => {
                        let _ = slot.cut.set(Cut::TooSlow);
                        gone.push(*id);
                    }
                    Err(PushError::Closed) => gone.push(*id),
                }
            }
        }
        for id in gone {
            self.remove(id);
        }
    }

    /// The backend has nothing more up to `revision`: tell every watcher.
    pub(crate) fn progress(&mut self, revision: Revision) {
        if revision <= self.revision {
            return;
        }
        self.revision = revision;
        let gone: Vec<u64> = (self.watchers.values().flatten())
            .filter(|(_, slot)| slot.mailbox.push(WatchItem::Bookmark(revision)) == Err(PushError::Closed))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove(id);
        }
    }

    /// The value of `key` from memory; `None` when `exact` is given and is
    /// not the cache's revision.
    pub(crate) fn get(&self, key: &str, exact: Option<Revision>) -> Option<Option<Arc<KeyValue>>> {
        if exact.is_some_and(|r| r != self.revision) {
            return None;
        }
        Some(self.objects.get(key).cloned())
    }

    /// A page from memory; `None` when `exact` is given and is not the cache's revision.
    pub(crate) fn list(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        exact: Option<Revision>,
    ) -> Option<ListResult> {
        if exact.is_some_and(|r| r != self.revision) {
            return None;
        }
        let mut keys = keys_from(&self.objects, prefix, start);
        let take = if limit == 0 { usize::MAX } else { limit };
        let items: Vec<Arc<KeyValue>> = keys.by_ref().take(take).map(|(_, v)| v.clone()).collect();
        let remaining = keys.count();
        Some(ListResult { items, revision: self.revision, remaining })
    }

    /// Registers a watcher of `prefix`.
    pub(crate) fn register(&mut self, prefix: &str, start: WatchStart, buffer: usize) -> Result<Registration> {
        let pending: VecDeque<WatchItem> = match start {
            WatchStart::Now => VecDeque::new(),
            WatchStart::WithInitialState => keys_from(&self.objects, prefix, None)
                .map(|(_, kv)| {
                    WatchItem::Event(Arc::new(CacheEvent {
                        kind: EventKind::Added,
                        object: kv.clone(),
                        prev: None,
                        revision: kv.mod_revision,
                        encoded: Default::default(),
                    }))
                })
                .collect(),
            WatchStart::After(after) => {
                if after < self.oldest {
                    return Err(StorageError::TooOld { requested: after, oldest: self.oldest });
                }
                let first = self.window.partition_point(|e| e.revision <= after);
                self.window
                    .range(first..)
                    .filter(|e| e.object.key.starts_with(prefix))
                    .map(|e| WatchItem::Event(e.clone()))
                    .collect()
            }
        };
        let mailbox = Arc::new(Mailbox::new(buffer));
        let cut = Arc::new(OnceLock::new());
        let id = self.next_id;
        self.next_id += 1;
        let slot = Slot { mailbox: mailbox.clone(), cut: cut.clone() };
        self.watchers.entry(prefix.to_string()).or_default().insert(id, slot);
        self.prefix_of.insert(id, prefix.to_string());
        Ok((id, self.revision, pending, mailbox, cut))
    }

    pub(crate) fn remove(&mut self, id: u64) {
        let Some(prefix) = self.prefix_of.remove(&id) else { return };
        if let Some(group) = self.watchers.get_mut(&prefix) {
            group.remove(&id);
            if group.is_empty() {
                self.watchers.remove(&prefix);
            }
        }
    }
}
