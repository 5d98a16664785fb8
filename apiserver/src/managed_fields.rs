//! `metadata.managedFields` and server-side apply for schemaless objects.
//!
//! Like kube-apiserver for custom resources whose schema preserves unknown
//! fields, maps are merged field by field and everything else (scalars, lists)
//! is one field. A field is a path of map keys; `apiVersion`, `kind` and the
//! server-owned parts of `metadata` are not managed (labels, annotations,
//! finalizers and ownerReferences are).
//!
//! - Updates (create, PUT, merge and JSON patch) give their manager the fields
//!   they set or changed, taking them from other managers without conflict.
//! - Apply (`application/apply-patch+yaml`) makes its manager own exactly the
//!   fields of the applied configuration: a field another manager owns with a
//!   different value is a conflict (409 with one cause per field) unless
//!   `force`, which takes it; fields the manager applied before and leaves
//!   out now are removed unless someone else owns them.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::status::{ApiError, Cause, Target};

/// A field: the map keys from the object's root.
type Path = Vec<String>;
/// The fields a manager owns.
type FieldSet = BTreeSet<Path>;

/// Parts of metadata that managers own.
const MANAGED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// One entry of `metadata.managedFields`.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    fields: FieldSet,
}

impl Entry {
    fn to_json(&self) -> Value {
        json!({
            "manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
            "time": self.time, "fieldsType": "FieldsV1", "fieldsV1": encode(&self.fields),
        })
    }
}

/// Who writes: the field manager and the API version written through.
pub struct Writer<'a> {
    /// `fieldManager` (or what the user agent names).
    pub manager: &'a str,
    /// The URL's `group/version`.
    pub api_version: &'a str,
}

/// The fields of `obj` that managers can own.
fn fields_of(obj: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let Value::Object(map) = obj else { return out };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for m in MANAGED_METADATA {
                    if let Some(v) = v.get(*m) {
                        leaves(v, &mut vec![k.clone(), m.to_string()], &mut out);
                    }
                }
            }
            _ => leaves(v, &mut vec![k.clone()], &mut out),
        }
    }
    out
}

fn leaves(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                prefix.push(k.clone());
                leaves(c, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

fn get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn set(v: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = v;
    for k in parents {
        if !cur.get(k).is_some_and(Value::is_object) {
            if let Value::Object(m) = cur {
                m.insert(k.clone(), Value::Object(Map::new()));
            } else {
                return;
            }
        }
        let Some(next) = cur.get_mut(k) else { return };
        cur = next;
    }
    if let Value::Object(m) = cur {
        m.insert(last.clone(), value);
    }
}

fn remove(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = v;
    for k in parents {
        let Some(next) = cur.get_mut(k) else { return };
        cur = next;
    }
    if let Value::Object(m) = cur {
        m.shift_remove(last);
    }
}

/// True if one path is the other or contains it.
fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn owns(set: &FieldSet, p: &[String]) -> bool {
    set.iter().any(|q| related(q, p))
}

/// `fieldsV1`: `{"f:spec":{"f:size":{}}}`.
fn encode(fields: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for p in fields {
        let mut cur = &mut root;
        for k in p {
            let Value::Object(m) = cur else { break };
            cur = m.entry(format!("f:{k}")).or_insert_with(|| Value::Object(Map::new()));
        }
    }
    root
}

fn decode(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
    let Value::Object(m) = v else { return };
    if m.is_empty() && !prefix.is_empty() {
        out.insert(prefix.clone());
    }
    for (k, c) in m {
        if let Some(field) = k.strip_prefix("f:") {
            prefix.push(field.to_string());
            decode(c, prefix, out);
            prefix.pop();
        } else if k == "." && !prefix.is_empty() {
            out.insert(prefix.clone());
        }
    }
}

/// The entries stored in `obj`.
fn entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj.pointer("/metadata/managedFields").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let mut fields = FieldSet::new();
            decode(e.get("fieldsV1").unwrap_or(&Value::Null), &mut Vec::new(), &mut fields);
            Entry {
                manager: text("manager"),
                operation: text("operation"),
                api_version: text("apiVersion"),
                time: text("time"),
                fields,
            }
        })
        .collect()
}

