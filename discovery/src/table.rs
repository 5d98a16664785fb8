//! Tables (`meta.k8s.io` `Table`) for `kubectl get`: the columns of a type,
//! the cells of one object, rows and whole tables.
//!
//! Every type has Name and Age (the time since creationTimestamp, written as
//! kube-apiserver writes it for custom resources: `45s`, `5m3s`, `2d4h`);
//! ThirdPartyResources also show Description and Versions, like the original
//! `kubectl get thirdpartyresources`; built-in types have kube-apiserver's
//! columns (Namespace: Status; Event: Last Seen, Type, Reason, Object,
//! Message…; ConfigMap and Secret: Data; Lease: Holder). The current time is passed in.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::{Builtin, Resource};

/// One column of a Table.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// Header, e.g. `Name`.
    pub name: &'static str,
    /// OpenAPI type of the cells.
    pub kind: &'static str,
    /// OpenAPI format (`name` marks the name column, `date` a timestamp).
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0: always shown; 1: with `-o wide`.
    pub priority: u8,
}

const fn column(name: &'static str, kind: &'static str, priority: u8, description: &'static str) -> Column {
    Column { name, kind, format: "", description, priority }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "Name must be unique within a namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    priority: 0,
};
const AGE: Column = Column {
    name: "Age",
    kind: "date",
    format: "",
    description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
    priority: 0,
};
const DESCRIPTION: Column = column("Description", "string", 0, "What the resource type is for.");
const VERSIONS: Column = column("Versions", "string", 0, "The API versions the type is served at.");

/// The columns of a type: Name and Age; a ThirdPartyResource also
/// Description and Versions; built-in types kube-apiserver's.
pub fn columns(t: &Resource) -> Vec<Column> {
    match t.builtin {
        Some(Builtin::Namespace) => {
            vec![NAME, column("Status", "string", 0, "The status of the namespace"), AGE]
        }
        Some(Builtin::Event | Builtin::EventV1) => vec![
            column("Last Seen", "string", 0, "Time when the event was last seen."),
            column("Type", "string", 0, "Type of this event (Normal, Warning)."),
            column("Reason", "string", 0, "Why the action was taken."),
            column("Object", "string", 0, "The object this event is about."),
            column("Subobject", "string", 1, "The field of the object this event is about."),
            column("Source", "string", 1, "The component reporting this event."),
            column("Message", "string", 0, "A human-readable description of the status of this operation."),
            column("First Seen", "string", 1, "Time when the event was first seen."),
            column("Count", "string", 1, "The number of times this event has occurred."),
            Column { priority: 1, ..NAME },
        ],
        Some(Builtin::ConfigMap) => vec![NAME, column("Data", "string", 0, "The number of data keys."), AGE],
        Some(Builtin::Secret) => vec![
            NAME,
            column("Type", "string", 0, "The type of the secret."),
            column("Data", "string", 0, "The number of data keys."),
            AGE,
        ],
        Some(Builtin::Lease) => vec![NAME, column("Holder", "string", 0, "The holder of the lease."), AGE],
        _ if t.is_tpr() => vec![NAME, DESCRIPTION, VERSIONS, AGE],
        _ => vec![NAME, AGE],
    }
}

/// What each row carries of its object (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// The object's metadata as a `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter (absent means `Metadata`).
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.unwrap_or("") {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(format!("includeObject must be one of None, Metadata or Object, not {other:?}")),
        }
    }
}

/// A duration as kubectl shows ages (the rules of k8s.io/apimachinery's `HumanDuration`).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    let with = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => with(m, "m", s % 60, "s"),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => with(h, "h", m % 60, "m"),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 => with(d, "d", h % 24, "h"),
        _ if h < 24 * 365 * 2 => format!("{d}d"),
        _ if h < 24 * 365 * 8 => with(d / 365, "y", d % 365, "d"),
        _ => format!("{}y", d / 365),
    }
}

