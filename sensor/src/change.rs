//! What the sensor delivers: one change of one object, and the bodies each
//! sink sends for it (pure functions, no I/O).

use serde_json::{json, Map, Value};

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// It appeared (watch ADDED, or new in a list).
    Added,
    /// It changed.
    Modified,
    /// It went (watch DELETED, or missing from a re-list: synthesized).
    Deleted,
    /// Unchanged, delivered again by `--resync` (level-triggered).
    Synced,
}

impl Kind {
    /// The watch event type (`ADDED`…; `SYNCED` for a resync).
    pub fn event_type(self) -> &'static str {
        match self {
            Kind::Added => "ADDED",
            Kind::Modified => "MODIFIED",
            Kind::Deleted => "DELETED",
            Kind::Synced => "SYNCED",
        }
    }

    /// The CloudEvents type suffix.
    pub fn verb(self) -> &'static str {
        match self {
            Kind::Added => "added",
            Kind::Modified => "modified",
            Kind::Deleted => "deleted",
            Kind::Synced => "synced",
        }
    }
}

/// One change to deliver.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// What happened.
    pub kind: Kind,
    /// The object (for a synthesized delete, what was last known of it).
    pub object: Value,
    /// The revision it happened at (the object's resourceVersion; for a
    /// synthesized delete, the re-list's).
    pub revision: u64,
    /// True when the sensor inferred it (a delete seen only as absence from a re-list).
    pub synthesized: bool,
}

/// The type a change is about, for bodies and CloudEvents.
#[derive(Clone, Debug)]
pub struct Source {
    /// API group (`""` for the core group).
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Resource (plural).
    pub plural: String,
    /// The server's URL, for CloudEvents `source`.
    pub server: String,
}

fn text<'v>(obj: &'v Value, pointer: &str) -> &'v str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

impl Change {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        text(&self.object, "/metadata/name")
    }

    /// `metadata.namespace` (empty for cluster-scoped objects).
    pub fn namespace(&self) -> &str {
        text(&self.object, "/metadata/namespace")
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> &str {
        text(&self.object, "/metadata/uid")
    }

    /// The CloudEvents `id`: uid and revision, unique per change of an object
    /// (a receiver deduplicates redeliveries by it).
    pub fn id(&self) -> String {
        format!("{}.{}.{}", self.uid(), self.revision, self.kind.verb())
    }
}

/// The plain webhook body: `{"type", "object", "resourceVersion", "synthesized", "id"}`.
pub fn webhook_body(c: &Change) -> Value {
    json!({
        "type": c.kind.event_type(),
        "object": c.object,
        "resourceVersion": c.revision.to_string(),
        "synthesized": c.synthesized,
        "id": c.id(),
    })
}

impl Source {
    /// The CloudEvents `type`: `io.tpr-apiserver.<group>.<kind>.<verb>`
    /// (the core group is `core`), lower case.
    pub fn event_type(&self, c: &Change) -> String {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        format!("io.tpr-apiserver.{group}.{}.{}", self.kind.to_ascii_lowercase(), c.kind.verb())
    }

    /// The CloudEvents `source`: the collection's URL.
    pub fn source_uri(&self, c: &Change) -> String {
        let base = if self.group.is_empty() {
            format!("{}/api/{}", self.server, self.version)
        } else {
            format!("{}/apis/{}/{}", self.server, self.group, self.version)
        };
        match c.namespace() {
            "" => format!("{base}/{}", self.plural),
            ns => format!("{base}/namespaces/{ns}/{}", self.plural),
        }
    }

    /// The CloudEvents `subject`: `<namespace>/<name>` or `<name>`.
    pub fn subject(&self, c: &Change) -> String {
        match c.namespace() {
            "" => c.name().to_string(),
            ns => format!("{ns}/{}", c.name()),
        }
    }

    /// CloudEvents 1.0 binary mode: the `ce-` headers; the body is the object.
    pub fn cloudevent_headers(&self, c: &Change, time: &str) -> Vec<(String, String)> {
        vec![
            ("ce-specversion".into(), "1.0".into()),
            ("ce-id".into(), c.id()),
            ("ce-source".into(), self.source_uri(c)),
            ("ce-type".into(), self.event_type(c)),
            ("ce-subject".into(), self.subject(c)),
            ("ce-time".into(), time.to_string()),
            ("content-type".into(), "application/json".into()),
        ]
    }

    /// CloudEvents 1.0 structured mode (`application/cloudevents+json`).
    pub fn cloudevent(&self, c: &Change, time: &str) -> Value {
        json!({
            "specversion": "1.0",
            "id": c.id(),
            "source": self.source_uri(c),
            "type": self.event_type(c),
            "subject": self.subject(c),
            "time": time,
            "datacontenttype": "application/json",
            "data": c.object,
        })
    }

    /// StackStorm's webhook body (`POST /api/v1/webhooks/st2`): the trigger
    /// and a payload with what the community sensor sent (resource, name,
    /// namespace, labels — empty when absent —, object_kind, uid) and the object.
    pub fn st2_body(&self, c: &Change, trigger: &str) -> Value {
        let labels = c.object.pointer("/metadata/labels").cloned().unwrap_or_else(|| Value::Object(Map::new()));
        json!({
            "trigger": trigger,
            "payload": {
                "resource": c.kind.event_type(),
                "name": c.name(),
                "namespace": c.namespace(),
                "labels": labels,
                "object_kind": self.kind,
                "uid": c.uid(),
                "resource_version": c.revision.to_string(),
                "object": c.object,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change() -> Change {
        Change {
            kind: Kind::Added,
            object: json!({"metadata": {"name": "orders", "namespace": "default", "uid": "u1"}}),
            revision: 7,
            synthesized: false,
        }
    }

    fn source() -> Source {
        Source {
            group: "prsn.io".into(),
            version: "v1".into(),
            kind: "MysqlDb".into(),
            plural: "mysqldbs".into(),
            server: "https://127.0.0.1:8443".into(),
        }
    }

    #[test]
    fn cloudevents_have_the_required_attributes() {
        let (c, s) = (change(), source());
        let e = s.cloudevent(&c, "2026-12-05T00:00:00Z");
        for attr in ["specversion", "id", "source", "type"] {
            assert!(e[attr].as_str().is_some_and(|v| !v.is_empty()), "{attr}");
        }
        assert_eq!(e["type"], "io.tpr-apiserver.prsn.io.mysqldb.added");
        assert_eq!(e["id"], "u1.7.added");
        assert_eq!(e["source"], "https://127.0.0.1:8443/apis/prsn.io/v1/namespaces/default/mysqldbs");
        let headers = s.cloudevent_headers(&c, "t");
        assert!(headers.iter().any(|(k, v)| k == "ce-specversion" && v == "1.0"));
    }

    #[test]
    fn st2_payload_has_the_community_sensor_fields() {
        let b = source().st2_body(&change(), "tpr.mysqldb");
        assert_eq!(b["trigger"], "tpr.mysqldb");
        assert_eq!(b["payload"]["labels"], json!({}), "empty when absent");
        assert_eq!(
            (b["payload"]["resource"].as_str(), b["payload"]["object_kind"].as_str()),
            (Some("ADDED"), Some("MysqlDb"))
        );
    }
}
