//! Conversion between a type's stored version and the version a client
//! names, as kube-apiserver's codecs do. Only Events have two versions of
//! one storage: `events.k8s.io/v1` Events are stored as `v1` Events (the
//! fields renamed as kube's conversion renames them), so both APIs, and
//! `kubectl get events`, see every event.

use serde_json::{Map, Value};

/// The API version of `events.k8s.io` Events.
pub const EVENTS_V1: &str = "events.k8s.io/v1";

/// `events.k8s.io/v1` field → `v1` field.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

fn rename(obj: &mut Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    let Some(map) = obj.as_object_mut() else { return };
    let mut renamed = Map::new();
    for (from, to) in pairs {
        if let Some(v) = map.remove(from) {
            renamed.insert(to.to_string(), v);
        }
    }
    map.extend(renamed);
}

/// True when objects of `api_version` are stored in another form.
pub fn converts(api_version: &str) -> bool {
    api_version == EVENTS_V1
}

/// A stored object as a client of `api_version` sees it.
pub fn from_stored(api_version: &str, obj: &mut Value) {
    if api_version == EVENTS_V1 {
        rename(obj, EVENT_FIELDS.iter().map(|(v1, core)| (*core, *v1)));
    }
}

/// An object a client of `api_version` wrote, in its stored form.
pub fn to_stored(api_version: &str, obj: &mut Value) {
    if api_version == EVENTS_V1 {
        rename(obj, EVENT_FIELDS.iter().copied());
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), Value::String("v1".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_convert_both_ways() {
        let v1 = json!({"apiVersion": EVENTS_V1, "kind": "Event", "regarding": {"name": "orders"}, "note": "hi",
                        "reportingController": "c", "reason": "R", "deprecatedCount": 2});
        let mut stored = v1.clone();
        to_stored(EVENTS_V1, &mut stored);
        assert_eq!(stored["involvedObject"]["name"], "orders");
        assert_eq!((stored["message"].clone(), stored["reportingComponent"].clone()), (json!("hi"), json!("c")));
        assert_eq!((stored["count"].clone(), stored["apiVersion"].clone()), (json!(2), json!("v1")));
        assert!(stored.get("note").is_none());
        let mut back = stored.clone();
        from_stored(EVENTS_V1, &mut back);
        back["apiVersion"] = json!(EVENTS_V1);
        assert_eq!(back, v1);
        let mut core = stored.clone();
        from_stored("v1", &mut core);
        assert_eq!(core, stored);
    }
}