fn store(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries.iter().filter(|e| !e.fields.is_empty()).map(Entry::to_json).collect();
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        if list.is_empty() {
            meta.shift_remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Records an update (create, PUT, merge or JSON patch) of `old` into `new`:
/// the writer owns what it set or changed; what it removed nobody owns.
/// The managedFields the client sent are replaced.
pub fn record_update(old: Option<&Value>, new: &mut Value, writer: &Writer<'_>) {
    let mut list = old.map(entries).unwrap_or_default();
    let before = old.map(fields_of).unwrap_or_default();
    let after = fields_of(new);
    let changed: FieldSet = after.iter().filter(|p| old.and_then(|o| get(o, p)) != get(new, p)).cloned().collect();
    let removed: Vec<&Path> = before.difference(&after).collect();
    for e in &mut list {
        e.fields.retain(|q| !changed.iter().any(|p| related(p, q)) && !removed.iter().any(|p| related(p, q)));
    }
    let now = crate::meta::now_rfc3339();
    match list.iter_mut().find(|e| e.manager == writer.manager && e.operation == "Update") {
        Some(e) if !changed.is_empty() => {
            e.fields.extend(changed);
            e.time = now;
            e.api_version = writer.api_version.to_string();
        }
        Some(_) => {}
        None => list.push(Entry {
            manager: writer.manager.to_string(),
            operation: "Update".into(),
            api_version: writer.api_version.to_string(),
            time: now,
            fields: changed,
        }),
    }
    store(new, &list);
}

/// Server-side apply of `applied` by `writer` onto `current` (`None`: create).
/// Returns the object to store.
pub fn apply(
    current: Option<&Value>,
    applied: &Value,
    writer: &Writer<'_>,
    force: bool,
    target: &Target,
) -> Result<Value, ApiError> {
    let mut result = current.cloned().unwrap_or_else(|| json!({}));
    let mut list = current.map(entries).unwrap_or_default();
    let wanted = fields_of(applied);
    // Conflicts: a field this apply sets to a new value that another manager owns.
    let mut conflicts: Vec<(String, String, Path)> = Vec::new();
    for p in &wanted {
        if current.and_then(|c| get(c, p)) == get(applied, p) {
            continue; // same value: shared ownership
        }
        for e in list.iter().filter(|e| !(e.manager == writer.manager && e.operation == "Apply")) {
            if owns(&e.fields, p) {
                conflicts.push((e.manager.clone(), e.api_version.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&conflicts, target));
    }
    for (manager, _, p) in &conflicts {
        for e in list.iter_mut().filter(|e| &e.manager == manager) {
            e.fields.retain(|q| !related(q, p));
        }
    }
    // Fields this manager applied before and leaves out now go, unless others own them.
    let previous = list
        .iter()
        .find(|e| e.manager == writer.manager && e.operation == "Apply")
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for p in previous.difference(&wanted) {
        let kept_by_others =
            list.iter().any(|e| !(e.manager == writer.manager && e.operation == "Apply") && owns(&e.fields, p));
        if !kept_by_others && !wanted.iter().any(|q| related(q, p)) {
            remove(&mut result, p);
        }
    }
    for p in &wanted {
        if let Some(v) = get(applied, p) {
            set(&mut result, p, v.clone());
        }
    }
    for top in ["apiVersion", "kind"] {
        if let Some(v) = applied.get(top) {
            set(&mut result, &[top.to_string()], v.clone());
        }
    }
    if current.is_none() {
        if let Some(meta) = applied.get("metadata") {
            for key in ["name", "namespace", "generateName"] {
                if let Some(v) = meta.get(key) {
                    set(&mut result, &["metadata".into(), key.into()], v.clone());
                }
            }
        }
    }
    let now = crate::meta::now_rfc3339();
    list.retain(|e| !(e.manager == writer.manager && e.operation == "Apply"));
    list.push(Entry {
        manager: writer.manager.to_string(),
        operation: "Apply".into(),
        api_version: writer.api_version.to_string(),
        time: now,
        fields: wanted,
    });
    store(&mut result, &list);
    Ok(result)
}

fn dotted(p: &[String]) -> String {
    format!(".{}", p.join("."))
}

/// The 409 kube-apiserver answers: `Apply failed with 1 conflict: conflict with
/// "kubectl" using prsn.io/v1: .spec.size`, one cause per field.
fn conflict_error(conflicts: &[(String, String, Path)], target: &Target) -> ApiError {
    let with = |m: &str, v: &str| format!("conflict with \"{m}\" using {v}");
    let described: Vec<String> = conflicts.iter().map(|(m, v, p)| format!("{}: {}", with(m, v), dotted(p))).collect();
    let causes = conflicts
        .iter()
        .map(|(m, v, p)| Cause { reason: "FieldManagerConflict", message: with(m, v), field: dotted(p) })
        .collect();
    ApiError::conflict_with_causes(
        target,
        format!(
            "Apply failed with {} conflict{}: {}",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" },
            described.join(", ")
        ),
        causes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(manager: &str) -> Writer<'_> {
        Writer { manager, api_version: "prsn.io/v1" }
    }

    fn target() -> Target {
        Target { group: "prsn.io".into(), resource: "mysqldbs".into(), name: "a".into() }
    }

    #[test]
    fn fields_v1_round_trip() {
        let obj = json!({"apiVersion": "x", "metadata": {"name": "a", "labels": {"t": "1"}}, "spec": {"size": "s", "tags": [1]}});
        let f = fields_of(&obj);
        let encoded = encode(&f);
        assert_eq!(encoded, json!({"f:metadata": {"f:labels": {"f:t": {}}}, "f:spec": {"f:size": {}, "f:tags": {}}}));
        let mut back = FieldSet::new();
        decode(&encoded, &mut Vec::new(), &mut back);
        assert_eq!(back, f);
    }

    #[test]
    fn apply_creates_then_removes_what_it_leaves_out() {
        let applied = json!({"apiVersion": "prsn.io/v1", "kind": "MysqlDb", "metadata": {"name": "a"}, "spec": {"size": "s", "extra": 1}});
        let created = apply(None, &applied, &w("kubectl"), false, &target()).unwrap();
        assert_eq!(created["spec"], json!({"size": "s", "extra": 1}));
        assert_eq!(created["metadata"]["managedFields"][0]["operation"], "Apply");
        let again =
            json!({"apiVersion": "prsn.io/v1", "kind": "MysqlDb", "metadata": {"name": "a"}, "spec": {"size": "s"}});
        let updated = apply(Some(&created), &again, &w("kubectl"), false, &target()).unwrap();
        assert_eq!(updated["spec"], json!({"size": "s"}));
    }

    #[test]
    fn a_field_owned_by_another_manager_conflicts_unless_forced() {
        let applied = json!({"metadata": {"name": "a"}, "spec": {"size": "s"}});
        let first = apply(None, &applied, &w("one"), false, &target()).unwrap();
        // The same value is shared, not a conflict.
        let shared = apply(Some(&first), &applied, &w("two"), false, &target()).unwrap();
        let change = json!({"metadata": {"name": "a"}, "spec": {"size": "l"}});
        let e = apply(Some(&shared), &change, &w("three"), false, &target()).unwrap_err();
        assert_eq!(e.code, 409);
        assert!(e.message.contains("conflict with \"one\" using prsn.io/v1: .spec.size"), "{}", e.message);
        assert!(e.message.contains("conflict with \"two\" using prsn.io/v1: .spec.size"), "{}", e.message);
        let forced = apply(Some(&shared), &change, &w("three"), true, &target()).unwrap();
        assert_eq!(forced["spec"]["size"], "l");
        let owners: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(owners, ["three"], "the forced apply took the field from both");
    }

    #[test]
    fn updates_take_what_they_change() {
        let applied = json!({"metadata": {"name": "a"}, "spec": {"size": "s", "keep": 1}});
        let old = apply(None, &applied, &w("kubectl"), false, &target()).unwrap();
        let mut new = old.clone();
        new["spec"]["size"] = json!("m");
        record_update(Some(&old), &mut new, &w("editor"));
        let list = entries(&new);
        let editor = list.iter().find(|e| e.manager == "editor").unwrap();
        assert_eq!(editor.fields, FieldSet::from([vec!["spec".to_string(), "size".to_string()]]));
        let kubectl = list.iter().find(|e| e.manager == "kubectl").unwrap();
        assert_eq!(kubectl.fields, FieldSet::from([vec!["spec".to_string(), "keep".to_string()]]));
        // Applying the old size now conflicts with the editor.
        let e = apply(Some(&new), &applied, &w("kubectl"), false, &target()).unwrap_err();
        assert!(e.message.contains("conflict with \"editor\" using prsn.io/v1: .spec.size"), "{}", e.message);
    }
}
