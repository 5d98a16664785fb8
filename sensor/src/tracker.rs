//! The sans-IO core: what the sensor knows of each object, and the changes a
//! watch event or a list implies. A re-list (after 410, or `--resync`)
//! compares the list with what was known: new objects are added, changed ones
//! modified, unchanged ones synced (resync only), and known objects missing
//! from the list get a synthesized delete, so the receiver sees a
//! consistent sequence even across a gap.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::change::{Change, Kind};

/// What is kept of a known object: its revision and a summary (for a
/// synthesized delete): apiVersion, kind, name, namespace, uid, labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Known {
    /// Its resourceVersion.
    pub revision: u64,
    /// Its summary.
    pub object: Value,
}

/// The known objects by `namespace/name`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    /// Known objects.
    pub known: BTreeMap<String, Known>,
}

/// `namespace/name` of an object.
pub fn key(obj: &Value) -> String {
    let text = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
    format!("{}/{}", text("/metadata/namespace"), text("/metadata/name"))
}

/// An object's resourceVersion as a number (0 when absent or not a number).
pub fn revision(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// What a synthesized delete carries of an object.
pub fn summary(obj: &Value) -> Value {
    let meta = |f: &str| obj.pointer(&format!("/metadata/{f}")).cloned().unwrap_or(Value::Null);
    let mut metadata = json!({"name": meta("name"), "uid": meta("uid"), "resourceVersion": meta("resourceVersion")});
    for f in ["namespace", "labels"] {
        if !meta(f).is_null() {
            metadata[f] = meta(f);
        }
    }
    json!({"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": metadata})
}

impl Tracker {
    /// Records a delivered change (the checkpoint's view of the receiver).
    pub fn apply(&mut self, c: &Change) {
        let k = key(&c.object);
        match c.kind {
            Kind::Deleted => {
                self.known.remove(&k);
            }
            _ => {
                self.known
                    .insert(k, Known { revision: revision(&c.object).max(c.revision), object: summary(&c.object) });
            }
        }
    }

    /// The change a watch event (`ADDED`, `MODIFIED`, `DELETED`) makes, if
    /// any: an event at or below the known revision of its object was already
    /// seen (a resumed watch) and makes none.
    pub fn event(&mut self, event_type: &str, object: Value) -> Option<Change> {
        let (k, rev) = (key(&object), revision(&object));
        let known = self.known.get(&k).map(|kn| kn.revision);
        let kind = match event_type {
            "DELETED" => {
                self.known.remove(&k)?;
                Kind::Deleted
            }
            _ if known.is_some_and(|r| r >= rev) => return None,
            _ if known.is_some() => Kind::Modified,
            _ => Kind::Added,
        };
        if kind != Kind::Deleted {
            self.known.insert(k, Known { revision: rev, object: summary(&object) });
        }
        Some(Change { kind, object, revision: rev, synthesized: false })
    }

    /// The changes that a full list at `list_revision` implies; with `resync`
    /// unchanged objects are delivered too (`Synced`). Replaces what is known.
    pub fn relist(&mut self, items: Vec<Value>, list_revision: u64, resync: bool) -> Vec<Change> {
        let mut previous = std::mem::take(&mut self.known);
        let mut changes = Vec::new();
        for object in items {
            let (k, rev) = (key(&object), revision(&object));
            let kind = match previous.remove(&k) {
                None => Some(Kind::Added),
                Some(kn) if kn.revision != rev => Some(Kind::Modified),
                Some(_) if resync => Some(Kind::Synced),
                Some(_) => None,
            };
            self.known.insert(k, Known { revision: rev, object: summary(&object) });
            if let Some(kind) = kind {
                changes.push(Change { kind, object, revision: rev, synthesized: false });
            }
        }
        for (_, gone) in previous {
            changes.push(Change {
                kind: Kind::Deleted,
                object: gone.object,
                revision: list_revision,
                synthesized: true,
            });
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, rv: u64) -> Value {
        json!({"apiVersion": "prsn.io/v1", "kind": "MysqlDb", "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "resourceVersion": rv.to_string()}, "spec": {"x": 1}})
    }

    #[test]
    fn watch_events_become_changes_once() {
        let mut t = Tracker::default();
        assert_eq!(t.event("ADDED", obj("a", 2)).map(|c| c.kind), Some(Kind::Added));
        assert_eq!(t.event("ADDED", obj("a", 2)), None, "a replayed event is no change");
        assert_eq!(t.event("MODIFIED", obj("a", 3)).map(|c| c.kind), Some(Kind::Modified));
        assert_eq!(t.event("DELETED", obj("a", 4)).map(|c| c.kind), Some(Kind::Deleted));
        assert_eq!(t.event("DELETED", obj("a", 4)), None);
    }

    #[test]
    fn a_relist_synthesizes_deletes_for_vanished_objects() {
        let mut t = Tracker::default();
        for c in t.relist(vec![obj("a", 2), obj("b", 3), obj("c", 4)], 4, false) {
            assert_eq!(c.kind, Kind::Added);
        }
        let changes = t.relist(vec![obj("a", 2), obj("b", 9), obj("d", 10)], 12, false);
        let seen: Vec<(Kind, String, bool)> =
            changes.iter().map(|c| (c.kind, c.name().to_string(), c.synthesized)).collect();
        assert_eq!(
            seen,
            [(Kind::Modified, "b".into(), false), (Kind::Added, "d".into(), false), (Kind::Deleted, "c".into(), true)]
        );
        assert_eq!(changes[2].revision, 12);
        assert_eq!(changes[2].uid(), "u-c", "the delete names what was known");
        let resync = t.relist(vec![obj("a", 2), obj("b", 9), obj("d", 10)], 13, true);
        assert!(resync.iter().all(|c| c.kind == Kind::Synced) && resync.len() == 3);
    }
}