/// The Age cell: the time from `created` (RFC 3339) to `now`; `<unknown>` without one.
fn age(created: Option<&str>, now: SystemTime) -> String {
    let Some(created) = created.and_then(|c| humantime::parse_rfc3339_weak(c).ok()) else {
        return "<unknown>".into();
    };
    let seconds = match now.duration_since(created) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    human_duration(seconds)
}

/// The string at `pointer`, or `""`.
fn text<'v>(obj: &'v Value, pointer: &str) -> &'v str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The number of keys of the maps at `pointers`.
fn key_count(obj: &Value, pointers: &[&str]) -> Value {
    Value::from(
        pointers.iter().filter_map(|p| obj.pointer(p).and_then(Value::as_object)).map(|m| m.len()).sum::<usize>(),
    )
}

/// An Event's cells (both APIs: `v1` names first, `events.k8s.io/v1` after).
fn event_cells(obj: &Value, name: Value, now: SystemTime) -> Vec<Value> {
    let first_text = |pointers: &[&str]| pointers.iter().map(|p| text(obj, p)).find(|s| !s.is_empty());
    let since = |pointers: &[&str]| Value::String(age(first_text(pointers), now));
    let last = since(&["/series/lastObservedTime", "/lastTimestamp", "/deprecatedLastTimestamp", "/eventTime"]);
    let first = since(&["/firstTimestamp", "/deprecatedFirstTimestamp", "/eventTime"]);
    let regarding = if obj.get("regarding").is_some() { "/regarding" } else { "/involvedObject" };
    let kind = text(obj, &format!("{regarding}/kind")).to_ascii_lowercase();
    let target = match text(obj, &format!("{regarding}/name")) {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let source = first_text(&[
        "/source/component",
        "/deprecatedSource/component",
        "/reportingComponent",
        "/reportingController",
    ])
    .unwrap_or("");
    let count = ["/series/count", "/count", "/deprecatedCount"]
        .iter()
        .find_map(|p| obj.pointer(p).and_then(Value::as_i64))
        .unwrap_or(1);
    let message = first_text(&["/message", "/note"]).unwrap_or("").trim().to_string();
    vec![
        last,
        Value::String(text(obj, "/type").into()),
        Value::String(text(obj, "/reason").into()),
        Value::String(target),
        Value::String(text(obj, &format!("{regarding}/fieldPath")).into()),
        Value::String(source.into()),
        Value::String(message),
        first,
        Value::from(count),
        name,
    ]
}

/// The cells of `obj`'s row at time `now`, in the order of [`columns`].
pub fn cells(obj: &Value, t: &Resource, now: SystemTime) -> Vec<Value> {
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
    let age = Value::String(age(obj.pointer("/metadata/creationTimestamp").and_then(Value::as_str), now));
    let string = |p: &str| Value::String(text(obj, p).to_string());
    match t.builtin {
        Some(Builtin::Namespace) => return vec![name, string("/status/phase"), age],
        Some(Builtin::Event | Builtin::EventV1) => return event_cells(obj, name, now),
        Some(Builtin::ConfigMap) => return vec![name, key_count(obj, &["/data", "/binaryData"]), age],
        Some(Builtin::Secret) => return vec![name, string("/type"), key_count(obj, &["/data"]), age],
        Some(Builtin::Lease) => return vec![name, string("/spec/holderIdentity"), age],
        _ if t.is_tpr() => {}
        _ => return vec![name, age],
    }
    let description = obj.get("description").cloned().unwrap_or_else(|| Value::String(String::new()));
    let versions: Vec<&str> = (obj.get("versions").and_then(Value::as_array).into_iter().flatten())
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    vec![name, description, Value::String(versions.join(",")), age]
}

/// One row for `obj` at time `now`.
pub fn row(obj: Value, t: &Resource, include: IncludeObject, now: SystemTime) -> Value {
    let cells = cells(&obj, t, now);
    match include {
        IncludeObject::None => json!({ "cells": cells }),
        IncludeObject::Metadata => {
            let metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            json!({
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata},
            })
        }
        IncludeObject::Object => json!({ "cells": cells, "object": obj }),
    }
}

