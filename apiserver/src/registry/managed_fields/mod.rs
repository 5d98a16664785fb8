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

mod field_set;

use serde_json::{json, Map, Value};

use field_set::FieldSet;

use crate::status::{ApiError, Cause, Target};

/// Parts of metadata that managers own.
const MANAGED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// Most conflicts named in an apply's 409.
const MAX_CONFLICTS: usize = 100;

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

/// Calls `f(key, value)` for each top-level part of `obj` that managers own
/// (everything but `apiVersion`, `kind` and the server's metadata).
fn managed_parts<'v>(obj: &'v Value, mut f: impl FnMut(&[&'v str], &'v Value)) {
    let Value::Object(map) = obj else { return };
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for m in MANAGED_METADATA {
                    if let Some(v) = v.get(*m) {
                        f(&["metadata", m], v);
                    }
                }
            }
            _ => f(&[k.as_str()], v),
        }
    }
}

/// The node of `set` at `path`, created as needed.
fn node_at<'s>(set: &'s mut FieldSet, path: &[&str]) -> &'s mut FieldSet {
    path.iter().fold(set, |n, k| n.children.entry(k.to_string()).or_default())
}

/// The fields of `obj` that managers can own.
fn fields_of(obj: &Value) -> FieldSet {
    let mut out = FieldSet::default();
    managed_parts(obj, |path, v| leaves(v, node_at(&mut out, path)));
    out
}

/// The fields of `new` whose value differs from `old`'s.
fn changed_fields(old: Option<&Value>, new: &Value) -> FieldSet {
    let mut out = FieldSet::default();
    managed_parts(new, |path, v| {
        let before = old.and_then(|o| path.iter().try_fold(o, |o, k| o.get(*k)));
        let mut d = FieldSet::default();
        differing(before, v, &mut d);
        if !d.is_empty() {
            *node_at(&mut out, path) = d;
        }
    });
    out
}

/// A value's fields: a non-empty map is its keys' fields; anything else is one field.
fn leaves(v: &Value, node: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                leaves(c, node.children.entry(k.clone()).or_default());
            }
        }
        _ => node.leaf = true,
    }
}

/// The fields of `new` that differ from `old`.
fn differing(old: Option<&Value>, new: &Value, node: &mut FieldSet) {
    match new {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                let mut d = FieldSet::default();
                differing(old.and_then(|o| o.get(k)), c, &mut d);
                if !d.is_empty() {
                    node.children.insert(k.clone(), d);
                }
            }
        }
        _ => node.leaf = old != Some(new),
    }
}

