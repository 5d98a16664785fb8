//! Committed batches fanned out to the watches whose prefix they touch.
//!
//! Each watched prefix has a broadcast channel of its own, so that a commit
//! wakes only the watches it concerns: with a watch per served type (a
//! thousand TPRs are a thousand watches), one channel for all would wake
//! every watch on every commit. A key finds the prefixes that end in `/`
//! by its own `/`-ended ancestors (a lookup each); other prefixes, which the
//! server does not use, are compared one by one.
//!
//! The writer publishes a batch before it publishes the batch's revision,
//! so a watch that drains its channel after reading the store's revision
//! has seen every event of its prefix up to that revision (see
//! [`super::watch`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::Committed;

/// How many committed batches a lagging watcher may miss before it re-reads
/// the history from disk.
const CAPACITY: usize = 1024;

type Sender = broadcast::Sender<Arc<Committed>>;

/// The watched prefixes and their channels.
#[derive(Default)]
pub(crate) struct Hub {
    prefixes: Mutex<Prefixes>,
}

#[derive(Default)]
struct Prefixes {
    /// Prefixes that end in `/`, found by a key's ancestors.
    dirs: HashMap<String, Sender>,
    /// Any other prefix.
    others: Vec<(String, Sender)>,
}

impl Prefixes {
    /// Forgets the channels nobody listens to any more.
    fn sweep(&mut self) {
        self.dirs.retain(|_, s| s.receiver_count() > 0);
        self.others.retain(|(_, s)| s.receiver_count() > 0);
    }

    /// The channels of the prefixes `key` is under, added to `into` once each.
    fn matching<'a>(&'a self, key: &str, into: &mut Vec<&'a Sender>) {
        let mut add = |s: &'a Sender| {
            if !into.iter().any(|seen| seen.same_channel(s)) {
                into.push(s);
            }
        };
        for (i, _) in key.match_indices('/') {
            if let Some(s) = self.dirs.get(&key[..=i]) {
                add(s);
            }
        }
        for (prefix, s) in &self.others {
            if key.starts_with(prefix.as_str()) {
                add(s);
            }
        }
    }
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, Prefixes> {
        self.prefixes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every batch published from now on that has an event under `prefix`.
    pub(crate) fn subscribe(&self, prefix: &str) -> broadcast::Receiver<Arc<Committed>> {
        let mut prefixes = self.lock();
        prefixes.sweep();
        let new = || broadcast::channel(CAPACITY).0;
        if prefix.ends_with('/') {
            return prefixes.dirs.entry(prefix.to_string()).or_insert_with(new).subscribe();
        }
        if let Some((_, s)) = prefixes.others.iter().find(|(p, _)| p == prefix) {
            return s.subscribe();
        }
        let s = new();
        let rx = s.subscribe();
        prefixes.others.push((prefix.to_string(), s));
        rx
    }

    /// Sends `batch` to every prefix one of its events is under.
    pub(crate) fn publish(&self, batch: Committed) {
        let prefixes = self.lock();
        let mut to = Vec::new();
        for e in &batch.events {
            prefixes.matching(e.key(), &mut to);
        }
        if to.is_empty() {
            return;
        }
        let batch = Arc::new(batch);
        for s in to {
            // A channel whose watches all went away is swept at the next subscribe.
            let _ = s.send(batch.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Event, KeyValue};

    fn put(key: &str, revision: i64) -> Event {
        let kv =
            KeyValue { key: key.into(), value: bytes::Bytes::new(), create_revision: revision, mod_revision: revision };
        Event::Put { kv, prev: None }
    }

    fn keys(rx: &mut broadcast::Receiver<Arc<Committed>>) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            out.push(batch.events.iter().map(|e| e.key().to_string()).collect());
        }
        out
    }

    #[test]
    fn a_batch_goes_once_to_each_prefix_it_touches_and_nowhere_else() {
        let hub = Hub::default();
        let mut all = hub.subscribe("/registry/");
        let mut dbs = hub.subscribe("/registry/prsn.io/mysqldbs/");
        let mut default_ns = hub.subscribe("/registry/prsn.io/mysqldbs/default/");
        let mut odd = hub.subscribe("/registry/prsn.io/my");
        let mut other = hub.subscribe("/registry/other.io/things/");
        hub.publish(Committed {
            revision: 2,
            events: vec![put("/registry/prsn.io/mysqldbs/default/a", 1), put("/registry/prsn.io/mysqldbs/x/b", 2)],
        });
        hub.publish(Committed { revision: 3, events: vec![put("/registry/nothing/watched", 3)] });
        let both = vec!["/registry/prsn.io/mysqldbs/default/a".to_string(), "/registry/prsn.io/mysqldbs/x/b".into()];
        assert_eq!(keys(&mut dbs), std::slice::from_ref(&both), "once, with the whole batch");
        assert_eq!(keys(&mut default_ns), std::slice::from_ref(&both));
        assert_eq!(keys(&mut odd), std::slice::from_ref(&both), "a prefix that does not end in /");
        assert_eq!(keys(&mut all), [both, vec!["/registry/nothing/watched".to_string()]]);
        assert!(keys(&mut other).is_empty(), "another type's watch is not woken");
    }

    #[test]
    fn channels_nobody_listens_to_are_forgotten() {
        let hub = Hub::default();
        let rx = hub.subscribe("/registry/a/");
        let _kept = hub.subscribe("/registry/b/");
        drop(rx);
        let _c = hub.subscribe("/registry/c/");
        let prefixes = hub.lock();
        let mut left: Vec<&String> = prefixes.dirs.keys().collect();
        left.sort();
        assert_eq!(left, ["/registry/b/", "/registry/c/"]);
    }
}