/// A Table of `rows` (`table_version` is `v1` or `v1beta1`). `columns` are
/// left out (an empty list) when `None`, as on a watch after its first event.
pub fn table(table_version: &str, columns: Option<&[Column]>, rows: Vec<Value>, metadata: Value) -> Value {
    let definitions: Vec<Value> = (columns.into_iter().flatten())
        .map(|c| {
            json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{table_version}"),
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object_type() -> Resource {
        Resource {
            group: "prsn.io".into(),
            versions: vec!["v1".into()],
            kind: "MysqlDb".into(),
            plural: "mysqldbs".into(),
            singular: "mysqldb".into(),
            namespaced: true,
            builtin: None,
            description: String::new(),
        }
    }

    fn tpr_type() -> Resource {
        Resource { plural: "thirdpartyresources".into(), ..object_type() }
    }

    #[test]
    fn builtin_rows_have_kube_apiserver_cells() {
        let now = humantime::parse_rfc3339("2026-11-29T10:05:03Z").unwrap();
        let ns = json!({"metadata": {"name": "x", "creationTimestamp": "2026-11-29T10:00:00Z"}, "status": {"phase": "Active"}});
        assert_eq!(cells(&ns, &Builtin::Namespace.resource(), now), vec![json!("x"), json!("Active"), json!("5m3s")]);
        let ev = json!({"metadata": {"name": "e"}, "type": "Normal", "reason": "Created", "message": " done ",
                        "involvedObject": {"kind": "MysqlDb", "name": "orders"}, "lastTimestamp": "2026-11-29T10:05:00Z", "count": 2});
        let c = cells(&ev, &Builtin::Event.resource(), now);
        assert_eq!(c[..4], [json!("3s"), json!("Normal"), json!("Created"), json!("mysqldb/orders")]);
        assert_eq!((c[6].clone(), c[8].clone(), c[9].clone()), (json!("done"), json!(2), json!("e")));
        assert_eq!(columns(&Builtin::Event.resource()).len(), c.len());
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
        assert_eq!(cells(&cm, &Builtin::ConfigMap.resource(), now)[1], json!(3));
    }

    #[test]
    fn rows_of_objects_and_tprs() {
        let (object, tpr_t) = (object_type(), tpr_type());
        let now = humantime::parse_rfc3339("2026-11-29T10:05:03Z").unwrap();
        let obj = json!({"metadata": {"name": "db", "creationTimestamp": "2026-11-29T10:00:00Z"}, "spec": {}});
        let r = row(obj.clone(), &object, IncludeObject::Metadata, now);
        assert_eq!(r["cells"], json!(["db", "5m3s"]));
        assert_eq!(r["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(r["object"]["metadata"]["name"], "db");
        assert!(row(obj.clone(), &object, IncludeObject::None, now).get("object").is_none());
        assert_eq!(row(obj, &object, IncludeObject::Object, now)["object"]["spec"], json!({}));
        let tpr = json!({"metadata": {"name": "mysql-db.prsn.io"}, "description": "d",
                         "versions": [{"name": "v1"}, {"name": "stable/v1"}]});
        assert_eq!(
            cells(&tpr, &tpr_t, now),
            vec![json!("mysql-db.prsn.io"), json!("d"), json!("v1,stable/v1"), json!("<unknown>")]
        );
    }

    #[test]
    fn ages_as_kubectl_shows_them() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (303, "5m3s"),
            (3000, "50m"),
            (3 * 3600 + 60, "3h1m"),
            (20 * 3600, "20h"),
            (3 * 86_400 + 4 * 3600, "3d4h"),
            (30 * 86_400, "30d"),
            (3 * 365 * 86_400, "3y"),
            (10 * 365 * 86_400, "10y"),
        ];
        for (seconds, shown) in cases {
            assert_eq!(human_duration(seconds), shown, "{seconds}s");
        }
    }

    #[test]
    fn tables_with_and_without_headers() {
        let t = table("v1", Some(&columns(&object_type())), vec![], json!({"resourceVersion": "5"}));
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        let t = table("v1beta1", None, vec![], json!({}));
        assert_eq!(t["columnDefinitions"], json!([]));
        assert!(IncludeObject::parse(Some("Everything")).is_err());
    }
}