/// Sets every field of `src` in `dst` (what `src`'s fields are, `dst` takes).
fn overlay(dst: &mut Value, src: &Value) {
    match src {
        Value::Object(m) if !m.is_empty() => {
            if !dst.is_object() {
                *dst = Value::Object(Map::new());
            }
            if let Value::Object(d) = dst {
                for (k, v) in m {
                    overlay(d.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *dst = src.clone(),
    }
}

/// Removes the fields of `drop` from `v`, keeping the order of what stays:
/// one pass over each map (removing keys one by one would shift a map's
/// entries once per key).
fn remove_fields(v: &mut Value, drop: &FieldSet) {
    let Value::Object(m) = v else { return };
    for (k, d) in &drop.children {
        if !d.leaf {
            if let Some(child) = m.get_mut(k) {
                remove_fields(child, d);
            }
        }
    }
    if drop.children.values().any(|d| d.leaf) {
        m.retain(|k, _| !drop.children.get(k).is_some_and(|d| d.leaf));
    }
}

/// `fieldsV1`: `{"f:spec":{"f:size":{}}}`; a node that is a field and has
/// fields below it carries `".": {}`.
fn encode(fields: &FieldSet) -> Value {
    let mut m = Map::new();
    if fields.leaf && !fields.children.is_empty() {
        m.insert(".".into(), Value::Object(Map::new()));
    }
    for (k, c) in &fields.children {
        m.insert(field_key(k), encode(c));
    }
    Value::Object(m)
}

fn decode(v: &Value, node: &mut FieldSet, root: bool) {
    let Value::Object(m) = v else { return };
    if m.is_empty() && !root {
        node.leaf = true;
    }
    for (k, c) in m {
        if let Some(field) = k.strip_prefix("f:") {
            let child = node.children.entry(field.to_string()).or_default();
            decode(c, child, false);
            if child.is_empty() {
                node.children.remove(field);
            }
        } else if k == "." && !root {
            node.leaf = true;
        }
    }
}

/// The entries stored in `obj`.
fn entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = crate::registry::meta_value(obj, "managedFields").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let mut fields = FieldSet::default();
            decode(e.get("fieldsV1").unwrap_or(&Value::Null), &mut fields, true);
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
    let Some(old) = old else { return record_create(new, writer) };
    let mut list = entries(old);
    let changed = changed_fields(Some(old), new);
    if !list.is_empty() {
        let removed = fields_of(old).minus(Some(&fields_of(new)));
        for e in &mut list {
            e.fields.prune_related(&changed);
            e.fields.prune_related(&removed);
        }
    }
    let now = crate::registry::meta::now_rfc3339();
    match list.iter_mut().find(|e| e.manager == writer.manager && e.operation == "Update") {
        Some(e) if !changed.is_empty() => {
            e.fields.union(&changed);
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

/// Records a create: its writer owns every field of `obj`. The entry the
/// general path of [`record_update`] would make, encoded straight from the
/// object without building a [`FieldSet`] first (creates are most writes).
fn record_create(obj: &mut Value, writer: &Writer<'_>) {
    let fields = encode_all(obj);
    let entry = (!fields.as_object().is_some_and(Map::is_empty)).then(|| {
        // As `json!` would make it, in one allocation of the map's table.
        let mut e = Map::with_capacity(6);
        e.insert("manager".into(), Value::String(writer.manager.to_string()));
        e.insert("operation".into(), Value::String("Update".into()));
        e.insert("apiVersion".into(), Value::String(writer.api_version.to_string()));
        e.insert("time".into(), Value::String(crate::registry::meta::now_rfc3339()));
        e.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        e.insert("fieldsV1".into(), fields);
        Value::Object(e)
    });
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        match entry {
            Some(e) => drop(meta.insert("managedFields".into(), Value::Array(vec![e]))),
            None => drop(meta.shift_remove("managedFields")),
        }
    }
}

/// `fieldsV1` of every field managers can own in `obj`: `encode(&fields_of(obj))`.
fn encode_all(obj: &Value) -> Value {
    let mut root: Vec<(&str, Value)> = Vec::new();
    let mut meta: Vec<(&str, Value)> = Vec::new();
    managed_parts(obj, |path, v| match path {
        ["metadata", m] => meta.push((m, encode_leaves(v))),
        [k] => root.push((k, encode_leaves(v))),
        _ => {}
    });
    if !meta.is_empty() {
        root.push(("metadata", sorted_fields(meta)));
    }
    sorted_fields(root)
}

/// `fieldsV1` of a value's fields (see [`leaves`]).
fn encode_leaves(v: &Value) -> Value {
    match v {
        Value::Object(m) if !m.is_empty() => {
            sorted_fields(m.iter().map(|(k, c)| (k.as_str(), encode_leaves(c))).collect())
        }
        _ => Value::Object(Map::new()),
    }
}

/// The map `{"f:<key>": value}` of `fields`, in key order (as a [`FieldSet`] keeps them).
fn sorted_fields(mut fields: Vec<(&str, Value)>) -> Value {
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut m = Map::with_capacity(fields.len());
    for (k, v) in fields {
        m.insert(field_key(k), v);
    }
    Value::Object(m)
}

/// `f:<key>`.
fn field_key(k: &str) -> String {
    let mut s = String::with_capacity(k.len() + 2);
    s.push_str("f:");
    s.push_str(k);
    s
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
    let is_own = |e: &Entry| e.manager == writer.manager && e.operation == "Apply";
    // Conflicts: a field this apply sets to a new value that another manager owns.
    let differs = changed_fields(current, applied);
    let mut conflicts: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut total = 0;
    for e in list.iter().filter(|e| !is_own(e)) {
        let mut paths = Vec::new();
        let room = MAX_CONFLICTS.saturating_sub(conflicts.len());
        total += differs.related_paths(&e.fields, &mut Vec::new(), room, &mut paths);
        conflicts.extend(paths.into_iter().map(|p| (e.manager.clone(), e.api_version.clone(), p)));
    }
    if total > 0 && !force {
        return Err(conflict_error(&conflicts, total, target));
    }
    if total > 0 {
        for e in list.iter_mut().filter(|e| !(e.manager == writer.manager && e.operation == "Apply")) {
            e.fields.prune_related(&differs);
        }
    }
    // Fields this manager applied before and leaves out now go, unless others own them.
    let previous = list.iter().find(|e| is_own(e)).map(|e| e.fields.clone()).unwrap_or_default();
    let mut dropped = FieldSet::default();
    previous.minus(Some(&wanted)).for_each(&mut Vec::new(), &mut |p: &[String]| {
        let kept_by_others = list.iter().any(|e| !is_own(e) && e.fields.owns_related(p));
        if !kept_by_others && !wanted.owns_related(p) {
            p.iter().fold(&mut dropped, |n, k| n.children.entry(k.clone()).or_default()).leaf = true;
        }
    });
    remove_fields(&mut result, &dropped);
    managed_parts(applied, |path, v| {
        let dst = path.iter().fold(&mut result, |d, k| {
            if !d.is_object() {
                *d = Value::Object(Map::new());
            }
            match d {
                Value::Object(m) => m.entry(k.to_string()).or_insert(Value::Null),
                other => other,
            }
        });
        overlay(dst, v);
    });
    for top in ["apiVersion", "kind"] {
        if let (Some(v), Value::Object(m)) = (applied.get(top), &mut result) {
            m.insert(top.into(), v.clone());
        }
    }
    if current.is_none() {
        if let (Some(meta), Value::Object(m)) = (applied.get("metadata"), &mut result) {
            let target = m.entry("metadata").or_insert_with(|| json!({}));
            for key in ["name", "namespace", "generateName"] {
                if let (Some(v), Value::Object(t)) = (meta.get(key), &mut *target) {
                    t.insert(key.into(), v.clone());
                }
            }
        }
    }
    let now = crate::registry::meta::now_rfc3339();
    list.retain(|e| !is_own(e));
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

/// A field as kube writes it in messages (`.spec.size`), cut to a bounded length.
fn dotted(p: &[String]) -> String {
    const MAX: usize = 1024;
    let s = format!(".{}", p.join("."));
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// The 409 kube-apiserver answers: `Apply failed with 1 conflict: conflict with
/// "kubectl" using prsn.io/v1: .spec.size`, one cause per field (the first
/// [`MAX_CONFLICTS`] are named).
fn conflict_error(conflicts: &[(String, String, Vec<String>)], total: usize, target: &Target) -> ApiError {
    let with = |m: &str, v: &str| format!("conflict with \"{m}\" using {v}");
    let mut described: Vec<String> =
        conflicts.iter().map(|(m, v, p)| format!("{}: {}", with(m, v), dotted(p))).collect();
    if total > conflicts.len() {
        described.push(format!("and {} more", total - conflicts.len()));
    }
    let causes = conflicts
        .iter()
        .map(|(m, v, p)| Cause { reason: "FieldManagerConflict", message: with(m, v), field: dotted(p) })
        .collect();
    ApiError::conflict_with_causes(
        target,
        format!("Apply failed with {total} conflict{}: {}", if total == 1 { "" } else { "s" }, described.join(", ")),
        causes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(manager: &str) -> Writer<'_> {
        Writer { manager, api_version: "prsn.io/v1" }
    }

    fn set_of(paths: &[&[&str]]) -> FieldSet {
        let mut s = FieldSet::default();
        for p in paths {
            node_at(&mut s, p).leaf = true;
        }
        s
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
        let mut back = FieldSet::default();
        decode(&encoded, &mut back, true);
        assert_eq!(back, f);
        // A field with fields below it (sets merged over time) keeps both.
        let mut both = f.clone();
        both.children.get_mut("spec").unwrap().leaf = true;
        let encoded = encode(&both);
        assert_eq!(encoded["f:spec"]["."], json!({}));
        let mut back = FieldSet::default();
        decode(&encoded, &mut back, true);
        assert_eq!(back, both);
    }

    #[test]
    fn a_create_owns_what_the_field_set_tree_says_in_its_order() {
        let objects = [
            json!({"apiVersion": "x", "kind": "K", "metadata": {"name": "a"}}),
            json!({"metadata": {"name": "a", "labels": {"z": "1", "a": "2"}, "finalizers": ["f"]}, "zeta": 1, "alpha": {"y": {}, "b": {"c": [1], "a": null}}}),
            json!({"kind": "K", "spec": {}, "status": "up", "metadata": {"annotations": {}}}),
            json!("not an object"),
        ];
        for obj in objects {
            let direct = serde_json::to_string(&encode_all(&obj)).unwrap();
            let tree = serde_json::to_string(&encode(&fields_of(&obj))).unwrap();
            assert_eq!(direct, tree, "{obj}");
        }
        let mut created =
            json!({"metadata": {"name": "a", "managedFields": [{"manager": "forged"}]}, "spec": {"b": 1, "a": 2}});
        record_update(None, &mut created, &w("maker"));
        let entries = entries(&created);
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].manager.as_str(), entries[0].operation.as_str()), ("maker", "Update"));
        assert_eq!(entries[0].fields, fields_of(&created));
        assert_eq!(
            serde_json::to_string(&created["metadata"]["managedFields"][0]["fieldsV1"]).unwrap(),
            r#"{"f:spec":{"f:a":{},"f:b":{}}}"#
        );
        // Nothing to own: no entry, and what the client sent is dropped.
        let mut bare = json!({"metadata": {"name": "a", "managedFields": [{"manager": "forged"}]}});
        record_update(None, &mut bare, &w("maker"));
        assert!(bare["metadata"].get("managedFields").is_none());
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
        assert_eq!(editor.fields, set_of(&[&["spec", "size"]]));
        let kubectl = list.iter().find(|e| e.manager == "kubectl").unwrap();
        assert_eq!(kubectl.fields, set_of(&[&["spec", "keep"]]));
        // Applying the old size now conflicts with the editor.
        let e = apply(Some(&new), &applied, &w("kubectl"), false, &target()).unwrap_err();
        assert!(e.message.contains("conflict with \"editor\" using prsn.io/v1: .spec.size"), "{}", e.message);
    }

    #[test]
    fn field_sets_are_no_larger_than_their_object() {
        // 100 nested keys of 1000 bytes over 2,000 leaves: each key is held once.
        let mut inner = Map::new();
        for i in 0..2000 {
            inner.insert(format!("leaf{i}"), json!(i));
        }
        let mut v = Value::Object(inner);
        for i in 0..100 {
            v = json!({ format!("{i:01000}"): v });
        }
        let obj = json!({"metadata": {"name": "a"}, "spec": v});
        let mut new = obj.clone();
        record_update(None, &mut new, &w("big"));
        let size = new.to_string().len();
        assert!(
            size < 3 * obj.to_string().len(),
            "managedFields grew the object from {} to {size}",
            obj.to_string().len()
        );
    }

    #[test]
    fn conflicts_are_named_up_to_a_bound() {
        let mut spec = Map::new();
        for i in 0..500 {
            spec.insert(format!("k{i}"), json!(1));
        }
        let first =
            apply(None, &json!({"metadata": {"name": "a"}, "spec": spec}), &w("one"), false, &target()).unwrap();
        let mut changed = Map::new();
        for i in 0..500 {
            changed.insert(format!("k{i}"), json!(2));
        }
        let e = apply(Some(&first), &json!({"metadata": {"name": "a"}, "spec": changed}), &w("two"), false, &target())
            .unwrap_err();
        assert!(e.message.starts_with("Apply failed with 500 conflicts"), "{}", &e.message[..80]);
        assert!(e.message.ends_with("and 400 more"), "{}", e.message);
        assert_eq!(e.details.unwrap()["causes"].as_array().unwrap().len(), MAX_CONFLICTS);
    }
}
